"""The clean stage: raw text or HTML -> body, title, byline, dateline, agency, captions,
what was removed and why, language; then queues the stages that read the clean body."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import select as select_columns
from sqlalchemy import update
from sqlmodel import Session, col

from newsflow import delivery, tallies
from newsflow.config import Settings
from newsflow.contract import Stage, followers
from newsflow.db import session_scope
from newsflow.models import Article
from worker import store
from worker.clean import clean_article
from worker.stages.base import ChunkResult, Interrupt, NoInterrupt, attempt, begin, chunk
from worker.store import Outcome


def run(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Clean the articles (the task then sends the cleaned ones on to the next stages)."""
    ids, resend = begin(settings, Stage.CLEAN, article_ids, claim)
    if not ids:
        return ChunkResult(resend=resend)
    with session_scope(settings.database_url) as session:
        articles = {a.id: a for a in store.load_raw(session, ids)}

    def work(article_id: int) -> Outcome:
        a = articles[article_id]
        return attempt(
            settings,
            article_id,
            interrupt,
            clean_article,
            a.raw,
            kind=a.kind,
            title=a.given_title,
            max_elements=settings.max_html_elements,
        )

    outcomes, resend = chunk([i for i in ids if i in articles], work, interrupt, settings)
    with session_scope(settings.database_url) as session:
        save(session, outcomes)
    return ChunkResult(stored=len(outcomes), resend=resend)


def save(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Write the clean fields of the articles that cleaned: one UPDATE by primary key for
    the chunk, sent as a batch (same values twice is the same row)."""
    rows = []
    for o in outcomes:
        if o.error:
            continue
        c = o.output
        row = {
            "id": o.article_id,
            "title": c.title,
            "byline": c.byline,
            "dateline_place": c.dateline_place,
            "dateline_date": c.dateline_date,
            "agency": c.agency,
            "site": c.site,
            "language": c.language,
            "text": c.text,
            "captions": c.captions,
            "removed": c.removed,
            "word_count": c.word_count,
            "guessed_published": c.published,  # the submitter's date stays as given
        }
        rows.append(row)
    ids = [o.article_id for o in outcomes]
    store.lock(session, stage=Stage.CLEAN, article_ids=ids)
    tallies.lock_contents(session, ids)
    before = dict(
        session.execute(
            select_columns(col(Article.id), col(Article.language)).where(col(Article.id).in_(ids))
        )
        .tuples()
        .all()
    )
    if rows:
        session.execute(update(Article), rows)
    store.save_stages(session, stage=Stage.CLEAN, outcomes=outcomes)
    cleaned = [row["id"] for row in rows]
    delivery.reopen_later_stages(session, cleaned)  # a clean run again: they start anew
    for later in followers(Stage.CLEAN):  # queued with the clean result, sent once committed
        delivery.mark_queued(session, stage=later, article_ids=cleaned)
    tallies.languages_changed(
        session, {row["id"]: (before.get(row["id"]), row["language"]) for row in rows}
    )
    tallies.settle(session, ids)
