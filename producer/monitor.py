"""What is going on: batch progress and failures from the DB, queues and workers from Redis."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, case, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from newsflow.config import Settings, mask_url
from newsflow.contract import (
    ARTICLE_STATUSES,
    DONE,
    FAILED,
    FINISHED,
    QUEUED,
    REQUIRED,
    RUNNING,
    STAGES,
)
from newsflow.db import read_scope
from newsflow.delivery import batch_members
from newsflow.errors import ServiceUnavailable
from newsflow.models import Article, Batch, BatchArticle, StageRow
from producer import broker


def _counts() -> tuple[Any, Any, Any]:
    """Per article: its failed stage rows, its finished (done or skipped) rows of the stages
    it needs, and its started (finished or processing) rows."""

    def count(*statuses: str, stages: tuple[str, ...] = STAGES) -> Any:
        chosen = col(StageRow.status).in_(statuses) & col(StageRow.stage).in_(stages)
        return func.sum(case((chosen, 1), else_=0))

    return count(FAILED), count(*FINISHED, stages=REQUIRED), count(*FINISHED, RUNNING)


def status_rule(failed: Any, done: Any, started: Any) -> Any:
    """The article status from its stage counts, the one place it is decided: failed if a
    stage failed, done when every stage it needs is finished, queued while none has
    started."""
    return case(
        (failed > 0, FAILED),
        (done >= len(REQUIRED), DONE),
        (started > 0, RUNNING),
        else_=QUEUED,
    )


def article_status() -> Any:
    """A subquery of (article_id, status), the status derived from the article's stages."""
    return (
        select(col(Article.id).label("article_id"), status_rule(*_counts()).label("status"))
        .outerjoin(StageRow, col(StageRow.article_id) == col(Article.id))
        .group_by(col(Article.id))
        .subquery()
    )


_STATUSES = (
    select_columns(col(StageRow.article_id), status_rule(*_counts()))
    .where(col(StageRow.article_id).in_(bindparam("ids", expanding=True)))
    .group_by(col(StageRow.article_id))
)


def statuses_of(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """The status of each of these articles (one without stage rows yet is queued), read
    from their own stage rows only."""
    found: dict[int, str] = dict(session.execute(_STATUSES, {"ids": list(ids)}).tuples().all())
    return {i: found.get(i, QUEUED) for i in ids}


def batch_progress(session: Session, batch_id: int | None = None) -> list[dict[str, Any]]:
    """Per batch: its submissions and how many are queued, processing, done, failed."""
    per_submission = (
        select_columns(
            col(BatchArticle.batch_id),
            col(BatchArticle.id),
            status_rule(*_counts()).label("status"),
        )
        .outerjoin(StageRow, col(StageRow.article_id) == col(BatchArticle.article_id))
        .group_by(col(BatchArticle.batch_id), col(BatchArticle.id))
    )
    if batch_id is not None:
        per_submission = per_submission.where(col(BatchArticle.batch_id) == batch_id)
    sub = per_submission.subquery()
    counts = select_columns(
        sub.c.batch_id,
        func.count().label("total"),
        *(
            func.sum(case((sub.c.status == name, 1), else_=0)).label(name)
            for name in ARTICLE_STATUSES
        ),
    ).group_by(sub.c.batch_id)
    by_batch = {row.batch_id: row for row in session.execute(counts)}
    batches = select(Batch).order_by(col(Batch.id))
    if batch_id is not None:
        batches = batches.where(col(Batch.id) == batch_id)
    result = []
    for batch in session.execute(batches).scalars():
        row = by_batch.get(batch.id)
        result.append(
            {
                "id": batch.id,
                "name": batch.name,
                "created_at": batch.created_at.isoformat(timespec="seconds"),
                "total": row.total if row else 0,
                **{
                    s.value: int(getattr(row, s.value) or 0) if row else 0 for s in ARTICLE_STATUSES
                },
                "duplicates": batch.duplicates,
                "rejected": batch.rejected,
            }
        )
    return result


def finished_since(session: Session, since: datetime, batch_id: int | None = None) -> int:
    """Articles whose last stage finished after `since` (done or failed)."""
    last = (
        select_columns(col(StageRow.article_id), func.max(col(StageRow.updated_at)).label("at"))
        .where(col(StageRow.status).in_((*FINISHED, FAILED)), col(StageRow.stage).in_(REQUIRED))
        .group_by(col(StageRow.article_id))
        .having(func.count() >= len(REQUIRED))
    )
    if batch_id is not None:
        last = last.where(col(StageRow.article_id).in_(batch_members(batch_id)))
    sub = last.subquery()
    query = select_columns(func.count()).select_from(sub).where(sub.c.at >= since)
    return int(session.execute(query).scalar_one())


def add_rates(session: Session, batches: list[dict[str, Any]]) -> None:
    """Articles per minute over the last 1 and 5 minutes, and an ETA, on each batch."""
    now = datetime.now(UTC)
    for batch in batches:
        left = batch[QUEUED] + batch[RUNNING]
        per_minute = (
            {
                minutes: finished_since(session, now - timedelta(minutes=minutes), batch["id"])
                / minutes
                for minutes in (1, 5)
            }
            if left
            else {1: 0.0, 5: 0.0}
        )
        batch["per_minute_1m"], batch["per_minute_5m"] = per_minute[1], per_minute[5]
        rate = per_minute[1] or per_minute[5]
        batch["eta_seconds"] = round(60 * left / rate) if left and rate else None


def stalled(
    session: Session, batch_id: int, *, older_than: float, limit: int = 10
) -> list[dict[str, Any]]:
    """Unfinished stage rows of a batch with no sign of life for `older_than` seconds."""
    cutoff = datetime.now(UTC) - timedelta(seconds=older_than)
    query = (
        select(
            col(StageRow.article_id),
            col(StageRow.stage),
            col(StageRow.status),
            col(StageRow.updated_at),
        )
        .where(
            col(StageRow.article_id).in_(batch_members(batch_id)),
            col(StageRow.status).in_((QUEUED, RUNNING)),
            col(StageRow.updated_at) < cutoff,
        )
        .order_by(col(StageRow.updated_at))
        .limit(limit)
    )
    return [
        {
            "article_id": r.article_id,
            "stage": r.stage,
            "status": r.status,
            "since": r.updated_at.isoformat(timespec="seconds"),
        }
        for r in session.execute(query)
    ]


def recent_failures(
    session: Session, *, batch_id: int | None = None, limit: int = 10
) -> list[dict[str, Any]]:
    query = (
        select_columns(
            col(StageRow.article_id),
            col(Article.batch_id),
            col(StageRow.stage),
            col(StageRow.error),
            col(StageRow.updated_at),
        )
        .join(Article, col(Article.id) == col(StageRow.article_id))
        .where(col(StageRow.status) == FAILED)
    )
    if batch_id is not None:
        query = query.where(col(StageRow.article_id).in_(batch_members(batch_id)))
    query = query.order_by(col(StageRow.updated_at).desc()).limit(limit)
    return [
        {
            "article_id": r.article_id,
            "batch_id": r.batch_id,  # the batch that first sent the article
            "stage": r.stage,
            "error": r.error,
            "at": r.updated_at.isoformat(timespec="seconds"),
        }
        for r in session.execute(query)
    ]


def languages(session: Session, batch_id: int | None = None) -> dict[str, int]:
    """Articles per detected language ("?" while not cleaned or not detected), most first."""
    language = func.coalesce(col(Article.language), "?")
    query = select_columns(language, func.count()).group_by(language)
    if batch_id is not None:
        query = query.where(col(Article.id).in_(batch_members(batch_id)))
    counts = session.execute(query).tuples().all()
    return dict(sorted(counts, key=lambda item: (-item[1], item[0])))


def status(
    settings: Settings, *, batch_id: int | None = None, with_workers: bool = True
) -> dict[str, Any]:
    """The `status --json` document. Batch figures come from the DB, so they survive any
    broker restart; an unreachable broker is reported, not fatal."""
    with read_scope(settings.database_url) as session:
        report: dict[str, Any] = {
            "batches": batch_progress(session, batch_id),
            "failures": recent_failures(session, batch_id=batch_id),
            "languages": languages(session, batch_id),
        }
        add_rates(session, report["batches"])
    report["broker"] = {"url": mask_url(settings.broker()), "error": None}
    try:
        report["queues"] = broker.queue_depths(settings)
        report["workers"] = broker.workers(settings) if with_workers else []
    except ServiceUnavailable as exc:
        report["queues"], report["workers"] = {}, []
        report["broker"]["error"] = str(exc)
    return report
