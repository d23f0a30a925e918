"""The summarize stage: an extractive summary of the clean body, with sentence offsets."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col

from newsflow import tallies
from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.db import insert, session_scope
from newsflow.models import SummarySentence
from worker import store
from worker.nlp import get_sentencizer
from worker.stages.base import ChunkResult, Interrupt, NoInterrupt, attempt, begin_cleaned, chunk
from worker.store import Outcome
from worker.summarize import split_sentences, summarize, terms_of


def _summary(
    sentencizer: Any, text: str, title: str | None, language: str | None, settings: Settings
) -> list[Any]:
    return summarize(
        split_sentences(sentencizer, text, language),
        title_terms=terms_of(sentencizer, title or ""),
        text=text,
        length=settings.summary_sentences,
        ratio=settings.summary_ratio,
        max_words=settings.summary_words,
    )


def run(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Extractive summaries of the cleaned articles."""
    cleaned, resend = begin_cleaned(settings, Stage.SUMMARIZE, article_ids, claim)
    if not cleaned:
        return ChunkResult(resend=resend)
    rows = {row.id: row for row in cleaned}

    def work(article_id: int) -> Outcome:
        row = rows[article_id]
        sentencizer = get_sentencizer(row.language)
        return attempt(
            settings, article_id, interrupt, _summary, sentencizer, row.text, row.title,
            row.language, settings,
        )  # fmt: skip

    outcomes, resend = chunk(list(rows), work, interrupt, settings)
    with session_scope(settings.database_url) as session:
        save(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def save(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Replace the summary sentences of these articles."""
    ids = [o.article_id for o in outcomes]
    store.lock(session, stage=Stage.SUMMARIZE, article_ids=ids)
    session.execute(delete(SummarySentence).where(col(SummarySentence.article_id).in_(ids)))
    rows = [
        {
            "article_id": o.article_id,
            "position": position,
            "sentence_index": s.index,
            "start": s.start,
            "end": s.end,
            "text": s.text,
        }
        for o in outcomes
        if not o.error
        for position, s in enumerate(o.output)
    ]
    if rows:
        session.execute(insert(session, SummarySentence), rows)
    store.save_stages(session, stage=Stage.SUMMARIZE, outcomes=outcomes)
    tallies.settle(session, ids)
