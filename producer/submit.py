"""Submitting a batch: validate, store batch and articles in one transaction, then enqueue.

The DB is the system of record. Articles are written first (an article already stored,
by content hash, joins the batch without a second copy or a second run); only then are
messages of article ids sent. If the broker fails after the commit nothing is lost:
`newsflow requeue --batch ID` sends what is not done.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import islice
from typing import Any

from sqlalchemy.exc import SQLAlchemyError
from sqlmodel import col, select

from newsflow.config import Settings, mask_url
from newsflow.contract import AFTER_CLEAN, DONE, FAILED
from newsflow.db import error_reason, insert, session_scope
from newsflow.errors import ServiceUnavailable
from newsflow.models import Article, Batch, BatchArticle, Stage, table_of
from producer.broker import check_broker, enqueue
from producer.sources import Record, Rejected

log = logging.getLogger(__name__)
SLAB = 500  # rows per INSERT statement


@dataclass
class SubmitResult:
    """What `submit --json` prints."""

    batch_id: int
    submitted: int = 0
    duplicates: int = 0
    rejected: list[Rejected] = field(default_factory=list)
    queued: int = 0

    def as_dict(self) -> dict[str, Any]:
        return {
            "batch_id": self.batch_id,
            "submitted": self.submitted,
            "duplicates": self.duplicates,
            "rejected": [
                {"source": r.source, "line": r.line, "reason": r.reason} for r in self.rejected
            ],
        }

    @property
    def id(self) -> int:
        return self.batch_id


def content_hash(record: Record) -> str:
    return hashlib.sha256(
        f"{record.kind}\0{record.content}".encode("utf-8", "surrogatepass")
    ).hexdigest()


def _slabs(items: Iterable[Any], size: int) -> Iterator[list[Any]]:
    iterator = iter(items)
    while slab := list(islice(iterator, size)):
        yield slab


def chunked(ids: list[int], size: int) -> list[list[int]]:
    return [ids[i : i + size] for i in range(0, len(ids), size)]


def store_batch(
    settings: Settings, items: Iterable[Record | Rejected], *, name: str | None
) -> tuple[SubmitResult, list[int]]:
    """Write the batch and its articles in one transaction; returns the new article ids."""
    new_ids: list[int] = []
    try:
        with session_scope(settings.database_url) as session:
            batch = Batch(name=name)
            session.add(batch)
            session.flush()
            assert batch.id is not None
            result = SubmitResult(batch_id=batch.id)
            accepted = 0
            over_limit = (
                f"over the limit of {settings.max_records:,} records per submit "
                "(NEWSFLOW_MAX_RECORDS); submit the rest as another batch"
            )
            for slab in _slabs(items, SLAB):
                records = []
                for item in slab:
                    if isinstance(item, Rejected):
                        result.rejected.append(item)
                    elif accepted >= settings.max_records:
                        result.rejected.append(Rejected(item.source, None, over_limit))
                    else:
                        records.append(item)
                        accepted += 1
                fresh, known = _store_slab(session, batch.id, records)
                new_ids.extend(fresh)
                result.submitted += len(fresh) + known
                result.duplicates += known
            batch.submitted, batch.duplicates = result.submitted, result.duplicates
            batch.rejected = len(result.rejected)
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(
            f"cannot store the batch in {mask_url(settings.database_url)}: {error_reason(exc)}; "
            "nothing was submitted"
        ) from exc
    return result, new_ids


def _store_slab(session: Any, batch_id: int, records: list[Record]) -> tuple[list[int], int]:
    """Insert the slab's new articles and its memberships; returns (new ids, duplicates)."""
    by_hash: dict[str, Record] = {}
    for record in records:
        by_hash.setdefault(content_hash(record), record)
    if not by_hash:
        return [], 0
    rows = [
        {
            "content_hash": digest,
            "batch_id": batch_id,
            "external_id": r.external_id,
            "source": r.origin or r.source,
            "kind": r.kind,
            "raw": r.content,
            "given_title": r.title,
            "url": r.url,
            "published": r.published,
        }
        for digest, r in by_hash.items()
    ]

    def stored() -> dict[str, int]:
        query = select(col(Article.content_hash), col(Article.id))
        return dict(session.execute(query.where(col(Article.content_hash).in_(by_hash))).all())

    known = stored()
    # executemany of one cached statement: far cheaper than compiling a 500-row VALUES.
    # ON CONFLICT covers a concurrent submit of the same article between the two reads.
    insert_new = insert(session, table_of(Article)).on_conflict_do_nothing(
        index_elements=["content_hash"]
    )
    new_rows = [row for row in rows if row["content_hash"] not in known]
    if new_rows:
        session.execute(insert_new, new_rows)
    ids = stored()
    fresh = sorted(i for digest, i in ids.items() if digest not in known)
    members = [
        {
            "batch_id": batch_id,
            "article_id": ids[d],
            "external_id": r.external_id,
            "source": r.source,
        }
        for d, r in by_hash.items()
    ]
    add_members = insert(session, table_of(BatchArticle)).on_conflict_do_nothing(
        index_elements=["batch_id", "article_id"]
    )
    session.execute(add_members, members)
    return fresh, len(records) - len(fresh)


def unfinished(
    settings: Settings, batch_id: int | None, *, stage: str | None = None, failed: bool = False
) -> dict[str, list[int]]:
    """Per stage, the ids of the batch's (or all) articles that still need it, from the DB.

    An article whose clean stage is not done goes to `clean` (which forwards it); a
    cleaned one goes to each later stage it has not done. Failed stages are included only
    with `failed`, since they would fail the same way unless something changed.
    """
    with session_scope(settings.database_url) as session:
        members = (
            select(col(Article.id))
            if batch_id is None
            else select(col(BatchArticle.article_id)).where(col(BatchArticle.batch_id) == batch_id)
        )
        rows = session.execute(
            select(col(Stage.article_id), col(Stage.stage), col(Stage.status)).where(
                col(Stage.article_id).in_(members)
            )
        )
        status = {(row.article_id, row.stage): row.status for row in rows}
        ids = sorted(session.execute(members).scalars())

    def needs(article_id: int, name: str) -> bool:
        current = status.get((article_id, name))
        return stage in (None, name) and current != DONE and (failed or current != FAILED)

    todo: dict[str, list[int]] = {"clean": [], **{name: [] for name in AFTER_CLEAN}}
    for article_id in ids:
        if status.get((article_id, "clean")) != DONE:
            if needs(article_id, "clean"):
                todo["clean"].append(article_id)
            continue
        for name in AFTER_CLEAN:
            if needs(article_id, name):
                todo[name].append(article_id)
    return todo


def requeue(
    settings: Settings, batch_id: int | None, *, stage: str | None = None, failed: bool = False
) -> dict[str, int]:
    """Re-enqueue what the DB says is not done; returns articles sent per stage."""
    check_broker(settings)
    todo = unfinished(settings, batch_id, stage=stage, failed=failed)
    for name, ids in todo.items():
        enqueue(settings, name, chunked(ids, settings.chunk_size))
    return {name: len(ids) for name, ids in todo.items()}


def submit(
    settings: Settings,
    items: Iterable[Record | Rejected],
    *,
    name: str | None = None,
    resume_unfinished: bool = False,
) -> SubmitResult:
    """Store and enqueue a batch. `resume_unfinished` also sends duplicates that never
    finished (right when the broker is new, as in `newsflow run`)."""
    check_broker(settings)
    result, new_ids = store_batch(settings, items, name=name)
    if resume_unfinished:
        result.queued = sum(requeue(settings, result.batch_id).values())
    else:
        enqueue(settings, "clean", chunked(new_ids, settings.chunk_size))
        result.queued = len(new_ids)
    log.info(
        "batch %s: %s submitted, %s duplicates, %s rejected",
        result.batch_id,
        result.submitted,
        result.duplicates,
        len(result.rejected),
    )
    return result
