"""Celery tasks: thin adapters from a message of article ids to the stage functions."""

from __future__ import annotations

from celery import Task
from kombu.exceptions import OperationalError as BrokerError
from sqlalchemy.exc import InterfaceError, OperationalError

from newsflow.config import get_settings
from newsflow.contract import AFTER_CLEAN, CLEAN, EXTRACT, SUMMARIZE, TASK_FOR_STAGE
from newsflow.errors import TransientError
from worker import stages
from worker.app import app

# The database or broker going away is worth waiting for; anything else is recorded.
RETRY = {
    "bind": True,
    "autoretry_for": (TransientError, OperationalError, InterfaceError, BrokerError),
    "retry_backoff": 2,
    "retry_backoff_max": 60,
    "retry_jitter": True,
    "max_retries": 12,
}


def _url() -> str:
    return get_settings().database_url


@app.task(name=CLEAN, **RETRY)
def clean(self: Task, article_ids: list[int]) -> int:
    cleaned = stages.run_clean(_url(), article_ids)
    if cleaned:
        for stage in AFTER_CLEAN:
            app.send_task(TASK_FOR_STAGE[stage], args=[cleaned])
    return len(cleaned)


@app.task(name=EXTRACT, **RETRY)
def extract(self: Task, article_ids: list[int]) -> int:
    return stages.run_extract(_url(), article_ids)


@app.task(name=SUMMARIZE, **RETRY)
def summarize(self: Task, article_ids: list[int]) -> int:
    return stages.run_summarize(_url(), article_ids)
