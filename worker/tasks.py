"""Celery tasks: thin adapters from a message of article ids to the stage functions."""

from __future__ import annotations

import logging
import os
import random
import time

from celery import Task
from celery.exceptions import Reject, SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError, SQLAlchemyError

from newsflow import delivery, queues
from newsflow.contract import PIPELINE, StageSpec, followers
from newsflow.db import error_reason
from worker import identity, stages
from worker.app import app, send, settings

log = logging.getLogger(__name__)

# The database or broker going away is worth waiting for; anything else is recorded.
TRANSIENT = (OperationalError, InterfaceError, BrokerError)


def _retry(task: Task, exc: BaseException) -> BaseException:
    """A retry with exponential backoff and jitter, within NEWSFLOW_TASK_MAX_RETRIES.

    The wait happens here, holding this message, rather than as a countdown: a waiting
    worker takes no new message, so an outage does not drain the queue into retries that
    all run out. Past the budget the message is given up, but not the articles: their
    rows stay unfinished and the recovery loop sends them again.
    """
    delay = min(settings().retry_backoff_max, 2 ** (task.request.retries + 1))
    delay *= random.uniform(0.5, 1.0)
    log.warning("%s: %s; retry %s in %.0f s", task.name, exc, task.request.retries + 1, delay)
    reason = error_reason(exc) if isinstance(exc, SQLAlchemyError) else str(exc)
    global _waiting
    _note(_process(task), f"waits for the database or broker: {reason}")
    _waiting = True
    time.sleep(delay)
    return task.retry(exc=exc, countdown=0, max_retries=settings().task_max_retries)


def _refuse(task: Task, stage: str, reason: str) -> Reject:
    """Give the message back to the queue and stop taking the queue's work, loudly: in the
    log, and in the note `status`, /healthz and the dashboard show."""
    worker = str(task.request.hostname)
    log.error("%s: refusing the message (back to the queue) and the %s queue: %s",
              worker, stage, reason)  # fmt: skip
    _note(worker, f"refuses the {stage} queue: {reason}", refusing=True)
    task.app.control.cancel_consumer(stage, destination=[worker])
    return Reject(reason, requeue=True)


def _note(worker: str, reason: str | None, *, refusing: bool = False) -> None:
    """Say (or with None, unsay) in the broker why this worker cannot serve."""
    try:
        client = queues.redis_client(settings().broker())
        if reason is None:
            queues.clear_problem(client, worker)
        else:
            queues.report_problem(client, worker, reason, refusing=refusing)
    except Exception:  # the broker is away too: the worker log has it
        log.debug("could not note the worker's state in the broker", exc_info=True)


def _process(task: Task) -> str:
    return f"{task.request.hostname}:{os.getpid()}"


_waiting = False  # this process has noted in the broker that it waits for a service


def _run(task: Task, stage: str, article_ids: list[int], database: str | None) -> int:
    """Run one stage over a chunk; a bug fails the chunk's articles with the reason, visibly,
    instead of leaving them 'processing' forever."""
    global _waiting
    config = settings()
    url = config.database_url
    claim = f"{task.request.id}#{task.request.retries}"
    try:
        if reason := identity.mismatch(url, database):
            raise _refuse(task, stage, reason)
        result = stages.RUN[stage](config, article_ids, (SoftTimeLimitExceeded,), claim)
        for chunk in result.resend:
            send(stage, chunk)
        for later in followers(stage):  # with what an earlier try made but could not send on
            delivery.dispatch(url, later, article_ids, send, config.chunk_size)
        if _waiting:  # the cause has passed: unsay the note
            _waiting = False
            _note(_process(task), None)
        return result.stored
    except Reject:
        raise
    except TRANSIENT as exc:
        raise _retry(task, exc) from exc
    except Exception as exc:
        log.exception("%s failed on chunk %s", stage, article_ids)
        try:
            stages.fail_chunk(url, stage, article_ids, stages.describe(exc, config))
        except TRANSIENT as again:
            raise _retry(task, again) from again
        except Exception:
            log.exception(
                "%s could not record the failure of chunk %s; the recovery loop sends it again",
                stage,
                article_ids,
            )
        return 0


def _register(spec: StageSpec) -> Task:
    def run(self: Task, article_ids: list[int], database: str | None = None) -> int:
        return _run(self, spec.stage, article_ids, database)

    run.__name__ = run.__qualname__ = spec.stage.value
    return app.task(name=spec.task, bind=True)(run)


TASKS = {spec.stage: _register(spec) for spec in PIPELINE}
