"""Idempotent writes of each stage's output, and the reads the stages need.

Every write replaces what the same stage wrote for the same articles before, inside one
transaction: a redelivered message, a requeue or a retry leaves exactly one copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

from sqlalchemy import delete, update
from sqlmodel import Session, col, select

from newsflow import __version__
from newsflow.contract import DONE, FAILED, RUNNING
from newsflow.db import insert
from newsflow.models import Article, Entity, Keyphrase, Mention, Stage, SummarySentence, utcnow


@dataclass
class Outcome:
    """One article's result of one stage: `output` on success, `error` on failure."""

    article_id: int
    seconds: float
    output: Any = None
    error: str | None = None


def load_raw(session: Session, article_ids: Sequence[int]) -> list[Article]:
    rows = session.execute(select(Article).where(col(Article.id).in_(article_ids)))
    return list(rows.scalars())


class CleanRow(NamedTuple):
    id: int
    text: str
    title: str | None
    language: str | None


def load_clean(session: Session, article_ids: Sequence[int]) -> list[CleanRow]:
    """The articles whose clean stage is done, with what the next stages read."""
    query = (
        select(col(Article.id), col(Article.text), col(Article.title), col(Article.language))
        .join(Stage, col(Stage.article_id) == col(Article.id))
        .where(
            col(Article.id).in_(article_ids), col(Stage.stage) == "clean", col(Stage.status) == DONE
        )
        .order_by(col(Article.id))
    )
    return [CleanRow(r[0], r[1] or "", r[2], r[3]) for r in session.execute(query)]


@dataclass
class Start:
    """The articles of a chunk that are to run, and whether a delivery of them died before."""

    ids: list[int]
    interrupted: bool


def start(session: Session, *, stage: str, article_ids: Sequence[int], max_attempts: int) -> Start:
    """Mark `stage` started on these articles, counting the attempt.

    A stage row still 'processing' means an earlier run never finished (its worker died).
    An article that got that far `max_attempts` times is failed with a reason instead of
    being run again, so one poisonous article cannot loop forever.
    """
    if not article_ids:
        return Start([], False)
    rows = session.execute(
        select(col(Stage.article_id), col(Stage.status), col(Stage.attempts)).where(
            col(Stage.stage) == stage, col(Stage.article_id).in_(article_ids)
        )
    )
    unfinished = {row.article_id: row.attempts for row in rows if row.status == RUNNING}
    hopeless = [i for i, attempts in unfinished.items() if attempts >= max_attempts]
    if hopeless:
        error = (
            f"gave up after {max_attempts} attempts that never finished (the worker was killed "
            "or ran out of memory or time on it); `newsflow requeue --failed` tries again"
        )
        save_stages(session, stage=stage, outcomes=[Outcome(i, 0.0, error=error) for i in hopeless])
    ids = [i for i in article_ids if i not in hopeless]
    if ids:
        statement = insert(session, Stage).values(
            [
                {
                    "article_id": i,
                    "stage": stage,
                    "status": RUNNING,
                    "attempts": 1,
                    "updated_at": utcnow(),
                }
                for i in ids
            ]
        )
        statement = statement.on_conflict_do_update(
            index_elements=["article_id", "stage"],
            set_={
                "status": RUNNING,
                "attempts": col(Stage.attempts) + 1,
                "updated_at": statement.excluded.updated_at,
            },
        )
        session.execute(statement)
    return Start(ids, bool(unfinished))


def save_stages(
    session: Session, *, stage: str, outcomes: Sequence[Outcome], model: str | None = None
) -> None:
    """Upsert the final status, error and timing of `stage` for each article."""
    if not outcomes:
        return
    rows = [
        {
            "article_id": o.article_id,
            "stage": stage,
            "status": FAILED if o.error else DONE,
            "error": o.error,
            "seconds": round(o.seconds, 4),
            "attempts": 0,
            "version": __version__,
            "model": model,
            "updated_at": utcnow(),
        }
        for o in outcomes
    ]
    statement = insert(session, Stage).values(rows)
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["article_id", "stage"],
        set_={
            key: getattr(excluded, key)
            for key in ("status", "error", "seconds", "attempts", "version", "model", "updated_at")
        },
    )
    session.execute(statement)


def save_clean(session: Session, outcomes: Sequence[Outcome]) -> None:
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
            "language": c.language,
            "text": c.text,
            "captions": c.captions,
            "removed": c.removed,
            "word_count": c.word_count,
        }
        if c.published:  # else keep the date the submitter gave
            row["published"] = c.published
        rows.append(row)
    if rows:
        session.execute(update(Article), rows)
    save_stages(session, stage="clean", outcomes=outcomes)


def save_extract(session: Session, outcomes: Sequence[Outcome], *, model: str) -> None:
    """Replace the entities, mentions and keyphrases of these articles."""
    ids = [o.article_id for o in outcomes]
    for table in (Mention, Entity, Keyphrase):
        session.execute(delete(table).where(col(table.article_id).in_(ids)))
    entities: list[dict[str, Any]] = []
    mentions: list[dict[str, Any]] = []
    phrases: list[dict[str, Any]] = []
    for o in outcomes:
        if o.error:
            continue
        found, keyphrases = o.output
        for e_idx, e in enumerate(found):
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
    save_stages(session, stage="extract", outcomes=outcomes, model=model)


def save_summaries(session: Session, outcomes: Sequence[Outcome]) -> None:
    """Replace the summary sentences of these articles."""
    ids = [o.article_id for o in outcomes]
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
    save_stages(session, stage="summarize", outcomes=outcomes)
