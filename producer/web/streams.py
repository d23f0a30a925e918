"""Batch event streams: one poll per watched batch however many watch it, and a cap on
streams (in all, and per client) with a refusal that says why.

Each watched batch has one feed: a task that reads the batch's figures, tells every
stream of it when they change, and stops when the last stream leaves or the batch is
finished. Polls wait at least four times as long as the last one took, and at most
`polls` run at once, so streams can never take more of the database than that however
many are open.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field

from fastapi import HTTPException
from fastapi.concurrency import run_in_threadpool

from newsflow.record import BatchProgress

log = logging.getLogger(__name__)
POLL = 0.5  # seconds between two reads of a batch's figures, at the least


class TooManyStreams(HTTPException):
    """Raised when a stream is refused for the caps; the detail names the cap."""


@dataclass
class _Feed:
    latest: BatchProgress
    changed: asyncio.Condition = field(default_factory=asyncio.Condition)
    version: int = 0
    watchers: int = 0
    task: asyncio.Task[None] | None = None


class BatchWatch:
    """The feeds of one server process."""

    def __init__(
        self,
        read: Callable[[int], BatchProgress],
        *,
        max_streams: int,
        max_per_client: int,
        polls: int = 2,
    ) -> None:
        self.read = read
        self.max_streams, self.max_per_client = max_streams, max_per_client
        self.feeds: dict[int, _Feed] = {}
        self.clients: Counter[str] = Counter()
        self.polls = asyncio.Semaphore(polls)

    @property
    def open(self) -> int:
        return sum(self.clients.values())

    def admit(self, client: str) -> None:
        """Count a new stream of `client` in, or refuse it (503 in all, 429 per client)."""
        if self.open >= self.max_streams:
            raise TooManyStreams(
                503,
                f"this server has {self.open} event streams open, its most "
                "(NEWSFLOW_API_MAX_STREAMS); try again later, or poll GET /batches/{id}",
                headers={"Retry-After": "30"},
            )
        if self.clients[client] >= self.max_per_client:
            raise TooManyStreams(
                429,
                f"you have {self.clients[client]} event streams open, the most one client "
                "may (NEWSFLOW_API_MAX_STREAMS_PER_CLIENT); close one first",
                headers={"Retry-After": "30"},
            )
        self.clients[client] += 1

    def leave(self, client: str) -> None:
        self.clients[client] -= 1
        if self.clients[client] <= 0:
            del self.clients[client]

    async def follow(self, batch_id: int, first: BatchProgress) -> AsyncIterator[BatchProgress]:
        """The batch's figures now and whenever they change, until it is finished."""
        feed = self.feeds.get(batch_id)
        if feed is None:
            feed = self.feeds[batch_id] = _Feed(latest=first)
        feed.watchers += 1
        if feed.task is None or feed.task.done():
            feed.task = asyncio.create_task(self._poll(batch_id, feed))
        try:
            seen = -1
            while True:
                async with feed.changed:
                    while feed.version == seen:
                        await feed.changed.wait()
                    seen, progress = feed.version, feed.latest
                yield progress
                if progress.finished:
                    return
        finally:
            feed.watchers -= 1
            if feed.watchers <= 0 and feed.task is not None and feed.task.done():
                self.feeds.pop(batch_id, None)

    async def _poll(self, batch_id: int, feed: _Feed) -> None:
        pause = POLL
        try:
            while feed.watchers > 0 and not feed.latest.finished:
                await asyncio.sleep(pause)
                async with self.polls:
                    started = time.monotonic()
                    try:
                        progress = await run_in_threadpool(self.read, batch_id)
                    except Exception as exc:  # the database away: the streams wait for it
                        log.warning("batch %s: figures not read: %s", batch_id, exc)
                        pause = min(30.0, max(2 * pause, 2.0))
                        continue
                    pause = max(POLL, 4 * (time.monotonic() - started))
                if progress != feed.latest:
                    async with feed.changed:
                        feed.latest, feed.version = progress, feed.version + 1
                        feed.changed.notify_all()
        finally:
            if self.feeds.get(batch_id) is feed and feed.watchers <= 0:
                del self.feeds[batch_id]
