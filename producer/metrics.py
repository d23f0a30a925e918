"""Prometheus metrics, read fresh from the DB and Redis on every scrape."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import func
from sqlalchemy import select as select_columns
from sqlmodel import col

from newsflow.config import Settings
from newsflow.db import read_scope
from newsflow.errors import ServiceUnavailable
from newsflow.models import StageRow, Story
from producer import broker


class NewsflowCollector(Collector):
    """Queue depths, articles by stage and status, stage seconds, workers online."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    def collect(self) -> Iterator[Any]:
        stages = GaugeMetricFamily(
            "newsflow_stage_articles", "Articles by stage and status", labels=["stage", "status"]
        )
        seconds = GaugeMetricFamily(
            "newsflow_stage_seconds_mean", "Mean seconds per article of a finished stage",
            labels=["stage"],
        )  # fmt: skip
        with read_scope(self.settings.database_url) as session:
            counts = select_columns(col(StageRow.stage), col(StageRow.status), func.count())
            for stage, status, count in session.execute(
                counts.group_by(col(StageRow.stage), col(StageRow.status))
            ):
                stages.add_metric([stage, status], count)
            means = select_columns(col(StageRow.stage), func.avg(col(StageRow.seconds)))
            for stage, mean in session.execute(
                means.where(col(StageRow.status) == "done").group_by(col(StageRow.stage))
            ):
                seconds.add_metric([stage], float(mean or 0.0))
            grouped = select_columns(func.count(), func.coalesce(func.sum(col(Story.size)), 0))
            found, texts = session.execute(grouped.where(col(Story.size) >= 2)).one()
        stories = GaugeMetricFamily(
            "newsflow_stories", "Stories of two texts or more (through the size index)"
        )
        stories.add_metric([], found)
        copies = GaugeMetricFamily("newsflow_story_texts", "Texts in stories of two or more")
        copies.add_metric([], texts)
        yield from (stages, seconds, stories, copies)

        up = GaugeMetricFamily("newsflow_broker_up", "1 when the broker answers")
        ready = GaugeMetricFamily("newsflow_queue_ready", "Messages waiting", labels=["queue"])
        unacked = GaugeMetricFamily(
            "newsflow_queue_unacked", "Messages delivered, not yet acknowledged", labels=["queue"]
        )
        workers = GaugeMetricFamily("newsflow_workers_online", "Workers answering a ping")
        try:
            for queue, depth in broker.queue_depths(self.settings).items():
                ready.add_metric([queue], depth["ready"])
                unacked.add_metric([queue], depth["unacked"])
            workers.add_metric([], len(broker.workers(self.settings)))
            up.add_metric([], 1)
        except ServiceUnavailable:
            up.add_metric([], 0)
        yield from (up, ready, unacked, workers)
