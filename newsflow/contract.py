"""What producer and worker agree on: task and queue names, stages, messages, Celery config."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from newsflow.config import Settings


class Stage(StrEnum):
    """A processing stage; its value names its rows in the stages table and its queue."""

    CLEAN = "clean"
    EXTRACT = "extract"
    SUMMARIZE = "summarize"
    STORY = "story"


class Status(StrEnum):
    """A stage row's status, and the article status derived from its stages (an article
    is never skipped: a skipped stage counts as finished, like a done one)."""

    QUEUED = "queued"
    RUNNING = "processing"
    DONE = "done"
    FAILED = "failed"
    SKIPPED = "skipped"  # the stage had nothing to do for the article, and says why


@dataclass(frozen=True)
class StageSpec:
    """A stage, declared once: the worker registers its task from this, delivery queues
    its rows when `after` is done, and the article status reads `required`.

    `required`: an article is done only once this stage has finished for it. A stage added
    later is not required, so an article stored before it existed (with no row for it)
    stays done; an article that has its row is done once that row finishes too.
    """

    stage: Stage
    after: Stage | None = None  # the stage whose output it reads; None: the first stage
    required: bool = True

    @property
    def task(self) -> str:
        return f"newsflow.{self.stage.value}"

    @property
    def queue(self) -> str:  # a queue per stage, so each scales apart
        return self.stage.value


PIPELINE = (
    StageSpec(Stage.CLEAN),
    StageSpec(Stage.EXTRACT, after=Stage.CLEAN),
    StageSpec(Stage.SUMMARIZE, after=Stage.CLEAN),
    StageSpec(Stage.STORY, after=Stage.CLEAN, required=False),
)
SPEC = {spec.stage: spec for spec in PIPELINE}
STAGES = tuple(spec.stage for spec in PIPELINE)  # in pipeline order
FIRST = PIPELINE[0].stage
REQUIRED = tuple(spec.stage for spec in PIPELINE if spec.required)
TASK_FOR_STAGE = {spec.stage: spec.task for spec in PIPELINE}
QUEUES = tuple(spec.queue for spec in PIPELINE)


def followers(stage: str) -> tuple[Stage, ...]:
    """The stages that run on what `stage` made, queued when it is done."""
    return tuple(spec.stage for spec in PIPELINE if spec.after == stage)


AFTER_CLEAN = followers(Stage.CLEAN)

QUEUED, RUNNING, DONE, FAILED = Status.QUEUED, Status.RUNNING, Status.DONE, Status.FAILED
SKIPPED = Status.SKIPPED
FINISHED = (DONE, SKIPPED)  # a stage row that needs no more work
ARTICLE_STATUSES = (QUEUED, RUNNING, DONE, FAILED)


def message(article_ids: list[int], database: str | None) -> dict[str, Any]:
    """A stage message's arguments for send_task: the ids, the database they are in, and
    short reprs of both for the message's headers (what Flower and the logs show). Given,
    the reprs save Celery's saferepr of every id list: half the cost of a send (0.71 ->
    0.37 ms a message of 32 ids, measured against a local Redis).

    No declaring of the queue on each send (`declare=[]`): on Redis a message to the
    default exchange is pushed onto the list named by its queue whether or not the queue
    was declared, and the workers declare the queues they consume. Kombu's check that a
    queue was declared already copied the queue each time: 0.76 -> 0.68 ms a message
    (five alternating runs of 5,000 on a busy machine)."""
    span = f"{article_ids[0]}..{article_ids[-1]}" if article_ids else ""
    return {
        "args": [article_ids],
        "kwargs": {"database": database},
        "argsrepr": f"[{len(article_ids)} ids {span}]",
        "kwargsrepr": f"{{'database': {database!r}}}",
        "declare": [],
    }


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
        "task_routes": {spec.task: {"queue": spec.queue} for spec in PIPELINE},
        "task_default_queue": SPEC[FIRST].queue,
        "broker_transport_options": {"visibility_timeout": settings.visibility_timeout},
        "broker_connection_retry_on_startup": True,
        "worker_cancel_long_running_tasks_on_connection_loss": False,
        "worker_max_memory_per_child": settings.worker_max_memory_mb * 1024,
        "worker_send_task_events": False,
        "task_send_sent_event": False,
        "worker_hijack_root_logger": False,
        "broker_connection_timeout": 5,
    }
