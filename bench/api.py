"""The HTTP API: submit throughput against the CLI, and listing latency under 50 clients.

    python -m bench.api [--records 20000] [--articles 10000] [--clients 50] [--seconds 20]
                        [--pause 0.5] [--workers 2]

1. Submit: the same number of distinct records through `newsflow submit FILE` (a new
   process, as a user runs it) and through POST /batches (JSONL) of a running
   `newsflow serve`, alternately, twice each, into one SQLite database and an embedded
   Redis, no workers (submission only). Targets: HTTP >= 0.8x the CLI's records/s.
2. Listing: `newsflow serve --workers N` over a SQLite database of generated finished
   articles (bench.export_memory.fill); `--clients` concurrent clients on keep-alive
   connections, each asking for GET /articles?limit=20 from a random cursor, for
   `--seconds`, twice: paced (each client waits `--pause` s after an answer, as a
   dashboard or a poller does: 50 clients at 0.5 s offer up to 100 requests/s) and as a
   closed loop (no pause: the server's saturation throughput, where latency is only
   clients / throughput). Target: p99 <= 50 ms, paced.

The clients run on the same machine as the server, so they share its cores. Prints a
table and one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.export_memory import fill
from newsflow import db
from producer.embedded import EmbeddedRedis

TOKEN = "bench-token"
STORY = ("VALMERA, May {day} (Reuters) - The council of Brookfield approved plan {i} on "
         "Tuesday, Mayor Ana Ruiz said, after a debate that ran late into the night.")  # fmt: skip


def write_records(path: Path, first: int, n: int) -> None:
    with path.open("w", encoding="utf-8") as out:
        for i in range(first, first + n):
            record = {"id": f"b{i}", "text": STORY.format(day=1 + i % 28, i=i)}
            out.write(json.dumps(record) + "\n")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    env: dict[str, str], log: Path, workers: int = 1, pid_out: list[int] | None = None
) -> Iterator[str]:
    """`newsflow serve` on a free port until the block ends; its pid goes to `pid_out`."""
    port = free_port()
    command = [sys.executable, "-m", "producer.cli", "serve", "--port", str(port),
               "--workers", str(workers)]  # fmt: skip
    process = subprocess.Popen(command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT)
    if pid_out is not None:
        pid_out.append(process.pid)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"serve did not start: {log.read_text()[-2000:]}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        process.wait(timeout=30)


def submit_figures(work: Path, n: int) -> dict[str, Any]:
    """Seconds per round of `newsflow submit` and of POST /batches, alternating."""
    with EmbeddedRedis(work / "redis.sock") as broker:
        url = f"sqlite:///{work / 'submit.db'}"
        db.upgrade(url)
        env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url,
               "NEWSFLOW_API_TOKEN": TOKEN}  # fmt: skip
        seconds: dict[str, list[float]] = {"cli": [], "http": []}
        with serving(env, work / "serve-submit.log") as api:
            first = 0
            for _ in range(2):
                for way in ("cli", "http"):
                    path = work / f"records-{first}.jsonl"
                    write_records(path, first, n)
                    first += n
                    started = time.perf_counter()
                    if way == "cli":
                        command = [sys.executable, "-m", "producer.cli", "submit", str(path),
                                   "--json"]  # fmt: skip
                        done = subprocess.run(command, env=env, capture_output=True, text=True)
                        assert done.returncode == 0, done.stderr[-2000:]
                        report = json.loads(done.stdout)
                    else:
                        with path.open("rb") as body:
                            response = httpx.post(
                                f"{api}/batches", content=body, timeout=600,
                                headers={"Authorization": f"Bearer {TOKEN}",
                                         "Content-Type": "application/x-ndjson"},
                            )  # fmt: skip
                        assert response.status_code == 201, response.text
                        report = response.json()
                    seconds[way].append(time.perf_counter() - started)
                    assert report["submitted"] == n and report["queued"] == n, report
    best = {way: min(values) for way, values in seconds.items()}
    return {
        "records": n,
        "cli_seconds": round(best["cli"], 2),
        "http_seconds": round(best["http"], 2),
        "cli_per_s": round(n / best["cli"]),
        "http_per_s": round(n / best["http"]),
        "http_vs_cli": round(best["cli"] / best["http"], 2),
    }


async def _client(
    client: httpx.AsyncClient, top: int, until: float, pause: float, out: list[float]
) -> None:
    await asyncio.sleep(random.uniform(0, pause))  # clients do not start in step
    while time.perf_counter() < until:
        cursor = random.randrange(0, top)
        started = time.perf_counter()
        response = await client.get("/articles", params={"limit": 20, "cursor": cursor})
        out.append(time.perf_counter() - started)
        assert response.status_code == 200 and len(response.json()["items"]) == 20
        await asyncio.sleep(pause)


async def _load(api: str, clients: int, seconds: float, pause: float, top: int) -> dict[str, Any]:
    """Each client on its own keep-alive connection, opened before the clock starts (an
    httpx client takes ~20 ms to build, and one pool shared by 50 tasks costs httpx ~7 ms
    of CPU a request: either would be measured as the server's latency)."""
    latencies: list[float] = []
    connections = [httpx.AsyncClient(base_url=api, timeout=30) for _ in range(clients)]
    await asyncio.gather(*(c.get("/healthz") for c in connections))
    until = time.perf_counter() + seconds
    await asyncio.gather(*(_client(c, top, until, pause, latencies) for c in connections))
    for connection in connections:
        await connection.aclose()
    ms = sorted(1000 * x for x in latencies)
    return {
        "pause_s": pause,
        "requests": len(ms),
        "per_s": round(len(ms) / seconds),
        "p50_ms": round(statistics.median(ms), 1),
        "p99_ms": round(ms[int(0.99 * (len(ms) - 1))], 1),
    }


def listing_figures(work: Path, args: argparse.Namespace) -> dict[str, Any]:
    url = f"sqlite:///{work / 'listing.db'}"
    fill(url, args.articles)
    top = args.articles - 20
    with EmbeddedRedis(work / "redis2.sock") as broker:
        env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url}
        with serving(env, work / "serve-listing.log", args.workers) as api:
            asyncio.run(_load(api, 4, 2, 0, top))  # warm up
            paced = asyncio.run(_load(api, args.clients, args.seconds, args.pause, top))
            closed = asyncio.run(_load(api, args.clients, args.seconds, 0, top))
    return {"articles": args.articles, "clients": args.clients, "workers": args.workers,
            "paced": paced, "closed_loop": closed}  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=20_000)
    parser.add_argument("--articles", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--seconds", type=float, default=20)
    parser.add_argument("--pause", type=float, default=0.5)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nf-api-"))
    submit = submit_figures(work, args.records)
    listing = listing_figures(work, args)
    paced, closed = listing["paced"], listing["closed_loop"]

    table = Table(title=f"HTTP API on {os.cpu_count()} cores, serve --workers {args.workers} "
                  "(SQLite, embedded Redis)")  # fmt: skip
    for column in ("measure", "figure", "target"):
        table.add_column(column)
    table.add_row(f"submit {args.records:,} records, CLI", f"{submit['cli_per_s']:,}/s", "")
    table.add_row("submit, POST /batches", f"{submit['http_per_s']:,}/s", "")
    table.add_row("HTTP / CLI", f"{submit['http_vs_cli']:.2f}x", ">= 0.8x")
    table.add_row(f"GET /articles, {args.clients} clients, {args.pause} s apart: p50",
                  f"{paced['p50_ms']} ms", "")  # fmt: skip
    table.add_row("  p99", f"{paced['p99_ms']} ms", "<= 50 ms")
    table.add_row("  requests/s", f"{paced['per_s']:,}", "")
    table.add_row("closed loop (no pause): p50", f"{closed['p50_ms']} ms", "")
    table.add_row("  p99", f"{closed['p99_ms']} ms", "")
    table.add_row("  requests/s (saturation)", f"{closed['per_s']:,}", "")
    Console().print(table)
    print(json.dumps({"submit": submit, "listing": listing}))


if __name__ == "__main__":
    main()
