"""Nothing lost, nothing twice, under races and long outages, on SQLite and PostgreSQL.

Each test drives real processes (Celery workers, `newsflow submit`) against a real broker
and database and reproduces a way the promise used to break.
"""

from __future__ import annotations

import base64
import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text, update

from bench.chaos import racing_submits
from bench.corpus import corpus
from bench.proxy import proxied
from newsflow import db, tallies
from newsflow.config import Settings
from newsflow.contract import STAGES, TASK_FOR_STAGE, Stage
from newsflow.db import session_scope
from newsflow.delivery import SKIP_LIVE, SKIP_RUNNING, SKIP_SENT
from newsflow.models import Entity, Keyphrase, Mention, StageRow, SummarySentence, utcnow
from newsflow.record import Filters
from producer.broker import queue_depths, redis_client, sender
from producer.client import Client
from producer.embedded import EmbeddedRedis
from producer.submit import SubmitInterrupted
from tests.conftest import (
    Stack,
    fresh_database,
    fresh_redis_url,
    make_stack,
    wait_for,
)

pytestmark = pytest.mark.integration
OUTPUT_TABLES = (Entity, Mention, Keyphrase, SummarySentence)


@pytest.fixture(params=["sqlite", "postgres"])
def stack(request: pytest.FixtureRequest, tmp_path: Path, embedded_redis: str) -> Iterator[Stack]:
    """A fresh database of each kind, a Redis db of its own; workers started by the test."""
    for url in fresh_database(request.param, tmp_path):
        built = make_stack(url, fresh_redis_url(embedded_redis), tmp_path)
        try:
            yield built
        finally:
            built.stop_worker()


def counts(url: str) -> dict[str, int]:
    with session_scope(url) as session:
        return {
            table.__name__: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in OUTPUT_TABLES
        }


def runs(url: str, stage: str) -> dict[int, int]:
    with session_scope(url) as session:
        rows = session.execute(
            select(StageRow.article_id, StageRow.runs).where(StageRow.stage == stage)
        )
        return dict(rows.all())  # type: ignore[arg-type]


def stage_rows(url: str) -> list[Any]:
    with session_scope(url) as session:
        return list(session.execute(select(StageRow.stage, StageRow.status, StageRow.error)).all())


def queues_empty(stack: Stack) -> bool:
    return not any(q["ready"] or q["unacked"] for q in queue_depths(stack.settings).values())


def queued_ids(stack: Stack, queue: str) -> list[int]:
    """The article ids of every message waiting in `queue` (kombu's JSON envelopes)."""
    client = redis_client(stack.settings.broker())
    ids: list[int] = []
    for raw in client.lrange(queue, 0, -1):
        body = json.loads(base64.b64decode(json.loads(raw)["body"]))
        ids.extend(body[0][0])
    return ids


# Widens the save window: the first INSERT into mentions of each transaction waits 2 s
# while holding its rows, so two deliveries of one chunk are sure to overlap.
SLOW_MENTIONS = """
CREATE FUNCTION nf_slow_once() RETURNS trigger AS $$
BEGIN
  IF coalesce(current_setting('nf.slept', true), '') = '' THEN
    PERFORM set_config('nf.slept', 'yes', true);
    PERFORM pg_sleep(2);
  END IF;
  RETURN NEW;
END $$ LANGUAGE plpgsql;
CREATE TRIGGER nf_slow_once BEFORE INSERT ON mentions
  FOR EACH ROW EXECUTE FUNCTION nf_slow_once();
"""


@pytest.mark.parametrize("task_ids", ["one message twice", "two messages"])
def test_concurrent_deliveries_of_one_chunk_store_one_copy(stack: Stack, task_ids: str) -> None:
    url = stack.settings.database_url
    stack.start_worker(concurrency=2)
    client = Client(stack.settings.model_copy(update={"chunk_size": 8}))
    batch = client.submit(corpus(8))
    stack.wait(batch.id)
    before, ran = counts(url), runs(url, "extract")
    assert before["Mention"] > 0
    with session_scope(url) as session:
        if session.get_bind().dialect.name == "postgresql":
            session.execute(text(SLOW_MENTIONS))
        # As if extract's message were in flight and delivered twice at once.
        session.execute(
            update(StageRow)
            .where(StageRow.stage == "extract")
            .values(status="queued", sent_at=None, claim=None)
        )
    ids = sorted(ran)
    app = sender(stack.settings)
    names = ["twin", "twin"] if task_ids == "one message twice" else ["first", "second"]
    for name in names:
        app.send_task(TASK_FOR_STAGE[Stage.EXTRACT], args=[ids], task_id=name)

    def settled() -> bool:
        rows = stage_rows(url)
        return queues_empty(stack) and all(r.status == "done" for r in rows)

    wait_for(settled, timeout=120)
    time.sleep(1)
    assert counts(url) == before, "an output row is missing or doubled"
    assert [r for r in stage_rows(url) if r.error] == []
    assert stack.client.progress(batch.id).done == 8
    again = runs(url, "extract")
    extra = {i: again[i] - ran[i] for i in ids}
    if task_ids == "two messages":  # the second delivery saw the first one running
        assert extra == dict.fromkeys(ids, 1)
    else:  # a redelivery of one message: its earlier delivery counts as dead, both run
        assert all(n >= 1 for n in extra.values())


def test_racing_submits_of_one_file_enqueue_each_article_once(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "same.jsonl"
    with path.open("w", encoding="utf-8") as handle:
        for i in range(3000):
            story = f"Story {i}: the council of Tarnby voted on budget item {i} on Monday."
            handle.write(json.dumps({"id": f"s{i}", "text": story}) + "\n")
    db.upgrade(stack.settings.database_url)
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")},
        "NEWSFLOW_DATABASE_URL": stack.settings.database_url,
        "NEWSFLOW_BROKER_URL": stack.settings.broker(),
    }
    reports = racing_submits(path, env)
    assert [r["submitted"] for r in reports] == [3000, 3000]
    fresh = [r["submitted"] - r["duplicates"] for r in reports]
    assert sum(fresh) == 3000, reports  # every article is new to exactly one of them
    assert sum(r["queued"] for r in reports) == 3000
    sent = Counter(queued_ids(stack, "clean"))
    assert len(sent) == 3000 and set(sent.values()) == {1}, "an article was enqueued twice"


def test_requeue_while_processing_sends_only_what_has_no_live_message(stack: Stack) -> None:
    url = stack.settings.database_url
    stack.start_worker(concurrency=2)
    client = Client(stack.settings.model_copy(update={"chunk_size": 32}))
    batch = client.submit(corpus(192))
    time.sleep(1)
    found = client.requeue(batch_id=batch.id)
    assert sum(found.sent.values()) == 0, found
    reasons = {reason for per_stage in found.skipped.values() for reason in per_stage}
    assert reasons <= {SKIP_SENT, SKIP_RUNNING, SKIP_LIVE} and reasons
    stack.wait(batch.id, timeout=300)
    for stage in STAGES:
        assert set(runs(url, stage).values()) == {1}, f"{stage} ran an article twice"


def test_a_resubmit_reports_per_submission_metadata(stack: Stack) -> None:
    text_x = "MOSCOW (Reuters) - The central bank held its key rate on Friday, it said."
    first = stack.client.submit(
        [{"id": "siteA-1", "url": "https://a.example/1", "title": "A",
          "published": "2026-01-01", "source": "site A", "text": text_x}]
    )  # fmt: skip
    second = stack.client.submit(
        [
            {"id": "siteB-9", "url": "https://b.example/9", "title": "B",
             "published": "2026-01-02", "source": "site B", "text": text_x},
            {"id": "siteC-3", "url": "https://c.example/3", "text": text_x},
        ]
    )  # fmt: skip
    assert (second.submitted, second.duplicates, second.queued) == (2, 2, 0)
    records = list(stack.client.results(Filters(batch_id=second.id)))
    got = [(r.external_id, r.url, r.title, r.published, r.source) for r in records]
    assert got == [
        ("siteB-9", "https://b.example/9", "B", "2026-01-02", "site B"),
        ("siteC-3", "https://c.example/3", None, None, None),
    ]
    assert len({r.id for r in records}) == 2  # a record each
    assert len({r.content_id for r in records}) == 1  # processed once, shared
    (original,) = stack.client.results(Filters(batch_id=first.id))
    assert (original.external_id, original.title, original.url) == (
        "siteA-1",
        "A",
        "https://a.example/1",
    )
    assert stack.client.progress(second.id).total == 2


def test_the_submitters_published_date_wins_over_one_found_in_the_page(stack: Stack) -> None:
    stack.start_worker(concurrency=1)
    page = (
        "<html><head><title>Dam study</title>"
        '<meta property="article:published_time" content="2015-05-12"></head><body><article>'
        "<h1>Dam study</h1><p>Published 12 May 2015.</p>"
        "<p>Engineers in Corvale said on Tuesday that the old dam needs repairs before the "
        "spring floods, according to a study the Water Agency released.</p>"
        "<p>The agency said work would start within weeks and last most of the year.</p>"
        "</article></body></html>"
    )
    batch = stack.client.submit(
        [
            {"id": "given", "html": page, "published": "2026-02-01T09:00:00Z"},
            {"id": "guessed", "html": page.replace("Corvale", "Tarnby")},
        ]
    )
    stack.wait(batch.id)
    by_id = {r.external_id: r for r in stack.client.results(Filters(batch_id=batch.id))}
    assert (by_id["given"].published, by_id["given"].published_from) == (
        "2026-02-01T09:00:00Z",
        "submitter",
    )
    assert by_id["guessed"].published.startswith("2015-05-12")
    assert by_id["guessed"].published_from == "article"
    since = list(stack.client.results(Filters(batch_id=batch.id, since="2026-01-01")))
    assert [r.external_id for r in since] == ["given"]


def test_a_message_of_unknown_ids_is_logged_not_dropped_silently(stack: Stack) -> None:
    stack.start_worker(concurrency=1)
    sender(stack.settings).send_task(TASK_FOR_STAGE[Stage.EXTRACT], args=[[987654, 987655]])
    batch = stack.client.submit(corpus(2))
    stack.wait(batch.id)
    wait_for(lambda: queues_empty(stack), timeout=30)
    assert stack.log is not None
    assert "extract message names articles with no extract row (not in this database, or " in (
        stack.log.read_text()
    )
    assert "ignored: [987654, 987655]" in stack.log.read_text()


def test_a_retry_is_not_a_death_but_a_redelivery_is(database_url: str) -> None:
    from producer.sources import from_mapping
    from producer.submit import store_batch
    from worker import store

    records = [from_mapping(r, source="t", line=i, limit=10**6) for i, r in enumerate(corpus(3))]
    _, ids = store_batch(Settings(database_url=database_url), records, name=None)

    def start(claim: str) -> store.Start:
        with session_scope(database_url) as session:
            return store.start(
                session,
                stage="clean",
                article_ids=ids,
                claim=claim,
                stale_before=utcnow() - timedelta(hours=1),
                max_attempts=5,
            )

    def attempts() -> set[int]:
        with session_scope(database_url) as session:
            rows = session.execute(select(StageRow.attempts).where(StageRow.stage == "clean"))
            return set(rows.scalars())

    assert start("task-1#0").ids == ids
    again = start("task-1#1")  # its save failed on a locked or absent database: a retry
    assert (again.ids, again.resend, attempts()) == (ids, [], {0})
    other = start("task-2#0")  # another message while task-1 runs: left to it
    assert (other.ids, other.skipped) == ([], ids)
    redelivered = start("task-1#1")  # the same message again: its delivery died
    assert redelivered.ids == [] and redelivered.resend == [[i] for i in ids]
    assert attempts() == {1}


def test_recovery_leaves_a_long_backlog_alone_and_resends_what_the_broker_lost(
    stack: Stack,
) -> None:
    from worker.recovery import recover_once

    batch = stack.client.submit(corpus(40))  # no worker: the messages wait in Redis
    with session_scope(stack.settings.database_url) as session:  # waiting for two hours
        session.execute(update(StageRow).values(sent_at=utcnow() - timedelta(hours=2)))
    sent: list[tuple[str, list[int]]] = []

    def record(stage: str, ids: list[int]) -> None:
        sent.append((stage, ids))

    assert recover_once(stack.settings, record) == 0 and sent == []  # a backlog, not lost
    redis_client(stack.settings.broker()).flushdb()
    assert recover_once(stack.settings, record) == 40
    assert sorted(i for _, ids in sent for i in ids) == sorted(
        r.id for r in stack.client.results(Filters(batch_id=batch.id))
    )
    assert {stage for stage, _ in sent} == {"clean"}
    assert recover_once(stack.settings, record) == 0  # sent once, however often it looks


def test_a_send_failing_mid_pass_leaves_no_row_claimed_and_unsent(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Pages of four, each claimed while the one before is sent: when the broker fails on
    the second page, that page and the third, claimed meanwhile, are released, so the
    next pass sends each row not sent, once."""
    from newsflow import delivery
    from worker.recovery import recover_once

    monkeypatch.setattr(delivery, "RESEND_PAGE", 4)
    stack.client.submit(corpus(12))  # no worker
    redis_client(stack.settings.broker()).flushdb()  # every message lost
    with session_scope(stack.settings.database_url) as session:
        session.execute(update(StageRow).values(sent_at=utcnow() - timedelta(hours=2)))
    sent: list[int] = []

    def failing_on_the_second_page(stage: str, ids: list[int]) -> None:
        if len(sent) >= 4:
            raise ConnectionError("broker away")
        sent.extend(ids)

    with pytest.raises(ConnectionError):
        recover_once(
            stack.settings.model_copy(update={"chunk_size": 4}), failing_on_the_second_page
        )
    assert len(sent) == 4
    again: list[int] = []  # as `requeue` asks: never-sent rows at once, sent ones after a minute
    delivery.resend(stack.settings.database_url, lambda stage, ids: again.extend(ids),
                    chunk_size=4, older_than=60, live=None)  # fmt: skip
    assert sorted(again) == sorted(set(again)) and set(again).isdisjoint(sent)
    assert len(again) == 8  # nothing left claimed but unsent


def test_wait_times_out_saying_what_is_stuck(stack: Stack) -> None:
    batch = stack.client.submit(corpus(3))  # no worker runs
    with pytest.raises(TimeoutError) as caught:
        stack.client.wait(batch.id, timeout=2, poll=0.2, on_progress=lambda _: None)
    message = str(caught.value)
    assert f"batch {batch.id} not finished after 2 s (3 queued" in message
    assert "article" in message and "clean queued since" in message


@pytest.fixture
def own_broker() -> Iterator[EmbeddedRedis]:
    """A Redis of this test's own, so the test can kill it."""
    home = Path(tempfile.mkdtemp(prefix="nf-int-"))
    with EmbeddedRedis(home / "redis.sock") as server:
        yield server


QUICK = {  # a short retry budget, and a recovery loop that looks often
    "NEWSFLOW_TASK_MAX_RETRIES": "2",
    "NEWSFLOW_RETRY_BACKOFF_MAX": "2",
    "NEWSFLOW_VISIBILITY_TIMEOUT": "12",
    "NEWSFLOW_RECOVERY_INTERVAL": "2",
}


def test_broker_lost_mid_submit_names_the_batch_and_a_resubmit_resumes(
    tmp_path: Path, own_broker: EmbeddedRedis
) -> None:
    for url in fresh_database("sqlite", tmp_path):
        stack = make_stack(url, own_broker.url, tmp_path)
        records = corpus(1500)

        def cut_at(n: int, records: list[dict[str, str]]) -> Iterator[dict[str, str]]:
            for i, record in enumerate(records):
                if i == n:
                    own_broker.stop()  # the broker dies 1,000 records in
                yield record

        with pytest.raises(SubmitInterrupted) as caught:
            stack.client.submit(cut_at(1000, records))
        message = str(caught.value)
        assert "batch 1 is partly submitted: 1,500 records stored (1,000 of them queued)" in (
            message
        )
        assert "newsflow requeue --batch 1" in message
        own_broker.start()  # empty: the 1,000 sent messages are gone with it
        again = stack.client.submit(records)
        assert (again.submitted, again.duplicates, again.queued) == (1500, 1500, 500)
        try:
            stack.start_worker(concurrency=2, **QUICK)  # the loop finds the lost 1,000
            progress = stack.wait(again.id, timeout=400)
            assert progress.done == 1500
        finally:
            stack.stop_worker()
        assert set(runs(url, "clean").values()) == {1}


def test_database_outage_longer_than_the_retry_budget_heals_itself(
    tmp_path: Path, own_broker: EmbeddedRedis
) -> None:
    for direct_url in fresh_database("postgres", tmp_path):
        proxy, url = proxied(direct_url)
        stack = make_stack(url, own_broker.url, tmp_path)
        try:
            stack.start_worker(concurrency=2, **QUICK)
            client = Client(
                stack.settings.model_copy(update={"chunk_size": 40})
            )  # few messages: budgets run out
            batch = client.submit(corpus(120))
            batch_id = batch.id
            wait_for(lambda: stack.client.progress(batch_id).done >= 10, timeout=180)  # noqa: B023
            proxy.stop()
            db.get_engine(url).dispose()
            time.sleep(25)  # retries (2, at most 2 s apart) run out long before this
            assert stack.log is not None
            assert "; retry 2 in" in stack.log.read_text()  # the budget ran out
            proxy.start()
            progress = stack.wait(batch_id, timeout=300)  # nobody runs requeue
            assert progress.done == 120
        finally:
            stack.stop_worker()
            proxy.stop()
            db.get_engine(url).dispose()
        with session_scope(direct_url) as session:
            doubled = session.execute(
                select(Mention.article_id, Mention.entity_idx, Mention.idx)
                .group_by(Mention.article_id, Mention.entity_idx, Mention.idx)
                .having(func.count() > 1)
            ).all()
        assert doubled == []
        db.get_engine(direct_url).dispose()


def test_an_article_is_done_when_the_stages_it_needs_are_done(database_url: str) -> None:
    """Rows of a stage outside REQUIRED (one added later, for some articles only) neither
    finish an article nor keep a finished one from being done."""
    from producer.monitor import batch_progress
    from producer.sources import from_mapping
    from producer.submit import store_batch

    records = [from_mapping(r, source="t", line=i, limit=10**6) for i, r in enumerate(corpus(2))]
    result, (first, second) = store_batch(Settings(database_url=database_url), records, name=None)
    with session_scope(database_url) as session:
        session.execute(update(StageRow).values(status="done"))  # clean, queued at submit
        for article_id, summarized in ((first, "done"), (second, "queued")):
            session.add(StageRow(article_id=article_id, stage="extract", status="done"))
            session.add(StageRow(article_id=article_id, stage="summarize", status=summarized))
            session.add(StageRow(article_id=article_id, stage="translate", status="done"))
        session.flush()
        tallies.settle(session, [first, second])  # as a stage does after writing its rows
    with session_scope(database_url) as session:
        (progress,) = batch_progress(session, result.batch_id)
    assert (progress.done, progress.processing) == (1, 1)
