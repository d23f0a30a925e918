"""The door under hostile load: a probe reads GET /healthz and GET /articles while the
server is flooded, phase by phase.

    python -m bench.door [--streams 1000] [--slow 1000] [--array-mb 256] [--seconds 20]

`newsflow serve` (one process, SQLite, embedded Redis, the API token set) over a batch of
2,000 stored articles with no worker, so the batch stays unfinished and its event streams
stay open. Phases, each `--seconds` long, with the probe asking both paths every 50 ms:
1. quiet;
2. `--streams` event streams of one batch, opened at once from 250 client addresses
   (127.0.0.2 and up), each held open (the server caps them: see its answers);
3. `--slow` sockets that send a request's headers one byte a second (slowloris);
4. a JSON array of `--array-mb` MB of records in one POST /batches.
Targets: p99 of both paths under 1 s in every phase, the server's peak RSS under 500 MB.
Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import socket
import tempfile
import time
from collections import Counter
from pathlib import Path
from typing import Any

import httpx
from rich.console import Console
from rich.table import Table

from bench.api import TOKEN, serving
from bench.corpus import corpus
from newsflow import db
from newsflow.config import Settings
from producer.client import Client
from producer.embedded import EmbeddedRedis

PROBE_EVERY = 0.05


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def probe(
    api: str, until: float, busy: asyncio.Task[Any] | None = None
) -> dict[str, list[float]]:
    """Latencies of /healthz and /articles, asked in turn on a fresh connection each (as a
    load balancer and a new client would)."""
    found: dict[str, list[float]] = {"/healthz": [], "/articles?limit=20": []}
    while time.monotonic() < until or (busy is not None and not busy.done()):
        for path, out in found.items():
            started = time.monotonic()
            try:
                async with httpx.AsyncClient(base_url=api, timeout=10) as client:
                    response = await client.get(path)
                ok = response.status_code == 200
            except httpx.HTTPError:
                ok = False
            out.append(time.monotonic() - started if ok else float("inf"))
        await asyncio.sleep(PROBE_EVERY)
    return found


async def streams(port: int, batch_id: int, count: int, until: float) -> Counter[str]:
    """`count` event streams held open until `until`, on raw sockets from 250 client
    addresses (an httpx client each would cost the bench more CPU than the server); how
    the server answered them, by status."""
    answers: Counter[str] = Counter()
    request = (f"GET /batches/{batch_id}/events HTTP/1.1\r\nHost: 127.0.0.1\r\n"
               "Accept: text/event-stream\r\n\r\n").encode()  # fmt: skip

    async def one(index: int) -> None:
        try:
            reader, writer = await asyncio.open_connection(
                "127.0.0.1", port, local_addr=(f"127.0.0.{2 + index % 250}", 0)
            )
        except OSError as exc:
            answers[type(exc).__name__] += 1
            return
        try:
            writer.write(request)
            status = (await reader.readline()).split(b" ")
            answers[status[1].decode() if len(status) > 1 else "closed"] += 1
            while time.monotonic() < until and await reader.read(4096):
                pass
        except (OSError, asyncio.IncompleteReadError) as exc:
            answers[type(exc).__name__] += 1
        finally:
            writer.close()

    tasks = [asyncio.create_task(one(i)) for i in range(count)]
    await asyncio.sleep(max(0.0, until - time.monotonic()))
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    return answers


async def slow_sockets(port: int, count: int, until: float) -> dict[str, int]:
    """Sockets that send headers a byte a second; how many the server had closed by the end."""
    request = b"GET /healthz HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Slow: " + b"a" * 1000
    writers = []
    for _ in range(count):
        try:
            _, writer = await asyncio.open_connection("127.0.0.1", port)
            writers.append(writer)
        except OSError:
            break
    closed: set[int] = set()
    position = 0
    while time.monotonic() < until:
        for index, writer in enumerate(writers):
            if index in closed:
                continue
            try:
                writer.write(request[position : position + 1])
                await writer.drain()
            except (ConnectionError, OSError):
                closed.add(index)
        position = (position + 1) % len(request)
        await asyncio.sleep(1)
    for writer in writers:
        writer.close()
    return {"opened": len(writers), "closed_by_server": len(closed)}


def array_body(path: Path, megabytes: int) -> int:
    stories = [{"text": s["text"]} for s in corpus(200)]
    written = count = 0
    with path.open("wb") as out:
        out.write(b"[")
        while written < megabytes * 1024 * 1024 - 65536:  # just under the default limit
            item = json.dumps({**stories[count % len(stories)], "id": f"d{count}"}).encode()
            out.write((b"," if count else b"") + item)
            written += len(item) + 1
            count += 1
        out.write(b"]")
    return count


async def post_array(api: str, path: Path) -> dict[str, Any]:
    started = time.monotonic()
    headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=api, timeout=900) as client:
        response = await client.post("/batches", content=path.read_bytes(), headers=headers)
    report = response.json()
    return {"status": response.status_code, "submitted": report.get("submitted"),
            "seconds": round(time.monotonic() - started, 1)}  # fmt: skip


def summary(latencies: dict[str, list[float]]) -> dict[str, Any]:
    out = {}
    for path, values in latencies.items():
        ms = sorted(1000 * v for v in values)
        failed = sum(v == float("inf") for v in ms)
        p99 = ms[int(0.99 * (len(ms) - 1))] if ms else float("inf")
        out[path] = {"requests": len(ms), "failed": failed,
                     "p50_ms": round(ms[len(ms) // 2], 1), "p99_ms": round(p99, 1)}  # fmt: skip
    return out


async def phases(api: str, port: int, batch_id: int, args: argparse.Namespace,
                 body: Path) -> dict[str, Any]:  # fmt: skip
    seconds = args.seconds
    figures: dict[str, Any] = {}
    until = time.monotonic() + seconds
    figures["quiet"] = {"probe": summary(await probe(api, until))}
    until = time.monotonic() + seconds
    probed, answers = await asyncio.gather(
        probe(api, until), streams(port, batch_id, args.streams, until)
    )
    figures["streams"] = {"probe": summary(probed), "answers": dict(answers)}
    until = time.monotonic() + seconds
    probed, slow = await asyncio.gather(probe(api, until), slow_sockets(port, args.slow, until))
    figures["slow_sockets"] = {"probe": summary(probed), **slow}
    until = time.monotonic() + seconds
    posting = asyncio.create_task(post_array(api, body))
    probed = await probe(api, until, busy=posting)  # for as long as the POST lasts
    posted = await posting
    figures["array"] = {"probe": summary(probed), **posted}
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--streams", type=int, default=1000)
    parser.add_argument("--slow", type=int, default=1000)
    parser.add_argument("--array-mb", type=int, default=256)
    parser.add_argument("--seconds", type=float, default=20)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="nf-door-"))
    body = work / "array.json"
    records = array_body(body, args.array_mb)
    with EmbeddedRedis(work / "redis.sock") as broker:
        url = f"sqlite:///{work / 'door.db'}"
        db.upgrade(url)
        batch = Client(Settings(database_url=url, broker_url=broker.url)).submit(
            [{"text": s["text"], "id": s["id"]} for s in corpus(2000)], name="watched"
        )
        env = {**os.environ, "NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url,
               "NEWSFLOW_API_TOKEN": TOKEN}  # fmt: skip
        pid: list[int] = []
        with serving(env, work / "serve.log", pid_out=pid) as api:
            port = int(api.rsplit(":", 1)[1])
            figures = asyncio.run(phases(api, port, batch.id, args, body))
            figures["peak_rss_mb"] = round(peak_rss_mb(pid[0]), 1)
    figures["array_mb"], figures["array_records"] = args.array_mb, records
    figures["log_bytes"] = (work / "serve.log").stat().st_size

    table = Table(title=f"the door under load ({os.cpu_count()} cores, serve --workers 1)")
    for column in ("phase", "/healthz p50 / p99", "/articles p50 / p99", "failed", "notes"):
        table.add_column(column)
    for name in ("quiet", "streams", "slow_sockets", "array"):
        phase = figures[name]
        health, listing = phase["probe"]["/healthz"], phase["probe"]["/articles?limit=20"]
        notes = {k: v for k, v in phase.items() if k != "probe"}
        table.add_row(name, f"{health['p50_ms']} / {health['p99_ms']} ms",
                      f"{listing['p50_ms']} / {listing['p99_ms']} ms",
                      str(health["failed"] + listing["failed"]), json.dumps(notes))  # fmt: skip
    table.add_row("server peak RSS", f"{figures['peak_rss_mb']} MB", "", "", "target < 500 MB")
    table.add_row("server log", f"{figures['log_bytes']:,} bytes", "", "", "")
    Console().print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    socket.setdefaulttimeout(30)
    main()
