"""kombu's Redis transport, keeping one redis-py client per channel.

kombu makes a new `redis.Redis` for every message it publishes and every one it
acknowledges, and redis-py builds a table of ~170 response callbacks for each client it
makes: a quarter of the cost of a send. One client over the channel's connection pool
serves them all (each command takes a connection of the pool for itself, so threads may
share it); a new one is made when the channel replaces its pool after a lost connection.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis as kombu_redis


class Channel(kombu_redis.Channel):  # type: ignore[misc]
    _shared: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client is None:
            pool = self.pool
            if self._shared is None or self._shared.connection_pool is not pool:
                self._shared = self._create_client()
            client = self._shared
        yield client


class Transport(kombu_redis.Transport):  # type: ignore[misc]
    Channel = Channel


class SocketTransport(Transport):
    """The same over a Unix socket: its URL goes to the channel whole, as kombu hands on a
    "redis+socket://" one, instead of being split into host, port and virtual host."""

    can_parse_url = True


def celery_broker(url: str) -> dict[str, str]:
    """Celery's settings for the broker at `url`, through this transport when it is Redis.
    A transport named in the URL's scheme ("redis+socket://") wins over the one configured,
    so the socket form goes as its bare "socket://", which the Redis transport reads."""
    if url.startswith("redis+socket://"):
        return {"broker_url": url.removeprefix("redis+"),
                "broker_transport": f"{__name__}:SocketTransport"}  # fmt: skip
    if url.startswith("redis://"):
        return {"broker_url": url, "broker_transport": f"{__name__}:Transport"}
    return {"broker_url": url}
