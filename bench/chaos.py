"""Chaos soak: the whole promise under every fault at once, on PostgreSQL.

    python -m bench.soak --chaos [--articles 20000] [--db postgresql+psycopg://...]

Two `celery worker` processes (one pool process each) behind a TCP proxy to PostgreSQL and
a private embedded Redis. The corpus goes in as two `newsflow submit` processes of the
same JSONL file, racing. Meanwhile a driver SIGKILLs a whole worker (main process and
pool) about every 30 s and starts a new one, restarts Redis empty once, and refuses
database connections once for longer than the workers' retry budget. Nobody runs
`requeue`: the recovery loop must find what the faults lost.

At the end it counts, from the database: articles done, failed, lost (neither), output
rows stored twice, and extra runs (stage runs beyond one per article and stage; only a
kill or a lost message should cause one). The last line is JSON.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from sqlalchemy import func, select
from sqlmodel import col

from bench.corpus import corpus
from bench.proxy import proxied
from bench.soak import duplicates
from bench.throughput import scratch_postgres
from newsflow import db
from newsflow.config import Settings
from newsflow.contract import QUEUES
from newsflow.db import session_scope
from newsflow.models import StageRow
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.local import worker_command

# The workers' budget: 3 retries at most 5 s apart (~15 s) against a 45 s outage; lost
# work is looked for every 10 s and counted lost after 60 s without a sign of life.
WORKER_ENV = {
    "NEWSFLOW_TASK_MAX_RETRIES": "3",
    "NEWSFLOW_RETRY_BACKOFF_MAX": "5",
    "NEWSFLOW_VISIBILITY_TIMEOUT": "60",
    "NEWSFLOW_RECOVERY_INTERVAL": "10",
    "NEWSFLOW_TASK_SOFT_TIME_LIMIT": "30",
    "NEWSFLOW_TASK_TIME_LIMIT": "45",
}
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
KILL_EVERY = 30.0
BROKER_RESTART_AT = 50.0
OUTAGE_AT, OUTAGE_SECONDS = 110.0, 45.0


class Workers:
    """Worker processes in their own process groups, killed and replaced on demand."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.env = env
        self.log = log
        self.processes: list[subprocess.Popen[bytes]] = []
        self.kills = 0

    def start(self) -> None:
        command = worker_command(
            queues=",".join(QUEUES),
            concurrency=1,
            loglevel="WARNING",
            name=f"chaos-{len(self.processes)}",
        )
        with self.log.open("ab") as log:
            self.processes.append(
                subprocess.Popen(
                    command,
                    env=self.env,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )

    def kill_one(self) -> None:
        victim = self.processes.pop(0)
        os.killpg(victim.pid, signal.SIGKILL)
        victim.wait()
        self.kills += 1
        self.start()

    def stop(self) -> None:
        for process in self.processes:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in self.processes:
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def racing_submits(path: Path, env: dict[str, str]) -> list[dict[str, Any]]:
    """`newsflow submit PATH --json` twice at once; their reports."""
    command = [sys.executable, "-m", "producer.cli", "submit", str(path), "--json"]
    racers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        for _ in range(2)
    ]
    reports = []
    for racer in racers:
        out, err = racer.communicate(timeout=600)
        if racer.returncode != 0:
            raise SystemExit(f"a submit failed: {err.decode()[-2000:]}")
        reports.append(json.loads(out))
    return reports


def run(articles: int, admin_url: str) -> dict[str, Any]:
    console = Console(stderr=True)
    home = Path(tempfile.mkdtemp(prefix="nf-chaos-"))
    with scratch_postgres(admin_url) as direct:
        proxy, url = proxied(direct)
        db.upgrade(url)
        broker = EmbeddedRedis(home / "redis.sock").start()
        env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
        env |= {"NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url}
        workers = Workers(env | WORKER_ENV, home / "workers.log")
        path = home / "corpus.jsonl"
        path.write_text("".join(json.dumps(r) + "\n" for r in corpus(articles)), encoding="utf-8")
        client = Client(Settings(database_url=url, broker_url=broker.url))
        events: list[str] = []
        try:
            workers.start()
            workers.start()
            time.sleep(5)  # models loaded
            started = time.monotonic()
            reports = racing_submits(path, env)
            events.append(f"two racing submits: {[r['queued'] for r in reports]} queued")
            batch_ids = [r["batch_id"] for r in reports]
            next_kill, restarted, outage = started + KILL_EVERY, False, False
            while True:
                now = time.monotonic() - started
                try:
                    progress = [client.progress(b) for b in batch_ids]
                except Exception:  # the database is cut off: the driver waits too
                    progress = []
                if progress and all(p.finished for p in progress):
                    break
                if time.monotonic() >= next_kill:
                    workers.kill_one()
                    next_kill += KILL_EVERY
                if not restarted and now >= BROKER_RESTART_AT:
                    broker.stop()
                    broker.start()
                    restarted = True
                    events.append(f"{now:.0f} s: Redis restarted empty")
                if not outage and now >= OUTAGE_AT:
                    proxy.stop()
                    events.append(f"{now:.0f} s: database refused for {OUTAGE_SECONDS:.0f} s")
                    time.sleep(OUTAGE_SECONDS)
                    proxy.start()
                    outage = True
                if now > 3600:
                    raise SystemExit("not finished after an hour; see " + str(workers.log))
                time.sleep(1)
            seconds = time.monotonic() - started
        finally:
            workers.stop()
            broker.stop()
        events.append(f"{workers.kills} workers killed")
        for event in events:
            console.print(event, highlight=False)
        with session_scope(direct) as session:
            total_runs = int(session.execute(select(func.sum(StageRow.runs))).scalar_one() or 0)
            done_rows = session.execute(
                select(func.count()).select_from(StageRow).where(col(StageRow.status) == "done")
            ).scalar_one()
        final = client.progress(batch_ids[0])
        figures = {
            "articles": articles,
            "done": final.done,
            "failed": final.failed,
            "lost": articles - final.done - final.failed,
            "duplicate_rows": duplicates(direct),
            "extra_runs": total_runs - 3 * articles,
            "seconds": round(seconds, 1),
            "kills": workers.kills,
            "done_stage_rows": done_rows,
        }
        proxy.stop()
        db.get_engine(url).dispose()
        db.get_engine(direct).dispose()
    return figures
