"""What producer and worker agree on: task and queue names, stages, messages, Celery config."""

from __future__ import annotations

from enum import StrEnum
from typing import Any

from newsflow.config import Settings

CLEAN = "newsflow.clean"
EXTRACT = "newsflow.extract"
SUMMARIZE = "newsflow.summarize"


class Stage(StrEnum):
    """A processing stage; its value names its rows in the stages table and its queue."""

    CLEAN = "clean"
    EXTRACT = "extract"
    SUMMARIZE = "summarize"


class Status(StrEnum):
    """A stage row's status, and the article status derived from its stages (an article
    is never skipped: a skipped stage counts as finished, like a done one)."""

    QUEUED = "queued"
    RUNNING = "processing"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # the stage had nothing to do for the article, and says why


STAGES = tuple(Stage)  # in pipeline order
# The stages an article needs done to be done: a stage added for some articles only
# (one that may be skipped) stays out of this list, so finished articles stay done.
REQUIRED = STAGES
TASK_FOR_STAGE = {Stage.CLEAN: CLEAN, Stage.EXTRACT: EXTRACT, Stage.SUMMARIZE: SUMMARIZE}
QUEUES = tuple(stage.value for stage in STAGES)  # a queue per stage, so each scales apart
AFTER_CLEAN = (Stage.EXTRACT, Stage.SUMMARIZE)

QUEUED, RUNNING, DONE, FAILED = Status.QUEUED, Status.RUNNING, Status.DONE, Status.FAILED
SKIPPED = Status.SKIPPED
FINISHED = (DONE, SKIPPED)  # a stage row that needs no more work
ARTICLE_STATUSES = (QUEUED, RUNNING, DONE, FAILED)


def celery_config(settings: Settings) -> dict[str, Any]:
    """Celery settings shared by the sending (producer) and the consuming (worker) app."""
    return {
        "task_serializer": "json",
        "accept_content": ["json"],  # a pickled message is code execution: refuse it
        "result_serializer": "json",
        "result_backend": None,
        "task_ignore_result": True,
        "task_acks_late": True,
        "task_reject_on_worker_lost": True,
        "worker_prefetch_multiplier": 1,
        "task_soft_time_limit": settings.task_soft_time_limit,
        "task_time_limit": settings.task_time_limit,
        "task_routes": {task: {"queue": stage.value} for stage, task in TASK_FOR_STAGE.items()},
        "task_default_queue": Stage.CLEAN.value,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "broker_connection_timeout": 5,
    }
