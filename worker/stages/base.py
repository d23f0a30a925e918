"""What every stage shares over one chunk of article ids: start it under its claims, run
each article apart, and record what failed.

Plain functions of the settings and ids (no Celery): the tasks call the stages, tests can too.
One article that fails records its error and never takes the chunk down with it:
- an exception in one article is that article's error;
- when the chunk's time runs out (`interrupt`, the task's soft time limit), what is done
  is stored, and the articles not yet done come back in `resend`, one per message, so the
  slow one runs alone and fails alone;
- a chunk whose previous delivery never finished (its worker was killed) is split into
  one message per article for the same reason; an article whose runs keep dying is given
  up after `MAX_ATTEMPTS` with a reason instead of looping forever.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy.exc import SQLAlchemyError

from newsflow.config import Settings
from newsflow.db import error_reason, session_scope
from newsflow.errors import PermanentError
from newsflow.models import utcnow
from worker import store
from worker.store import Outcome

log = logging.getLogger(__name__)
MAX_ATTEMPTS = 5
Interrupt = tuple[type[BaseException], ...]
NoInterrupt: Interrupt = ()


@dataclass
class ChunkResult:
    """What a stage did with a chunk, and what the task must send on."""

    stored: int = 0
    resend: list[list[int]] = field(default_factory=list)  # chunks for this stage again


def describe(exc: BaseException, settings: Settings) -> str:
    """The error text stored on an article: the reason itself for bad input, else its type
    and first line, secrets masked; a database error never carries its SQL or parameters."""
    if isinstance(exc, PermanentError):
        return str(exc)
    if isinstance(exc, SQLAlchemyError):
        return f"database error: {error_reason(exc)}"
    first = (str(exc).strip().splitlines() or [""])[0]
    return settings.mask(f"{type(exc).__name__}: {first}")[: store.ERROR_CHARS]


def timed_out(settings: Settings) -> str:
    return (
        f"took longer than the {settings.task_soft_time_limit} s time limit "
        "(NEWSFLOW_TASK_SOFT_TIME_LIMIT): the article is too long or too malformed to process"
    )


def attempt(
    settings: Settings,
    article_id: int,
    interrupt: Interrupt,
    work: Callable[..., Any],
    *args: Any,
    **kwargs: Any,
) -> Outcome:
    """Run `work` for one article, timing it; an exception becomes the article's error
    (except `interrupt`, the chunk's time running out, which the caller handles)."""
    started = time.perf_counter()
    try:
        output = work(*args, **kwargs)
    except interrupt:
        raise
    except Exception as exc:
        if not isinstance(exc, PermanentError):
            log.exception("article %s failed", article_id)
        return Outcome(article_id, time.perf_counter() - started, error=describe(exc, settings))
    return Outcome(article_id, time.perf_counter() - started, output=output)


def begin(
    settings: Settings, stage: str, article_ids: Sequence[int], claim: str | None
) -> tuple[list[int], list[list[int]]]:
    """Mark the chunk started; returns (ids to run now, singleton chunks to send instead)."""
    stale_before = utcnow() - timedelta(seconds=settings.visibility_timeout)
    with session_scope(settings.database_url) as session:
        start = store.start(
            session,
            stage=stage,
            article_ids=article_ids,
            claim=claim or f"{uuid.uuid4()}#0",
            stale_before=stale_before,
            max_attempts=MAX_ATTEMPTS,
        )
    if start.resend:
        log.warning("%s chunk %s died before; splitting it", stage, list(article_ids))
    if start.skipped:
        log.info("%s: %s skipped (done, or running elsewhere)", stage, start.skipped)
    if start.unknown:
        log.error(
            "%s message names articles with no %s row (not in this database, or not cleaned "
            "yet), ignored: %s",
            stage,
            stage,
            start.unknown,
        )
    return start.ids, start.resend


def chunk(
    ids: list[int],
    work: Callable[[int], Outcome],
    interrupt: Interrupt,
    settings: Settings,
) -> tuple[list[Outcome], list[list[int]]]:
    """Outcomes article by article until `interrupt`; then the rest goes back as singletons."""
    outcomes: list[Outcome] = []
    for position, article_id in enumerate(ids):
        started = time.perf_counter()
        try:
            outcomes.append(work(article_id))
        except interrupt:
            seconds = time.perf_counter() - started
            outcomes.append(Outcome(article_id, seconds, error=timed_out(settings)))
            return outcomes, [[i] for i in ids[position + 1 :]]
    return outcomes, []


def begin_cleaned(
    settings: Settings, stage: str, article_ids: Sequence[int], claim: str | None
) -> tuple[list[store.CleanRow], list[list[int]]]:
    """For the stages after clean: (rows to run, singleton chunks to send instead)."""
    ids, resend = begin(settings, stage, article_ids, claim)
    if not ids:
        return [], resend
    with session_scope(settings.database_url) as session:
        return store.load_clean(session, ids), resend


def fail_chunk(url: str, stage: str, article_ids: Sequence[int], error: str) -> None:
    """Record an error for every article of a chunk that could not run at all; ids this
    database does not know are logged, not silently dropped."""
    with session_scope(url) as session:
        known = store.existing(session, article_ids)
        store.save_stages(
            session, stage=stage, outcomes=[Outcome(i, 0.0, error=error) for i in known]
        )
    if unknown := sorted(set(article_ids) - set(known)):
        log.error("%s message names articles this database does not have: %s", stage, unknown)


Runner = Callable[[Settings, Sequence[int], Interrupt, str | None], ChunkResult]
