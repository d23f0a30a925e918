"""What producer and worker agree on: task and queue names, stages, messages, Celery config."""

from __future__ import annotations

from typing import Any

from newsflow.config import Settings

CLEAN = "newsflow.clean"
EXTRACT = "newsflow.extract"
SUMMARIZE = "newsflow.summarize"

STAGES = ("clean", "extract", "summarize")
TASK_FOR_STAGE = {"clean": CLEAN, "extract": EXTRACT, "summarize": SUMMARIZE}
QUEUES = STAGES  # one queue per stage, named after it, so each can be scaled apart
AFTER_CLEAN = ("extract", "summarize")

# Stage status values, and the article status derived from them.
QUEUED, RUNNING, DONE, FAILED = "queued", "processing", "done", "failed"
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
        "task_routes": {task: {"queue": stage} for stage, task in TASK_FOR_STAGE.items()},
        "task_default_queue": "clean",
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "broker_connection_timeout": 5,
    }
