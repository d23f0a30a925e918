"""The HTTP API against a real `newsflow serve` process, real workers, Redis, SQLite and
PostgreSQL: submit, follow the events to the end, read the records; the token; bad input."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from newsflow.record import ArticleRecord, Filters
from tests.conftest import TOKEN, Server, Stack, serving
from tests.test_bad_input import BAD_WIRES, FRENCH, MIXED, MIXED_REJECTED, SCRIPTS_ONLY, STORY

pytestmark = pytest.mark.integration
AUTH = {"Authorization": f"Bearer {TOKEN}"}
NDJSON = {**AUTH, "Content-Type": "application/x-ndjson"}
LIMIT = 100_000  # bytes per article in these tests
MAX_RECORDS = 2_000

WIRES = [
    {"id": "api-1", "title": "Ferry service resumes", "text": (
        "VALMERA, May 4 (Reuters) - Ferry service between Valmera and the island of Osk "
        "resumed on Monday after storms kept boats in port for five days, the operator "
        "Northline said.\n\nNorthline chief executive Ada Brenner said about 3,000 "
        "passengers had been stranded. Brenner said the company would add two sailings a "
        "day until the backlog cleared.")},
    {"id": "api-2", "text": (
        "The city council of Brookfield approved a new cycle lane plan on Tuesday. Mayor "
        "Hannah Cole said the lanes would open next spring. Cole said the plan cost 4 million "
        "euros and would be paid for by the regional government.")},
    {"id": "api-3", "html": (
        "<html><body><article><h1>Library hours extended</h1><p>The Brookfield public "
        "library will open on Sundays from June, its director Omar Haddad said on Friday."
        "</p><p>Haddad said volunteers from the Friends of the Library group would help."
        "</p></article></body></html>")},
]  # fmt: skip


@pytest.fixture(scope="module")
def api(stack: Stack, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    log = tmp_path_factory.mktemp("serve") / "serve.log"
    limits = {"NEWSFLOW_MAX_ARTICLE_BYTES": str(LIMIT), "NEWSFLOW_MAX_RECORDS": str(MAX_RECORDS),
              "NEWSFLOW_MAX_REQUEST_BYTES": str(20 * LIMIT)}  # fmt: skip
    with serving(stack.settings, log, **limits) as server:
        yield server


def ndjson(records: list[Any]) -> bytes:
    return b"".join(json.dumps(r).encode() + b"\n" for r in records)


def follow(api: Server, batch_id: int) -> list[tuple[str, dict[str, Any]]]:
    """Every event of the batch's stream, to its end."""
    events, kind = [], None
    url = f"{api.url}/batches/{batch_id}/events"
    with httpx.stream("GET", url, timeout=httpx.Timeout(10, read=300)) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        for line in response.iter_lines():
            if line.startswith("event: "):
                kind = line.removeprefix("event: ")
            elif line.startswith("data: ") and kind:
                events.append((kind, json.loads(line.removeprefix("data: "))))
    return events


def assert_problem(response: httpx.Response, status: int, *fragments: str) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == "application/problem+json"
    body = response.json()
    assert body["status"] == status
    for fragment in fragments:
        assert fragment in body["detail"], body


def test_submit_follow_the_events_and_read_the_records(api: Server, stack: Stack) -> None:
    sent = httpx.post(
        f"{api.url}/batches", params={"name": "api wires"}, content=ndjson(WIRES), headers=NDJSON
    )
    assert sent.status_code == 201, sent.text
    report = sent.json()
    assert (report["submitted"], report["duplicates"], report["rejected"]) == (3, 0, [])
    batch_id = report["batch_id"]

    events = follow(api, batch_id)
    kinds = [kind for kind, _ in events]
    assert kinds[-1] == "finished" and set(kinds[:-1]) == {"progress"}
    finished = [e["done"] + e["failed"] for _, e in events]
    assert finished == sorted(finished), "progress went backwards"
    assert events[-1][1]["done"] == 3 and events[-1][1]["total"] == 3

    batch = httpx.get(f"{api.url}/batches/{batch_id}").json()
    assert (batch["name"], batch["done"]) == ("api wires", 3)
    assert batch_id in [b["id"] for b in httpx.get(f"{api.url}/batches").json()]

    page = httpx.get(f"{api.url}/articles", params={"batch": batch_id, "limit": 2}).json()
    assert len(page["items"]) == 2 and page["next_cursor"]
    rest = httpx.get(
        f"{api.url}/articles", params={"batch": batch_id, "limit": 2, "cursor": page["next_cursor"]}
    ).json()
    assert len(rest["items"]) == 1 and rest["next_cursor"] is None
    rows = page["items"] + rest["items"]
    assert all(row["status"] == "done" for row in rows)

    for row in rows:
        record = ArticleRecord.model_validate(httpx.get(f"{api.url}/articles/{row['id']}").json())
        assert record.status == "done" and record.text
        for entity in record.entities:
            for m in entity.mentions:
                assert record.text[m.start : m.end] == m.text
        for s in record.summary.sentences:
            assert record.text[s.start : s.end] == s.text
    by_entity = httpx.get(f"{api.url}/articles", params={"entity": "Hannah Cole"}).json()
    assert [r["id"] for r in by_entity["items"]] == [
        r["id"] for r in rows if "Hannah Cole" in r["entities"]
    ]
    assert any(r["agency"] == "Reuters" for r in rows)

    entities = httpx.get(f"{api.url}/entities", params={"batch": batch_id, "top": 50}).json()
    assert {"Ada Brenner", "Hannah Cole", "Omar Haddad"} <= {e["name"] for e in entities}

    status = httpx.get(f"{api.url}/status").json()
    assert status["workers"] and status["broker"]["error"] is None
    assert httpx.get(f"{api.url}/healthz").json() == {
        "database": "ok", "broker": "ok", "workers": "ok",
    }  # fmt: skip
    metrics = httpx.get(f"{api.url}/metrics").text
    assert 'newsflow_stage_articles{stage="extract",status="done"}' in metrics
    schema = httpx.get(f"{api.url}/openapi.json").json()
    assert "ArticleRecord" in schema["components"]["schemas"]


def test_records_are_submissions_found_by_the_submitters_id(api: Server) -> None:
    from tests.test_records import SITES

    ids = []
    for sites in (SITES[:1], [*SITES[1:], {"id": "bad"}]):
        sent = httpx.post(f"{api.url}/batches", content=ndjson(sites), headers=NDJSON)
        assert sent.status_code == 201, sent.text
        ids.append(sent.json()["batch_id"])
        follow(api, ids[-1])
    rejected = sent.json()["rejected"]
    assert [(r["source"], r["line"]) for r in rejected] == [("<request>", 3)]

    found = httpx.get(f"{api.url}/articles", params={"external_id": "siteC-3"}).json()
    (row,) = found["items"]
    assert (row["url"], row["source"], row["batch_id"]) == (SITES[2]["url"], "site C", ids[1])
    assert row["submitted_from"] == "<request>:2"
    record = httpx.get(f"{api.url}/articles/{row['id']}").json()
    assert (record["id"], record["external_id"], record["content_submissions"]) == (
        row["id"], "siteC-3", 3,
    )  # fmt: skip
    copies = [
        httpx.get(f"{api.url}/articles", params={"external_id": s["id"]}).json()["items"][0]
        for s in SITES
    ]
    assert len({c["id"] for c in copies}) == 3 and len({c["content_id"] for c in copies}) == 1
    listed = httpx.get(f"{api.url}/articles", params={"batch": ids[1]}).json()["items"]
    assert [r["external_id"] for r in listed] == ["siteB-9", "siteC-3"]
    entities = httpx.get(f"{api.url}/entities", params={"batch": ids[1], "top": 50}).json()
    kestrel = next(e for e in entities if e["name"] == "Kestrel Shipping")
    assert (kestrel["articles"], kestrel["contents"]) == (2, 1)
    assert_problem(httpx.get(f"{api.url}/entities", params={"batch": 987654}), 404, "no batch")
    assert_problem(httpx.get(f"{api.url}/articles", params={"batch_id": 1}), 422, "batch_id")


def test_writes_need_the_token_and_reads_do_not(api: Server) -> None:
    body = ndjson(WIRES[:1])
    bare = httpx.post(f"{api.url}/batches", content=body,
                      headers={"Content-Type": "application/x-ndjson"})  # fmt: skip
    assert_problem(bare, 401, "NEWSFLOW_API_TOKEN")
    wrong = httpx.post(
        f"{api.url}/batches", content=body,
        headers={"Content-Type": "application/x-ndjson", "Authorization": "Bearer guess"},
    )  # fmt: skip
    assert_problem(wrong, 401, "not this server's")
    assert_problem(httpx.post(f"{api.url}/batches/1/requeue"), 401)
    assert httpx.get(f"{api.url}/batches").status_code == 200

    sent = httpx.post(f"{api.url}/batches", content=body, headers=NDJSON)
    assert sent.status_code == 201 and sent.json()["submitted"] == 1
    requeued = httpx.post(f"{api.url}/batches/{sent.json()['batch_id']}/requeue", headers=AUTH)
    assert requeued.status_code == 200 and set(requeued.json()) == {"sent", "skipped"}
    assert_problem(httpx.post(f"{api.url}/batches/99999/requeue", headers=AUTH), 404, "no batch")
    elsewhere = {**AUTH, "Origin": "http://evil.example"}  # another site's page, via a browser
    assert_problem(
        httpx.post(f"{api.url}/batches/1/requeue", headers=elsewhere), 403, "another site"
    )
    here = {**AUTH, "Origin": api.url}  # the dashboard's own page
    assert httpx.post(f"{api.url}/batches/1/requeue", headers=here).status_code == 200


def test_every_bad_input_gets_a_reason_and_the_rest_goes_on(api: Server, stack: Stack) -> None:
    # The JSONL lines of tests/test_bad_input.py, as one body: the same reasons, per line.
    mixed = httpx.post(f"{api.url}/batches", content=b"\n".join(MIXED) + b"\n", headers=NDJSON)
    assert mixed.status_code == 201, mixed.text
    got = {r["line"]: r["reason"] for r in mixed.json()["rejected"]}
    assert set(got) == set(MIXED_REJECTED)
    for line, fragment in MIXED_REJECTED.items():
        assert fragment in got[line], (line, got[line])

    # Its bad wire lines among good ones, and a line over the size limit.
    good = [json.dumps({"id": f"w{i}", "text": f"Wire {i}: {STORY}"}).encode() for i in range(40)]
    lines = good[:10] + list(BAD_WIRES) + good[10:] + [b'{"text": "' + b"x" * 3 * LIMIT + b'"}']
    wires = httpx.post(f"{api.url}/batches", content=b"\n".join(lines), headers=NDJSON).json()
    assert wires["submitted"] == 40
    expected = [*BAD_WIRES.values(), f"line is over the size limit of {LIMIT * 2 + 1024:,} bytes"]
    assert [r["line"] for r in wires["rejected"]] == [11, 12, 13, len(lines)]
    for rejection, fragment in zip(wires["rejected"], expected, strict=True):
        assert fragment in rejection["reason"], rejection

    # Its files' contents as a JSON array of records.
    records = [
        {"id": "good", "text": STORY},
        {"id": "empty", "text": ""},
        {"id": "blank", "text": "  \n\t\n "},
        {"id": "nul", "text": "Half a story\x00and binary after it"},
        {"id": "huge", "text": "Endless words about the harbour strike. " * (LIMIT // 20)},
        {"id": "scripts", "html": SCRIPTS_ONLY},
        {"id": "french", "text": FRENCH},
    ]
    array = httpx.post(f"{api.url}/batches", json=records, headers=AUTH)
    assert array.status_code == 201
    reasons = {r["line"]: r["reason"] for r in array.json()["rejected"]}
    assert "empty text" in reasons[2] and "empty text" in reasons[3]
    assert "NUL bytes" in reasons[4]
    assert f"over the limit of {LIMIT:,} bytes" in reasons[5] and "MAX_ARTICLE_BYTES" in reasons[5]
    batch_id = array.json()["batch_id"]
    assert follow(api, batch_id)[-1][0] == "finished"
    outcomes = {
        r.external_id: r
        for r in stack.client.results(Filters(batch_id=batch_id))
        if r.external_id in {"good", "scripts", "french"}
    }
    assert outcomes["good"].status == "done"
    assert "no article text found in the HTML" in (outcomes["scripts"].stages["clean"].error or "")
    assert outcomes["french"].language == "fr"

    # What is wrong with a whole body is a 4xx problem naming it; nothing is stored.
    before = len(httpx.get(f"{api.url}/batches").json())
    photo = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256))
    assert_problem(httpx.post(f"{api.url}/batches", content=photo,
                              headers={**AUTH, "Content-Type": "image/jpeg"}), 415)  # fmt: skip
    assert_problem(httpx.post(f"{api.url}/batches", content=photo,
                              headers={**AUTH, "Content-Type": "application/json"}),
                   400, "not UTF-8")  # fmt: skip
    assert_problem(httpx.post(f"{api.url}/batches", content=b'[{"text": "x"',
                              headers={**AUTH, "Content-Type": "application/json"}),
                   400, "not JSON", "line 1")  # fmt: skip
    assert_problem(httpx.post(f"{api.url}/batches", json={"text": STORY}, headers=AUTH),
                   400, "JSON array")  # fmt: skip
    assert_problem(httpx.post(f"{api.url}/batches", json=[], headers=AUTH), 400, "no records")
    assert_problem(httpx.post(f"{api.url}/batches", content=b"\n\n", headers=NDJSON),
                   400, "no records")  # fmt: skip
    many = ndjson([{"text": STORY}] * (MAX_RECORDS + 1))
    assert_problem(httpx.post(f"{api.url}/batches", content=many, headers=NDJSON),
                   413, f"{MAX_RECORDS:,} records", "NEWSFLOW_MAX_RECORDS")  # fmt: skip
    big = b'{"text": "' + b"y" * (21 * LIMIT) + b'"}'
    assert_problem(httpx.post(f"{api.url}/batches", content=big, headers=NDJSON),
                   413, "NEWSFLOW_MAX_REQUEST_BYTES")  # fmt: skip
    assert len(httpx.get(f"{api.url}/batches").json()) == before

    # And what is wrong with a read.
    assert_problem(httpx.get(f"{api.url}/articles/987654"), 404, "no article 987654")
    assert_problem(httpx.get(f"{api.url}/batches/987654"), 404, "no batch 987654")
    assert_problem(httpx.get(f"{api.url}/batches/987654/events"), 404, "no batch")
    assert_problem(httpx.get(f"{api.url}/articles", params={"limit": 0}), 422, "limit")
    assert_problem(httpx.get(f"{api.url}/articles", params={"status": "lost"}), 422, "status")
    assert_problem(httpx.get(f"{api.url}/articles", params={"cursor": "abc"}), 422, "cursor")
    assert_problem(httpx.get(f"{api.url}/articles", params={"since": "soon"}), 422, "since")
    assert_problem(httpx.get(f"{api.url}/articles", params={"batch": 987654}), 404, "no batch")
    assert_problem(httpx.get(f"{api.url}/articles/abc"), 422)
    assert_problem(httpx.get(f"{api.url}/nowhere"), 404)
    assert api.process.poll() is None


def test_guarded_reads_take_the_token_or_the_dashboard_cookie(stack: Stack, tmp_path: Path) -> None:
    with serving(stack.settings, tmp_path / "serve.log", NEWSFLOW_API_GUARD_READS="true") as api:
        assert_problem(httpx.get(f"{api.url}/articles"), 401, "API token")
        assert_problem(httpx.get(f"{api.url}/"), 401)
        assert httpx.get(f"{api.url}/articles", headers=AUTH).status_code == 200
        cookie = {"newsflow_token": TOKEN}
        assert httpx.get(f"{api.url}/", cookies=cookie).status_code == 200
        assert httpx.get(f"{api.url}/healthz").status_code == 200  # for load balancers
        writing = httpx.post(f"{api.url}/batches", json=[{"text": STORY}], cookies=cookie)
        assert_problem(writing, 401)  # a cookie never authorises a write


def test_serve_refuses_an_open_address_without_a_token(stack: Stack, tmp_path: Path) -> None:
    import subprocess
    import sys

    env = {"NEWSFLOW_DATABASE_URL": stack.settings.database_url, "PATH": "/usr/bin:/bin"}
    command = [sys.executable, "-m", "producer.cli", "serve", "--host", "0.0.0.0"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "NEWSFLOW_API_TOKEN" in result.stderr and "Traceback" not in result.stderr
