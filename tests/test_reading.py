"""Reads at any size: what they use is kept as the data changes (newsflow.tallies: each
submission's status, counts per batch, entities' standing, entity keys), it equals a count
from scratch whatever ran, the filters and pages answer from it, and the migration that
added it fills it on a populated database."""

from __future__ import annotations

import csv
import io
import json
import threading
from typing import Any

import pytest
from sqlalchemy import update
from sqlmodel import Session, col, select

from newsflow import __version__, db, tallies
from newsflow.contract import Stage
from newsflow.models import BatchArticle, EntityTally, Keyphrase, StageRow
from newsflow.record import Filters
from producer import results
from producer.export import csv_row
from tests.conftest import ROOT, Stack, wait_for
from tests.test_cli import _env, newsflow

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


def test_kept_figures_equal_a_count_from_scratch(
    stack: Stack, two_batches: tuple[int, int]
) -> None:
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


def test_a_common_entity_is_filtered_the_same_way_as_a_rare_one(
    stack: Stack, two_batches: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past results.FEW contents an entity is not looked up first: same rows either way."""
    looked_up = {n: stack.client.rows(Filters(entity=n))[0] for n in ("cole", "nobody")}
    monkeypatch.setattr(results, "FEW", 0)
    monkeypatch.setattr(results, "_FEW_ARTICLES", results.ENTITY_ARTICLES.limit(1))
    assert {n: stack.client.rows(Filters(entity=n))[0] for n in looked_up} == looked_up
    assert looked_up["cole"] and looked_up["nobody"] == []


def test_an_entity_table_lists_a_name_once_under_its_most_common_label(
    database_url: str,
) -> None:
    """spaCy may label a name one way in most articles and another in a few: the table
    sums it under the label most of its articles give it, and a label filters on that."""
    standing = [  # (name, label, articles, mentions)
        ("Cate Blanchett", "PERSON", 3, 7), ("Cate Blanchett", "ORG", 1, 1),
        ("Paris", "GPE", 5, 9), ("Westlife", "ORG", 2, 4), ("Westlife", "PERSON", 2, 2),
        ("Tess Marlow", "PERSON", 3, 4), ("Tess Marlow", "WORK_OF_ART", 3, 2),
    ]  # fmt: skip
    with db.session_scope(database_url) as session:
        for name, label, articles, mentions in standing:
            session.add(
                EntityTally(batch_id=tallies.ALL, name=name, label=label, articles=articles,
                            contents=articles, mentions=mentions, salience=0.5 * articles)
            )  # fmt: skip
    with db.session_scope(database_url) as session:
        table = [(e.name, e.label, e.articles, e.mentions) for e in results.top_entities(session)]
        assert table == [
            ("Tess Marlow", "PERSON", 6, 6),  # a tie of articles: the label of more mentions
            ("Paris", "GPE", 5, 9),
            ("Cate Blanchett", "PERSON", 4, 8),
            ("Westlife", "ORG", 4, 6),
        ]
        # Apart, neither of Tess Marlow's rows is in a top two; together they lead it.
        assert [e.name for e in results.top_entities(session, top=2)] == ["Tess Marlow", "Paris"]
        people = results.top_entities(session, label="person")
        assert [(e.name, e.articles, e.salience) for e in people] == [
            ("Tess Marlow", 6, 0.5), ("Cate Blanchett", 4, 0.5)
        ]  # fmt: skip
        assert [e.name for e in results.top_entities(session, label="ORG")] == ["Westlife"]


def test_an_export_line_is_the_record_itself(stack: Stack, two_batches: tuple[int, int]) -> None:
    """Export writes records without building the models (PostgreSQL writes the JSON
    itself): each JSONL line parses to the validated record, CSV has one row per record,
    at most `limit`."""
    client = stack.client
    for batch_id in two_batches:
        out = io.StringIO()
        assert client.export(out, Filters(batch_id=batch_id)) == 3
        lines = out.getvalue().splitlines()
        records = [client.record(json.loads(line)["id"]) for line in lines]
        assert [json.loads(line) for line in lines] == [r.model_dump(mode="json") for r in records]
        assert all(r.pipeline.stages[Stage.CLEAN].version == __version__ for r in records)
        table = io.StringIO()
        client.export(table, Filters(batch_id=batch_id), fmt="csv")
        # PostgreSQL writes the CSV cells itself: the same as the row made from the record.
        assert list(csv.DictReader(io.StringIO(table.getvalue()))) == [
            csv_row(r.model_dump(mode="json")) for r in records
        ]
    assert client.export(io.StringIO(), limit=2) == 2


def test_an_export_in_many_blocks_keeps_order_and_snapshot(
    stack: Stack, two_batches: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocks of two, so on PostgreSQL the session and its helper connection (on the
    session's snapshot) make a record of each block: every record once, in id order."""
    client = stack.client
    whole = io.StringIO()
    client.export(whole)
    monkeypatch.setattr(results, "PAGE", 2)
    blocks = io.StringIO()
    assert client.export(blocks) == len(whole.getvalue().splitlines()) >= 6
    assert blocks.getvalue() == whole.getvalue()


def test_full_text_search_ranks_marks_and_combines_with_filters(
    stack: Stack, two_batches: tuple[int, int]
) -> None:
    first, second = two_batches
    client = stack.client
    found = client.rows(Filters(query="ferry bookings"))[0]  # stemmed: "ferries"
    assert [r.external_id for r in found] == ["ferries-a"]
    snippet = found[0].snippet
    assert snippet is not None and snippet.marks
    assert {snippet.text[a:b].lower()[:4] for a, b in snippet.marks} <= {"ferr", "book"}
    assert found[0].rank is not None and found[0].rank > 0

    library = client.rows(Filters(query="library"))[0]
    assert {r.external_id for r in library} >= {"cole-a", "cole-b", "cole-c"}
    assert [r.external_id for r in client.rows(Filters(query="library", batch_id=first))[0]] == [
        "cole-a"
    ]
    phrase = client.rows(Filters(query='"grape harvest"', batch_id=second))[0]
    assert [r.external_id for r in phrase] == ["harvest-b"]
    assert client.rows(Filters(query='"harvest grape"', batch_id=second))[0] == []
    either = client.rows(Filters(query="Velden or harvest"))[0]
    assert {r.external_id for r in either} == {"ferries-a", "harvest-b"}
    without = client.rows(Filters(query="library -midnight"))[0]
    assert without == []  # every library story says midnight
    for hostile in ('"unbalanced (', "AND OR NOT", "*", "-", "ferr:*"):
        client.rows(Filters(query=hostile))  # an answer, never a syntax error
    page, cursor = client.rows(Filters(query="library"), limit=2)
    assert len(page) == 2 and cursor is not None
    rest, _ = client.rows(Filters(query="library"), after=cursor, limit=50)
    assert {r.id for r in page}.isdisjoint(r.id for r in rest)
    assert len(page) + len(rest) == len(library)


def test_a_snippet_is_cut_around_the_match_however_far_into_a_long_body(stack: Stack) -> None:
    """A snippet shows where the query matches: PostgreSQL marks the stretch around the
    first word that begins with one of its stems, or the whole body when that stretch
    holds no match."""
    filler = " ".join(
        f"Councillors in Brno met for the {n}th time this year to discuss the budget."
        for n in range(30)
    )
    body = (
        "The pavilion by the river will close for repairs, the city said on Monday. "
        f"{filler} Work on the new tramline starts in March and ends before winter."
    )
    batch = stack.client.submit([{"id": "long-body", "text": body}])
    stack.wait(batch.id)
    for query, marked_words in (
        ("tramline", {"tramline"}),  # past the first 2,000 characters
        ("pavilion tramline", {"pavilion", "tramline"}),  # far apart: no stretch holds both
        ("cities", {"city"}),  # stemmed to "citi": "city" is found less the final i
    ):
        [row] = stack.client.rows(Filters(query=query, batch_id=batch.id))[0]
        assert row.snippet is not None, query
        text, marks = row.snippet.text, row.snippet.marks
        assert marks and {text[a:b].lower() for a, b in marks} <= marked_words, (query, text)
        assert len(text) < 400, query  # a snippet, not the body
        if query == "tramline":
            assert not text.startswith("The pavilion"), query


def test_a_narrow_query_pages_as_if_every_match_were_ranked_and_a_broad_one_the_newest(
    stack: Stack, monkeypatch: pytest.MonkeyPatch
) -> None:
    """PostgreSQL ranks the best few matches of a query with no other filter, or, for a
    broad one, its newest matches, however many newer articles do not match: a page of
    the first is the page of every match ranked. SQLite's FTS5 ranks every match in its
    own index, broad or not."""
    client = stack.client
    older = client.submit([
        {"id": "fair-old-1", "text": "Traders set up stalls for the Ostrava winter fair on "
         "Monday. The fair runs until Sunday and expects forty thousand visitors."},
        {"id": "fair-old-2", "text": "Ostrava opened its winter fair on Monday. The Ostrava "
         "fair runs until Sunday, organisers said, and the city expects record crowds."},
    ])  # fmt: skip
    stack.wait(older.id)
    newest = "The winter fair in Ostrava drew crowds on Tuesday. Police closed two streets near it."
    newer = client.submit([{"id": "fair-new", "text": newest}])
    stack.wait(newer.id)
    harbour = "The harbour at Gdynia reopened on Wednesday after a storm. Ferries sailed by noon."
    unrelated = client.submit([{"id": "harbour", "text": harbour}])
    stack.wait(unrelated.id)

    def pages() -> list[list[tuple[str, float]]]:
        first, cursor = client.rows(Filters(query="Ostrava fair"), limit=2)
        rest = client.rows(Filters(query="Ostrava fair"), after=cursor)[0] if cursor else []
        return [[(r.external_id or "", r.rank or 0.0) for r in page] for page in (first, rest)]

    best = pages()
    listed = [name for page in best for name, _ in page]
    assert sorted(listed) == ["fair-new", "fair-old-1", "fair-old-2"]
    ranks = [rank for page in best for _, rank in page]
    assert ranks == sorted(ranks, reverse=True) and len(best[0]) == 2
    monkeypatch.setattr(results, "_reads", lambda *_: (results.EVERY, 0))
    assert pages() == best
    monkeypatch.undo()
    monkeypatch.setattr(results, "RANKED", 0)  # every query is broad
    try:  # its newest matches, however old (not the harbour's), walked to or by the index
        for walk_us, newest_ranked in [(w, n) for w in (0.0, 1e9) for n in (2, 1)]:
            monkeypatch.setattr(results, "WALK_US", walk_us)
            monkeypatch.setattr(results, "RECENT_RANKED", newest_ranked)
            for cached in (results._hits, results._listing):
                cached.cache_clear()
            broad = [[name for name, _ in page] for page in pages()]
            if stack.settings.database_url.startswith("postgresql"):
                expected = ["fair-new", "fair-old-2"][:newest_ranked]
                assert sorted(name for page in broad for name in page) == expected
            else:
                assert broad == [[name for name, _ in page] for page in best]
    finally:
        results._hits.cache_clear()
        results._listing.cache_clear()


def test_results_list_query_on_the_command_line(stack: Stack, two_batches: tuple[int, int]) -> None:
    listed = newsflow("results", "list", "--query", "Velden", "--json", env=_env(stack), cwd=ROOT)
    assert listed.returncode == 0, listed.stderr
    rows = json.loads(listed.stdout)
    assert [r["external_id"] for r in rows] == ["ferries-a"] and rows[0]["snippet"]["marks"]
    table = newsflow("results", "list", "-q", "Velden", env=_env(stack), cwd=ROOT)
    assert "matched" in table.stdout and "Velden" in table.stdout


def test_reprocess_by_version_replaces_output_and_readers_never_see_half(
    stack: Stack, two_batches: tuple[int, int]
) -> None:
    url, client = stack.settings.database_url, stack.client
    first, _ = two_batches
    members = select(BatchArticle.article_id).where(BatchArticle.batch_id == first)
    with db.session_scope(url) as session:  # as if 0.0.1 had made batch 1's extract output
        session.execute(
            update(StageRow)
            .where(col(StageRow.stage) == "extract", col(StageRow.article_id).in_(members))
            .values(version="0.0.1")
        )
        session.execute(
            update(Keyphrase)
            .where(col(Keyphrase.article_id).in_(members))
            .values(text="old " + col(Keyphrase.text))
        )
    done = [r.id for r in client.rows(Filters(batch_id=first, status="done"))[0]]
    seen: list[tuple[frozenset[bool], str | None]] = []
    stop = threading.Event()

    def read() -> None:
        while not stop.is_set():
            for record in map(client.record, done):
                old = frozenset(k.text.startswith("old ") for k in record.keyphrases)
                seen.append((old, record.pipeline.stages[Stage.EXTRACT].version))

    reader = threading.Thread(target=read)
    reader.start()
    try:
        found = client.reprocess(batch_id=first, stages=["extract"], before=__version__)
        assert found.sent == {"extract": len(done)}

        def remade() -> bool:
            records = [client.record(i) for i in done]
            return all(
                r.status == "done" and r.pipeline.stages[Stage.EXTRACT].version == __version__
                for r in records
            )

        wait_for(remade, timeout=120)
    finally:
        stop.set()
        reader.join()
    assert seen and all(
        (old, version) in {(frozenset({True}), "0.0.1"), (frozenset({False}), __version__)}
        for old, version in seen
    ), "a reader saw a half-written output"
    assert client.reprocess(batch_id=first, before=__version__).sent == {}
    assert kept(url) == recounted(url)


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


def test_search_vector_storage_across_upgrade_and_downgrade(
    stack: Stack, two_batches: tuple[int, int]
) -> None:
    """Ranking reads each match's vector: on PostgreSQL in the row (STORAGE MAIN, migration
    0009), not looked up out of line; a downgrade gives the default back, and search
    answers the same across both."""
    url = stack.settings.database_url
    found = stack.client.rows(Filters(query="Velden"))[0]
    assert [r.external_id for r in found] == ["ferries-a"]
    postgres = url.startswith("postgresql")
    storage = (
        "SELECT attstorage FROM pg_attribute WHERE attrelid = 'articles'::regclass "
        "AND attname = 'search'"
    )

    def layout() -> str | None:
        with db.get_engine(url).connect() as connection:
            return connection.exec_driver_sql(storage).scalar_one() if postgres else None

    assert layout() == ("m" if postgres else None)
    db.downgrade(url, "0008")
    try:
        assert layout() == ("x" if postgres else None)
        assert stack.client.rows(Filters(query="Velden"))[0] == found
    finally:
        db.upgrade(url)
    assert layout() == ("m" if postgres else None)
    assert stack.client.rows(Filters(query="Velden"))[0] == found


POLITICS = [
    "The Tories promised lower taxes on Monday. Tory leader Michael Howard spoke in Leeds, "
    "and Labour said the sums did not add up.",
    "The Conservatives lost two seats in Scotland, while the Liberal Democrats gained "
    "three. The Labour Party held its ground in Glasgow.",
    "Labour said its ministers met in London. The Lib Dems and the Conservative Party said the "
    "vote was too close to call across Britain.",
]


def test_a_politics_batch_lists_each_party_once_under_one_label(stack: Stack) -> None:
    """Each article names the parties in its own way; the batch's top entities agree."""
    client = stack.client
    batch = client.submit(
        [{"id": f"politics-{i}", "text": t} for i, t in enumerate(POLITICS)], name="politics"
    )
    client.wait(batch.batch_id, timeout=180, on_progress=lambda _: None)
    top = {(e.name, e.label): e.articles for e in client.entities(batch_id=batch.batch_id, top=50)}
    assert top[("Conservative Party", "ORG")] == 3
    assert top[("Labour Party", "ORG")] == 3
    assert top[("Liberal Democrats", "ORG")] == 2
    party_forms = {"tory", "tories", "conservatives", "labour", "lib dems"}
    assert not [name for name, _ in top if name.casefold() in party_forms]
