"""End to end on real services: submit -> Redis -> worker processes -> SQLite / PostgreSQL.

Each module-scoped stack runs for every (database, broker) pair: SQLite and PostgreSQL,
the embedded Redis and the machine's.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from newsflow.contract import STAGES
from newsflow.db import session_scope
from newsflow.delivery import SKIP_SENT
from newsflow.models import Article, Entity, Mention, StageRow, SummarySentence
from newsflow.record import ArticleRecord, Dateline, Filters
from producer.broker import queue_depths, redis_client, sender_of
from tests.conftest import ROOT, SHARED, Stack

pytestmark = pytest.mark.integration
XINHUA = SHARED / "samples" / "xinhua_china_russia.txt"


Examples = tuple[int, dict[str, ArticleRecord]]


def _by_external_id(stack: Stack, batch_id: int) -> dict[str, ArticleRecord]:
    return {r.external_id: r for r in stack.client.results(Filters(batch_id=batch_id))}


def _table_counts(stack: Stack) -> dict[str, int]:
    with session_scope(stack.settings.database_url) as session:
        return {
            table.__name__: session.execute(select(func.count()).select_from(table)).scalar_one()
            for table in (Article, StageRow, Entity, Mention, SummarySentence)
        }


@pytest.fixture(scope="module")
def examples_batch(stack: Stack) -> Examples:
    inputs: list[Any] = [ROOT / "examples"]
    if XINHUA.exists():
        inputs.append(XINHUA)
    batch = stack.client.submit(inputs, name="examples")
    assert batch.rejected == []
    progress = stack.wait(batch.id)
    assert progress.failed == 0
    return batch.id, _by_external_id(stack, batch.id)


def test_every_article_is_done_with_all_stages(
    examples_batch: Examples,
) -> None:
    _, records = examples_batch
    assert len(records) >= 6
    for record in records.values():
        assert record.status == "done"
        assert set(record.stages) == set(STAGES)
        assert all(s.status == "done" and s.error is None for s in record.stages.values())
        assert record.pipeline.version and record.pipeline.model
        text = record.text
        for entity in record.entities:
            for mention in entity.mentions:
                assert text[mention.start : mention.end] == mention.text
        for sentence in record.summary.sentences:
            assert text[sentence.start : sentence.end] == sentence.text


def test_wire_examples_come_out_with_their_fields(
    examples_batch: Examples,
) -> None:
    _, records = examples_batch
    reuters = records["harbor_reuters.txt"]
    assert reuters.title == "Port of Valmera reopens after week-long dockworkers' strike"
    assert reuters.byline == "Sarah Mitchell"
    assert reuters.dateline == Dateline(place="Valmera", date="March 3")
    assert reuters.agency == "Reuters"
    assert reuters.text.startswith("The port of Valmera reopened on Monday")
    assert "Reporting by" not in reuters.text
    web = records["festival_web.html"]
    assert web.title == "Lakeside film festival names its winners"
    assert web.byline == "Priya Raman"
    assert (web.agency, web.source) == (None, "Riverton Daily")  # the site, no agency
    assert "Read more" not in web.text and "cookies" not in web.text
    afp = records["afp-0142"]
    assert afp.agency == "AFP" and afp.published == "2026-08-02"
    assert not afp.text.startswith("Drought forces")  # the repeated title is gone


@pytest.mark.skipif(not XINHUA.exists(), reason="../shared/samples is not beside the project")
def test_xinhua_sample_record_field_by_field(
    examples_batch: Examples,
) -> None:
    _, records = examples_batch
    record = records["xinhua_china_russia.txt"]
    title = "China seeks to promote international strategic coordination with Russia"
    assert record.title == title
    assert not record.text.startswith(title)
    assert "Please enter your comment" not in record.text
    assert "Please enter your name here" not in record.text
    assert len(record.captions) == 2
    assert all(c.endswith("/Xinhua Photo") for c in record.captions)
    assert "/Xinhua Photo" not in record.text
    assert record.agency == "Xinhua"
    people = {e.name: e for e in record.entities if e.label == "PERSON"}
    for name, count in (
        ("Xi Jinping", 6),
        ("Vladimir Putin", 3),
        ("Li Keqiang", 3),
        ("Dmitry Medvedev", 4),
    ):
        assert people[name].count == count, name
    for short in ("Xi", "Putin", "Li", "Medvedev"):
        assert short not in people  # one entity per person, under the full name
    places = {e.name for e in record.entities if e.label == "GPE"}
    assert {"China", "Russia"} <= places
    most_salient = max(record.entities, key=lambda e: e.salience)
    assert most_salient.name == "Xi Jinping"
    assert 1 <= len(record.summary.sentences) <= 5
    for sentence in record.summary.sentences:
        assert sentence.text in record.text


def test_resubmitting_processes_nothing_again(stack: Stack, examples_batch: Examples) -> None:
    _, first = examples_batch
    before = _table_counts(stack)
    again = stack.client.submit([ROOT / "examples"] + ([XINHUA] if XINHUA.exists() else []))
    assert again.duplicates == again.submitted == len(first)
    assert again.queued == 0
    progress = stack.client.progress(again.id)
    assert progress.done == progress.total == len(first)
    assert _table_counts(stack) == before


def _runs(stack: Stack) -> int:
    with session_scope(stack.settings.database_url) as session:
        return int(session.execute(select(func.sum(StageRow.runs))).scalar_one())


def test_a_redelivered_message_changes_nothing(stack: Stack, examples_batch: Examples) -> None:
    batch_id, first = examples_batch
    before, runs = _table_counts(stack), _runs(stack)
    ids = sorted(r.id for r in first.values())
    send = sender_of(stack.settings)
    for stage in STAGES:
        send(stage, ids)  # the same chunk, delivered twice more
        send(stage, ids)
    deadline = time.monotonic() + 60
    while any(q["ready"] or q["unacked"] for q in queue_depths(stack.settings).values()):
        assert time.monotonic() < deadline, "messages left over"
        time.sleep(0.3)
    time.sleep(1)  # the last message acknowledged is stored by now
    assert _runs(stack) == runs, "a done article was processed again"
    assert _table_counts(stack) == before
    assert stack.client.progress(batch_id).done == len(ids)
    again = _by_external_id(stack, batch_id)
    for key, record in first.items():
        for field in ("text", "entities", "summary", "keyphrases", "captions", "title"):
            assert getattr(again[key], field) == getattr(record, field), (key, field)


def test_one_bad_article_fails_alone_with_its_reason(stack: Stack) -> None:
    batch = stack.client.submit(
        [
            {
                "id": "ok-1",
                "text": "The mayor of Dunmore opened a new bridge on Friday, officials said.",
            },
            {"id": "bad", "html": "<html><script>var x = 1;</script><style>p {}</style></html>"},
            {
                "id": "ok-2",
                "text": "Farmers in the Tarn valley began the grape harvest two weeks early.",
            },
        ]
    )
    progress = stack.wait(batch.id)
    assert (progress.done, progress.failed) == (2, 1)
    records = _by_external_id(stack, batch.id)
    bad = records["bad"]
    assert bad.status == "failed"
    assert bad.stages["clean"].status == "failed"
    assert "no article text found in the HTML" in bad.stages["clean"].error
    assert "extract" not in bad.stages
    assert records["ok-1"].status == records["ok-2"].status == "done"


def test_requeue_rebuilds_lost_queues_from_the_database(stack: Stack, tmp_path: Path) -> None:
    stack.stop_worker()
    try:
        batch = stack.client.submit(
            [
                {
                    "id": f"r{i}",
                    "text": f"Story number {i} says the town of Elmsford voted on item {i}.",
                }
                for i in range(10)
            ]
        )
        redis_client(stack.settings.broker()).flushdb()  # the broker loses every message
        assert stack.client.progress(batch.id).queued == 10
        cautious = stack.client.requeue(batch_id=batch.id)  # the messages look live
        assert cautious.sent == {} and cautious.skipped["clean"] == {SKIP_SENT: 10}
        sent = stack.client.requeue(batch_id=batch.id, force=True)
        assert sent.sent == {"clean": 10} and sent.skipped == {}
    finally:
        stack.start_worker()
    progress = stack.wait(batch.id)
    assert progress.done == 10
    after = stack.client.requeue(batch_id=batch.id, force=True)
    assert after.sent == {} and after.skipped == {}
