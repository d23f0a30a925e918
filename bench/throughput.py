"""Throughput: newsflow end to end against what spaCy alone can do, side by side in one run.

    python -m bench.throughput [--articles 2000] [--workers 2] [--postgres URL] [--redis URL]
                               [--data ../shared/eval] [--naive-articles 400]

Corpus: BBC News articles from the eval data when present, topped up with generated
wire stories of similar length, else generated stories only. Measured in this order:
- limit: the pipelines the workers run (the extract model over the text, the sentencizer
  over it for the summary), called with nlp.pipe in --workers processes, no queue, no DB;
- newsflow: submit -> Redis -> `celery worker` with --workers processes -> every stage
  done in the DB; wall time from the first submitted record to the last stored result;
  on SQLite with the embedded Redis, and on PostgreSQL / an external Redis when given
  (each run gets a database of its own: a new SQLite file, or a scratch database created
  on the given PostgreSQL server and dropped afterwards);
- newsflow with one worker process, for the 2-vs-1 scaling;
- submit: records accepted into DB + queue per second, no worker running;
- naive: one Celery task per article calling nlp(text) and inserting row by row (the
  tutorial way), on --naive-articles articles;
- peak RSS of any worker process while it ran.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.corpus import article
from bench.soak import pool, rss_mb
from newsflow import db
from newsflow.config import Settings
from newsflow.record import BatchProgress
from producer.broker import redis_client
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.local import LocalWorkers

ROOT = Path(__file__).resolve().parent.parent


def load_corpus(n: int, data: Path) -> tuple[list[dict[str, str]], str]:
    bbc = data / "bbc_news_summary" / "News Articles"
    texts: list[dict[str, str]] = []
    seen: set[str] = set()
    if bbc.is_dir():
        for path in sorted(bbc.glob("*/*.txt")):
            text = path.read_bytes().decode("utf-8", "replace")
            if text in seen:  # the set repeats some stories; a repeat would not be processed
                continue
            seen.add(text)
            texts.append({"id": f"bbc-{path.parent.name}-{path.stem}", "text": text})
            if len(texts) == n:
                break
    real = len(texts)
    texts += [article(i, paragraphs=12) for i in range(n - real)]
    return texts, f"{real} BBC + {n - real} generated"


def _limit_worker(texts: list[str], start: Any, queue: Any) -> None:
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    from worker.nlp import get_nlp, get_sentencizer

    nlp, sentencizer = get_nlp(), get_sentencizer()
    nlp("warm up"), sentencizer("warm up")
    start.wait()
    began = time.perf_counter()
    for i in range(0, len(texts), 32):
        chunk = texts[i : i + 32]
        with nlp.memory_zone():
            for _ in nlp.pipe(chunk, batch_size=8):
                pass
        for paragraph_doc in sentencizer.pipe(p for t in chunk for p in t.split("\n\n")):
            list(paragraph_doc.sents)
    queue.put(time.perf_counter() - began)


def limit(texts: list[str], workers: int) -> float:
    """Articles per second of the bare pipelines in `workers` processes."""
    context = mp.get_context("spawn")
    start, queue = context.Event(), context.Queue()
    shares = [texts[i::workers] for i in range(workers)]
    processes = [context.Process(target=_limit_worker, args=(s, start, queue)) for s in shares]
    for p in processes:
        p.start()
    time.sleep(8)  # every process has loaded its model before the clock starts
    began = time.perf_counter()
    start.set()
    for _ in processes:
        queue.get()
    seconds = time.perf_counter() - began
    for p in processes:
        p.join()
    return len(texts) / seconds


@contextmanager
def scratch_postgres(url: str) -> Iterator[str]:
    """A new database on the server of `url`, dropped afterwards: a database that already
    holds these articles would take them as duplicates and process nothing."""
    import psycopg

    name = f"nf_bench_{uuid.uuid4().hex[:12]}"
    scratch = database(url, name)
    try:
        yield scratch
    finally:
        db.get_engine(scratch).dispose()
        with psycopg.connect(_admin(url), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _admin(url: str) -> str:
    return "postgresql://" + url.split("://", 1)[1]


def database(url: str, name: str) -> str:
    """The URL of database `name` on the server of `url`, created if it is not there."""
    import psycopg

    with psycopg.connect(_admin(url), autocommit=True) as conn:
        if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name]).fetchone():
            conn.execute(f'CREATE DATABASE "{name}"')
    return url.rsplit("/", 1)[0] + f"/{name}"


def newsflow(records: list[dict[str, str]], workers: int, url: str, broker: str,
             home: Path) -> dict[str, float]:  # fmt: skip
    """End-to-end articles per second and peak worker RSS for one configuration."""
    settings = Settings(database_url=url, broker_url=broker, data_dir=home)
    client = Client(settings)
    client.upgrade()
    peak = 0.0
    with LocalWorkers(settings, concurrency=workers, loglevel="WARNING") as local:
        warm = client.submit([article(10**6 + i, 2) for i in range(workers * 4)], name="warm-up")
        client.wait(warm.id, alive=local.alive)
        began = time.perf_counter()
        batch = client.submit(records, name="throughput")
        if batch.queued != len(records):
            raise SystemExit(f"{url}: only {batch.queued} of {len(records)} articles were new")

        def sample(_: BatchProgress) -> None:
            nonlocal peak
            assert local.process is not None
            peak = max([peak, *(rss_mb(c) for c in pool(local.process.pid))])

        client.wait(batch.id, poll=0.25, on_progress=sample, alive=local.alive)
        seconds = time.perf_counter() - began
    return {"per_s": len(records) / seconds, "peak_rss_mb": peak}


def submit_rate(records: list[dict[str, str]], url: str, broker: str, home: Path) -> float:
    """Records per second accepted into DB + queue, with no worker consuming."""
    settings = Settings(database_url=url, broker_url=broker, data_dir=home)
    client = Client(settings)
    client.upgrade()
    began = time.perf_counter()
    client.submit(records, name="submit-rate")
    seconds = time.perf_counter() - began
    redis_client(broker).flushdb()
    return len(records) / seconds


def naive(records: list[dict[str, str]], workers: int, broker: str, home: Path) -> float:
    """One task per article, nlp(text), one INSERT and commit per entity: for scale."""
    db_path = home / "naive.db"
    env = {**os.environ, "NAIVE_BROKER": broker, "NAIVE_DB": str(db_path),
           "PYTHONPATH": str(ROOT)}  # fmt: skip
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "bench.naive", "worker", "--concurrency",
         str(workers), "--loglevel", "WARNING", "--without-gossip", "--without-mingle"],
        env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True,
    )  # fmt: skip
    try:
        from bench.naive import app, count_done, reset

        reset(str(db_path))
        app.conf.broker_url = broker
        for i in range(workers * 2):
            app.send_task("naive.process", args=[f"warm-{i}", "Warm up the model please."])
        while count_done(str(db_path)) < workers * 2:
            time.sleep(0.2)
        reset(str(db_path))
        began = time.perf_counter()
        for r in records:
            app.send_task("naive.process", args=[r["id"], r["text"]])
        while count_done(str(db_path)) < len(records):
            time.sleep(0.2)
        return len(records) / (time.perf_counter() - began)
    finally:
        worker.terminate()
        worker.wait(timeout=60)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--articles", type=int, default=2000)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--postgres", help="also run on this PostgreSQL database URL")
    parser.add_argument("--redis", help="also run with this external Redis URL")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--naive-articles", type=int, default=400)
    args = parser.parse_args()

    records, source = load_corpus(args.articles, args.data)
    words = sum(len(r["text"].split()) for r in records) / len(records)
    home = Path(tempfile.mkdtemp(prefix="nf-bench-"))
    figures: dict[str, Any] = {"articles": len(records), "corpus": source,
                               "mean_words": round(words)}  # fmt: skip
    with EmbeddedRedis(home / "redis.sock") as embedded:
        figures["limit_per_s"] = limit([r["text"] for r in records], args.workers)
        runs = {"sqlite+embedded": (f"sqlite:///{home / 'a.db'}", embedded.url)}
        if args.postgres:
            runs["postgres+embedded"] = (args.postgres, embedded.url)
        if args.redis:
            runs["sqlite+redis"] = (f"sqlite:///{home / 'b.db'}", args.redis)
        results = {}
        for name, (url, broker) in runs.items():
            redis_client(broker).flushdb()
            if url.startswith("postgresql"):
                with scratch_postgres(url) as scratch:
                    results[name] = newsflow(records, args.workers, scratch, broker, home / name)
            else:
                results[name] = newsflow(records, args.workers, url, broker, home / name)
        one = newsflow(records, 1, f"sqlite:///{home / 'one.db'}", embedded.url, home / "one")
        submit = submit_rate(records, f"sqlite:///{home / 's.db'}", embedded.url, home / "s")
        naive_rate = naive(records[: args.naive_articles], args.workers, embedded.url, home)
    main_run = results["sqlite+embedded"]
    figures.update(
        newsflow_per_s=main_run["per_s"],
        naive_per_s=naive_rate,
        ratio=main_run["per_s"] / figures["limit_per_s"],
        submit_per_s=submit,
        peak_rss_mb=max(r["peak_rss_mb"] for r in results.values()),
        scaling_2v1=main_run["per_s"] / one["per_s"],
        db={
            name: {
                "per_s": round(r["per_s"], 2),
                "ratio": round(r["per_s"] / figures["limit_per_s"], 3),
            }
            for name, r in results.items()
        },
    )
    table = Table(title=f"newsflow throughput, {len(records)} articles ({source}), "
                        f"{args.workers} worker processes, {os.cpu_count()} cores")  # fmt: skip
    table.add_column("measure")
    table.add_column("value", justify="right")
    table.add_row("limit: bare spaCy pipelines, articles/s", f"{figures['limit_per_s']:.2f}")
    for name, r in results.items():
        table.add_row(f"newsflow {name}, articles/s", f"{r['per_s']:.2f}")
        table.add_row(f"  ratio to limit ({name})", f"{r['per_s'] / figures['limit_per_s']:.3f}")
    table.add_row("newsflow, 1 worker process, articles/s", f"{one['per_s']:.2f}")
    table.add_row("scaling 2 vs 1 process", f"{figures['scaling_2v1']:.2f}x")
    table.add_row("naive (task per article, row by row), articles/s", f"{naive_rate:.2f}")
    table.add_row("submit into DB + queue, articles/s", f"{submit:.0f}")
    table.add_row("peak RSS of a worker process, MB", f"{figures['peak_rss_mb']:.0f}")
    Console().print(table)
    print(json.dumps({k: round(v, 3) if isinstance(v, float) else v for k, v in figures.items()}))


if __name__ == "__main__":
    main()
