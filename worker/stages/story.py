"""The story stage: every copy, cut and updated version of one article in one story.

A text is its set of word shingles (SHINGLE words in a row, casefolded, punctuation
dropped), summarised by a MinHash signature of PERMUTATIONS values. Its BANDS bands of
ROWS values each, and LEAD_BANDS of its lead's signature, are hashed into story_bands,
the index in the database: every worker
on every machine reads and writes the same one in the stage's transaction, and a restart
loses nothing. The contents that share a band with a new text are its candidates; each
is checked on the signatures:

- Jaccard, the share of signature values the two have in common, estimates |A∩B|/|A∪B|:
  a copy with a new dateline, a reworded sentence or a paragraph added or taken out;
- containment, the estimated share of the shorter text's shingles found in the longer:
  a copy cut to its first paragraphs has half the longer one's Jaccard, but all of its
  shingles are in it. It counts when the shorter text is at least MIN_SHARE of the
  longer, so that a paragraph or two quoted in a long analysis do not make one story.

How groups form: a text joins the story of its best match (highest containment, then
Jaccard, then the lowest content id), or starts a story of its own; stories never merge,
so an id once given stays, and a text that matches two stories joins the best one. A
follow-up that quotes the first report shares a few sentences with it, far under both
thresholds, and stays apart.

Concurrency: the transaction takes a lock on each of its band hashes, in hash order,
before it looks for candidates (PostgreSQL advisory locks; SQLite's write lock, taken at
BEGIN IMMEDIATE, serialises the whole stage). Two copies processed at the same moment
share a band, so the second waits for the first to commit and then finds it.

Why not the datasketch package: importing it imports scipy, 63 MB in every worker
process (the worker's budget is 300 MB); MinHash itself is the few lines of numpy below.
"""

from __future__ import annotations

import re
import zlib
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from hashlib import blake2b

import numpy as np
from sqlalchemy import delete, func, text, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col

from newsflow import tallies
from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.db import insert, session_scope
from newsflow.models import Article, Story, StoryBand, StoryMember
from worker import store
from worker.stages.base import ChunkResult, Interrupt, NoInterrupt, attempt, begin_cleaned
from worker.store import Outcome

SHINGLE = 5  # words per shingle: rarely shared by two different reports
BANDS, ROWS = 42, 3  # a pair at Jaccard 0.35 shares a band with p = 0.84, at 0.5 p = 0.996
PERMUTATIONS = BANDS * ROWS
LEAD_WORDS, LEAD_BANDS = 60, 14  # the lead's own bands, for cut copies
MIN_SHINGLES = 8  # fewer: too short to tell a copy from a coincidence
MIN_SHARE = 0.15  # containment counts when the shorter text is this share of the longer
CANDIDATES = 500  # at most this many contents checked per text (the largest stories)
_PRIME = (1 << 31) - 1  # a*x + b mod a 31-bit prime: exact in uint64
_permutations = np.random.default_rng(20261202)
_A = _permutations.integers(1, _PRIME, PERMUTATIONS, dtype=np.uint64)
_B = _permutations.integers(0, _PRIME, PERMUTATIONS, dtype=np.uint64)
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Print:
    """A text's fingerprint: how many shingles, their signature and its band hashes."""

    shingles: int
    signature: np.ndarray
    bands: tuple[int, ...]


def _shingles(words: list[str]) -> set[int]:
    return {
        zlib.crc32(" ".join(words[i : i + SHINGLE]).encode())
        for i in range(max(0, len(words) - SHINGLE + 1))
    }


def _signature(shingles: set[int]) -> np.ndarray:
    values = np.fromiter(shingles, dtype=np.uint64, count=len(shingles)) % _PRIME
    return ((np.outer(values, _A) + _B) % _PRIME).min(axis=0).astype(np.uint32)


def fingerprint(body: str) -> Print | None:
    """The text's fingerprint, or None when it has fewer than MIN_SHINGLES shingles. Its
    bands: BANDS of the whole text's signature, then LEAD_BANDS of its lead's (the first
    LEAD_WORDS words), which finds a copy cut to its first paragraphs even when that is
    a small part of the whole: their Jaccard is low, their leads are one."""
    words = _WORD.findall(body.casefold())
    shingles = _shingles(words)
    if len(shingles) < MIN_SHINGLES:
        return None
    signature = _signature(shingles)
    lead = _signature(_shingles(words[:LEAD_WORDS]))
    bands = band_hashes(signature, BANDS) + band_hashes(lead, LEAD_BANDS, first=BANDS)
    return Print(len(shingles), signature, bands)


def band_hashes(signature: np.ndarray, bands: int, *, first: int = 0) -> tuple[int, ...]:
    """One signed 64-bit hash per band of ROWS values, the band's number mixed in."""
    return tuple(
        int.from_bytes(
            blake2b(signature[b * ROWS : (b + 1) * ROWS].tobytes(), digest_size=8,
                    salt=(first + b).to_bytes(16, "big")).digest(),
            "big",
            signed=True,
        )
        for b in range(bands)
    )  # fmt: skip


def likeness(a: Print, b: Print) -> tuple[float, float]:
    """(containment of the shorter in the longer, Jaccard), both estimated."""
    jaccard = float(np.count_nonzero(a.signature == b.signature)) / PERMUTATIONS
    smaller = min(a.shingles, b.shingles)
    shared = jaccard * (a.shingles + b.shingles) / (1 + jaccard)
    return min(1.0, shared / smaller), jaccard


def same_story(a: Print, b: Print, settings: Settings) -> tuple[float, float] | None:
    """(similarity, Jaccard) when a and b are one article, else None."""
    similarity, jaccard = likeness(a, b)
    share = min(a.shingles, b.shingles) / max(a.shingles, b.shingles)
    if jaccard >= settings.story_jaccard or (
        similarity >= settings.story_containment and share >= MIN_SHARE
    ):
        return similarity, jaccard
    return None


_TOO_SHORT = (
    f"too short to compare with other texts (under {MIN_SHINGLES} runs of {SHINGLE} "
    "words): not grouped into a story"
)


def run(
    settings: Settings,
    article_ids: Sequence[int],
    interrupt: Interrupt = NoInterrupt,
    claim: str | None = None,
) -> ChunkResult:
    """Fingerprint the cleaned articles and place each in its story."""
    cleaned, resend = begin_cleaned(settings, Stage.STORY, article_ids, claim)
    if not cleaned:
        return ChunkResult(resend=resend)
    outcomes = []
    for row in cleaned:
        outcome = attempt(settings, row.id, interrupt, fingerprint, row.text)
        if outcome.output is None and not outcome.error:
            outcome.skipped = _TOO_SHORT
        outcomes.append(outcome)
    with session_scope(settings.database_url) as session:
        save(session, outcomes, settings)
    return ChunkResult(stored=len(outcomes), resend=resend)


@dataclass
class _Member:
    article_id: int
    story_id: int
    print: Print


def save(session: Session, outcomes: Sequence[Outcome], settings: Settings) -> None:
    """Place each fingerprinted article in its story, in id order, replacing any place it
    had (a reprocess): candidates from the band index and from this chunk itself."""
    ids = sorted(o.article_id for o in outcomes)
    store.lock(session, stage=Stage.STORY, article_ids=ids)
    placed = sorted((o for o in outcomes if o.output is not None and not o.error),
                    key=lambda o: o.article_id)  # fmt: skip
    hashes = sorted({h for o in placed for h in o.output.bands})
    _lock_bands(session, hashes)  # before any story row: every placement locks in this order
    _leave(session, ids)
    index, members = _stored(session, hashes)  # band hash -> contents; this chunk's join them
    arrived = _arrivals(session, [o.article_id for o in placed])
    sizes: dict[int, int] = {}
    rows: list[dict[str, object]] = []
    bands: list[dict[str, int]] = []
    for o in placed:
        found: Print = o.output
        best: tuple[float, float, int] | None = None
        for other in sorted({i for h in found.bands for i in index.get(h, ())})[:CANDIDATES]:
            alike = same_story(found, members[other].print, settings)
            if alike and (
                best is None or (alike[0], alike[1], -other) > (best[0], best[1], -best[2])
            ):
                best = (alike[0], alike[1], other)
        if best is None:
            story_id = _new_story(session, o.article_id, arrived[o.article_id])
            similarity, jaccard, matched = 1.0, 1.0, None
        else:
            similarity, jaccard, matched = best
            story_id = members[matched].story_id
            _seen(session, story_id, arrived[o.article_id])
            sizes[story_id] = sizes.get(story_id, 0) + 1
        members[o.article_id] = _Member(o.article_id, story_id, found)
        for h in found.bands:
            index.setdefault(h, set()).add(o.article_id)
        rows.append({"article_id": o.article_id, "story_id": story_id, "matched_id": matched,
                     "similarity": round(similarity, 4), "jaccard": round(jaccard, 4),
                     "shingles": found.shingles,
                     "signature": found.signature.tobytes()})  # fmt: skip
        bands.extend({"hash": h, "article_id": o.article_id} for h in sorted(set(found.bands)))
    if rows:
        session.execute(insert(session, StoryMember), rows)
        session.execute(insert(session, StoryBand), bands)
    for story_id, n in sorted(sizes.items()):
        _grow(session, story_id, n)
    store.save_stages(session, stage=Stage.STORY, outcomes=outcomes)
    tallies.settle(session, ids)


def _leave(session: Session, ids: Sequence[int]) -> None:
    """Take these contents out of their stories (a story left empty goes)."""
    left = session.execute(
        select_columns(col(StoryMember.story_id), func.count())
        .where(col(StoryMember.article_id).in_(ids))
        .group_by(col(StoryMember.story_id))
        .order_by(col(StoryMember.story_id))
    ).all()
    if not left:
        return
    session.execute(delete(StoryBand).where(col(StoryBand.article_id).in_(ids)))
    session.execute(delete(StoryMember).where(col(StoryMember.article_id).in_(ids)))
    for story_id, n in left:
        _grow(session, story_id, -n)
    session.execute(
        delete(Story).where(col(Story.id).in_([s for s, _ in left]), col(Story.size) <= 0)
    )


def _grow(session: Session, story_id: int, members: int) -> None:
    session.execute(
        update(Story).where(col(Story.id) == story_id).values(size=col(Story.size) + members)
    )


_ADVISORY = text(
    "SELECT count(pg_advisory_xact_lock(h)) FROM unnest(CAST(:hashes AS bigint[])) AS h"
)


def _lock_bands(session: Session, hashes: Sequence[int]) -> None:
    """Hold each band hash until the transaction ends, in hash order (PostgreSQL: on SQLite
    the write lock taken at BEGIN IMMEDIATE already serialises writers)."""
    if hashes and session.get_bind().dialect.name == "postgresql":
        session.execute(_ADVISORY, {"hashes": list(hashes)})


def _stored(
    session: Session, hashes: Sequence[int]
) -> tuple[dict[int, set[int]], dict[int, _Member]]:
    """The band index's entries for these hashes, and the stored members they name."""
    index: dict[int, set[int]] = {}
    for page in tallies.pages(hashes):
        query = select_columns(col(StoryBand.hash), col(StoryBand.article_id)).where(
            col(StoryBand.hash).in_(page)
        )
        for h, article_id in session.execute(query):
            index.setdefault(h, set()).add(article_id)
    members: dict[int, _Member] = {}
    for page in tallies.pages({i for named in index.values() for i in named}):
        rows = session.execute(
            select_columns(col(StoryMember.article_id), col(StoryMember.story_id),
                           col(StoryMember.shingles), col(StoryMember.signature))
            .where(col(StoryMember.article_id).in_(page))
        )  # fmt: skip
        for article_id, story_id, shingles, signature in rows:
            found = Print(shingles, np.frombuffer(signature, dtype=np.uint32), ())
            members[article_id] = _Member(article_id, story_id, found)
    return index, members


def _arrivals(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """When each content arrived, as ISO 8601 UTC to the second."""
    rows = session.execute(
        select_columns(col(Article.id), col(Article.created_at)).where(col(Article.id).in_(ids))
    )
    return {i: _iso(moment) for i, moment in rows}


def _iso(moment: datetime) -> str:
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _new_story(session: Session, article_id: int, arrived: str) -> int:
    """A story of one member, this content; its id."""
    created = insert(session, Story).values(first_article_id=article_id, size=1, first_seen=arrived)
    return int(session.execute(created.returning(col(Story.id))).scalar_one())


def _seen(session: Session, story_id: int, arrived: str) -> None:
    """The story's first_seen moves earlier when an earlier copy joins it late."""
    session.execute(
        update(Story)
        .where(col(Story.id) == story_id, col(Story.first_seen) > arrived)
        .values(first_seen=arrived)
    )
