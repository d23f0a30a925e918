"""Talking to the broker from the producer side: send by task name, read queue depths."""

from __future__ import annotations

import json
from collections.abc import Callable
from functools import cache
from typing import Any

import redis
from celery import Celery

from newsflow import db, queues
from newsflow.config import Settings, mask_secrets, mask_url
from newsflow.contract import TASK_FOR_STAGE, Stage, celery_config, message
from newsflow.errors import ServiceUnavailable
from newsflow.queues import redis_client


@cache
def _app(broker_url: str, settings_json: str) -> Celery:
    app = Celery("newsflow-producer", set_as_current=False)
    app.conf.update(json.loads(settings_json), broker_url=broker_url)
    return app


def sender(settings: Settings) -> Celery:
    """A Celery app that only sends: it never imports the worker code or spaCy."""
    config = celery_config(settings)
    return _app(settings.broker(), json.dumps(config, sort_keys=True))


def unreachable(settings: Settings, exc: BaseException) -> ServiceUnavailable:
    url = settings.broker()
    fix = (
        "start one with `newsflow broker` (or use `newsflow run`), or set NEWSFLOW_BROKER_URL"
        if settings.embedded
        else "check that Redis is running, or set NEWSFLOW_BROKER_URL (unset it to use "
        "the embedded broker)"
    )
    reason = mask_secrets(str(exc), url)
    return ServiceUnavailable(f"cannot reach Redis at {mask_url(url)}: {reason}; {fix}")


def check_broker(settings: Settings) -> None:
    """Raise ServiceUnavailable, naming the URL (password masked), if Redis does not answer."""
    try:
        redis_client(settings.broker()).ping()
    except (redis.RedisError, OSError) as exc:
        raise unreachable(settings, exc) from exc


def sender_of(settings: Settings) -> Callable[[str, list[int]], None]:
    """A function that sends one message of article ids to a stage's queue, naming the
    database they are in (its identity, which the worker checks); an unreachable broker
    raises ServiceUnavailable naming it."""
    app = sender(settings)
    database: list[str | None] = []  # read at the first send, when the database has just
    # been written to: a database that is away fails the write first, with its own message

    def send(stage: str, article_ids: list[int]) -> None:
        if not database:
            database.append(db.identity(settings.database_url))
        try:
            app.send_task(TASK_FOR_STAGE[Stage(stage)], **message(list(article_ids), database[0]))
        except Exception as exc:  # kombu raises several types for one cause: no broker
            raise unreachable(settings, exc) from exc

    return send


def queue_depths(settings: Settings) -> dict[str, dict[str, int]]:
    """Messages waiting (ready) and delivered but not yet acknowledged (unacked) per queue."""
    try:
        return queues.depths(redis_client(settings.broker()))
    except (redis.RedisError, OSError) as exc:
        raise unreachable(settings, exc) from exc


def live_ids(settings: Settings) -> dict[str, set[int]]:
    """Per queue, the article ids a message in the broker still names."""
    try:
        return queues.live_ids(redis_client(settings.broker()))
    except (redis.RedisError, OSError) as exc:
        raise unreachable(settings, exc) from exc


def workers(settings: Settings) -> list[dict[str, Any]]:
    """The workers alive, from their heartbeats (every few seconds, see queues.beat): name,
    host, concurrency, active tasks, processed, uptime and when they last beat. Reading
    them waits for no worker."""
    try:
        return queues.workers(redis_client(settings.broker()))
    except (redis.RedisError, OSError) as exc:
        raise unreachable(settings, exc) from exc


def problems(settings: Settings) -> list[dict[str, Any]]:
    """The workers that said they cannot serve, and why (see queues.report_problem)."""
    try:
        return queues.problems(redis_client(settings.broker()))
    except (redis.RedisError, OSError) as exc:
        raise unreachable(settings, exc) from exc
