"""Reads at a million stored articles: does each read stay flat as the store grows?

    python -m bench.scale [--sizes 10000,100000,1000000] [--base 500] [--batches 100]
                          [--postgres URL] [--sqlite-to 100000] [--samples 20]
                          [--export-limit 0] [--data ../shared/eval] [--keep NAME]

The store is real pipeline output made bigger: --base articles (BBC News from the eval
data when present, else generated stories, plus 1% HTML that fails to clean) go through
real workers into a new database, then SQL copies every row of them, with new ids and
content hashes, into --batches batches until the store holds each size in turn (the kept
counts are recomputed by SQL after each copy: every copied content has one submission).
At each size `newsflow serve --workers 1` answers each read --samples times (after two
unmeasured ones), `newsflow status --json` runs three times, an export to JSONL and CSV
streams the whole store (or --export-limit records), a recovery pass runs over 10% of
the stage rows marked lost, and the database's size is read. PostgreSQL (a scratch
database on --postgres's server, dropped afterwards) goes to every size, SQLite to
--sqlite-to; with --keep NAME, the PostgreSQL store is database NAME, kept afterwards,
and a later run measures it again, copying only what a larger size needs (filling a
million takes half an hour). Prints a table per database, then one JSON line.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table
from sqlalchemy import text

from bench.api import serving
from bench.throughput import database, load_corpus, scratch_postgres
from newsflow import db
from newsflow.config import Settings
from newsflow.contract import QUEUES
from newsflow.models import SQLModel
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.local import LocalWorkers

ROOT = Path(__file__).resolve().parent.parent
BROKEN = "<html><script>var x = 1;</script><style>p {}</style></html>"
COPIED = ("articles", "batch_articles", "stages", "entities", "mentions", "keyphrases",
          "summary_sentences", "entity_keys")  # fmt: skip
KEPT = ("counts", "entity_counts", "entity_keys")
KEPT_INDEXES = ("ix_batch_articles_status", "ix_batch_articles_batch_status",
                "ix_batch_articles_batch_finished")  # fmt: skip
# A name and a word planted in PLANTED contents spread over the store at each size: what
# these reads find stays the same size as the store grows (the copies make every real
# name and word grow with it), so they show the cost of the store alone.
PLANTED = 20
PLANTED_NAME, PLANTED_WORD = "wenceslas ombudsfrau", "quokkaville"


def fill_base(settings: Settings, n: int, data: Path) -> tuple[int, str]:
    """Process the base articles through real workers; returns (contents, corpus note)."""
    records, note = load_corpus(n, data)
    records += [{"id": f"broken-{i}", "html": BROKEN} for i in range(max(1, n // 100))]
    client = Client(settings)
    client.upgrade()
    with LocalWorkers(settings, concurrency=2) as local:
        batch = client.submit(records, name="base")
        client.wait(batch.id, poll=1.0, alive=local.alive)
    return len(records), note


def _series(first: int, last: int) -> str:
    """Replica numbers first..last as a CTE both SQLite and PostgreSQL run."""
    return (
        f"WITH RECURSIVE r(n) AS (SELECT {first} UNION ALL SELECT n + 1 FROM r WHERE n < {last}) "
    )


def copy_replicas(url: str, base: int, first: int, last: int, batches: int) -> None:
    """Copy every row of the base contents (ids 1..base, batch 1) as replicas first..last:
    content id + n * base, in batch 2 + n % batches; a replica's rows are written
    together, as a stage writes an article's (scattered copies made reads random I/O)."""
    shift = {
        "id": "{c} + r.n * {base}",
        "article_id": "{c} + r.n * {base}",
        "content_hash": "substr({c}, 1, 56) || '.' || r.n",  # 64 characters at most
        "external_id": "{c} || '.' || r.n",
        "batch_id": f"2 + r.n % {batches}",
    }
    engine = db.get_engine(url)
    with engine.begin() as connection:
        if first == 1:
            connection.execute(
                text(_series(2, batches + 1) + "INSERT INTO batches (id, name, created_at, "
                     "submitted, duplicates, rejected) SELECT n, 'copies ' || n, "
                     "'2026-12-01 00:00:00', 0, 0, 0 FROM r")
            )  # fmt: skip
        for name in COPIED:
            table = SQLModel.metadata.tables[name]
            columns = [c.name for c in table.columns]
            moved = {"articles": ("id", "content_hash", "batch_id"),
                     "batch_articles": ("id", "article_id", "external_id", "batch_id")}.get(
                name, ("article_id",))  # fmt: skip
            chosen = [  # quoted: "end" is a column
                shift[c].format(c=f't."{c}"', base=base) if c in moved else f't."{c}"'
                for c in columns
            ]
            listed = ", ".join(f'"{c}"' for c in columns)
            key = "id" if name in ("articles", "batch_articles") else "article_id"
            connection.execute(
                text(
                    _series(first, last)
                    + f"INSERT INTO {name} ({listed}) SELECT {', '.join(chosen)} "
                    f"FROM {name} t, r WHERE t.{key} <= {base} ORDER BY r.n, t.{key}"
                )
            )
        if engine.dialect.name == "postgresql":
            for name in ("batches", "articles", "batch_articles"):
                connection.execute(
                    text(
                        f"SELECT setval(pg_get_serial_sequence('{name}', 'id'), "
                        f"(SELECT max(id) FROM {name}))"
                    )
                )
    recount_by_sql(url)


def recount_by_sql(url: str) -> None:
    """The kept counts from scratch, in SQL (for stores where a content has one
    submission, as the copies do); newsflow.tallies.recount is the general one."""
    statements = [
        "DELETE FROM counts",
        "DELETE FROM entity_counts",
        "INSERT INTO counts SELECT batch_id, 'status', status, count(*) FROM batch_articles "
        "GROUP BY batch_id, status",
        "INSERT INTO counts SELECT 0, 'status', status, count(*) FROM batch_articles "
        "GROUP BY status",
        "INSERT INTO counts SELECT m.batch_id, 'language', coalesce(a.language, '?'), "
        "count(*) FROM batch_articles m JOIN articles a ON a.id = m.article_id "
        "GROUP BY m.batch_id, coalesce(a.language, '?')",
        "INSERT INTO counts SELECT 0, 'language', coalesce(language, '?'), count(*) "
        "FROM articles GROUP BY coalesce(language, '?')",
        "INSERT INTO entity_counts SELECT m.batch_id, e.name, e.label, count(*), count(*), "
        "sum(e.count), sum(e.salience) FROM entities e JOIN batch_articles m "
        "ON m.article_id = e.article_id GROUP BY m.batch_id, e.name, e.label",
        "INSERT INTO entity_counts SELECT 0, name, label, count(*), count(*), sum(count), "
        "sum(salience) FROM entities GROUP BY name, label",
        "ANALYZE",
    ]
    engine = db.get_engine(url)
    with engine.begin() as connection:
        for statement in statements[:-1]:
            connection.execute(text(statement))
    with engine.connect() as connection:  # ANALYZE outside a transaction on both
        connection.execution_options(isolation_level="AUTOCOMMIT").execute(text(statements[-1]))


def plant(url: str) -> None:
    """Give PLANTED contents, spread evenly over the store, the planted name (an entity
    key) and word (in the title, which the search index follows), and take them from the
    contents that had them at the size before."""
    engine = db.get_engine(url)
    with engine.begin() as connection:
        step = connection.execute(text("SELECT max(id) FROM articles")).scalar_one() // PLANTED
        planted = {"key": PLANTED_NAME, "word": " " + PLANTED_WORD}
        connection.execute(
            text("UPDATE articles SET title = replace(title, :word, '') WHERE id IN "
                 "(SELECT article_id FROM entity_keys WHERE key = :key)"), planted
        )  # fmt: skip
        connection.execute(text("DELETE FROM entity_keys WHERE key = :key"), planted)
        for target in range(step, step * PLANTED + 1, step):  # ids have gaps: the next one
            article_id = connection.execute(
                text("SELECT min(id) FROM articles WHERE id >= :target"), {"target": target}
            ).scalar_one()
            connection.execute(
                text("INSERT INTO entity_keys (key, article_id) VALUES (:key, :id)"),
                {**planted, "id": article_id},
            )
            connection.execute(
                text("UPDATE articles SET title = coalesce(title, '') || :word WHERE id = :id"),
                {**planted, "id": article_id},
            )


def timed(call: Callable[[], Any], samples: int) -> dict[str, float]:
    for _ in range(2):
        call()
    times = []
    for _ in range(samples):
        began = time.perf_counter()
        call()
        times.append((time.perf_counter() - began) * 1000)
    times.sort()
    return {"p50_ms": round(statistics.median(times), 1),
            "p99_ms": round(times[min(len(times) - 1, int(len(times) * 0.99))], 1)}  # fmt: skip


def reads(api: str, url: str, samples: int) -> dict[str, dict[str, float]]:
    """Each read of the issue's table, through the real server."""
    with db.read_scope(url) as session:
        common = session.execute(
            text("SELECT name FROM entity_counts WHERE batch_id = 0 ORDER BY articles DESC LIMIT 1")
        ).scalar_one()
        rare = session.execute(
            text("SELECT name FROM entity_counts WHERE batch_id = 0 AND articles > 0 "
                 "ORDER BY articles, name LIMIT 1")
        ).scalar_one()  # fmt: skip
        middle = session.execute(text("SELECT max(id) / 2 FROM batch_articles")).scalar_one()
        batch = session.execute(text("SELECT max(id) / 2 FROM batches")).scalar_one()
        page_50 = session.execute(  # the cursor after 49 pages of 20
            text("SELECT id FROM batch_articles ORDER BY id LIMIT 1 OFFSET 979")
        ).scalar_one()
        word = session.execute(
            text("SELECT text FROM keyphrases WHERE article_id = 1 ORDER BY rank LIMIT 1")
        ).scalar()
    http = httpx.Client(base_url=api, timeout=120)

    def get(path: str, **params: Any) -> Callable[[], Any]:
        def call() -> None:
            response = http.get(path, params=params)
            response.raise_for_status()

        return call

    cases = {
        "articles page 50": get("/articles", limit=20, cursor=page_50),
        "article by id": get(f"/articles/{middle}"),
        "entity, common": get("/articles", entity=common),
        "entity, rare": get("/articles", entity=rare),
        f"entity, in {PLANTED} contents": get("/articles", entity=PLANTED_NAME),
        "entity, absent": get("/articles", entity="nobody of that name"),
        "batch + failed": get("/articles", batch=batch, status="failed"),
        "entities top 20": get("/entities", top=20),
        "entities of a batch": get("/entities", top=20, batch=batch),
        "dashboard entities": get("/view/entities"),
        "batches": get("/batches"),
        "status": get("/status"),
        "dashboard overview": get("/"),
    }
    if word:
        cases["search, a top keyphrase"] = get("/articles", q=word)
    cases[f"search, a word in {PLANTED} contents"] = get("/articles", q=PLANTED_WORD)
    figures = {}
    for name, call in cases.items():
        try:
            figures[name] = timed(call, samples)
        except httpx.HTTPStatusError as exc:  # a read this version lacks
            figures[name] = {"error": exc.response.status_code}
    http.close()
    return figures


def cli_status(env: dict[str, str]) -> dict[str, float]:
    command = [sys.executable, "-m", "producer.cli", "status", "--json"]
    times = []
    for _ in range(3):
        began = time.perf_counter()
        subprocess.run(command, env=env, check=True, capture_output=True)
        times.append((time.perf_counter() - began) * 1000)
    return {"p50_ms": round(statistics.median(times), 1)}


class Counting(io.StringIO):
    """A sink that counts what it is given and keeps none of it."""

    def __init__(self) -> None:
        self.chars = 0

    def write(self, chunk: str) -> int:
        self.chars += len(chunk)
        return len(chunk)


def export_rates(settings: Settings, limit: int) -> dict[str, int]:
    from newsflow.record import Filters

    client = Client(settings)
    figures = {}
    for fmt, filters in (
        ("jsonl", Filters()),
        ("csv", Filters()),
        ("jsonl batch", Filters(batch_id=3)),  # replicas 1, 101, 201, ...: as large as any
    ):
        began = time.perf_counter()
        written = client.export(Counting(), filters, fmt=fmt.split()[0], limit=limit or None)
        figures[f"{fmt} records/s"] = round(written / (time.perf_counter() - began))
    return figures


def recovery_pass(settings: Settings) -> dict[str, float]:
    """Mark 10% of the stage rows lost (queued, sent two hours ago), time one recovery
    pass as a worker runs it, then put the rows back."""
    from worker.recovery import recover_once

    url = settings.database_url
    lost = "(article_id + length(stage)) % 10 = 0"
    engine = db.get_engine(url)
    with engine.begin() as connection:
        marked = connection.execute(
            text(f"UPDATE stages SET status = 'queued', sent_at = :old, updated_at = :old "
                 f"WHERE {lost}"), {"old": "2000-01-01 00:00:00"}
        ).rowcount  # fmt: skip
        connection.execute(  # as the stages would have left them: unfinished
            text("UPDATE batch_articles SET status = 'processing' WHERE status = 'done' AND "
                 "article_id IN (SELECT article_id FROM stages WHERE status = 'queued')")
        )  # fmt: skip
    recount_by_sql(url)
    from producer.broker import sender_of

    began = time.perf_counter()
    sent = recover_once(settings, sender_of(settings))
    seconds = time.perf_counter() - began
    with engine.begin() as connection:
        connection.execute(
            text(f"UPDATE stages SET status = 'done', sent_at = NULL, claim = NULL WHERE {lost}")
        )
        connection.execute(
            text("UPDATE batch_articles SET status = 'done' WHERE status = 'processing'")
        )
    recount_by_sql(url)
    from producer.broker import redis_client

    redis_client(settings.broker()).flushdb()
    return {"lost rows": marked, "sent": sent, "seconds": round(seconds, 2)}


def sizes(url: str, stored: int) -> dict[str, float]:
    engine = db.get_engine(url)
    with engine.connect() as connection:
        if engine.dialect.name == "postgresql":
            total = connection.execute(
                text("SELECT pg_database_size(current_database())")
            ).scalar_one()
            kept = sum(
                connection.execute(text(f"SELECT pg_total_relation_size('{t}')")).scalar_one()
                for t in KEPT
            )
            kept += sum(
                connection.execute(text(f"SELECT pg_relation_size('{i}')")).scalar_one()
                for i in KEPT_INDEXES
            )
        else:
            page = connection.execute(text("PRAGMA page_size")).scalar_one()
            total = page * connection.execute(text("PRAGMA page_count")).scalar_one()
            kept = 0
    return {"bytes/article": round(total / stored), "kept bytes/article": round(kept / stored)}


@contextmanager
def store(kind: str, args: argparse.Namespace, home: Path) -> Iterator[str]:
    if kind == "postgres" and args.keep:
        yield database(args.postgres, args.keep)
    elif kind == "postgres":
        with scratch_postgres(args.postgres) as url:
            yield url
    else:
        yield f"sqlite:///{home / 'scale.db'}"


def kept_store(url: str) -> tuple[int, int]:
    """(base contents, replicas copied) of a store this bench filled before (--keep);
    (0, 0) for a new database."""
    with db.get_engine(url).connect() as connection:
        if not connection.execute(text("SELECT to_regclass('articles')")).scalar():
            return 0, 0
        base = connection.execute(
            text("SELECT count(*) FROM batch_articles WHERE batch_id = 1")
        ).scalar_one()
        stored = connection.execute(text("SELECT count(*) FROM batch_articles")).scalar_one()
    return base, (stored // base - 1 if base else 0)


def run(kind: str, args: argparse.Namespace, broker: str, home: Path) -> dict[str, Any]:
    results: dict[str, Any] = {}
    with store(kind, args, home) as url:
        settings = Settings(database_url=url, broker_url=broker, data_dir=home / kind)
        base, replicas = kept_store(url) if args.keep else (0, 0)
        if base:
            note = f"{base} base contents, kept in {args.keep}"
        else:
            base, note = fill_base(settings, args.base, args.data)
        results["corpus"] = note
        env = {**{k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")},
               "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker}  # fmt: skip
        for size in args.sizes:
            if kind == "sqlite" and size > args.sqlite_to:
                break
            wanted = size // base - 1
            began = time.perf_counter()
            step = 200
            for first in range(replicas + 1, wanted + 1, step):
                copy_replicas(url, base, first, min(first + step - 1, wanted), args.batches)
            replicas = max(replicas, wanted)
            stored = base * (replicas + 1)
            plant(url)
            figures: dict[str, Any] = {"stored": stored,
                                       "fill_s": round(time.perf_counter() - began, 1)}  # fmt: skip
            log = home / f"serve-{kind}-{size}.log"
            with serving(env, log) as api:
                figures["reads"] = reads(api, url, args.samples)
            figures["cli status"] = cli_status(env)
            figures["export"] = export_rates(settings, args.export_limit)
            figures["recovery"] = recovery_pass(settings)
            figures["size"] = sizes(url, stored)
            results[str(size)] = figures
            Console().print(f"{kind} {size:,}: {json.dumps(figures)}")
    return results


def table(kind: str, results: dict[str, Any]) -> Table:
    done = [k for k in results if k.isdigit()]
    out = Table(title=f"reads at size, {kind} ({results['corpus']})")
    out.add_column("operation")
    for size in done:
        out.add_column(f"{int(size):,}", justify="right")
    names = list(results[done[0]]["reads"]) if done else []
    for name in names:
        cells = []
        for size in done:
            figure = results[size]["reads"].get(name, {})
            cells.append(f"{figure.get('p50_ms')} / {figure.get('p99_ms')} ms")
        out.add_row(name + " (p50 / p99)", *cells)
    for section, key in (("cli status", "p50_ms"), ("recovery", "seconds")):
        out.add_row(f"{section} ({key})", *(str(results[s][section][key]) for s in done))
    for key in results[done[0]]["export"] if done else {}:
        out.add_row(f"export {key}", *(f"{results[s]['export'][key]:,}" for s in done))
    for key in ("bytes/article", "kept bytes/article"):
        out.add_row(key, *(f"{results[s]['size'][key]:,}" for s in done))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--base", type=int, default=500)
    parser.add_argument("--batches", type=int, default=100)
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--sqlite-to", type=int, default=100_000)
    parser.add_argument("--samples", type=int, default=20)
    parser.add_argument("--export-limit", type=int, default=0)
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--databases", default="postgres,sqlite")
    parser.add_argument(
        "--keep", help="fill this PostgreSQL database and keep it; a later run goes on from it"
    )
    args = parser.parse_args()
    args.sizes = [int(s) for s in args.sizes.split(",")]
    home = Path(tempfile.mkdtemp(prefix="nf-scale-"))
    results = {}
    with EmbeddedRedis(home / "redis.sock") as redis_server:
        for kind in args.databases.split(","):
            results[kind] = run(kind, args, redis_server.url, home)
            Console().print(table(kind, results[kind]))
    print(json.dumps({"bench": "scale", "queues": list(QUEUES), **results}))


if __name__ == "__main__":
    main()
