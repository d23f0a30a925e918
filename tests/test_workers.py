"""Workers that cannot serve say so, on real processes: one on another database gives its
messages back and names why; one whose SQLite file was replaced serves the new one; one
whose database cannot write (disk full) shows the reason and the stall in `status`; two
`newsflow run` in one folder share their broker to the end."""

from __future__ import annotations

import json
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from bench.corpus import corpus
from newsflow import db
from producer.broker import queue_depths
from producer.client import Client
from tests.conftest import (
    Stack,
    fresh_database,
    fresh_redis_url,
    make_stack,
    wait_for,
)
from tests.test_cli import NEWSFLOW, newsflow

pytestmark = pytest.mark.integration


@pytest.fixture(params=["sqlite", "postgres"])
def bare(request: pytest.FixtureRequest, embedded_redis: str, tmp_path: Path) -> Iterator[Stack]:
    """A database and a Redis db of the test's own, and no worker yet."""
    for url in fresh_database(request.param, tmp_path):
        built = make_stack(url, fresh_redis_url(embedded_redis), tmp_path)
        try:
            yield built
        finally:
            built.stop_worker()


def test_a_worker_on_another_database_gives_the_work_back_and_says_why(
    bare: Stack, tmp_path: Path
) -> None:
    other = f"sqlite:///{tmp_path / 'other.db'}"
    db.upgrade(other)
    bare.start_worker(concurrency=1, NEWSFLOW_DATABASE_URL=other)
    batch = bare.client.submit(corpus(6))

    def refusing() -> bool:
        return any(p.refusing for p in bare.client.status().problems)

    wait_for(refusing, timeout=90)
    report = bare.client.status()
    (problem,) = report.problems
    assert "refuses the clean queue" in problem.reason and "NEWSFLOW_DATABASE_URL" in problem.reason
    assert "refuses the clean queue" in bare.client.health()["workers"]
    depth = queue_depths(bare.settings)["clean"]
    assert depth["ready"] + depth["unacked"] >= 1, "the messages are still in the queue"
    assert bare.client.progress(batch.id).queued == 6
    assert bare.log is not None and "refusing the message" in bare.log.read_text()

    bare.stop_worker()  # the right worker takes what the wrong one gave back
    bare.start_worker(concurrency=1)
    done = bare.wait(batch.id, timeout=240)
    assert (done.done, done.failed) == (6, 0)
    wait_for(lambda: not bare.client.status().problems, timeout=30)


def test_a_sqlite_file_replaced_under_a_worker_is_served_anew(
    embedded_redis: str, tmp_path: Path
) -> None:
    path = tmp_path / "replaced.db"
    url = f"sqlite:///{path}"
    db.upgrade(url)
    stack = make_stack(url, fresh_redis_url(embedded_redis), tmp_path)
    stack.start_worker(concurrency=1)
    try:
        first = stack.client.submit(corpus(4))
        assert stack.wait(first.id).done == 4
        db.get_engine(url).dispose()
        for leftover in tmp_path.glob("replaced.db*"):
            leftover.unlink()
        db.upgrade(url)  # a new database in the same file: the same ids, nothing done
        again = stack.client.submit(corpus(4))
        assert again.id == first.id
        done = stack.wait(again.id, timeout=240)
        assert (done.done, done.failed) == (4, 0), "the worker served the new file"
    finally:
        stack.stop_worker()


# Disk full, as PostgreSQL says it (SQLSTATE 53100), on a worker's writes only: a submit
# stamps rows it sends without changing their status.
FULL = """
CREATE FUNCTION nf_disk_full() RETURNS trigger AS $$
BEGIN
  RAISE EXCEPTION 'could not extend file "base/1/2": No space left on device'
    USING ERRCODE = '53100';
END $$ LANGUAGE plpgsql;
CREATE TRIGGER nf_disk_full BEFORE UPDATE ON stages FOR EACH ROW
  WHEN (OLD.status IS DISTINCT FROM NEW.status) EXECUTE FUNCTION nf_disk_full();
"""


@pytest.mark.parametrize("bare", ["postgres"], indirect=True)  # its errors are PostgreSQL's
def test_a_database_that_cannot_write_shows_its_reason_and_the_stall(bare: Stack) -> None:
    stack, url = bare, bare.settings.database_url
    watcher = Client(stack.settings.model_copy(update={"visibility_timeout": 3}))
    with db.get_engine(url).begin() as connection:
        connection.execute(text(FULL))
    stack.start_worker(concurrency=1, NEWSFLOW_TASK_MAX_RETRIES="50")
    batch = stack.client.submit(corpus(3))

    def said() -> bool:
        report = watcher.status()
        return bool(report.problems and report.stalls)

    wait_for(said, timeout=90)
    report = watcher.status()
    assert "No space left on device" in report.problems[0].reason
    assert not report.problems[0].refusing
    (stall,) = report.stalls
    assert stall.batch_id == batch.id and stall.articles == 3
    assert "made no progress" in str(stall) and "No space left" in str(stall)

    with db.get_engine(url).begin() as connection:  # space again
        connection.execute(text("DROP TRIGGER nf_disk_full ON stages"))
    assert stack.wait(batch.id, timeout=240).done == 3
    wait_for(lambda: not watcher.status().problems, timeout=30)


def test_two_runs_in_one_folder_share_the_embedded_broker(tmp_path: Path) -> None:
    inputs = []
    for name, stories in (("a", corpus(6)[:3]), ("b", corpus(6)[3:])):
        path = tmp_path / f"{name}.jsonl"
        path.write_text("".join(json.dumps(s) + "\n" for s in stories), encoding="utf-8")
        inputs.append(path)
    first = subprocess.Popen(
        [*NEWSFLOW, "run", str(inputs[0]), "--workers", "1", "--json"], cwd=tmp_path,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )  # fmt: skip
    time.sleep(3)  # the second comes while the first is at work
    second = newsflow("run", str(inputs[1]), "--workers", "1", "--json", env={}, cwd=tmp_path)
    out, errors = first.communicate(timeout=300)
    assert first.returncode == 0, errors[-3000:]
    assert second.returncode == 0, second.stderr[-3000:]
    for report in (json.loads(out), json.loads(second.stdout)):
        assert report["progress"]["done"] == 3
    assert not (tmp_path / ".newsflow" / "redis.sock").exists(), "the last one stopped it"
