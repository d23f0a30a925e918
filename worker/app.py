"""The Celery app of the workers: shared config from the contract, one spaCy load per process.

Importing this module only builds the app object that `celery -A worker.app` looks for.
The settings are read when Celery first needs its configuration, and the thread limits
are set by the signal Celery sends just before it imports the task modules (and with
them spaCy and numpy).
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
import time
from functools import cache
from typing import Any

from celery import Celery
from celery.signals import import_modules, worker_process_init, worker_ready, worker_shutdown

from newsflow import queues
from newsflow.config import Settings
from newsflow.contract import TASK_FOR_STAGE, Stage, celery_config, message
from worker import identity

# One BLAS/OpenMP thread per worker process: the processes are the parallelism, and
# threads on top of them only fight over the same cores.
THREAD_LIMITS = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


@cache
def settings() -> Settings:
    """This worker's settings: its NEWSFLOW_* environment (`newsflow worker` and `run` put
    their flags there), read once per process and handed to every stage."""
    return Settings()


def configuration() -> dict[str, Any]:
    """The worker app's Celery configuration, from the worker's settings."""
    return {**celery_config(settings()), "broker_url": settings().broker()}


app = Celery("newsflow", include=["worker.tasks"])
app.add_defaults(configuration)  # a promise: read on first use, not at import
_threads: list[threading.Event] = []  # set to stop the main process's threads


def send(stage: str, article_ids: list[int]) -> None:
    """One message of article ids to `stage`'s queue, naming this worker's database."""
    database = identity.mine(settings().database_url)
    app.send_task(TASK_FOR_STAGE[Stage(stage)], **message(article_ids, database))


@import_modules.connect
def _limit_threads(**_: object) -> None:
    """Before the task modules load numpy: BLAS reads its thread count once, at load."""
    for name in THREAD_LIMITS:
        os.environ.setdefault(name, "1")


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Load the models in each pool process as it starts, not on its first chunk."""
    from worker.nlp import get_nlp, get_sentencizer

    get_nlp(settings().model_name())
    get_sentencizer()


@worker_ready.connect
def _start_recovery(sender: Any = None, **_: object) -> None:
    """The recovery loop runs in the worker's main process, beside the pool. A worker
    that starts again starts with a clean slate: its notes of refusing are gone."""
    from worker import recovery

    _clear_notes(getattr(sender, "hostname", None))

    if settings().recovery_interval > 0:
        _threads.append(recovery.start(settings(), send))
    _threads.append(_heartbeat(sender))


def _heartbeat(consumer: Any) -> threading.Event:
    """A thread of the main process that says every few seconds that this worker is alive,
    with what `status` shows of it; the returned event stops it."""
    from celery.worker import state

    stop = threading.Event()
    started = time.monotonic()
    client = queues.redis_client(settings().broker())
    controller = getattr(consumer, "controller", None)

    def note() -> dict[str, Any]:
        name = str(getattr(consumer, "hostname", None) or f"newsflow@{socket.gethostname()}")
        return {
            "name": name,
            "host": name.partition("@")[2] or name,
            "concurrency": getattr(controller, "concurrency", None),
            "active": len(state.active_requests),
            "processed": sum(state.total_count.values()),
            "uptime_s": round(time.monotonic() - started),
        }

    def loop() -> None:
        while not stop.is_set():
            with contextlib.suppress(Exception):  # the broker is away: beat next time
                queues.beat(client, note())
            stop.wait(queues.HEARTBEAT)

    threading.Thread(target=loop, name="newsflow-heartbeat", daemon=True).start()
    return stop


@worker_shutdown.connect
def _stop_recovery(sender: Any = None, **_: object) -> None:
    for stop in _threads:
        stop.set()
    _clear_notes(getattr(sender, "hostname", None))


def _clear_notes(hostname: str | None) -> None:
    """Unsay this worker's notes of being unable to serve, and of being alive: it starts
    anew or stops."""
    if hostname:
        with contextlib.suppress(Exception):  # the broker is away: the notes expire by themselves
            client = queues.redis_client(settings().broker())
            queues.clear_problem(client, hostname)
            queues.forget_worker(client, hostname)
