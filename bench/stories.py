"""Stories: are the copies and versions of one article grouped, and other reports kept apart?

    python -m bench.stories [--data ../shared/eval] [--copies 300] [--seed 7]
                            [--postgres URL] [--sizes 10000,1000000]

The articles are the BBC News articles of the eval data (the development half held
there); without them the bench says so and stops. Measured in this order:

- syndication: every article stored once (the same-category articles that share names
  with one are its hard negatives), then for --copies of them one copy per
  transformation, made here: a wire dateline and credit wrapper, the headline rewritten,
  a cut to 50-70% of the paragraphs, a paragraph added, a paragraph removed, 5% of the
  words edited, an HTML page with site boilerplate around it, and all of these at once.
  Everything goes through the clean stage and the story stage in this process, on
  SQLite. Recall: copies placed in their original's story. Precision: of the pairs of
  texts that share a story, those that are one article;
- the BBC data's own versions: the pairs in SAME_ARTICLE (labelled by hand, rule
  below) should share a story, those in FOLLOW_UPS should not;
- cost: the story stage's seconds per article, and at each of --sizes stored contents
  (band rows of made-up signatures added by SQL, PostgreSQL) the stage's time per
  article and the band lookup's, so the growth shows.

Prints a table, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Callable
from itertools import combinations
from operator import methodcaller
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from sqlalchemy import select, text
from sqlmodel import col

from bench.throughput import scratch_postgres
from newsflow import db
from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.db import session_scope
from newsflow.models import BatchArticle, StoryMember
from producer.sources import from_mapping
from producer.submit import store_batch
from worker import stages
from worker.stages import story

ROOT = Path(__file__).resolve().parent.parent

# Labelled by reading both texts of every pair whose 5-word shingles overlap by a tenth or
# more (of the smaller one) and whose texts differ. The rule: one article when one text is
# the other with edits - the same lead, the same paragraphs in the same order, figures
# updated, words or sentences reworded, paragraphs added or taken out, the headline
# changed or not. Another story when the lead was written anew for a later moment or a
# new angle (before and after an event, the next day's figures), however much background
# the two share. Identical texts are left out: they are one content already.
SAME_ARTICLE = [
    ("tech/048", "tech/342"), ("business/267", "business/365"), ("tech/153", "tech/185"),
    ("tech/061", "tech/321"), ("tech/095", "tech/311"), ("tech/146", "tech/158"),
    ("tech/286", "tech/391"), ("tech/234", "tech/389"), ("tech/155", "tech/294"),
    ("tech/130", "tech/178"), ("tech/007", "tech/060"), ("business/290", "business/438"),
    ("business/286", "business/493"), ("entertainment/058", "entertainment/348"),
    ("tech/212", "tech/225"), ("tech/150", "tech/392"), ("tech/116", "tech/290"),
    ("tech/287", "tech/372"), ("tech/127", "tech/172"), ("entertainment/051", "entertainment/069"),
    ("tech/219", "tech/224"), ("tech/037", "tech/333"), ("tech/045", "tech/341"),
    ("entertainment/062", "entertainment/370"), ("tech/022", "tech/380"), ("tech/064", "tech/338"),
    ("tech/032", "tech/335"), ("tech/049", "tech/340"), ("entertainment/079", "entertainment/331"),
    ("entertainment/102", "entertainment/341"), ("tech/009", "tech/379"),
    ("business/254", "business/447"), ("tech/019", "tech/329"),
    ("entertainment/179", "entertainment/216"), ("entertainment/142", "entertainment/229"),
    ("tech/043", "tech/326"), ("business/260", "business/354"), ("business/209", "business/229"),
]  # fmt: skip
FOLLOW_UPS = [
    ("entertainment/152", "entertainment/163"), ("tech/101", "tech/123"),
    ("entertainment/038", "entertainment/355"), ("tech/018", "tech/190"),
    ("entertainment/143", "entertainment/159"), ("tech/141", "tech/173"),
    ("business/138", "business/152"), ("entertainment/249", "entertainment/251"),
    ("entertainment/007", "entertainment/013"), ("business/010", "business/291"),
    ("business/114", "business/196"), ("tech/030", "tech/342"), ("business/170", "business/248"),
    ("business/374", "business/376"), ("business/279", "business/392"), ("tech/275", "tech/343"),
    ("business/162", "business/251"), ("tech/175", "tech/254"),
    ("entertainment/251", "entertainment/253"), ("entertainment/076", "entertainment/100"),
    ("business/142", "business/180"), ("entertainment/233", "entertainment/234"),
    ("business/264", "business/421"), ("business/065", "business/075"),
]  # fmt: skip

CITIES = ["LONDON", "NEW YORK", "PARIS", "BRUSSELS", "TOKYO", "SYDNEY", "TORONTO", "BERLIN"]
AGENCIES = ["Reuters", "AP", "AFP", "Nordwire", "Bloomberg"]
MONTHS = ["Jan", "Feb", "March", "April", "May", "June", "July", "Aug", "Sept", "Oct"]
HEADLINE_WORDS = ["UPDATE 2-", "Analysis:", "Report:", "Breaking:", "In brief:"]
Article = tuple[str, list[str]]  # (headline, paragraphs)
Made = dict[str, str]  # a submitted record: {"text"} or {"html"}


def load(data: Path) -> dict[str, str]:
    """name ("tech/048") -> text, every BBC article of the eval data."""
    folder = data / "bbc_news_summary" / "News Articles"
    return {
        f"{path.parent.name}/{path.stem}": path.read_text(encoding="utf-8", errors="replace")
        for path in sorted(folder.glob("*/*.txt"))
    }


def parts(raw: str) -> Article:
    lines = [line.strip() for line in raw.splitlines() if line.strip()]
    return lines[0], lines[1:]


def _body(headline: str, paragraphs: list[str]) -> str:
    return "\n\n".join([headline, *paragraphs])


def wire(a: Article, rng: random.Random) -> Made:
    agency = rng.choice(AGENCIES)
    lead = f"{rng.choice(CITIES)}, {rng.choice(MONTHS)} {rng.randint(1, 28)} ({agency}) - "
    credit = f"(Reporting by Jo Marsh; Editing by Sam Hale)\n\nCopyright 2005 {agency}."
    return {"text": _body(a[0], [lead + a[1][0], *a[1][1:], credit])}


def headline(a: Article, rng: random.Random) -> Made:
    words = a[0].split()
    rng.shuffle(words)
    return {"text": _body(f"{rng.choice(HEADLINE_WORDS)} {' '.join(words)}", a[1])}


def cut(a: Article, rng: random.Random) -> Made:
    keep = max(1, round(len(a[1]) * rng.uniform(0.5, 0.7)))
    return {"text": _body(a[0], a[1][:keep])}


def added(a: Article, rng: random.Random, other: list[str]) -> Made:
    paragraphs = list(a[1])
    paragraphs.insert(rng.randint(1, len(paragraphs)), rng.choice(other))
    return {"text": _body(a[0], paragraphs)}


def removed(a: Article, rng: random.Random) -> Made:
    paragraphs = list(a[1])
    if len(paragraphs) > 2:
        paragraphs.pop(rng.randint(1, len(paragraphs) - 1))
    return {"text": _body(a[0], paragraphs)}


def edited(a: Article, rng: random.Random, vocabulary: list[str]) -> Made:
    """5% of the words replaced, dropped or doubled."""
    out = []
    for paragraph in a[1]:
        words = paragraph.split(" ")
        for i in rng.sample(range(len(words)), k=len(words) // 20):
            words[i] = rng.choice([rng.choice(vocabulary), "", f"{words[i]} {words[i]}"])
        out.append(re.sub(" +", " ", " ".join(words)).strip())
    return {"text": _body(a[0], out)}


def html(a: Article, rng: random.Random) -> Made:
    body = "".join(f"<p>{p}</p>" for p in a[1])
    nav = "".join(f"<li><a href='/{s}'>{s.title()}</a></li>" for s in ("news", "sport", "weather"))
    related = "".join(f"<li><a href='/r{i}'>Most read story {i}</a></li>" for i in range(5))
    return {"html": (
        f"<html><head><title>{a[0]} | Daily Courier</title></head><body>"
        f"<header><nav><ul>{nav}</ul></nav></header><main><article><h1>{a[0]}</h1>"
        f"<p class='byline'>By Kim Ode</p>{body}</article>"
        f"<aside><h2>Most read</h2><ul>{related}</ul></aside></main>"
        "<div class='cookies'>We use cookies to improve your experience. Accept all</div>"
        "<footer>Copyright 2005 Daily Courier. All rights reserved.</footer></body></html>"
    )}  # fmt: skip


def everything(a: Article, rng: random.Random, vocabulary: list[str]) -> Made:
    """The wrapper, a cut, edited words, inside an HTML page."""
    text = cut(parts(wire(a, rng)["text"]), rng)["text"]
    return html(parts(edited(parts(text), rng, vocabulary)["text"]), rng)


def transformations(
    other: list[str], vocabulary: list[str]
) -> dict[str, Callable[[Article, random.Random], Made]]:
    return {
        "wire dateline and credit": wire,
        "headline rewritten": headline,
        "cut to 50-70%": cut,
        "paragraph added": lambda a, rng: added(a, rng, other),
        "paragraph removed": removed,
        "5% of words edited": lambda a, rng: edited(a, rng, vocabulary),
        "HTML page with boilerplate": html,
        "all of them at once": lambda a, rng: everything(a, rng, vocabulary),
    }


def process(
    url: str, records: list[dict[str, Any]], settings: Settings
) -> tuple[dict[str, int], float]:
    """Store, clean and place the records in this process; returns (external id ->
    story id, seconds of the story stage per article)."""
    items = (from_mapping(r, source="bench", line=i, limit=10**7) for i, r in enumerate(records))
    _, ids = store_batch(settings, items, name="stories")
    seconds = 0.0
    for start in range(0, len(ids), settings.chunk_size):
        chunk = ids[start : start + settings.chunk_size]
        stages.RUN[Stage.CLEAN](settings, chunk, (), None)
        began = time.perf_counter()
        stages.RUN[Stage.STORY](settings, chunk, (), None)
        seconds += time.perf_counter() - began
    with session_scope(url) as session:
        placed = session.execute(
            select(col(BatchArticle.external_id), col(StoryMember.story_id)).join(
                StoryMember, col(StoryMember.article_id) == col(BatchArticle.article_id)
            )
        ).all()
    return {str(e): s for e, s in placed}, seconds / max(1, len(ids))


def pair_precision(placed: dict[str, int], root: Callable[[str], str],
                   involving: Callable[[str], bool]) -> tuple[int, int]:  # fmt: skip
    """(pairs in one story that are one article, pairs in one story), over pairs with a
    text that `involving` picks."""
    members: dict[int, list[str]] = defaultdict(list)
    for name, story_id in placed.items():
        members[story_id].append(name)
    right = total = 0
    for names in members.values():
        for a, b in combinations(names, 2):
            if involving(a) or involving(b):
                total += 1
                right += root(a) == root(b)
    return right, total


def syndication(texts: dict[str, str], copies: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    labelled = {n for pair in SAME_ARTICLE + FOLLOW_UPS for n in pair}
    seen: set[str] = set()
    originals = []
    for name, raw in texts.items():
        if name not in labelled and raw not in seen and len(parts(raw)[1]) >= 3:
            seen.add(raw)
            originals.append(name)
    paragraphs = [p for n in originals for p in parts(texts[n])[1]]
    vocabulary = sorted({w for p in paragraphs[:2000] for w in p.split() if w.isalpha()})
    # An added paragraph is one of paragraph size (some BBC files hold a whole article on
    # one line: adding that would make a copy that contains another article).
    made = transformations([p for p in paragraphs if 100 <= len(p) <= 400], vocabulary)
    chosen = rng.sample(originals, min(copies, len(originals)))
    records: list[dict[str, Any]] = [{"id": n, "text": texts[n]} for n in originals]
    records += [{"id": n, "text": texts[n]} for n in sorted(labelled)]
    for kind, transform in made.items():
        for name in chosen:
            records.append({"id": f"{kind}|{name}", **transform(parts(texts[name]), rng)})
    home = Path(tempfile.mkdtemp(prefix="nf-stories-"))
    url = f"sqlite:///{home / 'stories.db'}"
    db.upgrade(url)
    settings = Settings(database_url=url, chunk_size=32)
    placed, per_article = process(url, records, settings)

    def root(name: str) -> str:
        return name.split("|", 1)[-1]

    rows: dict[str, dict[str, Any]] = {}
    for kind in made:
        found = [placed.get(f"{kind}|{n}") for n in chosen]
        recall = sum(
            f is not None and f == placed.get(n) for f, n in zip(found, chosen, strict=True)
        )
        of_kind = methodcaller("startswith", f"{kind}|")
        right, total = pair_precision(placed, root, of_kind)
        rows[kind] = {"recall": round(recall / len(chosen), 4),
                      "precision": round(right / total, 4) if total else 1.0,
                      "copies": len(chosen), "pairs": total}  # fmt: skip
    versions = sum(placed.get(a) is not None and placed.get(a) == placed.get(b)
                   for a, b in SAME_ARTICLE)  # fmt: skip
    apart = sum(placed.get(a) != placed.get(b) or placed.get(a) is None for a, b in FOLLOW_UPS)
    same = {frozenset(pair) for pair in SAME_ARTICLE}
    members: dict[int, list[str]] = defaultdict(list)
    for name, story_id in placed.items():
        if "|" not in name:
            members[story_id].append(name)
    unlabelled = [(a, b) for names in members.values() for a, b in combinations(sorted(names), 2)
                  if frozenset((a, b)) not in same and texts[a] != texts[b]]  # fmt: skip
    return {
        "stored": len(records),
        "transformations": rows,
        "bbc versions grouped": f"{versions}/{len(SAME_ARTICLE)}",
        "bbc follow-ups apart": f"{apart}/{len(FOLLOW_UPS)}",
        "other bbc pairs grouped": len(unlabelled),
        "other bbc pairs": [f"{a} {b}" for a, b in unlabelled[:20]],
        "stage ms/article": round(per_article * 1000, 2),
    }


def growth(url: str, texts: dict[str, str], sizes: list[int]) -> dict[str, Any]:
    """The stage and its band lookup at each size of the band index: the index filled by
    SQL with made-up band hashes (pointing at one stored content) to `size` contents."""
    db.upgrade(url)
    settings = Settings(database_url=url, chunk_size=32)
    names = list(texts)
    fresh = iter(range(0, len(names), 64))
    first = [{"id": n, "text": texts[n]} for n in names[next(fresh) :][:64]]
    process(url, first, settings)
    figures: dict[str, Any] = {}
    filled = 0
    for size in sizes:
        with session_scope(url) as session:
            session.execute(text(
                "INSERT INTO story_bands (hash, article_id) SELECT "
                "(random() * 9.2e18)::bigint, 1 FROM generate_series(1, :rows) "
                "ON CONFLICT DO NOTHING"
            ), {"rows": (size - filled) * story.BANDS})  # fmt: skip
            session.execute(text("ANALYZE story_bands"))
        filled = size
        batch = [{"id": f"g{size}-{n}", "text": texts[n]} for n in names[next(fresh) :][:64]]
        _, per_article = process(url, batch, settings)
        lookups = []
        for n in names[-50:]:
            found = story.fingerprint(texts[n])
            if found is None:
                continue
            with session_scope(url) as session:
                began = time.perf_counter()
                story._stored(session, sorted(set(found.bands)))
                lookups.append(time.perf_counter() - began)
        figures[str(size)] = {
            "stage ms/article": round(per_article * 1000, 2),
            "band lookup p50 ms": round(statistics.median(lookups) * 1000, 2),
        }
    first_size, last_size = figures[str(sizes[0])], figures[str(sizes[-1])]
    figures["growth"] = round(last_size["stage ms/article"] / first_size["stage ms/article"], 2)
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--copies", type=int, default=300)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument(
        "--postgres", default="postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    )
    parser.add_argument("--sizes", default="10000,1000000")
    args = parser.parse_args()
    texts = load(args.data)
    if not texts:
        sys.exit(f"no BBC articles under {args.data}: this bench needs the eval data")
    console = Console()
    result = syndication(texts, args.copies, args.seed)
    with scratch_postgres(args.postgres) as url:
        result["growth"] = growth(url, texts, [int(s) for s in args.sizes.split(",")])
    table = Table(title=f"Stories ({result['stored']} texts stored)")
    for column in ("transformation", "recall", "precision", "copies", "pairs in stories"):
        table.add_column(column)
    for kind, row in result["transformations"].items():
        table.add_row(kind, f"{row['recall']:.3f}", f"{row['precision']:.3f}", str(row["copies"]),
                      str(row["pairs"]))  # fmt: skip
    console.print(table)
    for key in ("bbc versions grouped", "bbc follow-ups apart", "other bbc pairs grouped",
                "stage ms/article"):  # fmt: skip
        console.print(f"{key}: {result[key]}")
    for size, row in result["growth"].items():
        console.print(f"stored {size}: {row}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
