"""Summary quality: ours against LEAD-k and TextRank-k, side by side, with ROUGE.

    python -m bench.summaries [--cnndm FILE] [--bbc DIR] [--limit N]

Defaults read ../shared/eval/cnndm/cnndm.jsonl and ../shared/eval/bbc_news_summary when
present. Method, the same for every system:
- ROUGE-1, ROUGE-2, ROUGE-Lsum F1 x100 (rouge-score, use_stemmer=True), the summary's
  sentences separated by newlines; CNN/DM references are split on " . " into sentences,
  BBC references on a full stop followed by a capital letter;
- length k: 3 sentences on CNN/DM; on BBC the reference's own sentence count;
- LEAD-k: the first k sentences of the article body (the BBC title line left out), split
  by spaCy's rule-based sentencizer per paragraph, the same splitter ours uses;
- TextRank-k: pytextrank over en_core_web_sm, k sentences, in article order;
- ours: the newsflow clean stage on the raw article, then the summarize stage;
- (ours - LEAD) is given with a bootstrap 95% interval over articles (1,000 resamples);
- articles/s: the summarize stage (split + choose, on the clean stage's output), LEAD,
  TextRank, and the extract stage (spaCy + entities + keyphrases) on the same clean
  texts, for scale; the clean stage runs before any clock starts.
Prints a table per data set, then one JSON line.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table
from rouge_score import rouge_scorer

from worker.clean import clean_article
from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases
from worker.nlp import get_nlp, get_sentencizer
from worker.summarize import split_sentences, summarize

ROOT = Path(__file__).resolve().parent.parent
METRICS = ("rouge1", "rouge2", "rougeLsum")
Item = dict[str, Any]  # {"raw", "body", "reference": [sentences], "k"}


def cnndm(path: Path, limit: int | None) -> list[Item]:
    items = []
    for line in path.read_text(encoding="utf-8").splitlines()[:limit]:
        row = json.loads(line)
        reference = [s.strip() + " ." for s in row["reference"].split(" . ") if s.strip(" .")]
        items.append(
            {"raw": row["article"], "body": row["article"], "reference": reference, "k": 3}
        )
    return items


def bbc(folder: Path, limit: int | None) -> list[Item]:
    items = []
    for article in sorted((folder / "News Articles").glob("*/*.txt"))[:limit]:
        summary = folder / "Summaries" / article.parent.name / article.name
        raw = article.read_bytes().decode("utf-8", "replace")
        text = summary.read_bytes().decode("utf-8", "replace").strip()
        reference = [
            s.strip() for s in re.split(r"(?<=[.!?])(?=[A-Z\"'])|(?<=[.!?])\s+", text) if s.strip()
        ]
        body = raw.split("\n", 1)[1] if "\n" in raw else raw
        items.append({"raw": raw, "body": body, "reference": reference, "k": len(reference)})
    return items


def lead(item: Item) -> list[str]:
    return [s.text for s in split_sentences(get_sentencizer(), item["body"].strip())[: item["k"]]]


def prepare(items: list[Item]) -> None:
    """The clean stage, once per article, before any clock starts (it is its own stage)."""
    for item in items:
        item["clean"] = clean_article(item["raw"])


def ours(item: Item) -> list[str]:
    cleaned = item["clean"]
    sentences = split_sentences(get_sentencizer(), cleaned.text)
    chosen = summarize(sentences, title=cleaned.title, length=item["k"], text=cleaned.text)
    return [s.text for s in chosen]


def textrank_nlp() -> Any:
    """The extract stage's spaCy model with pytextrank on top, for the baselines."""
    import pytextrank  # noqa: F401  (registers the "textrank" factory)
    import spacy

    from newsflow.config import Settings

    nlp = spacy.load(Settings().model_name())
    nlp.add_pipe("textrank")
    return nlp


def textrank(nlp: Any) -> Callable[[Item], list[str]]:
    def run(item: Item) -> list[str]:
        doc = nlp(item["body"].strip())
        spans = doc._.textrank.summary(limit_sentences=item["k"], preserve_order=True)
        return [" ".join(span.text.split()) for span in spans]

    return run


def extract_stage(item: Item) -> None:
    cleaned = item["clean"]
    doc = get_nlp()(cleaned.text)
    extract_entities(doc, title=cleaned.title)
    extract_keyphrases(doc)


def score(
    items: list[Item], system: Callable[[Item], list[str]]
) -> tuple[list[dict[str, float]], float]:
    scorer = rouge_scorer.RougeScorer(list(METRICS), use_stemmer=True)
    outputs, started = [], time.perf_counter()
    for item in items:
        outputs.append(system(item))
    per_s = len(items) / (time.perf_counter() - started)
    scores = []
    for item, output in zip(items, outputs, strict=True):
        result = scorer.score("\n".join(item["reference"]), "\n".join(output))
        scores.append({m: result[m].fmeasure * 100 for m in METRICS})
    return scores, per_s


def mean(scores: list[dict[str, float]], metric: str) -> float:
    return sum(s[metric] for s in scores) / len(scores)


def bootstrap(a: list[dict[str, float]], b: list[dict[str, float]], metric: str,
              rounds: int = 1000) -> tuple[float, float]:  # fmt: skip
    """95% interval of mean(a - b) over articles resampled with replacement."""
    rng = random.Random(13)
    diffs = [x[metric] - y[metric] for x, y in zip(a, b, strict=True)]
    means = sorted(sum(rng.choices(diffs, k=len(diffs))) / len(diffs) for _ in range(rounds))
    return means[int(0.025 * rounds)], means[int(0.975 * rounds)]


def evaluate(name: str, items: list[Item], tr_nlp: Any, console: Console) -> dict[str, Any]:
    systems = {"lead": lead, "textrank": textrank(tr_nlp), "ours": ours}
    prepare(items)
    scores, speed = {}, {}
    for system, run in systems.items():
        scores[system], speed[system] = score(items, run)
    started = time.perf_counter()
    for item in items:
        extract_stage(item)
    extract_per_s = len(items) / (time.perf_counter() - started)

    table = Table(title=f"{name}: {len(items)} articles, ROUGE F1 x100")
    for column in ("system", *METRICS, "articles/s"):
        table.add_column(column, justify="right")
    for system in systems:
        table.add_row(system, *(f"{mean(scores[system], m):.2f}" for m in METRICS),
                      f"{speed[system]:.1f}")  # fmt: skip
    intervals = {m: bootstrap(scores["ours"], scores["lead"], m) for m in METRICS}
    table.add_row("ours - lead", *(
        f"{mean(scores['ours'], m) - mean(scores['lead'], m):+.2f} "
        f"[{intervals[m][0]:+.2f}, {intervals[m][1]:+.2f}]" for m in METRICS), "")  # fmt: skip
    table.add_row("extract stage (for scale)", "", "", "", f"{extract_per_s:.1f}")
    console.print(table)
    result: dict[str, Any] = {
        system: {m: round(mean(scores[system], m), 2) for m in METRICS} for system in systems
    }
    result["ours_minus_lead_95ci"] = {m: [round(x, 2) for x in intervals[m]] for m in METRICS}
    result["articles_per_s"] = {**{s: round(v, 1) for s, v in speed.items()},
                                "extract_stage": round(extract_per_s, 1)}  # fmt: skip
    return result


def main() -> None:
    eval_dir = ROOT.parent / "shared" / "eval"
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cnndm", type=Path, default=eval_dir / "cnndm" / "cnndm.jsonl")
    parser.add_argument("--bbc", type=Path, default=eval_dir / "bbc_news_summary")
    parser.add_argument("--limit", type=int, help="articles per data set (default: all)")
    args = parser.parse_args()
    console = Console()
    tr_nlp = textrank_nlp()
    figures = {}
    if args.cnndm.exists():
        figures["cnndm"] = evaluate("CNN/DM", cnndm(args.cnndm, args.limit), tr_nlp, console)
    if args.bbc.exists():
        figures["bbc"] = evaluate("BBC", bbc(args.bbc, args.limit), tr_nlp, console)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
