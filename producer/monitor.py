"""What is going on: batch progress and failures from the DB, queues and workers from Redis."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from newsflow import tallies
from newsflow.config import Settings, mask_url
from newsflow.contract import ARTICLE_STATUSES, FAILED, QUEUED, RUNNING, Stage, Status
from newsflow.db import read_scope
from newsflow.errors import NotFound, ServiceUnavailable
from newsflow.models import Article, Batch, BatchArticle, Count, StageRow
from newsflow.record import (
    BatchProgress,
    BrokerState,
    Failure,
    QueueDepth,
    ServiceStatus,
    Stall,
    StallNote,
    WorkerInfo,
    WorkerProblem,
)
from producer import broker


def _status_counts(session: Session, batch_id: int | None) -> dict[int, dict[str, int]]:
    """Per batch: its submissions per status (kept counts, see newsflow.tallies)."""
    query = select_columns(col(Count.batch_id), col(Count.key), col(Count.n)).where(
        col(Count.kind) == tallies.STATUS
    )
    if batch_id is not None:
        query = query.where(col(Count.batch_id) == batch_id)
    counts: dict[int, dict[str, int]] = {}
    for batch, key, n in session.execute(query):
        counts.setdefault(batch, {})[key] = n
    return counts


def batch_progress(
    session: Session, batch_id: int | None = None, *, rates: bool = True
) -> list[BatchProgress]:
    """Every batch (or one): its submissions by status and, with `rates`, articles per
    minute over the last 1 and 5 minutes and an ETA. An unknown batch raises NotFound."""
    by_batch = _status_counts(session, batch_id)
    batches = select(Batch).order_by(col(Batch.id))
    if batch_id is not None:
        batches = batches.where(col(Batch.id) == batch_id)
    result = []
    now = datetime.now(UTC)
    for batch in session.execute(batches).scalars():
        assert batch.id is not None
        kept = by_batch.get(batch.id, {})
        counts = {s.value: kept.get(s.value, 0) for s in ARTICLE_STATUSES}
        left = counts[QUEUED] + counts[RUNNING]
        per_minute: dict[int, float | None] = {1: None, 5: None}
        if rates:
            per_minute = {
                minutes: finished_since(session, now - timedelta(minutes=minutes), batch.id)
                / minutes
                if left
                else 0.0
                for minutes in (1, 5)
            }
        rate = per_minute[1] or per_minute[5]
        result.append(
            BatchProgress(
                id=batch.id,
                name=batch.name,
                created_at=batch.created_at.isoformat(timespec="seconds"),
                total=sum(counts.values()),
                **counts,
                duplicates=batch.duplicates,
                rejected=batch.rejected,
                per_minute_1m=per_minute[1],
                per_minute_5m=per_minute[5],
                eta_seconds=round(60 * left / rate) if left and rate else None,
            )
        )
    if batch_id is not None and not result:
        raise NotFound(f"no batch {batch_id}; `newsflow status` lists the batches")
    return result


def finished_since(session: Session, since: datetime, batch_id: int) -> int:
    """Submissions of a batch whose content became done or failed after `since`."""
    query = select_columns(func.count()).where(
        col(BatchArticle.batch_id) == batch_id, col(BatchArticle.finished_at) >= since
    )
    return int(session.execute(query).scalar_one())


def _quiet(batch_id: int, older_than: float) -> Any:
    """Stage rows of a batch's contents, unfinished, with no sign of life for `older_than` s."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    unfinished = select(col(BatchArticle.article_id)).where(
        col(BatchArticle.batch_id) == batch_id, col(BatchArticle.status).in_((QUEUED, RUNNING))
    )
    return (
        col(StageRow.article_id).in_(unfinished)
        & col(StageRow.status).in_((QUEUED, RUNNING))
        & (col(StageRow.updated_at) < cutoff)
    )


def _first_record(batch_id: int | None = None) -> Any:
    """The first record (submission) of the stage row's content, in `batch_id` if given."""
    first = aliased(BatchArticle)
    query = select_columns(func.min(col(first.id))).where(
        col(first.article_id) == col(StageRow.article_id)
    )
    if batch_id is not None:
        query = query.where(col(first.batch_id) == batch_id)
    return query.scalar_subquery()


def stalled(session: Session, batch_id: int, *, older_than: float, limit: int = 10) -> list[Stall]:
    """Unfinished stage rows of a batch with no sign of life for `older_than` seconds."""
    query = (
        select_columns(
            _first_record(batch_id).label("record_id"),
            col(StageRow.article_id),
            col(StageRow.stage),
            col(StageRow.status),
            col(StageRow.updated_at),
        )
        .where(_quiet(batch_id, older_than))
        .order_by(col(StageRow.updated_at))
        .limit(limit)
    )
    return [
        Stall(
            record_id=r.record_id,
            content_id=r.article_id,
            stage=Stage(r.stage),
            status=Status(r.status),
            since=r.updated_at.isoformat(timespec="seconds"),
        )
        for r in session.execute(query)
    ]


def stalled_count(session: Session, batch_id: int, *, older_than: float) -> int:
    """Contents of a batch with unfinished work that showed no sign of life for
    `older_than` seconds."""
    counted = func.count(func.distinct(col(StageRow.article_id)))
    query = select_columns(counted).where(_quiet(batch_id, older_than))
    return int(session.execute(query).scalar_one())


def stall_reason(
    problems: list[WorkerProblem], workers: list[Any], broker_error: str | None
) -> str:
    """The likeliest reason work makes no progress, from what the workers and broker say."""
    if broker_error:
        return broker_error
    if problems:
        return "; ".join(f"worker {p.worker} {p.reason} (since {p.since})" for p in problems)
    if not workers:
        return "no worker answers: start one (`newsflow worker`)"
    return "the workers say nothing is wrong: see their logs"


def recent_failures(
    session: Session, *, batch_id: int | None = None, limit: int = 10
) -> list[Failure]:
    """The latest failed stages, each with the first record (submission) of its content
    (in the batch, when one is given)."""
    query = (
        select_columns(
            _first_record(batch_id).label("record_id"),
            col(StageRow.article_id),
            col(Article.batch_id),
            col(StageRow.stage),
            col(StageRow.error),
            col(StageRow.updated_at),
        )
        .join(Article, col(Article.id) == col(StageRow.article_id))
        .where(col(StageRow.status) == FAILED)
    )
    if batch_id is not None:  # the batch's failed submissions, through their index
        failed = select(col(BatchArticle.article_id)).where(
            col(BatchArticle.batch_id) == batch_id, col(BatchArticle.status) == FAILED
        )
        query = query.where(col(StageRow.article_id).in_(failed))
    query = query.order_by(col(StageRow.updated_at).desc()).limit(limit)
    return [
        Failure(
            record_id=r.record_id,
            content_id=r.article_id,
            batch_id=r.batch_id,  # the batch that first sent the content
            stage=Stage(r.stage),
            error=r.error,
            at=r.updated_at.isoformat(timespec="seconds"),
        )
        for r in session.execute(query)
    ]


def languages(session: Session, batch_id: int | None = None) -> dict[str, int]:
    """Contents per detected language ("?" while not cleaned or not detected), most first
    (kept counts, see newsflow.tallies)."""
    query = select_columns(col(Count.key), col(Count.n)).where(
        col(Count.kind) == tallies.LANGUAGE,
        col(Count.batch_id) == (tallies.ALL if batch_id is None else batch_id),
        col(Count.n) > 0,
    )
    counts = session.execute(query).tuples().all()
    return dict(sorted(counts, key=lambda item: (-item[1], item[0])))


def status(settings: Settings, *, batch_id: int | None = None) -> ServiceStatus:
    """The `status --json` document. Batch figures come from the DB, so they survive any
    broker restart; an unreachable broker is reported, not fatal."""
    with read_scope(settings.database_url) as session:
        batches = batch_progress(session, batch_id)
        failures = recent_failures(session, batch_id=batch_id)
        spoken = languages(session, batch_id)
        quiet = {
            b.id: stalled_count(session, b.id, older_than=settings.lost_after)
            for b in batches
            if not b.finished
        }
    error = None
    try:
        depths = broker.queue_depths(settings)
        workers = broker.workers(settings)
        answering = {w["name"] for w in workers}
        problems = [  # a worker killed before it could unsay its note is not shown
            WorkerProblem(**p)
            for p in broker.problems(settings)
            if p["worker"].rpartition(":")[0] in answering or p["worker"] in answering
        ]
    except ServiceUnavailable as exc:
        depths, workers, problems, error = {}, [], [], str(exc)
    why = stall_reason(problems, workers, error)
    minutes = max(1, round(settings.lost_after / 60))
    return ServiceStatus(
        queues={name: QueueDepth(**depth) for name, depth in depths.items()},
        workers=[WorkerInfo(**w) for w in workers],
        problems=problems,
        stalls=[
            StallNote(batch_id=b, articles=n, minutes=minutes, reason=why)
            for b, n in quiet.items()
            if n
        ],
        batches=batches,
        failures=failures,
        languages=spoken,
        broker=BrokerState(url=mask_url(settings.broker()), error=error),
    )
