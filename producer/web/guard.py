"""What `serve` does alone against slow, greedy or rebinding clients (README "What the
server does alone"): a connection cap, a deadline for a request's headers and for each
piece of its body, and the Host header checked against the names it answers to.

Uvicorn closes idle keep-alive connections but gives headers and bodies all the time a
client takes, and accepts connections until the process runs out of file descriptors
(then logs a traceback per refused accept). The protocol below closes a connection whose
headers are not in after `header_timeout`, refuses connections past `max_connections`
at once (counted, and logged at most once a minute), and the middleware answers 408 to a
body that stalls for `body_timeout`.
"""

from __future__ import annotations

import asyncio
import json
import logging
import resource
import time
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.h11_impl import H11Protocol

log = logging.getLogger(__name__)
Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]
LOCAL_NAMES = ("127.0.0.1", "localhost", "::1")
FILE_MARGIN = 256  # descriptors kept for the database, the broker, logs and spooled bodies
# Connections accepted in one go before any is counted (asyncio accepts up to the listen
# backlog per wake-up): the cap's margin has to hold one such burst.
BACKLOG = 128


@dataclass(frozen=True)
class Limits:
    header_timeout: float
    max_connections: int


class _Refusals:
    """Connections refused over the cap, said in the log at most once a minute."""

    count = 0
    said_at = 0.0

    @classmethod
    def one(cls, cap: int) -> None:
        cls.count += 1
        now = time.monotonic()
        if now - cls.said_at >= 60:
            log.warning(
                "refusing connections over the cap of %s (NEWSFLOW_API_MAX_CONNECTIONS); "
                "%s refused so far",
                cap,
                cls.count,
            )
            cls.said_at = now


class GuardedH11Protocol(H11Protocol):
    """Uvicorn's HTTP/1.1 protocol with a connection cap and a header deadline."""

    def __init__(self, *args: Any, limits: Limits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.header_deadline: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        full = len(self.connections) >= self.limits.max_connections
        super().connection_made(transport)
        if full:
            _Refusals.one(self.limits.max_connections)
            transport.abort()
            return
        self._arm()

    def data_received(self, data: bytes) -> None:
        before = self.cycle
        super().data_received(data)
        if self.cycle is not before:  # a request's headers are all in
            self._disarm()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing():
            self._arm()  # the next request on this connection gets the same deadline

    def connection_lost(self, exc: Exception | None) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self._disarm()
        self.header_deadline = self.loop.call_later(self.limits.header_timeout, self._late)

    def _disarm(self) -> None:
        if self.header_deadline is not None:
            self.header_deadline.cancel()
            self.header_deadline = None

    def _late(self) -> None:
        if self.cycle is None or self.cycle.response_complete:
            self.transport.abort()  # headers never came: nothing to answer


def _problem(status: int, title: str, detail: str) -> tuple[Message, Message]:
    body = json.dumps({"type": "about:blank", "title": title, "status": status,
                       "detail": detail}).encode()  # fmt: skip
    start = {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/problem+json"), (b"connection", b"close"),
                    (b"content-length", str(len(body)).encode())],
    }  # fmt: skip
    return start, {"type": "http.response.body", "body": body}


class BodyTimedOut(Exception):
    """Raised into the app when a request body stalls past its deadline."""


class BodyDeadline:
    """408 for a request whose body stalls: each piece of it must come within `seconds`.
    Once the body is in, `receive` is the app's again (streams wait on it for a
    disconnect, for as long as they last)."""

    def __init__(self, app: ASGIApp, seconds: float) -> None:
        self.app, self.seconds = app, seconds

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        body_done = False
        started = False

        async def timed() -> Message:
            nonlocal body_done
            if body_done:
                return await receive()
            try:
                message = await asyncio.wait_for(receive(), self.seconds)
            except TimeoutError:
                raise BodyTimedOut(
                    f"the request body stalled for {self.seconds:.0f} s "
                    "(NEWSFLOW_API_BODY_TIMEOUT); send it whole"
                ) from None
            body_done = message["type"] != "http.request" or not message.get("more_body")
            return message

        async def sending(message: Message) -> None:
            nonlocal started
            started = True
            await send(message)

        try:
            await self.app(scope, timed, sending)
        except BodyTimedOut:
            if not started:  # the app's own handler (app.py) answers it otherwise
                detail = f"the request body stalled for {self.seconds:.0f} s; send it whole"
                for message in _problem(408, "Request Timeout", detail):
                    await send(message)


class AllowedHosts:
    """400 for a request whose Host header is not one of `hosts` (a DNS-rebinding page
    sends its own name): by default the address `serve` is bound to and localhost's names."""

    def __init__(self, app: ASGIApp, hosts: tuple[str, ...]) -> None:
        self.app = app
        self.hosts = {h.lower().strip("[]") for h in hosts}
        self.any = "*" in self.hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] not in ("http", "websocket") or self.any:
            await self.app(scope, receive, send)
            return
        given = dict(scope["headers"]).get(b"host", b"").decode("latin-1").lower()
        name = given.rsplit(":", 1)[0] if given.count(":") == 1 or "]" in given else given
        if name.strip("[]") not in self.hosts:
            detail = (
                f"this server does not answer to the host {given!r}; it answers to "
                f"{', '.join(sorted(self.hosts))} (NEWSFLOW_API_ALLOWED_HOSTS)"
            )
            for message in _problem(400, "Bad Request", detail):
                await send(message)
            return
        await self.app(scope, receive, send)


def allowed_hosts(configured: str, bound: str) -> tuple[str, ...]:
    """The hosts to answer to: the configured ones, else the bound address and localhost's
    names (any host when bound to every address with no list given)."""
    if configured.strip():
        return tuple(h.strip() for h in configured.split(",") if h.strip())
    if bound in ("0.0.0.0", "::"):
        return ("*",)
    return (*LOCAL_NAMES, bound)


class OncePerMinute(logging.Filter):
    """Lets one record a minute through: asyncio logs a traceback on every accept the
    file limit refuses, which would grow the log per refused connection."""

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message, self.said_at, self.dropped = message, 0.0, 0

    def filter(self, record: logging.LogRecord) -> bool:
        if self.message not in record.getMessage():
            return True
        now = time.monotonic()
        if now - self.said_at < 60:
            self.dropped += 1
            return False
        self.said_at = now
        record.msg = f"{record.msg} ({self.dropped} more like it in the last minute)"
        record.exc_info = None
        self.dropped = 0
        return True


def quiet_accept_errors() -> None:
    """Install the filter on asyncio's logger, once per process (each server process)."""
    asyncio_log = logging.getLogger("asyncio")
    if not any(isinstance(f, OncePerMinute) for f in asyncio_log.filters):
        asyncio_log.addFilter(OncePerMinute("out of system resource"))


def connection_cap(wanted: int) -> int:
    """`wanted`, within what the file descriptor limit allows (raised to its hard limit
    first), keeping FILE_MARGIN for everything else the server opens."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
            soft = hard
        except (ValueError, OSError):
            pass
    if soft == resource.RLIM_INFINITY:
        return wanted
    return max(1, min(wanted, soft - FILE_MARGIN - BACKLOG))
