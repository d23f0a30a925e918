"""What a reader sees of the extract stage: automatic counts of entity and keyphrase faults.

    python -m bench.entities [--data DIR] [--limit N] [--examples K] [--before REV]

Over the BBC articles of DIR (default ../shared/eval; bbc_news_summary/, sections business,
entertainment and tech), each cleaned and run through the extract stage as a worker runs
it. Counted per 100 articles:
- split labels: one name (case, spaces, hyphens and dots aside) listed under two labels;
- unmerged (ABBR): the text writes "Full Name (ABBR)", the initials match, and the full
  name and the abbreviation are two entities;
- "&" halves: an entity that stops or starts at a "&" between capitalised words
  ("Standard" and "Poor" for Standard & Poor's);
- title glued on: an honorific at the head of any name ("Ms Hessel"), or a title of rank
  at the head of a person's name ("Crown Prince Abdullah");
- unbalanced: a name with an unbalanced bracket or quote, or a quote at its edge;
- common words: a one-word name the article also writes in lower case ("Budget");
- country split: more than one entity for the US ("US", "U.S.", "United States",
  "America") or for the UK in one article; demonym split: "Italian" and "Italians";
- party split / party labels: one party (the bench's own list of British and American
  parties' forms: "Tories", "Conservatives", "Conservative Party"...) as several entities of
  one article, or a party's entity labelled other than ORG;
- club labels: a football or rugby club of the bench's list ("West Ham", "Villa") named in
  an article about sport, labelled other than ORG;
- across one batch (the articles taken 100 at a time): one thing under several names (a
  country, a party) and one name under several labels in its records; and one name
  under several labels in its entity table, where the entity page sums a name's rows
  under the label most of its articles give it (producer.results.top_entities), so
  only the case and spelling variants of a name remain;
- generic keyphrases: a single lower-case word among the top five keyphrases that is
  frequent in English in general (wordfreq Zipf >= 4, about once in 10,000 words or
  more: "economy", "people", "rise"); and all single lower-case words, for reference.

The lists of titles and country names here are the bench's own, written apart from the
worker's rules so that the counts judge them rather than repeat them.

--before REV counts the same articles with the worker code of git revision REV (a
temporary worktree, run in a subprocess) and prints both side by side. The last line is
JSON: {"articles", "after": {count: per 100}, "before": {...}}.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import zip_longest
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SECTIONS = ("business", "entertainment", "tech")

HONORIFICS = {"mr", "mrs", "ms", "miss", "dr", "sir", "dame", "lord", "lady", "prof", "mx"}
RANKS = {
    "president", "prince", "princess", "crown", "king", "queen", "sheikh", "chancellor",
    "minister", "premier", "senator", "governor", "mayor", "judge", "chief", "chairman",
    "chairwoman", "executive", "director", "secretary", "general", "professor", "boss",
    "coach", "manager", "spokesman", "spokeswoman", "actor", "actress", "singer", "star",
}  # fmt: skip
US = {"us", "usa", "unitedstates", "unitedstatesofamerica", "america"}
UK = {"uk", "unitedkingdom", "britain", "greatbritain"}
PARTIES = (
    {"tory", "tories", "conservative", "conservatives", "conservativeparty", "toryparty"},
    {"labour", "labourparty"},
    {"libdem", "libdems", "liberaldemocrat", "liberaldemocrats", "liberaldemocratparty"},
    {"democrats", "democraticparty"},
    {"republicans", "republicanparty", "gop"},
)
CLUBS = {
    "arsenal", "chelsea", "liverpool", "everton", "newcastle", "newcastleunited", "westham",
    "astonvilla", "villa", "blackburn", "blackburnrovers", "tottenham", "spurs", "fulham",
    "middlesbrough", "boro", "bolton", "southampton", "leeds", "leedsunited", "rangers",
    "celtic", "barcelona", "realmadrid", "juventus", "milan", "acmilan", "intermilan",
    "porto", "anderlecht", "saracens", "wasps", "leicester", "bath", "gloucester",
    "munster", "leinster", "manchesterunited", "manunited", "manchestercity", "charlton",
}  # fmt: skip
SPORT = re.compile(r"\b(football|striker|midfielder|goalkeeper|premiership|league|cup|rugby)\b")
BATCH = 100  # articles per batch for the cross-article counts
WORK_LABELS = {"WORK_OF_ART", "PRODUCT", "EVENT", "LAW"}
QUOTES = "\"'‘’“”«»"
COUNTS = {
    "split_labels": "names listed under two labels",
    "abbr_unmerged": 'unmerged "Full Name (ABBR)" pairs',
    "amp_halves": '"&" halves',
    "titles_glued": "titles glued on",
    "unbalanced": "unbalanced brackets or quotes",
    "common_words": "capitalised common words",
    "country_split": "US / UK split into several entities",
    "demonym_split": "demonym singular / plural split",
    "party_split": "a party split into several entities",
    "party_labels": "a party labelled other than ORG",
    "club_labels": "a club labelled other than ORG in sport",
    "batch_names": "one thing under several names in a batch (per 100)",
    "batch_labels": "one name under several labels in a batch's records (per 100)",
    "table_labels": "one name under several labels in a batch's entity table (per 100)",
    "generic_keyphrases": "generic single words in top-5 keyphrases",
    "single_word_keyphrases": "single lower-case words in top-5 keyphrases",
}


@dataclass
class Tally:
    articles: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    examples: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))

    def add(self, kind: str, article: str, example: str, keep: int) -> None:
        self.counts[kind] += 1
        if len(self.examples[kind]) < keep:
            self.examples[kind].append(f"{article}: {example}")

    def per_100(self) -> dict[str, float]:
        n = max(self.articles, 1)
        return {kind: round(100 * self.counts[kind] / n, 1) for kind in COUNTS}


def squash(name: str) -> str:
    """A name without case, spaces, hyphens, dots or a possessive: 'U.S.' -> 'us'."""
    return re.sub(r"[\s.\-’']|[’']s$", "", name.casefold())


def spelled(full: str, abbr: str) -> int | None:
    """Where in `full` the words start whose initials are the capitals of `abbr` (all its
    letters if it has one capital: "Opec"): "International Energy Agency" / "IEA" -> 0,
    "Fiat and General Motors" / "GM" -> 9; None when they do not match."""
    capitals = [c for c in abbr if c.isupper()]
    letters = capitals if len(capitals) >= 2 else [c.upper() for c in abbr if c.isalpha()]
    words = [m for m in re.finditer(r"[\w’'-]+", full) if m.group()[0].isupper()]
    if len(letters) < 2 or len(words) < len(letters):
        return None
    tail = words[-len(letters) :]
    return tail[0].start() if [w.group()[0] for w in tail] == letters else None


def abbreviations(text: str) -> list[tuple[int, int, str]]:
    """(start, end, abbr) of the full names that a bracketed abbreviation follows."""
    found = []
    pattern = r"((?:[A-Z][\w’'-]*(?:\s+(?:of|for|and|the|de|&))*\s+)+)\(([A-Z][A-Za-z&]{1,7})\)"
    for match in re.finditer(pattern, text):
        full, abbr = match.group(1).rstrip(), match.group(2)
        offset = spelled(full, abbr)
        if offset is not None:
            found.append((match.start(1) + offset, match.start(1) + len(full), abbr))
    return found


def judge(
    tally: Tally, article: str, text: str, entities: list[Any], keyphrases: list[Any], keep: int
) -> None:
    """Add one article's faults to the tally."""
    tally.articles += 1
    labels: dict[str, set[str]] = defaultdict(set)
    for entity in entities:
        for form in {entity.name, *entity.aliases}:
            labels[squash(form)].add(entity.label)
    for name, kinds in labels.items():
        if len(kinds) > 1:
            tally.add("split_labels", article, f"{name} as {'/'.join(sorted(kinds))}", keep)

    def owner(start: int, end: int) -> Any:
        for entity in entities:
            if any(m.start < end and start < m.end for m in entity.mentions):
                return entity
        return None

    for start, end, abbr in abbreviations(text):
        full = owner(start, end)
        short = [e for e in entities if abbr in {e.name, *e.aliases}]
        if full is not None and any(e is not full for e in short):
            tally.add("abbr_unmerged", article, f"{text[start:end]!r} / {abbr!r}", keep)

    lower_words = set(re.findall(r"\b[a-z][a-z-]+\b", text))
    for entity in entities:
        name = entity.name
        if any(
            re.match(r"\s*&\s*[A-Z]", text[m.end :])
            or re.search(r"[A-Za-z]\s*&\s*$", text[: m.start])
            for m in entity.mentions
        ) and not (entity.label == "PERSON" and " " in name):  # a person's full name is whole
            tally.add("amp_halves", article, f"{name!r} [{entity.label}]", keep)
        words = name.split()
        head = words[0].casefold().rstrip(".") if len(words) > 1 else ""
        if entity.label not in WORK_LABELS and (
            head in HONORIFICS or (entity.label == "PERSON" and head in RANKS)
        ):
            tally.add("titles_glued", article, f"{name!r} [{entity.label}]", keep)
        if unbalanced(name):
            tally.add("unbalanced", article, f"{name!r} [{entity.label}]", keep)
        if len(words) == 1 and not name.isupper() and name.casefold() in lower_words:
            tally.add("common_words", article, f"{name!r} [{entity.label}]", keep)

    for country in (US, UK):
        named = sorted({e.name for e in entities if squash(e.name) in country})
        if len(named) > 1:
            tally.add("country_split", article, " / ".join(named), keep)
    demonyms = {squash(e.name) for e in entities if e.label == "NORP"}
    for entity in entities:
        if entity.label == "NORP" and squash(entity.name) + "s" in demonyms:
            tally.add("demonym_split", article, f"{entity.name} / {entity.name}s", keep)

    for party in PARTIES:
        named = [e for e in entities if {squash(f) for f in (e.name, *e.aliases)} & party]
        if len(named) > 1:
            tally.add("party_split", article, " / ".join(e.name for e in named), keep)
        for entity in named:
            if entity.label != "ORG":
                tally.add("party_labels", article, f"{entity.name} [{entity.label}]", keep)
    if SPORT.search(text.lower()):
        for entity in entities:
            if squash(entity.name) in CLUBS and entity.label != "ORG":
                tally.add("club_labels", article, f"{entity.name} [{entity.label}]", keep)

    from wordfreq import zipf_frequency

    for phrase in [k.text for k in keyphrases[:5]]:
        if re.fullmatch(r"[a-z][a-z-]*", phrase):
            tally.add("single_word_keyphrases", article, phrase, keep)
            if zipf_frequency(phrase, "en") >= 4.0:
                tally.add("generic_keyphrases", article, phrase, keep)


def _several_labels(tally: Tally, kind: str, batch: str, pairs: Iterable[tuple[str, str]],
                    keep: int) -> None:  # fmt: skip
    """Count each name that `pairs` ((name, label)) give more than one label."""
    labels: dict[str, set[str]] = defaultdict(set)
    for name, label in pairs:
        labels[squash(name)].add(label)
    for name, kinds in labels.items():
        if len(kinds) > 1:
            tally.add(kind, batch, f"{name} as {'/'.join(sorted(kinds))}", keep)


def judge_batch(tally: Tally, batch: str, table: Counter[tuple[str, str]], keep: int) -> None:
    """Add the faults of one batch's entity table ((name, label) -> articles)."""
    _several_labels(tally, "batch_labels", batch, table, keep)
    # The entity page sums a name's rows under the label most of its articles give it.
    listed: dict[str, tuple[int, str]] = {}
    for (name, label), articles in table.items():
        listed[name] = max(listed.get(name, (0, "")), (articles, label))
    listed_pairs = ((name, label) for name, (_, label) in listed.items())
    _several_labels(tally, "table_labels", batch, listed_pairs, keep)
    for thing in (US, UK, *PARTIES):
        names = sorted({n for n, _ in table if squash(n) in thing})
        if len(names) > 1:
            tally.add("batch_names", batch, " / ".join(names), keep)


def unbalanced(name: str) -> bool:
    """A bracket without its partner, an odd number of double quotes, or a quote at the
    name's edge (a final ' may end a plural possessive: "Providers'")."""
    if name[:1] in QUOTES or name[-1:] in QUOTES.replace("'", "").replace("’", ""):
        return True
    pairs = [("(", ")"), ("[", "]"), ("“", "”")]
    return any(name.count(a) != name.count(b) for a, b in pairs) or name.count('"') % 2 == 1


def articles(folder: Path, limit: int | None) -> list[tuple[str, str]]:
    """(id, raw text) of the BBC articles, sections interleaved so that a limit samples
    each of them."""
    sections = [sorted((folder / "News Articles" / name).glob("*.txt")) for name in SECTIONS]
    paths = [p for row in zip_longest(*sections) for p in row if p is not None][:limit]
    return [
        (f"bbc-{p.parent.name}-{p.stem}", p.read_bytes().decode("utf-8", "replace")) for p in paths
    ]


def collect(folder: Path, limit: int | None, keep: int) -> Tally:
    """Run clean + extract over the articles and count what a reader would object to."""
    from worker.clean import clean_article
    from worker.entities import extract_entities
    from worker.keyphrases import extract_keyphrases
    from worker.nlp import get_nlp

    nlp = get_nlp()
    rows = articles(folder, limit)
    cleaned = [(article, clean_article(raw)) for article, raw in rows]
    tally = Tally()
    docs = nlp.pipe((c.text for _, c in cleaned), batch_size=16)
    table: Counter[tuple[str, str]] = Counter()
    for n, ((article, clean), doc) in enumerate(zip(cleaned, docs, strict=True), 1):
        entities = extract_entities(doc, title=clean.title)
        keyphrases = extract_keyphrases(doc, top=10)
        judge(tally, article, clean.text, entities, keyphrases, keep)
        table.update({(e.name, e.label) for e in entities})
        if n % BATCH == 0 or n == len(cleaned):
            judge_batch(tally, f"batch {(n - 1) // BATCH + 1}", table, keep)
            table = Counter()
    return tally


def before(revision: str, args: argparse.Namespace) -> dict[str, Any]:
    """The figures of the worker code at `revision`, from a subprocess over a worktree."""
    with tempfile.TemporaryDirectory(prefix="newsflow-before-") as scratch:
        tree = Path(scratch) / "tree"
        subprocess.run(
            ["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), revision],
            check=True,
            capture_output=True,
        )
        try:
            command = [sys.executable, "-m", "bench.entities", "--code", str(tree)]
            command += ["--data", str(args.data), "--examples", str(args.examples)]
            if args.limit:
                command += ["--limit", str(args.limit)]
            out = subprocess.run(command, cwd=ROOT, check=True, capture_output=True, text=True)
        finally:
            subprocess.run(
                ["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=True
            )
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def report(after: Tally, previous: dict[str, Any] | None, revision: str | None) -> None:
    from rich.console import Console
    from rich.table import Table

    console = Console()
    table = Table(title=f"Entity and keyphrase faults per 100 articles ({after.articles} BBC)")
    table.add_column("fault")
    if previous:
        table.add_column(f"before ({revision})", justify="right")
    table.add_column("now", justify="right")
    figures = after.per_100()
    for kind, label in COUNTS.items():
        cells = [f"{previous['after'][kind]:.1f}"] if previous else []
        table.add_row(label, *cells, f"{figures[kind]:.1f}")
    console.print(table)
    for kind, label in COUNTS.items():
        for title, examples in (
            ("before", (previous or {}).get("examples", {})),
            ("now", after.examples),
        ):
            if examples.get(kind):
                console.print(f"[bold]{label}[/bold], {title}: " + "; ".join(examples[kind]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--limit", type=int, help="articles (default: all)")
    parser.add_argument("--examples", type=int, default=3, help="examples kept per fault")
    parser.add_argument("--before", metavar="REV", help="also count with the code of REV")
    parser.add_argument("--code", type=Path, help=argparse.SUPPRESS)  # --before's subprocess
    args = parser.parse_args()
    folder = args.data / "bbc_news_summary"
    if not folder.is_dir():
        sys.exit(f"no BBC articles under {args.data} (expected bbc_news_summary/)")
    if args.code:  # count with another checkout's worker: its packages come first
        sys.path.insert(0, str(args.code))
        tally = collect(folder, args.limit, args.examples)
        print(json.dumps({"after": tally.per_100(), "examples": tally.examples}))
        return
    previous = before(args.before, args) if args.before else None
    tally = collect(folder, args.limit, args.examples)
    report(tally, previous, args.before)
    result: dict[str, Any] = {"articles": tally.articles, "after": tally.per_100()}
    if previous:
        result["before"] = previous["after"]
    print(json.dumps(result))


if __name__ == "__main__":
    main()
