"""Soak: a large generated batch through real worker processes, watching memory.

    python -m bench.soak [--articles 20000] [--workers 2] [--db URL] [--broker URL]

With --chaos, the same under faults on PostgreSQL: bench/chaos.py says which.

Starts a private embedded Redis (unless --broker) and one `celery worker` with --workers
pool processes, submits the batch, and samples once a second until every article is done
or failed: Redis used memory, the RSS of each worker process, progress. Then checks the
database holds exactly one done article per submitted one, three stage rows each, and no
duplicated output rows. Prints a table and, last, one JSON line.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import func, select
from sqlmodel import col

from bench.corpus import corpus
from newsflow.config import Settings
from newsflow.db import session_scope
from newsflow.models import Entity, Mention, StageRow, SummarySentence
from newsflow.record import BatchProgress
from producer.broker import redis_client
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.local import LocalWorkers


def rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return 0.0


def pool(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def _repeats(session: Any, *key: Any) -> int:
    """Groups of rows sharing `key` more than once."""
    groups = select(*key).group_by(*key).having(func.count() > 1).subquery()
    return int(session.execute(select(func.count()).select_from(groups)).scalar_one())


def duplicates(url: str) -> int:
    """Output rows that say the same thing twice for one article (should be 0)."""
    with session_scope(url) as session:
        return (
            _repeats(session, col(Entity.article_id), col(Entity.name), col(Entity.label))
            + _repeats(session, col(Mention.article_id), col(Mention.start), col(Mention.end))
            + _repeats(
                session, col(SummarySentence.article_id), col(SummarySentence.sentence_index)
            )
        )


def soak(articles: int, workers: int, db_url: str | None, broker_url: str | None) -> dict[str, Any]:
    home = Path(tempfile.mkdtemp(prefix="nf-soak-"))
    url = db_url or f"sqlite:///{home / 'soak.db'}"
    embedded = None if broker_url else EmbeddedRedis(home / "redis.sock").start()
    settings = Settings(database_url=url, broker_url=broker_url or embedded.url, data_dir=home)  # type: ignore[union-attr]
    client = Client(settings)
    client.upgrade()
    redis = redis_client(settings.broker())
    redis_start = int(redis.info("memory")["used_memory"])
    peaks: dict[str, float] = {"redis_mb": 0.0, "worker_rss_mb": 0.0, "main_rss_mb": 0.0}
    try:
        with LocalWorkers(settings, concurrency=workers, loglevel="WARNING") as local:
            time.sleep(5)  # let the pool load its models before the clock starts
            started = time.monotonic()
            batch = client.submit(corpus(articles), name="soak")
            if batch.queued != articles:
                raise SystemExit(f"only {batch.queued} of {articles} articles were new: "
                                 "give --db an empty database")  # fmt: skip
            submitted = time.monotonic() - started

            def sample(progress: BatchProgress) -> None:
                assert local.process is not None
                peaks["redis_mb"] = max(
                    peaks["redis_mb"], redis.info("memory")["used_memory"] / 2**20
                )
                peaks["main_rss_mb"] = max(peaks["main_rss_mb"], rss_mb(local.process.pid))
                for child in pool(local.process.pid):
                    peaks["worker_rss_mb"] = max(peaks["worker_rss_mb"], rss_mb(child))

            progress = client.wait(batch.id, poll=1.0, on_progress=sample, alive=local.alive)
            seconds = time.monotonic() - started
        redis_end = int(redis.info("memory")["used_memory"])
        leftover_keys = int(redis.dbsize())
    finally:
        if embedded is not None:
            embedded.stop()
    with session_scope(url) as session:
        stage_rows = session.execute(select(func.count()).select_from(StageRow)).scalar_one()
    return {
        "articles": articles,
        "workers": workers,
        "db": url.split(":", 1)[0],
        "done": progress.done,
        "failed": progress.failed,
        "lost": articles - progress.done - progress.failed,
        "stage_rows": stage_rows,
        "duplicates": duplicates(url),
        "seconds": round(seconds, 1),
        "articles_per_s": round(articles / seconds, 1),
        "submit_seconds": round(submitted, 2),
        "redis_start_mb": round(redis_start / 2**20, 2),
        "redis_peak_mb": round(peaks["redis_mb"], 2),
        "redis_end_mb": round(redis_end / 2**20, 2),
        "redis_keys_left": leftover_keys,
        "peak_worker_rss_mb": round(peaks["worker_rss_mb"], 1),
        "peak_main_rss_mb": round(peaks["main_rss_mb"], 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=20_000)
    parser.add_argument("--workers", type=int, default=2, help="pool processes")
    parser.add_argument("--db", help="database URL (default: a new SQLite file)")
    parser.add_argument("--broker", help="Redis URL (default: a private embedded Redis)")
    parser.add_argument(
        "--chaos",
        action="store_true",
        help="kill workers, restart Redis, cut PostgreSQL, race submits (see bench/chaos.py); "
        "--db is then the PostgreSQL server to make a scratch database on",
    )
    args = parser.parse_args()
    if args.chaos:
        from bench import chaos

        figures = chaos.run(args.articles, args.db or chaos.LOCAL_POSTGRES)
    else:
        figures = soak(args.articles, args.workers, args.db, args.broker)
    table = Table(title="newsflow soak")
    table.add_column("figure")
    table.add_column("value", justify="right")
    for key, value in figures.items():
        table.add_row(key, str(value))
    console = Console()
    console.print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
