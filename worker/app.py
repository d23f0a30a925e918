"""The Celery app of the workers: shared config from the contract, one spaCy load per process."""

from __future__ import annotations

import os
import threading

# One BLAS/OpenMP thread per worker process: the processes are the parallelism, and
# threads on top of them only fight over the same cores.
for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

from celery import Celery  # noqa: E402
from celery.signals import worker_process_init, worker_ready, worker_shutdown  # noqa: E402

from newsflow.config import get_settings  # noqa: E402
from newsflow.contract import celery_config  # noqa: E402

settings = get_settings()
app = Celery("newsflow", include=["worker.tasks"])
app.conf.update(celery_config(settings), broker_url=settings.broker())
_recovery: list[threading.Event] = []  # set to stop the loop


@worker_process_init.connect
def _warm_up(**_: object) -> None:
    """Load the models in each pool process as it starts, not on its first chunk."""
    from worker.nlp import get_nlp, get_sentencizer

    get_nlp()
    get_sentencizer()


@worker_ready.connect
def _start_recovery(**_: object) -> None:
    """The recovery loop runs in the worker's main process, beside the pool."""
    from worker import recovery, tasks

    if settings.recovery_interval > 0:
        _recovery.append(recovery.start(settings, tasks.send))


@worker_shutdown.connect
def _stop_recovery(**_: object) -> None:
    for stop in _recovery:
        stop.set()
