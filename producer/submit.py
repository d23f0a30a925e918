"""Submitting a batch: validate, store a slab of articles at a time, and send each slab.

The DB is the system of record. Each slab of records is one short transaction: new
articles (an article already stored, by content hash, is not stored or processed again),
one membership row per submission with what its submitter said about it, and a 'queued'
clean row per new article. Sending is a claim on those rows (see newsflow.delivery), so
however many submits race, each article is sent once; a re-submit of the same input
sends what an interrupted one stored but never sent.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from packaging.version import InvalidVersion, Version
from sqlalchemy import update
from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import Session, col, select

from newsflow import delivery, tallies
from newsflow.config import Settings, mask_url
from newsflow.contract import STAGES, Stage
from newsflow.db import error_reason, insert, session_scope
from newsflow.errors import NewsflowError, ServiceUnavailable
from newsflow.models import Article, Batch, BatchArticle, utcnow
from newsflow.record import Rejection, Submitted
from producer.broker import check_broker, live_ids, sender_of
from producer.sources import Record

log = logging.getLogger(__name__)
SLAB = 500  # records per transaction: short enough that workers writing meanwhile go on


@dataclass
class Tally:
    """What a submit has done so far; `result()` is what it answers (record.Submitted)."""

    batch_id: int
    submitted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)
    queued: int = 0

    def result(self) -> Submitted:
        return Submitted(
            batch_id=self.batch_id,
            submitted=self.submitted,
            duplicates=self.duplicates,
            queued=self.queued,
            rejected=self.rejected,
        )


class SubmitInterrupted(ServiceUnavailable):
    """Raised when the database or broker went away after part of a batch was stored."""


def content_hash(record: Record) -> str:
    return hashlib.sha256(
        f"{record.kind}\0{record.content}".encode("utf-8", "surrogatepass")
    ).hexdigest()


def _slabs(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while slab := list(islice(iterator, size)):
        yield slab


def _new_batch(settings: Settings, name: str | None) -> int:
    try:
        with session_scope(settings.database_url) as session:
            batch = Batch(name=name)
            session.add(batch)
            session.flush()
            assert batch.id is not None
            return batch.id
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(
            f"cannot store the batch in {mask_url(settings.database_url)}: {error_reason(exc)}; "
            "nothing was submitted"
        ) from exc


def store_slab(session: Session, batch_id: int, records: list[Record]) -> tuple[list[int], int]:
    """Store one slab: returns (the ids of its articles, how many records were new)."""
    by_hash: dict[str, Record] = {}
    digests = []
    for record in records:
        digest = content_hash(record)
        by_hash.setdefault(digest, record)
        digests.append(digest)
    if not by_hash:
        return [], 0
    rows = [
        {
            "content_hash": digest,
            "batch_id": batch_id,
            "kind": r.kind,
            "raw": r.content,
            "given_title": r.title,
        }
        for digest, r in by_hash.items()
    ]
    # RETURNING gives exactly the rows this statement inserted: a concurrent submit of the
    # same articles sees them as duplicates, never as its own.
    insert_new = (
        insert(session, Article)
        .on_conflict_do_nothing(index_elements=["content_hash"])
        .returning(col(Article.id))
    )
    fresh = sorted(session.execute(insert_new, rows).scalars())
    query = select(col(Article.content_hash), col(Article.id))
    ids = dict(session.execute(query.where(col(Article.content_hash).in_(by_hash))).all())
    members = [
        {
            "batch_id": batch_id,
            "article_id": ids[digest],
            "external_id": r.external_id,
            "source": r.source,
            "url": r.url,
            "title": r.title,
            "published": r.published,
            "origin": r.origin,
        }
        for digest, r in zip(digests, records, strict=True)
    ]
    session.execute(insert(session, BatchArticle), members)
    delivery.mark_queued(session, stage=Stage.CLEAN, article_ids=fresh)
    tallies.submissions_added(session, batch_id, [m["article_id"] for m in members])
    return sorted(set(ids.values())), len(fresh)


def _accepted(
    settings: Settings, items: Iterable[Record | Rejection], result: Tally
) -> Iterator[Record]:
    """The records to store; rejections (and records over the limit) go to `result`."""
    over_limit = (
        f"over the limit of {settings.max_records:,} records per submit "
        "(NEWSFLOW_MAX_RECORDS); submit the rest as another batch"
    )
    accepted = 0
    for item in items:
        if isinstance(item, Rejection):
            result.rejected.append(item)
        elif accepted >= settings.max_records:
            result.rejected.append(Rejection.at(item.source, None, over_limit))
        else:
            accepted += 1
            yield item


def store_batch(
    settings: Settings,
    items: Iterable[Record | Rejection],
    *,
    name: str | None,
    send: delivery.Send | None = None,
) -> tuple[Tally, list[int]]:
    """Store the batch a slab at a time, sending each slab's new work when `send` is given;
    returns what it did and the ids of the batch's contents."""
    batch_id = _new_batch(settings, name)
    result = Tally(batch_id=batch_id)
    url = settings.database_url
    all_ids: list[int] = []
    try:
        for slab in _slabs(_accepted(settings, items, result), SLAB):
            with session_scope(url) as session:
                ids, fresh = store_slab(session, batch_id, slab)
            result.submitted += len(slab)
            result.duplicates += len(slab) - fresh
            all_ids.extend(ids)
            if send is not None:
                result.queued += delivery.dispatch(url, Stage.CLEAN, ids, send, settings.chunk_size)
    except (SQLAlchemyError, NewsflowError) as exc:
        reason = error_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
        raise SubmitInterrupted(_interrupted(result, reason)) from exc
    finally:
        _record_counts(settings, result)
    return result, all_ids


def _interrupted(result: Tally, reason: str) -> str:
    b = result.batch_id
    return (
        f"batch {b} is partly submitted: {result.submitted:,} records stored "
        f"({result.queued:,} of them queued) when this happened: {reason}. Nothing stored "
        f"is lost. Once it is back, `newsflow requeue --batch {b}` queues what batch {b} "
        "holds, or submit the same input again: what is stored is not stored twice, and "
        "what was never queued is queued (workers also re-send it by themselves after "
        "NEWSFLOW_VISIBILITY_TIMEOUT)"
    )


def _record_counts(settings: Settings, result: Tally) -> None:
    try:
        with session_scope(settings.database_url) as session:
            session.execute(
                update(Batch)
                .where(col(Batch.id) == result.batch_id)
                .values(
                    submitted=result.submitted,
                    duplicates=result.duplicates,
                    rejected=len(result.rejected),
                )
            )
    except SQLAlchemyError as exc:
        log.warning("batch %s: counts not recorded: %s", result.batch_id, error_reason(exc))


def requeue(
    settings: Settings,
    batch_id: int | None,
    *,
    stage: str | None = None,
    failed: bool = False,
    force: bool = False,
) -> delivery.Reopened:
    """Send again, from the DB, what has no live message: unfinished stage rows that no
    message in the broker names and that showed no sign of life for `lost_after` seconds
    (never-sent rows at once), failed ones with `failed`; `force` sends everything not
    done, live or not."""
    check_broker(settings)
    return delivery.resend(
        settings.database_url,
        sender_of(settings),
        live=None if force else live_ids(settings),
        chunk_size=settings.chunk_size,
        older_than=settings.lost_after,
        batch_id=batch_id,
        stage=stage,
        failed=failed,
        force=force,
    )


def submit(
    settings: Settings,
    items: Iterable[Record | Rejection],
    *,
    name: str | None = None,
    resume_unfinished: bool = False,
) -> Submitted:
    """Store and enqueue a batch. `resume_unfinished` also sends every unfinished article
    of it (right when the broker is new, as in `newsflow run`: it holds no messages)."""
    check_broker(settings)
    send = sender_of(settings)
    if resume_unfinished:  # nothing is live on a new broker: every unfinished row is lost
        with session_scope(settings.database_url) as session:
            delivery.reopen(session, cutoff=utcnow(), force=True)
    result, _ = store_batch(settings, items, name=name, send=send)
    if resume_unfinished:  # the later stages of what this batch shares with earlier ones
        resumed = requeue(settings, result.batch_id)
        result.queued += sum(resumed.sent.values())
    log.info(
        "batch %s: %s submitted, %s duplicates, %s rejected, %s queued",
        result.batch_id,
        result.submitted,
        result.duplicates,
        len(result.rejected),
        result.queued,
    )
    return result.result()


def reprocess(
    settings: Settings,
    *,
    batch_id: int | None = None,
    stages: Sequence[str] = STAGES,
    before: str | None = None,
    model: str | None = None,
) -> delivery.Reopened:
    """Run `stages` again on stored articles (of one batch, or all) whose output of them
    was made by a newsflow older than `before`, or by the model `model` (every finished
    one when neither is given), through the queues like new work; see delivery.reprocess."""
    check_broker(settings)
    limit = Version(before) if before is not None else None

    def chosen(version: str | None, made_by: str | None) -> bool:
        if model is not None and made_by != model:
            return False
        if limit is None:
            return True
        try:
            return version is None or Version(version) < limit
        except InvalidVersion:  # not a version this code wrote: older than any
            return True

    return delivery.reprocess(
        settings.database_url,
        sender_of(settings),
        chunk_size=settings.chunk_size,
        stages=stages,
        chosen=chosen,
        batch_id=batch_id,
    )
