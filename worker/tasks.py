"""Celery tasks: thin adapters from a message of article ids to the stage functions."""

from __future__ import annotations

import logging
from collections.abc import Callable

from celery import Task
from celery.exceptions import SoftTimeLimitExceeded
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from newsflow.config import get_settings
from newsflow.contract import AFTER_CLEAN, CLEAN, EXTRACT, SUMMARIZE, TASK_FOR_STAGE
from newsflow.errors import TransientError
from worker import stages
from worker.app import app

log = logging.getLogger(__name__)

# The database or broker going away is worth waiting for; anything else is recorded.
TRANSIENT = (TransientError, OperationalError, InterfaceError, BrokerError)
RETRY = {
    "bind": True,
    "autoretry_for": TRANSIENT,
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 12,
}
Runner = Callable[..., stages.ChunkResult]


def _run(stage: str, runner: Runner, article_ids: list[int]) -> stages.ChunkResult:
    """Run one stage over a chunk; a bug fails the chunk's articles with the reason, visibly,
    instead of leaving them 'processing' forever."""
    url = get_settings().database_url
    try:
        result = runner(url, article_ids, (SoftTimeLimitExceeded,))
    except TRANSIENT:
        raise
    except Exception as exc:
        log.exception("%s failed on chunk %s", stage, article_ids)
        stages.fail_chunk(url, stage, article_ids, stages.describe(exc))
        return stages.ChunkResult()
    for chunk in result.resend:
        app.send_task(TASK_FOR_STAGE[stage], args=[chunk])
    return result


@app.task(name=CLEAN, **RETRY)
def clean(self: Task, article_ids: list[int]) -> int:
    result = _run("clean", stages.run_clean, article_ids)
    if result.forward:
        for stage in AFTER_CLEAN:
            app.send_task(TASK_FOR_STAGE[stage], args=[result.forward])
    return result.stored


@app.task(name=EXTRACT, **RETRY)
def extract(self: Task, article_ids: list[int]) -> int:
    return _run("extract", stages.run_extract, article_ids).stored


@app.task(name=SUMMARIZE, **RETRY)
def summarize(self: Task, article_ids: list[int]) -> int:
    return _run("summarize", stages.run_summarize, article_ids).stored
