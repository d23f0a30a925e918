"""Reads at any size: what they use is kept as the data changes (newsflow.tallies: each
submission's status, counts per batch, entities' standing, entity keys), it equals a count
from scratch whatever ran, the filters and pages answer from it, and the migration that
added it fills it on a populated database."""

from __future__ import annotations

from typing import Any

import pytest
from sqlmodel import Session

from newsflow import db, tallies
from newsflow.record import Filters
from tests.conftest import Stack

pytestmark = pytest.mark.integration

COLE = (
    "BROOKFIELD, May 2 (AP) - Mayor Hannah Cole opened the new Brookfield library on "
    "Saturday. Cole said the library would stay open until midnight during exams.\n\n"
    "The Brookfield council paid for the building with a bond approved in 2024."
)
FERRIES = (
    "Kestrel Shipping will add two ferries to its North Sea routes, chief executive Mara "
    "Velden said. Velden said bookings for June were up by a fifth on last year."
)
HARVEST = "Farmers in the Tarn valley began the grape harvest two weeks early, growers said."
BROKEN = "<html><script>var x = 1;</script><style>p {}</style></html>"


def recounted(url: str) -> dict[str, Any]:
    """What a count from scratch gives, in a transaction rolled back afterwards."""
    with db.get_engine(url).connect() as connection:
        transaction = connection.begin()
        try:
            session = Session(bind=connection)
            tallies.recount(session)
            return tallies.kept(session)
        finally:
            transaction.rollback()


def kept(url: str) -> dict[str, Any]:
    with db.read_scope(url) as session:
        return tallies.kept(session)


@pytest.fixture(scope="module")
def two_batches(stack: Stack) -> tuple[int, int]:
    """Two batches sharing contents: a copy inside a batch, copies across batches, one
    article that fails."""
    first = stack.client.submit(
        [
            {"id": "cole-a", "text": COLE},
            {"id": "ferries-a", "text": FERRIES},
            {"id": "broken-a", "html": BROKEN},
        ]
    )
    stack.wait(first.id)
    second = stack.client.submit(
        [
            {"id": "cole-b", "text": COLE},
            {"id": "cole-c", "text": COLE},
            {"id": "harvest-b", "text": HARVEST},
        ]
    )
    stack.wait(second.id)
    return first.id, second.id


def test_kept_figures_equal_a_count_from_scratch(stack: Stack, two_batches: tuple[int, int]) -> None:
    url = stack.settings.database_url
    figures = kept(url)
    assert figures == recounted(url)
    first, second = two_batches
    counts = figures["counts"]
    assert counts[(first, "status", "done")] == 2 and counts[(first, "status", "failed")] == 1
    assert counts[(second, "status", "done")] == 3
    assert counts[(second, "language", "en")] == 2  # two contents: the copies count once
    assert any(key == "hannah cole" for key, _ in figures["keys"])


def test_reads_answer_from_what_is_kept(stack: Stack, two_batches: tuple[int, int]) -> None:
    first, second = two_batches
    client = stack.client
    progress = {p.id: p for p in client.batches()}
    assert (progress[first].done, progress[first].failed, progress[first].total) == (2, 1, 3)
    assert (progress[second].done, progress[second].total) == (3, 3)

    failed = client.rows(Filters(status="failed"))[0]
    assert [r.external_id for r in failed if r.batch_id in two_batches] == ["broken-a"]
    for needle in ("Hannah Cole", "cole", "  HANNAH   cole ", "hannah"):
        found = client.rows(Filters(entity=needle))[0]
        assert {r.external_id for r in found} >= {"cole-a", "cole-b", "cole-c"}, needle
    assert client.rows(Filters(entity="annah"))[0] == []  # words, not any substring
    in_second = client.rows(Filters(batch_id=second, entity="Brookfield"))[0]
    assert [r.external_id for r in in_second] == ["cole-b", "cole-c"]

    top = {e.name: e for e in client.entities(batch_id=second)}
    assert (top["Hannah Cole"].articles, top["Hannah Cole"].contents) == (2, 1)
    overall = {e.name: e for e in client.entities()}
    assert overall["Hannah Cole"].articles >= 3
    status = client.status(batch_id=first)
    assert [f.record_id for f in status.failures] == [failed[0].id]
    assert status.languages.get("en") == 2


def test_the_migration_fills_what_is_kept_on_a_populated_database(
    stack: Stack, two_batches: tuple[int, int]
) -> None:
    url = stack.settings.database_url
    before = kept(url)
    rows = stack.client.rows(Filters(entity="Velden"))[0]
    db.downgrade(url, "0004")
    db.upgrade(url)
    assert kept(url) == before
    assert stack.client.rows(Filters(entity="Velden"))[0] == rows
