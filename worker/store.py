"""Idempotent writes of each stage's output, and the reads the stages need.

Every write replaces what the same stage wrote for the same articles before, inside one
transaction: a redelivered message, a requeue or a retry leaves exactly one copy.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, NamedTuple

from sqlalchemy import select as select_columns
from sqlalchemy import update
from sqlmodel import Session, col, select

from newsflow import __version__, delivery, tallies
from newsflow.contract import DONE, FAILED, FINISHED, QUEUED, RUNNING, SKIPPED, SPEC, Stage
from newsflow.db import insert
from newsflow.models import Article, StageRow, utcnow

ERROR_CHARS = 1000  # a stored error is a reason for a person, not a dump


@dataclass
class Outcome:
    """One article's result of one stage: `output` on success, `error` on failure."""

    article_id: int
    seconds: float
    output: Any = None
    error: str | None = None
    skipped: str | None = None  # why part of the stage's work did not apply (stored as its error)
    model: str | None = None  # the pipeline that made `output`, when it differs per article


def load_raw(session: Session, article_ids: Sequence[int]) -> list[Article]:
    rows = session.execute(select(Article).where(col(Article.id).in_(article_ids)))
    return list(rows.scalars())


def existing(session: Session, article_ids: Sequence[int]) -> list[int]:
    """The ids among these that name stored articles."""
    query = select(col(Article.id)).where(col(Article.id).in_(article_ids))
    return sorted(session.execute(query).scalars())


class CleanRow(NamedTuple):
    id: int
    text: str
    title: str | None
    language: str | None


def load_clean(session: Session, article_ids: Sequence[int]) -> list[CleanRow]:
    """The articles whose clean stage is done, with what the next stages read."""
    query = (
        select(col(Article.id), col(Article.text), col(Article.title), col(Article.language))
        .join(StageRow, col(StageRow.article_id) == col(Article.id))
        .where(
            col(Article.id).in_(article_ids),
            col(StageRow.stage) == Stage.CLEAN,
            col(StageRow.status) == DONE,
        )
        .order_by(col(Article.id))
    )
    return [CleanRow(r[0], r[1] or "", r[2], r[3]) for r in session.execute(query)]


@dataclass
class Start:
    """What a delivery of a chunk does: run `ids`, send `resend` on as singletons instead,
    and leave `skipped` alone (done already, or running under another live delivery)."""

    ids: list[int]
    resend: list[list[int]] = field(default_factory=list)
    skipped: list[int] = field(default_factory=list)
    unknown: list[int] = field(default_factory=list)  # no row: not stored, or not cleaned


def same_message(claim: str | None, ours: str) -> tuple[bool, bool]:
    """(same task, an earlier try of it): claims are "task-id#retries"."""
    if not claim:
        return False, False
    task, _, tries = claim.rpartition("#")
    our_task, _, our_tries = ours.rpartition("#")
    if task != our_task:
        return False, False
    return True, tries.isdigit() and our_tries.isdigit() and int(tries) < int(our_tries)


def lock(session: Session, *, stage: str, article_ids: Sequence[int]) -> None:
    """Lock the stage rows of these articles, in id order, until the transaction ends.

    PostgreSQL: two deliveries of one chunk then save one after the other, the second
    replacing the first's rows instead of colliding with them. (SQLite's write lock already
    serialises every writing transaction.)
    """
    session.execute(
        select(col(StageRow.article_id))
        .where(col(StageRow.stage) == stage, col(StageRow.article_id).in_(article_ids))
        .order_by(col(StageRow.article_id))
        .with_for_update()
    )


def start(
    session: Session,
    *,
    stage: str,
    article_ids: Sequence[int],
    claim: str,
    stale_before: datetime,
    max_attempts: int,
) -> Start:
    """Decide, row by row under lock, what this delivery runs, and mark it started.

    - done: skipped (a duplicate message);
    - processing under this very message: the earlier delivery died (a worker killed on
      it), so it counts as an attempt; under an earlier try of this task (a retry after a
      transient failure): just run again; under another message, untouched since
      `stale_before`: taken over; else skipped, since a live delivery runs it;
    - queued or failed: run.
    An article whose runs died `max_attempts` times is failed with that reason instead of
    run again, so one poisonous article cannot loop forever. When a delivery died, the
    chunk is split into one message per article, so the culprit runs alone.
    """
    ids = sorted(set(article_ids))
    if (
        SPEC[Stage(stage)].after is None
    ):  # rows of later stages come with what they read, never before
        delivery.mark_queued(session, stage=stage, article_ids=ids)
    rows = session.execute(
        select_columns(
            col(StageRow.article_id),
            col(StageRow.status),
            col(StageRow.attempts),
            col(StageRow.claim),
            col(StageRow.updated_at),
        )
        .where(col(StageRow.stage) == stage, col(StageRow.article_id).in_(ids))
        .order_by(col(StageRow.article_id))
        .with_for_update()
    ).all()
    result = Start(ids=[], unknown=sorted(set(ids) - {row.article_id for row in rows}))
    attempts: dict[int, int] = {}
    for row in rows:
        same, retry = same_message(row.claim, claim)
        attempts[row.article_id] = row.attempts
        if row.status in FINISHED:
            result.skipped.append(row.article_id)
            continue
        if row.status == RUNNING and not retry:
            if same:
                attempts[row.article_id] += 1
            elif aware(row.updated_at) >= stale_before:
                result.skipped.append(row.article_id)
                continue
        result.ids.append(row.article_id)
    hopeless = [i for i in result.ids if attempts[i] >= max_attempts]
    if hopeless:
        error = (
            f"gave up after {max_attempts} runs that never finished (the worker was killed, or "
            "ran out of memory or time, on it); `newsflow requeue --failed` tries again"
        )
        save_stages(session, stage=stage, outcomes=[Outcome(i, 0.0, error=error) for i in hopeless])
        result.ids = [i for i in result.ids if i not in hopeless]
    died = any(attempts[i] > 0 for i in result.ids)
    if died and len(result.ids) > 1:
        status, result.resend, result.ids = QUEUED, [[i] for i in result.ids], []
        started = [i for c in result.resend for i in c]
    else:
        status, started = RUNNING, result.ids
    now = utcnow()
    by_attempts: dict[int, list[int]] = {}
    for article_id in started:  # one statement per attempts value: usually one in all
        by_attempts.setdefault(attempts[article_id], []).append(article_id)
    for count, same_count in by_attempts.items():
        session.execute(
            update(StageRow)
            .where(col(StageRow.stage) == stage, col(StageRow.article_id).in_(same_count))
            .values(
                status=status,
                attempts=count,
                claim=claim if status == RUNNING else None,
                sent_at=now,
                runs=col(StageRow.runs) + (1 if status == RUNNING else 0),
                updated_at=now,
            )
        )
    tallies.settle(session, ids)
    return result


def aware(moment: datetime) -> datetime:
    """SQLite hands back naive UTC datetimes; compare them as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


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
            "status": FAILED if o.error else SKIPPED if o.skipped else DONE,
            "error": (o.error or o.skipped or "")[:ERROR_CHARS] or None,
            "seconds": round(o.seconds, 4),
            "attempts": 0,
            "version": __version__,
            "model": o.model or model,
            "updated_at": utcnow(),
        }
        for o in outcomes
    ]
    statement = insert(session, StageRow)  # the rows go as parameters: compiled once
    excluded = statement.excluded
    statement = statement.on_conflict_do_update(
        index_elements=["article_id", "stage"],
        set_={
            **{
                key: getattr(excluded, key)
                for key in ("status", "error", "seconds", "attempts", "version", "model")
            },
            "updated_at": excluded.updated_at,
            "claim": None,
        },
    )
    session.execute(statement, rows)
