"""The extract stage: canonical entities with their mentions and salience, and keyphrases,
from the language's entity model (or keyphrases alone from its tokenizer)."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator, Sequence
from typing import Any

from sqlalchemy import delete
from sqlmodel import Session, col

from newsflow import tallies
from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.db import insert, session_scope
from newsflow.errors import ConfigurationError
from newsflow.models import Entity, Keyphrase, Mention
from worker import store
from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases, extract_token_keyphrases
from worker.nlp import entity_model, get_nlp, get_sentencizer, model_label
from worker.stages.base import (
    ChunkResult,
    Interrupt,
    NoInterrupt,
    attempt,
    begin_cleaned,
    describe,
    timed_out,
)
from worker.store import Outcome

log = logging.getLogger(__name__)
# An nlp.pipe batch: at most PIPE_BATCH docs and, unless one text is longer, PIPE_CHARS
# characters. spaCy pads a batch to its longest text, so peak memory follows docs x longest
# text: measured in one process over 1,200 BBC articles, batches of 8 docs peaked at 388 MB,
# 8 docs within 16,000 characters at 303 MB, in the same time.
PIPE_BATCH = 8
PIPE_CHARS = 16_000
SPACY_MAX_LENGTH = 1_000_000  # spaCy's default nlp.max_length: longer texts it refuses


def _admitted(
    rows: list[store.CleanRow], max_chars: int
) -> tuple[list[store.CleanRow], list[Outcome]]:
    """Rows the extract stage can take, and failures, with the reason, for the rest."""
    admitted, refused = [], []
    for row in rows:
        if len(row.text) <= max_chars:
            admitted.append(row)
            continue
        reason = (
            f"article text is {len(row.text):,} characters, over the {max_chars:,} "
            "the extract stage takes (NEWSFLOW_MAX_EXTRACT_CHARS, which bounds a "
            "worker's memory); split the article or raise the limit"
        )
        refused.append(Outcome(row.id, 0.0, error=reason))
    return admitted, refused


def _batches(texts: list[str]) -> Iterator[list[str]]:
    """Consecutive texts grouped within PIPE_BATCH docs and PIPE_CHARS characters."""
    batch: list[str] = []
    chars = 0
    for text in texts:
        if batch and (len(batch) == PIPE_BATCH or chars + len(text) > PIPE_CHARS):
            yield batch
            batch, chars = [], 0
        batch.append(text)
        chars += len(text)
    if batch:
        yield batch


def _docs(
    nlp: Any, texts: list[str], interrupt: Interrupt, settings: Settings
) -> Iterator[tuple[Any, float, BaseException | None]]:
    """(doc, seconds, error) per text: nlp.pipe for speed, one by one if the batch breaks."""
    started = time.perf_counter()
    done = 0
    try:
        for doc in (d for b in _batches(texts) for d in nlp.pipe(b, batch_size=len(b))):
            now = time.perf_counter()
            yield doc, now - started, None
            started, done = now, done + 1
        return
    except interrupt:
        raise
    except Exception as exc:
        log.warning("nlp.pipe failed on a chunk (%s); going on one by one", describe(exc, settings))
    for text in texts[done:]:
        started = time.perf_counter()
        try:
            yield nlp(text), time.perf_counter() - started, None
        except interrupt:
            raise
        except Exception as exc:
            yield None, time.perf_counter() - started, exc


def _annotate(doc: Any, title: str | None, settings: Settings) -> tuple[list[Any], list[Any]]:
    return (
        extract_entities(doc, title=title, numeric=settings.numeric_entities),
        extract_keyphrases(doc, top=settings.keyphrases),
    )


def _keyphrases_only(doc: Any, settings: Settings) -> tuple[list[Any], list[Any]]:
    return [], extract_token_keyphrases(doc, top=settings.keyphrases)


def _no_entity_model(language: str) -> str:
    return (
        f"entities skipped: no entity model for language {language!r} (NEWSFLOW_MODELS names "
        "one per language, e.g. fr=fr_core_news_sm); keyphrases from its tokenizer"
    )


def _pipelines(
    rows: list[store.CleanRow], settings: Settings
) -> dict[tuple[str | None, str], list[store.CleanRow]]:
    """The rows grouped by what runs on them: (entity model, "") for languages with an
    entity model, (None, language code) for each other language."""
    models = settings.entity_models()
    groups: dict[tuple[str | None, str], list[store.CleanRow]] = {}
    for row in rows:
        model = entity_model(models, row.language)
        key = (model, "") if model else (None, row.language or "xx")
        groups.setdefault(key, []).append(row)
    return groups


def run(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Entities and keyphrases of the cleaned articles: with the language's entity model
    when one is configured, else keyphrases from its tokenizer and entities skipped."""
    max_chars = min(SPACY_MAX_LENGTH, settings.max_extract_chars)
    cleaned, resend = begin_cleaned(settings, Stage.EXTRACT, article_ids, claim)
    rows, outcomes = _admitted(cleaned, max_chars)
    if not rows and not outcomes:
        return ChunkResult(resend=resend)
    try:
        for (model, language), group in _pipelines(rows, settings).items():
            try:
                nlp = get_nlp(model) if model else get_sentencizer(language)
            except ConfigurationError as exc:  # a configured model that is not installed
                outcomes.extend(Outcome(row.id, 0.0, error=str(exc)) for row in group)
                continue
            label = model_label(nlp)
            with nlp.memory_zone():  # frees the strings this chunk added to the vocab
                texts = [row.text for row in group]
                for row, (doc, seconds, error) in zip(
                    group, _docs(nlp, texts, interrupt, settings), strict=True
                ):
                    if error is not None:
                        outcomes.append(Outcome(row.id, seconds, error=describe(error, settings)))
                        continue
                    if model:
                        outcome = attempt(
                            settings, row.id, interrupt, _annotate, doc, row.title, settings
                        )
                    else:
                        outcome = attempt(
                            settings, row.id, interrupt, _keyphrases_only, doc, settings
                        )
                        outcome.skipped = None if outcome.error else _no_entity_model(language)
                    outcome.seconds += seconds
                    outcome.model = label
                    outcomes.append(outcome)
    except interrupt:
        finished = {o.article_id for o in outcomes}
        left = [row.id for row in rows if row.id not in finished]
        if len(left) == 1:  # the one article still in the pipe is the slow one
            outcomes.append(Outcome(left[0], 0.0, error=timed_out(settings)))
        else:
            resend = [[i] for i in left]
    with session_scope(settings.database_url) as session:
        save(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def save(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Replace the entities, mentions and keyphrases of these articles."""
    ids = [o.article_id for o in outcomes]
    store.lock(session, stage=Stage.EXTRACT, article_ids=ids)
    replaced = tallies.standing(session, ids, -1)
    for table in (Mention, Entity, Keyphrase):
        session.execute(delete(table).where(col(table.article_id).in_(ids)))
    entities: list[dict[str, Any]] = []
    mentions: list[dict[str, Any]] = []
    phrases: list[dict[str, Any]] = []
    keys: dict[int, set[str]] = {i: set() for i in ids}
    for o in outcomes:
        if o.error:
            continue
        found, keyphrases = o.output
        for e_idx, e in enumerate(found):
            keys[o.article_id] |= tallies.entity_keys(e.name, (m.text for m in e.mentions))
            entities.append(
                {
                    "article_id": o.article_id,
                    "idx": e_idx,
                    "name": e.name,
                    "name_lower": e.name.casefold(),
                    "label": e.label,
                    "count": e.count,
                    "salience": e.salience,
                    "aliases": e.aliases,
                }
            )
            mentions.extend(
                {
                    "article_id": o.article_id,
                    "entity_idx": e_idx,
                    "idx": m_idx,
                    "start": m.start,
                    "end": m.end,
                    "text": m.text,
                }
                for m_idx, m in enumerate(e.mentions)
            )
        phrases.extend(
            {"article_id": o.article_id, "rank": rank, "text": k.text, "score": k.score}
            for rank, k in enumerate(keyphrases)
        )
    for table, rows in ((Entity, entities), (Mention, mentions), (Keyphrase, phrases)):
        if rows:
            session.execute(insert(session, table), rows)
    tallies.count_entities(session, replaced, tallies.standing(session, ids))
    tallies.write_keys(session, keys)
    store.save_stages(session, stage=Stage.EXTRACT, outcomes=outcomes)
    tallies.settle(session, ids)
