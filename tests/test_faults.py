"""Faults injected into real processes: each run must store exactly what a clean run stores.

The reference is the same corpus run through the same stage functions in this process,
without a queue. After each fault, every article's stored text, entities, mentions,
keyphrases and summary must equal the reference, with no row missing or doubled.
"""

from __future__ import annotations

import os
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kombu import Connection, Exchange, Queue
from sqlalchemy import func, select

from bench.corpus import corpus as generated
from bench.proxy import proxied
from newsflow import db
from newsflow.config import Settings
from newsflow.contract import STAGES
from newsflow.db import session_scope
from newsflow.delivery import chunked
from newsflow.errors import ServiceUnavailable
from newsflow.models import (
    Batch,
    Entity,
    Keyphrase,
    Mention,
    StageRow,
    StoryBand,
    StoryMember,
    SummarySentence,
)
from newsflow.record import Filters
from producer.embedded import EmbeddedRedis
from producer.sources import from_mapping
from producer.submit import store_batch
from tests.conftest import Stack, fresh_database, make_stack, wait_for
from worker import stages

pytestmark = pytest.mark.integration
N = 500


def corpus(n: int = N) -> list[dict[str, str]]:
    return generated(n, paragraphs=3)


def snapshot(url: str, batch_id: int) -> dict[str, Any]:
    """Everything stored for a batch, keyed by external id, comparable across databases."""
    from producer.results import Filters, iter_records

    keep = ("status", "title", "text", "agency", "dateline", "captions", "entities",
            "keyphrases", "summary")  # fmt: skip
    with session_scope(url) as session:
        return {
            r.external_id: r.model_dump(include=set(keep))
            for r in iter_records(session, Filters(batch_id=batch_id))
        }


COUNTED = (StageRow, Entity, Mention, Keyphrase, SummarySentence, StoryMember, StoryBand)


def row_counts(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        return {
            table.__name__: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in COUNTED
        }


@pytest.fixture(scope="module")
def reference(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], dict[str, int]]:
    """The corpus through the stage functions in this process, no queue: the clean run."""
    url = f"sqlite:///{tmp_path_factory.mktemp('reference') / 'ref.db'}"
    db.upgrade(url)
    settings = Settings(database_url=url)
    records = (
        from_mapping(r, source="corpus", line=i, limit=10**6) for i, r in enumerate(corpus())
    )
    result, ids = store_batch(settings, records, name="reference")
    for chunk in chunked(ids, 50):  # the later stages take what clean queued them
        for stage in STAGES:
            stages.RUN[stage](settings, chunk, (), None)
    return snapshot(url, result.batch_id), row_counts(url)


def assert_same_as_reference(
    stack: Stack, batch_id: int, reference: tuple[dict[str, Any], dict[str, int]]
) -> None:
    expected, counts = reference
    got = snapshot(stack.settings.database_url, batch_id)
    assert sorted(got) == sorted(expected), "articles missing or extra"
    different = [key for key in expected if got[key] != expected[key]]
    assert different == [], (
        f"{len(different)} articles differ from the clean run, e.g. {different[:3]}"
    )
    assert row_counts(stack.settings.database_url) == counts, "rows missing or duplicated"


@pytest.fixture
def broker(tmp_path: Path) -> Iterator[EmbeddedRedis]:
    """A Redis server of this test's own, so a test can restart it."""
    home = Path(tempfile.mkdtemp(prefix="nf-fault-"))
    with EmbeddedRedis(home / "redis.sock") as server:
        yield server


@pytest.fixture(params=["sqlite", "postgres"])
def fault_stack(
    request: pytest.FixtureRequest, tmp_path: Path, broker: EmbeddedRedis
) -> Iterator[Stack]:
    """Each fault on both databases: PostgreSQL's races are not SQLite's."""
    for url in fresh_database(request.param, tmp_path):
        stack = make_stack(url, broker.url, tmp_path)
        try:
            yield stack
        finally:
            stack.stop_worker()


def pool_children(pid: int) -> list[int]:
    children = Path(f"/proc/{pid}/task/{pid}/children")
    return [int(p) for p in children.read_text().split()] if children.exists() else []


def done_count(stack: Stack, batch_id: int) -> int:
    return int(stack.client.progress(batch_id).done)


def test_sigkill_of_pool_processes_mid_batch(fault_stack: Stack, reference: Any) -> None:
    stack = fault_stack
    worker = stack.start_worker(concurrency=2)
    batch = stack.client.submit(corpus())
    wait_for(lambda: done_count(stack, batch.id) >= 40, timeout=180)
    killed = 0
    for child in pool_children(worker.pid):
        os.kill(child, signal.SIGKILL)  # billiard replaces it; its message is redelivered
        killed += 1
        wait_for(lambda: len(pool_children(worker.pid)) == 2, timeout=60)
    assert killed == 2
    assert done_count(stack, batch.id) < N, "the batch finished before the fault"
    stack.wait(batch.id, timeout=300)
    assert_same_as_reference(stack, batch.id, reference)


def test_sigkill_of_a_whole_worker_other_worker_finishes(
    fault_stack: Stack, reference: Any
) -> None:
    stack = fault_stack
    quick = {"NEWSFLOW_VISIBILITY_TIMEOUT": "20", "NEWSFLOW_TASK_SOFT_TIME_LIMIT": "10",
             "NEWSFLOW_TASK_TIME_LIMIT": "15"}  # fmt: skip
    doomed = stack.start_worker(concurrency=1, **quick)
    batch = stack.client.submit(corpus())
    wait_for(lambda: done_count(stack, batch.id) >= 40, timeout=180)
    survivor = stack.start_worker(concurrency=1, **quick)
    time.sleep(2)
    os.killpg(doomed.pid, signal.SIGKILL)  # main process and pool: its unacked messages wait
    doomed.wait()
    assert done_count(stack, batch.id) < N
    killed_at = time.monotonic()
    stack.worker = survivor  # the one whose death would end the wait
    stack.wait(batch.id, timeout=300)
    assert time.monotonic() - killed_at < 240
    assert_same_as_reference(stack, batch.id, reference)


def test_warm_shutdown_loses_nothing(fault_stack: Stack, reference: Any) -> None:
    stack = fault_stack
    worker = stack.start_worker(concurrency=2)
    batch = stack.client.submit(corpus())
    wait_for(lambda: done_count(stack, batch.id) >= 40, timeout=180)
    worker.send_signal(signal.SIGTERM)  # finish the running chunks, return the rest
    assert worker.wait(timeout=120) == 0
    assert done_count(stack, batch.id) < N
    stack.start_worker(concurrency=2)
    stack.wait(batch.id, timeout=300)
    assert_same_as_reference(stack, batch.id, reference)


def test_broker_restarted_empty_then_requeue(
    fault_stack: Stack, broker: EmbeddedRedis, reference: Any
) -> None:
    stack = fault_stack
    stack.start_worker(concurrency=2)
    batch = stack.client.submit(corpus())
    wait_for(lambda: done_count(stack, batch.id) >= 40, timeout=180)
    broker.stop()  # every queued message is gone with it
    broker.start()
    assert done_count(stack, batch.id) < N
    time.sleep(3)  # running chunks finish; nothing else is left to deliver
    sent = stack.client.requeue(batch_id=batch.id, force=True)
    assert sum(sent.sent.values()) > 0
    stack.wait(batch.id, timeout=300)
    assert_same_as_reference(stack, batch.id, reference)


def test_database_outage_mid_batch_and_submit_while_down(
    tmp_path: Path, broker: EmbeddedRedis, reference: Any
) -> None:
    for direct_url in fresh_database("postgres", tmp_path):
        proxy, url = proxied(direct_url)
        stack = make_stack(url, broker.url, tmp_path)
        try:
            stack.start_worker(concurrency=2)
            batch = stack.client.submit(corpus())
            batch_id = batch.id
            wait_for(lambda: done_count(stack, batch_id) >= 40, timeout=180)  # noqa: B023
            proxy.stop()
            db.get_engine(url).dispose()
            with pytest.raises(ServiceUnavailable, match=r"nothing was submitted|cannot reach"):
                stack.client.submit([{"text": "Submitted while the database is down."}])
            time.sleep(10)
            proxy.start()
            stack.wait(batch.id, timeout=400)
            with session_scope(url) as session:
                assert session.execute(select(func.count()).select_from(Batch)).scalar_one() == 1
            assert_same_as_reference(stack, batch.id, reference)
        finally:
            stack.stop_worker()
            proxy.stop()
            db.get_engine(url).dispose()


def test_pathological_articles_fail_alone(fault_stack: Stack) -> None:
    stack = fault_stack
    stack.start_worker(
        concurrency=1,
        NEWSFLOW_TASK_SOFT_TIME_LIMIT="4",
        NEWSFLOW_TASK_TIME_LIMIT="12",
        NEWSFLOW_MAX_EXTRACT_CHARS="1000000",  # so the endless article meets the time limit
    )
    words = ["Alpha", "river", "Bravo", "market", "council", "Delta", "city", "Echo", "minister"]
    endless = " ".join(words[i * 7 % len(words)] for i in range(80_000))  # no punctuation
    nested = "<html><body>" + "<div>" * 5000 + "<p>Deep text in the middle.</p>" + "</div>" * 5000
    huge = "The council met again. " * 55_000  # 1.2 MB: over what the spaCy model takes
    records = [*corpus(6)[:3], {"id": "endless", "text": endless}, {"id": "huge", "text": huge},
               {"id": "nested", "html": nested}, *corpus(6)[3:]]  # fmt: skip
    batch = stack.client.submit(records)
    progress = stack.wait(batch.id, timeout=300)
    results = {r.external_id: r for r in stack.client.results(Filters(batch_id=batch.id))}
    assert all(results[r["id"]].status == "done" for r in corpus(6))
    endless_stage = results["endless"].stages["extract"]
    assert results["endless"].status == "failed"
    assert "time limit" in endless_stage.error or "gave up after" in endless_stage.error
    nested_clean = results["nested"].stages["clean"]  # lxml stops at its depth limit
    assert (results["nested"].status, nested_clean.status) == ("failed", "failed")
    assert "no article text found in the HTML" in nested_clean.error
    huge_stages = results["huge"].stages
    assert "over the 1,000,000 the extract stage takes" in huge_stages["extract"].error
    assert huge_stages["summarize"].status == "done"
    assert progress.done + progress.failed == 9
    assert stack.worker is not None and stack.worker.poll() is None


def test_pickled_message_is_refused_and_worker_keeps_serving(fault_stack: Stack) -> None:
    stack = fault_stack
    stack.start_worker(concurrency=1)
    marker = Path(stack.log or ".").parent / "pwned"
    payload = _Evil(str(marker))
    queue = Queue("clean", Exchange("clean", "direct"), routing_key="clean")
    with Connection(stack.settings.broker()) as conn:
        producer = conn.Producer(serializer="pickle")
        producer.publish(payload, routing_key="clean", exchange=queue.exchange, declare=[queue],
                         headers={"task": "newsflow.clean", "id": "evil-1"})  # fmt: skip
    batch = stack.client.submit(corpus(3))
    stack.wait(batch.id, timeout=120)
    assert not marker.exists(), "a pickled message ran code on the worker"
    assert stack.worker is not None and stack.worker.poll() is None
    assert stack.log is not None and "refusing to deserialize" in stack.log.read_text().lower()


class _Evil:
    """Unpickling this runs `touch`: what a worker accepting pickle would do for anyone."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[Any, ...]:
        return (subprocess.call, (["touch", self.path],))
