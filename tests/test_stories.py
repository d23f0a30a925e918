"""The story stage: copies, cuts and updated versions of one article grouped, other
reports kept apart, through real workers on both databases, and one story when two
copies are placed at the same moment."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import delete, func, select, text

from newsflow import tallies
from newsflow.config import Settings
from newsflow.db import session_scope
from newsflow.models import StageRow, Story, StoryMember
from newsflow.record import ArticleRecord, Filters
from producer.sources import from_mapping
from producer.submit import store_batch
from tests.conftest import Stack, fresh_database, wait_for
from worker import stages
from worker.stages.story import fingerprint, same_story

PARAGRAPHS = [
    "The harbour authority of Port Kessing said on Tuesday that it would close the old "
    "grain terminal by the end of next year and move its cargo to a new deep-water quay "
    "north of the city.",
    "The move, which has been debated for a decade, will cost about 310 million crowns and "
    "is meant to let larger ships dock without waiting for the tide, the authority's "
    "director Malin Estervik told reporters at a briefing.",
    "Dock workers' unions said they had not been consulted and warned that as many as 400 "
    "jobs could be lost when the terminal shuts, although the authority promised that "
    "every worker would be offered a place at the new quay.",
    "Local shop owners near the old terminal fear that the closure will empty the "
    "waterfront district, where cafes and chandlers have served sailors for more than a "
    "century and where the weekly fish market still draws crowds.",
    "The city council is expected to vote on a plan for the empty site in the spring, with "
    "proposals ranging from housing and a maritime museum to a park along the water that "
    "would open the shore to the public for the first time.",
]
ORIGINAL = "\n\n".join(PARAGRAPHS)
SYNDICATED = "PORT KESSING, March 3 (Nordwire) - " + ORIGINAL + "\n\n(Reporting by Ana Lind)"
CUT = "\n\n".join(PARAGRAPHS[:3])
UPDATED = "\n\n".join(
    [
        PARAGRAPHS[0],
        PARAGRAPHS[1].replace("310 million", "325 million"),
        PARAGRAPHS[2],
        "The authority's board approved the budget late on Tuesday by seven votes to two, "
        "with the two members appointed by the unions voting against it.",
        *PARAGRAPHS[3:],
    ]
)
FOLLOW_UP = (
    "Dock workers in Port Kessing walked out on Thursday in protest at the plan to close the "
    "old grain terminal, halting the loading of two ships for most of the day.\n\n"
    "Union leaders said they had not been consulted and warned that as many as 400 jobs "
    "could be lost when the terminal shuts. The strike is the first at the port since 2011, "
    "and the union said it would go on until the authority agreed to talks.\n\n"
    "A spokesman for the harbour authority said it regretted the walkout and that its offer "
    "of a place at the new quay for every worker still stood. Police reported no incidents "
    "outside the gates, where several hundred people gathered in the rain."
)
OTHER = (
    "The national weather office warned of heavy snow across the northern valleys on "
    "Wednesday, with up to forty centimetres expected on high ground and strong winds that "
    "could close mountain passes. Rail operators said some night trains would be cancelled "
    "and drivers were told to carry chains and to avoid travel after dark unless necessary."
)
SAME = {"original": ORIGINAL, "syndicated": SYNDICATED, "cut": CUT, "updated": UPDATED}
APART = {"follow-up": FOLLOW_UP, "other": OTHER}


def test_copies_cuts_and_updates_match_and_other_reports_do_not() -> None:
    settings = Settings()
    first = fingerprint(ORIGINAL)
    assert first is not None
    for name, body in SAME.items():
        found = fingerprint(body)
        assert found is not None and same_story(first, found, settings), name
    for name, body in APART.items():
        found = fingerprint(body)
        assert found is not None and same_story(first, found, settings) is None, name
    assert fingerprint("Too short to tell.") is None


def _stories_of(records: list[ArticleRecord]) -> dict[str, int | None]:
    return {r.external_id or "": r.story.id if r.story else None for r in records}


def test_copies_form_one_story_through_the_workers(stack: Stack) -> None:
    client = stack.client
    submitted = {**SAME, **APART, "short": "Markets were closed for the holiday."}
    batch = client.submit([{"id": name, "text": body} for name, body in submitted.items()])
    stack.wait(batch.id)
    records = list(client.results(Filters(batch_id=batch.id)))
    story = _stories_of(records)
    shared = {story[name] for name in SAME}
    assert len(shared) == 1 and None not in shared, story
    (story_id,) = shared
    assert story["follow-up"] not in (None, story_id) and story["other"] not in (None, story_id)
    assert story["short"] is None
    by_name = {r.external_id: r for r in records}
    assert (
        by_name["short"].status == "done" and by_name["short"].stages["story"].status == "skipped"
    )
    assert all(r.status == "done" for r in records)
    assert by_name["original"].story is not None and by_name["original"].story.size == len(SAME)

    # The listing, a story's page and the filter agree.
    (top,) = [s for s in client.stories(batch_id=batch.id) if s.id == story_id]
    assert (top.size, top.records) == (len(SAME), len(SAME))
    detail = client.story(story_id)
    assert sorted(c.id for c in detail.copies) == sorted(by_name[n].id for n in SAME)
    assert detail.copies[0].first and sum(c.first for c in detail.copies) == 1
    assert all(0 < c.similarity <= 1 for c in detail.copies)
    listed, _ = client.rows(Filters(story=story_id))
    assert sorted(r.id for r in listed) == sorted(by_name[n].id for n in SAME)
    env = {**os.environ, "NEWSFLOW_DATABASE_URL": stack.settings.database_url,
           "NEWSFLOW_BROKER_URL": stack.settings.broker()}  # fmt: skip
    cli = [sys.executable, "-m", "producer.cli", "results"]
    shown = json.loads(subprocess.run([*cli, "stories", "--batch", str(batch.id), "--json"],
                                      env=env, capture_output=True, check=True).stdout)  # fmt: skip
    assert [s["id"] for s in shown] == [story_id] and shown[0]["records"] == len(SAME)
    rows = json.loads(subprocess.run([*cli, "list", "--story", str(story_id), "--json"],
                                     env=env, capture_output=True, check=True).stdout)  # fmt: skip
    assert sorted(r["id"] for r in rows) == sorted(by_name[n].id for n in SAME)

    # Export (on PostgreSQL written by the database itself) carries the same story.
    out = io.StringIO()
    client.export(out, Filters(batch_id=batch.id))
    exported = {json.loads(line)["external_id"]: json.loads(line)["story"] for line in
                out.getvalue().splitlines()}  # fmt: skip
    assert exported["cut"]["id"] == story_id and exported["short"] is None
    assert exported["cut"] == by_name["cut"].model_dump(mode="json")["story"]

    # Run again, the stage leaves each text where it was, once.
    client.reprocess(batch_id=batch.id, stages=["story"])
    stack.wait(batch.id)
    again = _stories_of(list(client.results(Filters(batch_id=batch.id))))
    (story_id,) = {again[name] for name in SAME}
    assert story_id is not None and client.story(story_id).size == len(SAME)
    assert again["follow-up"] not in (None, story_id)
    url = stack.settings.database_url
    with session_scope(url) as session:
        members = session.execute(select(func.count()).select_from(StoryMember)).scalar_one()
        sizes = session.execute(select(func.sum(Story.size))).scalar_one()
        assert members == sizes

    # An article with no row of the story stage (stored before the stage existed) is done.
    content = by_name["other"].content_id
    with session_scope(url) as session:
        session.execute(delete(StageRow).where(StageRow.article_id == content,
                                               StageRow.stage == "story"))  # fmt: skip
        tallies.settle(session, [content])
    assert client.record(by_name["other"].id).status == "done"
    # A requeue of its batch adds the stage it never had, and places it.
    client.requeue(batch_id=batch.id)
    stack.wait(batch.id)
    wait_for(lambda: client.record(by_name["other"].id).story is not None, timeout=60)


def _place(settings: Settings, article_id: int, start: threading.Barrier,
           errors: list[BaseException]) -> None:  # fmt: skip
    try:
        start.wait()
        stages.RUN["story"](settings, [article_id], (), None)
    except BaseException as exc:
        errors.append(exc)


# Every story insert waits a second, so that two placements overlap for certain.
SLOW_STORIES = """
CREATE OR REPLACE FUNCTION nf_slow_story() RETURNS trigger AS $$
BEGIN PERFORM pg_sleep(1); RETURN NEW; END $$ LANGUAGE plpgsql;
CREATE TRIGGER nf_slow_story BEFORE INSERT ON stories
  FOR EACH ROW EXECUTE FUNCTION nf_slow_story();
"""


@pytest.fixture
def postgres_url(tmp_path: Path) -> Iterator[str]:
    """A fresh PostgreSQL database: SQLite's write lock serialises the stage, so the race
    is PostgreSQL's."""
    yield from fresh_database("postgres", tmp_path)


@pytest.mark.integration
def test_two_copies_placed_at_once_make_one_story(postgres_url: str) -> None:
    database_url = postgres_url
    settings = Settings(database_url=database_url)
    records = [from_mapping({"id": n, "text": t}, source="test", line=i, limit=10**6)
               for i, (n, t) in enumerate([("a", ORIGINAL), ("b", SYNDICATED)])]  # fmt: skip
    _, ids = store_batch(settings, records, name="race")
    stages.RUN["clean"](settings, ids, (), None)
    with session_scope(database_url) as session:
        session.execute(text(SLOW_STORIES))
    start, errors = threading.Barrier(2), []
    threads = [threading.Thread(target=_place, args=(settings, i, start, errors)) for i in ids]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert not errors, errors
    with session_scope(database_url) as session:
        placed = session.execute(select(StoryMember.article_id, StoryMember.story_id)).all()
        assert sorted(a for a, _ in placed) == sorted(ids)
        assert len({s for _, s in placed}) == 1, placed
        assert session.execute(select(Story.size)).scalars().all() == [2]
