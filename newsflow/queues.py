"""What the Redis broker holds: messages waiting per queue, and those a worker has taken but
not yet acknowledged. Read by `status` (depths), and by `requeue` and the recovery loop
(which articles still have a live message), so neither guesses from timestamps alone.

Kombu's Redis transport keeps a queue as lists (one per priority) of JSON envelopes whose
base64 body is Celery's [args, kwargs, embed], and every delivered, unacknowledged message
in the hash "unacked" as [envelope, exchange, routing key]. Our tasks' only argument is
the list of article ids.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from typing import Any

import redis

from newsflow.contract import QUEUES

PRIORITY_SUFFIXES = ("", "\x06\x163", "\x06\x166", "\x06\x169")  # kombu's priority lists
PAGE = 1000  # envelopes read at a time


def redis_client(broker_url: str) -> redis.Redis:
    """A redis-py client for a kombu broker URL (kombu's socket form included)."""
    url = broker_url
    if url.startswith("redis+socket://"):
        url = "unix://" + url.removeprefix("redis+socket://").replace("virtual_host=", "db=")
    return redis.Redis.from_url(url, socket_timeout=5, socket_connect_timeout=5)


def depths(client: redis.Redis) -> dict[str, dict[str, int]]:
    """Per queue: messages waiting (ready) and delivered but not acknowledged (unacked)."""
    found = {
        queue: {"ready": sum(int(client.llen(queue + s)) for s in PRIORITY_SUFFIXES), "unacked": 0}
        for queue in QUEUES
    }
    for raw in client.hvals("unacked"):
        if (routing_key := _unacked(raw)[1]) in found:
            found[routing_key]["unacked"] += 1
    return found


def live_ids(client: redis.Redis) -> dict[str, set[int]]:
    """Per queue, the article ids that a waiting or unacknowledged message names."""
    live: dict[str, set[int]] = {queue: set() for queue in QUEUES}
    for queue in QUEUES:
        for envelope in _waiting(client, queue):
            live[queue].update(_ids(envelope))
    for raw in client.hvals("unacked"):
        envelope, routing_key = _unacked(raw)
        if routing_key in live:
            live[routing_key].update(_ids(envelope))
    return live


def _waiting(client: redis.Redis, queue: str) -> Iterator[Any]:
    for suffix in PRIORITY_SUFFIXES:
        start = 0
        while page := client.lrange(queue + suffix, start, start + PAGE - 1):
            yield from page
            start += PAGE


def _unacked(raw: bytes | str) -> tuple[Any, str | None]:
    try:
        value: Any = json.loads(raw)
        return value[0], str(value[2])
    except (ValueError, IndexError, TypeError):
        return None, None


def _ids(envelope: Any) -> Iterable[int]:
    """The article ids in one envelope; nothing for a message that is not ours."""
    try:
        if isinstance(envelope, (bytes, str)):
            envelope = json.loads(envelope)
        body = envelope["body"]
        if envelope.get("properties", {}).get("body_encoding") == "base64":
            body = base64.b64decode(body)
        args = json.loads(body)[0]
        return [int(i) for i in args[0]]
    except (ValueError, KeyError, IndexError, TypeError):
        return []


PROBLEMS = "newsflow:problem:"  # + the worker process: a JSON note while it cannot serve
PROBLEM_TTL = 3600  # a note outlives its worker by at most this, if nothing clears it


def report_problem(client: redis.Redis, worker: str, reason: str, *, refusing: bool) -> None:
    """Say that `worker` (host and pid) cannot serve, and why; the first time it said so
    is kept. `refusing`: it gives messages back; else it waits for the cause to pass."""
    key = PROBLEMS + worker
    since = _since(client.get(key)) or datetime.now(UTC).isoformat(timespec="seconds")
    note = {"worker": worker, "reason": reason, "since": since, "refusing": refusing}
    client.set(key, json.dumps(note), ex=PROBLEM_TTL)


def clear_problem(client: redis.Redis, worker: str) -> None:
    client.delete(PROBLEMS + worker)


def problems(client: redis.Redis) -> list[dict[str, Any]]:
    """Every worker's note that it cannot serve, oldest first."""
    return sorted(_notes(client, PROBLEMS), key=lambda note: str(note.get("since")))


def _since(raw: Any) -> str | None:
    try:
        return str(json.loads(raw)["since"]) if raw else None
    except (ValueError, KeyError, TypeError):
        return None


WORKERS = "newsflow:worker:"  # + the worker's name: its last heartbeat, a JSON note
HEARTBEAT = 5.0  # seconds between a worker's heartbeats
HEARTBEAT_TTL = 20  # a note outlives a killed worker by at most this


def beat(client: redis.Redis, note: dict[str, Any]) -> None:
    """Say that a worker is alive and what it does (note["name"] names it)."""
    note = {**note, "last_seen": datetime.now(UTC).isoformat(timespec="seconds")}
    client.set(WORKERS + note["name"], json.dumps(note), ex=HEARTBEAT_TTL)


def forget_worker(client: redis.Redis, name: str) -> None:
    client.delete(WORKERS + name)


def workers(client: redis.Redis) -> list[dict[str, Any]]:
    """The workers whose last heartbeat is recent, by name: no broadcast, no waiting."""
    return sorted(_notes(client, WORKERS), key=lambda note: str(note.get("name")))


def _notes(client: redis.Redis, prefix: str) -> list[dict[str, Any]]:
    keys = sorted(client.scan_iter(match=prefix + "*", count=1000))
    notes = []
    for raw in client.mget(keys) if keys else []:
        if raw is None:  # gone since the scan
            continue
        try:
            notes.append(json.loads(raw))
        except ValueError:
            continue
    return notes
