"""Local worker processes for `newsflow run`: started as a child, always stopped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from contextlib import suppress
from types import TracebackType

from newsflow.config import Settings
from newsflow.contract import QUEUES


def worker_command(*, queues: str, concurrency: int, loglevel: str, name: str) -> list[str]:
    """The `celery worker` command line of a newsflow worker: started as a process, so the
    producer never imports the worker code (or spaCy)."""
    return [
        sys.executable, "-m", "celery", "-A", "worker.app", "worker",
        "--queues", queues, "--concurrency", str(concurrency), "--loglevel", loglevel,
        "--hostname", f"{name}@%h",  # two workers on one host must not share a node name
        "--without-gossip", "--without-mingle",
    ]  # fmt: skip


def worker_env(settings: Settings) -> dict[str, str]:
    """The environment of a worker process: this one's, with the broker and database in force."""
    return {
        **os.environ,
        "NEWSFLOW_BROKER_URL": settings.broker(),
        "NEWSFLOW_DATABASE_URL": settings.database_url,
    }


class LocalWorkers:
    """`celery worker` over all queues in a child process group; stopped on exit, Ctrl-C too."""

    def __init__(self, settings: Settings, *, concurrency: int, loglevel: str = "WARNING") -> None:
        self.settings = settings
        self.concurrency = concurrency
        self.loglevel = loglevel
        self.process: subprocess.Popen[bytes] | None = None
        self.log = settings.data_dir / "worker.log"

    def start(self) -> LocalWorkers:
        env = worker_env(self.settings)
        command = worker_command(
            queues=",".join(QUEUES),
            concurrency=self.concurrency,
            loglevel=self.loglevel,
            name=f"newsflow-run-{os.getpid()}",
        )
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("ab") as log:
            # A session of its own: Ctrl-C reaches us, and we stop the workers in order.
            self.process = subprocess.Popen(
                command,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def alive(self) -> bool:
        return self.process is not None and self.process.poll() is None

    def stop(self, grace: float = 20.0) -> None:
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)  # warm shutdown: finish the current chunk
            with suppress(subprocess.TimeoutExpired):
                process.wait(timeout=grace)
        with suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # pool children left behind, if any
        process.wait()

    def __enter__(self) -> LocalWorkers:
        return self.start()

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()
