"""Fixtures on real services: Redis (the machine's or an embedded one), SQLite, PostgreSQL,
and real Celery worker processes. A missing service skips locally and fails under CI=true."""

from __future__ import annotations

import itertools
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import pytest
import redis

from newsflow import config, db
from newsflow.config import Settings
from newsflow.contract import QUEUES
from newsflow.record import BatchProgress
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.local import worker_command

ROOT = Path(__file__).resolve().parent.parent
SHARED = ROOT.parent / "shared"
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")
_redis_dbs = itertools.count(1)


# The services tested against when NEWSFLOW_TEST_REDIS_URL / NEWSFLOW_TEST_POSTGRES_URL are
# unset: the usual local ones. Whichever does not answer skips (fails under CI=true).
LOCAL_REDIS = "redis://127.0.0.1:6379/0"
LOCAL_POSTGRES = "postgresql+psycopg://postgres@127.0.0.1:5432/test"


def missing(reason: str) -> None:
    """Skip locally; under CI a missing service is a failure, never a silent skip."""
    if IN_CI:
        pytest.fail(f"{reason} (required under CI=true)")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def embedded_redis() -> Iterator[str]:
    """A private embedded Redis for the whole session; its URL."""
    home = Path(tempfile.mkdtemp(prefix="nf-redis-"))
    with EmbeddedRedis(home / "redis.sock") as server:
        yield server.url


@pytest.fixture(scope="session", params=["embedded", "external"])
def redis_base(request: pytest.FixtureRequest) -> str:
    """Both brokers: the embedded one, and NEWSFLOW_TEST_REDIS_URL's when set."""
    if request.param == "embedded":
        return str(request.getfixturevalue("embedded_redis"))
    url = os.environ.get("NEWSFLOW_TEST_REDIS_URL") or LOCAL_REDIS
    try:
        redis.Redis.from_url(url, socket_timeout=2).ping()
    except redis.RedisError as exc:
        missing(f"Redis at {config.mask_url(url)} does not answer: {exc}")
    return str(url)


def fresh_redis_url(base: str) -> str:
    """A Redis URL of its own for one test module: a separate, flushed logical database."""
    index = next(_redis_dbs) % 16
    if base.startswith("redis+socket://"):
        url = f"{base}?virtual_host={index}"
        client = redis.Redis(unix_socket_path=base.removeprefix("redis+socket://"), db=index)
    else:
        url = base.rsplit("/", 1)[0] + f"/{index}" if base.count("/") > 2 else f"{base}/{index}"
        client = redis.Redis.from_url(url)
    client.flushdb()
    return url


def postgres_admin_url() -> str:
    return os.environ.get("NEWSFLOW_TEST_POSTGRES_URL") or LOCAL_POSTGRES


def fresh_database(kind: str, tmp: Path) -> Iterator[str]:
    """A new, migrated database of `kind` ('sqlite' or 'postgres'), dropped afterwards."""
    if kind == "sqlite":
        url = f"sqlite:///{tmp / 'newsflow.db'}"
        db.upgrade(url)
        yield url
        return
    import psycopg

    admin = postgres_admin_url()
    conninfo = admin.replace("postgresql+psycopg://", "postgresql://")
    name = f"nf_test_{uuid.uuid4().hex[:12]}"
    try:
        with psycopg.connect(conninfo, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.Error as exc:
        missing(f"PostgreSQL at {config.mask_url(admin)} is not usable: {exc}")
    url = admin.rsplit("/", 1)[0] + f"/{name}"
    if not url.startswith("postgresql+psycopg://"):
        url = "postgresql+psycopg://" + url.split("://", 1)[1]
    db.upgrade(url)
    yield url
    db.get_engine(url).dispose()
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, migrated database per test, on SQLite and on PostgreSQL."""
    yield from fresh_database(request.param, tmp_path)


def stop(process: subprocess.Popen[bytes], *, grace: float) -> None:
    """SIGTERM, then after `grace` seconds SIGKILL to its whole process group."""
    if process.poll() is not None:
        return
    process.terminate()
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait()


@dataclass
class Stack:
    """A database, a broker and real worker processes, wired together."""

    settings: Settings
    client: Client
    worker: subprocess.Popen[bytes] | None = None  # the latest started
    log: Path | None = None
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)

    def start_worker(self, concurrency: int = 2, **env_overrides: str) -> subprocess.Popen[bytes]:
        """Start a `celery worker` process (another one if one runs); returns it."""
        env = {
            **os.environ,
            "NEWSFLOW_DATABASE_URL": self.settings.database_url,
            "NEWSFLOW_BROKER_URL": self.settings.broker(),
            **env_overrides,
        }
        assert self.log is not None
        command = worker_command(
            queues=",".join(QUEUES),
            concurrency=concurrency,
            loglevel="INFO",
            name=f"test-{uuid.uuid4().hex[:6]}",
        )
        self.worker = subprocess.Popen(
            command,
            env=env,
            stdout=self.log.open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.workers.append(self.worker)
        return self.worker

    def stop_worker(self) -> None:
        """Stop every worker this stack started (warm, then by force)."""
        for worker in self.workers:
            stop(worker, grace=30)
        self.workers.clear()
        self.worker = None

    def wait(self, batch_id: int, timeout: float = 180) -> BatchProgress:
        def alive() -> bool:
            return self.worker is not None and self.worker.poll() is None

        try:
            return self.client.wait(batch_id, timeout=timeout, alive=alive)
        except (TimeoutError, RuntimeError):
            assert self.log is not None
            lines = self.log.read_text().splitlines()
            said = [line for line in lines if any(f"{level}/" in line for level in WORRIES)]
            print("\n".join([*said[:40], "...", *lines[-60:]])[-12000:])
            raise


WORRIES = ("WARNING", "ERROR", "CRITICAL")  # the worker log's levels a failed wait shows


def make_stack(database_url: str, broker_url: str, tmp: Path) -> Stack:
    settings = Settings(database_url=database_url, broker_url=broker_url, chunk_size=4)
    return Stack(settings=settings, client=Client(settings), log=tmp / "worker.log")


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def stack(
    request: pytest.FixtureRequest, redis_base: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Stack]:
    """Per module and per (database, broker): real workers on a fresh database and Redis db."""
    tmp = tmp_path_factory.mktemp("stack")
    for url in fresh_database(request.param, tmp):
        built = make_stack(url, fresh_redis_url(redis_base), tmp)
        built.start_worker()
        try:
            yield built
        finally:
            built.stop_worker()


def wait_for(predicate, timeout: float = 30, interval: float = 0.2) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise TimeoutError("condition not met in time")
        time.sleep(interval)


TOKEN = "test-token-8c1f"


@dataclass
class Server:
    """A real `newsflow serve` process."""

    url: str
    process: subprocess.Popen[bytes]
    log: Path


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@contextmanager
def serving(
    settings: Settings, log: Path, *, file_limit: int | None = None, **env_overrides: str
) -> Iterator[Server]:
    """`newsflow serve` on a free port of 127.0.0.1 for `settings`' database and broker,
    with the API token TOKEN (and at most `file_limit` open files); stopped afterwards."""
    port = free_port()
    env = {
        **os.environ,
        "NEWSFLOW_DATABASE_URL": settings.database_url,
        "NEWSFLOW_BROKER_URL": settings.broker(),
        "NEWSFLOW_API_TOKEN": TOKEN,
        **env_overrides,
    }
    command = [sys.executable, "-m", "producer.cli", "serve", "--port", str(port)]

    def limit_files() -> None:
        if file_limit is not None:
            resource.setrlimit(resource.RLIMIT_NOFILE, (file_limit, file_limit))

    process = subprocess.Popen(
        command, env=env, stdout=log.open("ab"), stderr=subprocess.STDOUT,
        start_new_session=True, preexec_fn=limit_files,
    )  # fmt: skip
    server = Server(f"http://127.0.0.1:{port}", process, log)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, f"serve exited: {log.read_text()[-3000:]}"
            try:
                if httpx.get(f"{server.url}/healthz", timeout=2).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, f"serve did not answer: {log.read_text()[-3000:]}"
            time.sleep(0.2)
        yield server
    finally:
        stop(process, grace=20)
