"""Fine-tune the English model's NER on the openly licensed data of ../shared/train and
count what it does: CoNLL-2003 (bench.quality's NER, spaCy alone and with our rules),
the entity faults of bench.entities, and the NER's speed.

    python -m bench.finetune [--train DIR] [--sets wikigold,btc] [--epochs N] [--out DIR]

The data: WikiGold (Wikipedia, gold) and the Broad Twitter Corpus (tweets, gold; section
g is news outlets' tweets), both CC BY 4.0. Their PER, ORG and LOC become PERSON, ORG and
the place label the model itself gives that span (GPE, LOC or FAC; GPE when it gives
none); MISC becomes the model's label for the span when it has one (NORP, EVENT...), else
is left unknown. So that the model keeps what the data does not annotate (dates, money,
numbers), its own entities of those labels are kept as the answer beside the gold ones
(rehearsal). Only the NER is trained: it has its own token vectors in the small model,
so the tagger and parser stay as they were.

The last line is JSON: {"sentences", "epochs", "base": {...}, "tuned": {...}}. The model
is adopted only if CoNLL and bench.entities both improve at >= 0.9x the base's speed.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
KEEP = frozenset(
    "DATE TIME MONEY PERCENT QUANTITY CARDINAL ORDINAL LAW LANGUAGE WORK_OF_ART".split()
)  # the model's own labels the data never marks, kept as they are
PLACES = frozenset({"GPE", "LOC", "FAC"})
MISC = frozenset({"NORP", "EVENT", "PRODUCT", "WORK_OF_ART", "LANGUAGE", "LAW"})

Sentence = tuple[list[str], list[str]]  # words, IOB tags


def conll(path: Path) -> Iterator[Sentence]:
    """Sentences of a two-column CoNLL file (word, tag; space or tab separated)."""
    words: list[str] = []
    tags: list[str] = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        parts = line.split()
        if len(parts) < 2 or parts[0] == "-DOCSTART-":
            if words:
                yield words, tags
            words, tags = [], []
            continue
        words.append(parts[0])
        tags.append(parts[-1])
    if words:
        yield words, tags


def spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, type) of IOB1 or IOB2 tags: an entity starts at B- or where I- changes
    type."""
    found: list[tuple[int, int, str]] = []
    start, kind = None, None
    for i, tag in enumerate([*tags, "O"]):
        new = tag[2:] if tag[:2] in ("B-", "I-") else None
        if start is not None and (new != kind or tag.startswith("B-")):
            found.append((start, i, str(kind)))
            start, kind = None, None
        if new is not None and start is None:
            start, kind = i, new
    return found


def example(nlp: Any, words: list[str], tags: list[str]) -> Any:
    """A training example: the gold spans mapped to the model's labels, the model's own
    entities of labels the data never marks, unknown where MISC has no label of its own."""
    from spacy.tokens import Doc
    from spacy.training import Example

    doc = nlp.get_pipe("ner")(Doc(nlp.vocab, words=words))
    own = {(e.start, e.end): e.label_ for e in doc.ents}
    biluo = ["O"] * len(words)
    taken = [False] * len(words)

    def mark(start: int, end: int, label: str | None) -> None:
        for i in range(start, end):
            taken[i] = True
            if label is None:
                biluo[i] = "-"
            elif end - start == 1:
                biluo[i] = f"U-{label}"
            else:
                biluo[i] = f"{'B' if i == start else 'L' if i == end - 1 else 'I'}-{label}"

    for start, end, kind in spans(tags):
        theirs = own.get((start, end))
        if kind == "PER":
            mark(start, end, "PERSON")
        elif kind == "ORG":
            mark(start, end, "ORG")
        elif kind == "LOC":
            mark(start, end, theirs if theirs in PLACES else "GPE")
        else:
            mark(start, end, theirs if theirs in MISC else None)
    for e in doc.ents:
        if e.label_ in KEEP and not any(taken[e.start : e.end]):
            mark(e.start, e.end, e.label_)
    return Example.from_dict(Doc(nlp.vocab, words=words), {"entities": biluo})


def train(model: str, sentences: list[Sentence], epochs: int, out: Path) -> float:
    """Train the NER of `model` on the sentences and save it to `out`; seconds taken."""
    import spacy
    from spacy.util import minibatch

    nlp = spacy.load(model)
    examples = [example(nlp, words, tags) for words, tags in sentences]
    began = time.perf_counter()
    with nlp.select_pipes(enable=["ner"]):
        optimizer = nlp.resume_training()
        random.seed(0)
        for epoch in range(epochs):
            random.shuffle(examples)
            losses: dict[str, float] = {}
            for batch in minibatch(examples, size=32):
                nlp.update(batch, sgd=optimizer, drop=0.2, losses=losses)
            print(f"epoch {epoch + 1}: loss {losses.get('ner', 0.0):.0f}", file=sys.stderr)
    nlp.to_disk(out)
    return time.perf_counter() - began


def conll_and_speed(data: Path, limit: int | None) -> dict[str, Any]:
    """CoNLL F1 of the configured model (spaCy alone and with our rules), and its NER's
    words per second over 200 test documents."""
    from bench.quality import conll_documents, ner
    from worker.nlp import get_nlp

    result = ner(data / "conll2003", limit)
    nlp = get_nlp()
    files = sorted((data / "conll2003").glob("eng.test*"))
    texts = [t for f in files for t, _ in conll_documents(f)][:200]
    began = time.perf_counter()
    with nlp.select_pipes(enable=["ner"]):
        words = sum(len(doc) for doc in nlp.pipe(texts))
    speed = words / (time.perf_counter() - began)
    return {"conll": result["ours"], "spacy": result["spacy"], "ner_words_s": speed}


def measure(model: str, args: argparse.Namespace) -> dict[str, Any]:
    """CoNLL F1, bench.entities' counts and NER speed of a model, each in a subprocess
    (a worker loads its model once per process)."""
    env = {**os.environ, "NEWSFLOW_SPACY_MODEL": model}
    limit = ["--limit", str(args.limit)] if args.limit else []
    figures: dict[str, Any] = {}
    for name, key in (("bench.finetune", None), ("bench.entities", "after")):
        command = [sys.executable, "-m", name, "--data", str(args.data), *limit]
        if key is None:
            command.append("--measure")
        run = subprocess.run(command, cwd=ROOT, env=env, check=True, capture_output=True, text=True)
        said = json.loads(run.stdout.strip().splitlines()[-1])
        figures.update(said if key is None else {"entities": said[key]})
    return figures


def main() -> None:
    from newsflow.config import Settings

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train", type=Path, default=ROOT.parent / "shared" / "train")
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--sets", default="wikigold,btc", help="wikigold, btc, btc-g (news)")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=ROOT / ".newsflow" / "ner-tuned")
    parser.add_argument("--limit", type=int, help="documents per evaluation (default: all)")
    parser.add_argument("--measure", action="store_true", help=argparse.SUPPRESS)  # measure()
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(conll_and_speed(args.data, args.limit)))
        return
    sets = {
        "wikigold": [args.train / "wikigold" / "wikigold.conll.txt"],
        "btc": sorted((args.train / "btc").glob("*.conll")),
        "btc-g": [args.train / "btc" / "g.conll"],
    }
    files = [f for name in args.sets.split(",") for f in sets[name.strip()]]
    sentences = [s for f in files if f.exists() for s in conll(f)]
    if not sentences:
        sys.exit(f"no training data under {args.train}")
    base = Settings().model_name()
    seconds = train(base, sentences, args.epochs, args.out)
    result = {
        "sets": args.sets,
        "sentences": len(sentences),
        "epochs": args.epochs,
        "train_seconds": round(seconds, 1),
        "base": measure(base, args),
        "tuned": measure(str(args.out), args),
    }
    for name in ("base", "tuned"):
        figures = result[name]
        print(
            f"{name}: CoNLL F1 with our rules {100 * figures['conll']['f1']:.1f} (spaCy alone "
            f"{100 * figures['spacy']['f1']:.1f}), NER {figures['ner_words_s']:,.0f} words/s, "
            f"batch labels {figures['entities']['batch_labels']}"
        )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
