"""A record is a submission: syndicated copies of one text keep their own ids, urls and
titles in every reader (export, listings, show, search, entities), a submitter finds its
records by its own id, and a database of the previous schema migrates without losing one."""

from __future__ import annotations

import csv
import io
import json
from pathlib import Path

import pytest
from sqlalchemy import text

from newsflow import db
from newsflow.config import Settings
from newsflow.errors import NotFound
from newsflow.record import Filters
from producer.client import Client
from tests.conftest import Stack, fresh_database
from tests.test_cli import newsflow

pytestmark = pytest.mark.integration

WIRE = (
    "HARWICH, March 3 (Reuters) - Kestrel Shipping will add two ferries to its North Sea "
    "routes this summer, chief executive Mara Velden said on Tuesday.\n\n"
    "Velden said bookings for June were up by a fifth on last year. Kestrel Shipping "
    "carried 1.2 million passengers last year, most of them between Harwich and Esbjerg."
)
SITES = [
    {"id": "siteA-1", "url": "https://a.example/ferries", "title": "Kestrel adds ferries",
     "published": "2026-03-03", "source": "site A", "text": WIRE},
    {"id": "siteB-9", "url": "https://b.example/9", "title": "Two more ferries for the North Sea",
     "published": "2026-03-04", "source": "site B", "text": WIRE},
    {"id": "siteC-3", "url": "https://c.example/3", "title": "Ferry firm grows",
     "source": "site C", "text": WIRE},
]  # fmt: skip
OTHER = {
    "id": "other-1",
    "text": "The Brookfield council approved a cycle lane plan on Monday, Mayor Hannah Cole said.",
}


def _mine(stack: Stack, external_ids: set[str]) -> list[dict[str, object]]:
    """The full export (no filter), as dicts, of the records with these external ids: the
    module's database is shared with other tests."""
    out = io.StringIO()
    stack.client.export(out)
    lines = [json.loads(line) for line in out.getvalue().splitlines()]
    return [line for line in lines if line["external_id"] in external_ids]


def test_every_submission_is_a_record_of_its_own(stack: Stack) -> None:
    first = stack.client.submit([SITES[0]], name="site A")
    second = stack.client.submit([SITES[1], SITES[2], OTHER], name="sites B and C")
    assert (second.submitted, second.duplicates) == (3, 2)
    stack.wait(first.id)
    stack.wait(second.id)

    exported = _mine(stack, {s["id"] for s in SITES})
    assert [e["external_id"] for e in exported] == ["siteA-1", "siteB-9", "siteC-3"]
    assert len({e["id"] for e in exported}) == 3, "each submission has its own id"
    assert len({e["content_id"] for e in exported}) == 1, "the content is processed once"
    assert {e["content_submissions"] for e in exported} == {3}
    assert [(e["url"], e["title"], e["source"]) for e in exported] == [
        (s["url"], s["title"], s["source"]) for s in SITES
    ]
    assert {e["status"] for e in exported} == {"done"}

    # Found by the submitter's id, whatever batch holds it; show gives that one record.
    (found,) = stack.client.find("siteC-3")
    assert (found.url, found.batch_id, found.title) == (
        SITES[2]["url"],
        second.id,
        SITES[2]["title"],
    )
    assert stack.client.record(found.id) == found
    assert stack.client.find("no-such-id") == []

    # Listing rows name what each submitter sent, in one id space with or without a batch.
    rows, _ = stack.client.rows(Filters(batch_id=second.id))
    assert [(r.external_id, r.url, r.source) for r in rows] == [
        ("siteB-9", SITES[1]["url"], "site B"),
        ("siteC-3", SITES[2]["url"], "site C"),
        ("other-1", None, None),
    ]
    assert [r.submitted_from for r in rows] == ["<records>:1", "<records>:2", "<records>:3"]
    everywhere, _ = stack.client.rows(Filters(external_id="siteB-9"))
    assert [r.id for r in everywhere] == [rows[0].id]
    page, cursor = stack.client.rows(limit=1)
    assert cursor is not None
    following, _ = stack.client.rows(after=int(cursor), limit=1)
    assert following[0].id > page[0].id

    # Search and the entity filter list every copy; entity counts say what they count.
    by_search = [r.external_id for r in stack.client.search("Mara Velden")]
    assert by_search == ["siteA-1", "siteB-9", "siteC-3"]
    everyone = {e.name: e for e in stack.client.entities(top=50)}
    kestrel = everyone["Kestrel Shipping"]
    assert (kestrel.articles, kestrel.contents) == (3, 1)
    in_batch = {e.name: e for e in stack.client.entities(batch_id=second.id, top=50)}
    assert (in_batch["Kestrel Shipping"].articles, in_batch["Kestrel Shipping"].contents) == (2, 1)

    # The CSV has a row per submission too, with the content it shares.
    out = io.StringIO()
    stack.client.export(out, Filters(batch_id=second.id), fmt="csv")
    table = list(csv.DictReader(io.StringIO(out.getvalue())))
    assert [row["external_id"] for row in table] == ["siteB-9", "siteC-3", "other-1"]
    assert table[0]["content_id"] == table[1]["content_id"] != table[2]["content_id"]


def test_an_unknown_batch_or_record_is_named_not_an_empty_answer(stack: Stack) -> None:
    for read in (
        lambda: stack.client.progress(999),
        lambda: stack.client.batches(999),
        lambda: list(stack.client.results(Filters(batch_id=999))),
        lambda: stack.client.entities(batch_id=999),
        lambda: stack.client.rows(Filters(batch_id=999)),
    ):
        with pytest.raises(NotFound, match="no batch 999"):
            read()
    with pytest.raises(NotFound, match="no article 987654"):
        stack.client.record(987654)


def test_three_sites_through_newsflow_run_then_the_cli(tmp_path: Path) -> None:
    for site in SITES:
        path = tmp_path / f"{site['id']}.jsonl"
        path.write_text(json.dumps(site) + "\n", encoding="utf-8")
        ran = newsflow("run", str(path), "--workers", "1", "--json", env={}, cwd=tmp_path)
        assert ran.returncode == 0, ran.stderr[-3000:]
    exported = newsflow("results", "export", env={}, cwd=tmp_path)
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(line) for line in exported.stdout.splitlines()]
    assert [(r["external_id"], r["url"], r["title"]) for r in lines] == [
        (s["id"], s["url"], s["title"]) for s in SITES
    ]
    assert len({r["id"] for r in lines}) == 3 and len({r["content_id"] for r in lines}) == 1

    shown = newsflow("results", "show", "--external-id", "siteC-3", "--json", env={}, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    (record,) = json.loads(shown.stdout)
    assert (record["url"], record["content_submissions"]) == (SITES[2]["url"], 3)
    by_id = newsflow("results", "show", str(record["id"]), "--json", env={}, cwd=tmp_path)
    assert json.loads(by_id.stdout)["external_id"] == "siteC-3"

    listed = newsflow("results", "list", "--json", env={}, cwd=tmp_path)
    rows = json.loads(listed.stdout)
    assert [(r["external_id"], r["source"]) for r in rows] == [
        (s["id"], s["source"]) for s in SITES
    ]
    assert all(r["submitted_from"].endswith(".jsonl:1") for r in rows)

    entities = newsflow("results", "entities", "--json", env={}, cwd=tmp_path)
    kestrel = next(e for e in json.loads(entities.stdout) if e["name"] == "Kestrel Shipping")
    assert (kestrel["articles"], kestrel["contents"]) == (3, 1)

    unknown = newsflow("results", "entities", "--batch", "999", env={}, cwd=tmp_path)
    assert unknown.returncode == 2 and "no batch 999" in unknown.stderr
    nobody = newsflow("results", "show", "--external-id", "nobody", env={}, cwd=tmp_path)
    assert nobody.returncode == 2 and "no article was submitted with the id 'nobody'" in (
        nobody.stderr
    )


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_a_database_of_the_previous_revision_keeps_every_submission(
    kind: str, tmp_path: Path
) -> None:
    for url in fresh_database(kind, tmp_path):
        db.downgrade(url, "0002")
        engine = db.get_engine(url)
        with engine.begin() as connection:  # what 0002's code wrote for three sites
            connection.execute(
                text("INSERT INTO batches (id, name, created_at, submitted, duplicates, rejected) "
                     "VALUES (1, 'a', '2026-03-03', 1, 0, 0), (2, 'bc', '2026-03-04', 2, 2, 0)")
            )  # fmt: skip
            connection.execute(
                text("INSERT INTO articles (id, content_hash, batch_id, external_id, source, "
                     "kind, raw, given_title, url, published, created_at) VALUES (7, 'h', 1, "
                     "'siteA-1', 'site A', 'text', :raw, 'Kestrel adds ferries', "
                     "'https://a.example/ferries', '2026-03-03', '2026-03-03')"),
                {"raw": WIRE},
            )  # fmt: skip
            for number, (batch, site) in enumerate(zip((1, 2, 2), SITES, strict=True), 1):
                connection.execute(
                    text("INSERT INTO batch_articles (id, batch_id, article_id, external_id, "
                         "source, url, title, published, origin) VALUES (:id, :batch, 7, "
                         ":external_id, :source, :url, :title, :published, :origin)"),
                    {"id": number, "batch": batch, "external_id": site["id"],
                     "source": f"{site['id']}.jsonl:1", "url": site["url"],
                     "title": site["title"], "published": site.get("published"),
                     "origin": site["source"]},
                )  # fmt: skip
        db.upgrade(url)
        client = Client(Settings(database_url=url))
        records = list(client.results())
        assert [(r.id, r.external_id, r.url, r.title) for r in records] == [
            (n, s["id"], s["url"], s["title"]) for n, s in enumerate(SITES, 1)
        ]
        assert {(r.content_id, r.content_submissions) for r in records} == {(7, 3)}
        assert [r.external_id for r in client.find("siteB-9")] == ["siteB-9"]
        assert [b.total for b in client.batches()] == [1, 2]
        db.downgrade(url, "0002")  # and back: the content row gets its first submitter again
        with engine.connect() as connection:
            back = connection.execute(text("SELECT external_id, url FROM articles")).all()
        assert [tuple(row) for row in back] == [("siteA-1", "https://a.example/ferries")]
        db.upgrade(url)
