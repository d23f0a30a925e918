"""Extraction quality: our clean and extract stages against the libraries they build on.

    python -m bench.quality [--data DIR] [--limit N]

DIR (default ../shared/eval) has the layout of the evaluation data: conll2003/,
article_extraction/, kpcrowd/; a missing part is skipped. Method, the same for both
systems of each part:
- NER (conll2003/eng.testb*): each document's sentences, tokens joined by spaces, one
  sentence per line, parsed once by the extract stage's spaCy model. "spacy" is that
  Doc's own entities; "ours" is the extract stage's entities (every mention, typed by its
  entity's label). Types mapped PERSON->PER, GPE/LOC/FAC->LOC, ORG->ORG; a prediction
  counts when its characters and type equal a gold entity's exactly. Micro precision,
  recall and F1 over PER+LOC+ORG, and F1 per type.
- HTML body (article_extraction/): trafilatura.extract with its defaults, with
  favor_precision=True, and our clean stage (kind="html"). Scored as the benchmark does:
  `\\w+` tokens, 4-token shingles counted as multisets, each page's TP/FP/FN divided by
  their sum, precision and recall from the sums over pages, F1 from those two.
- Keyphrases (kpcrowd/): the first 10 phrases of pytextrank (same model), of the
  extract stage, and of the extract stage's method for languages without a parser
  (tokens and stop words only, run here on English); a phrase matches a reference phrase
  when their Porter-stemmed, lower-cased words are equal. Precision@10, recall and F1
  per document, macro means.
- Languages (article_extraction/ again): every page through clean, extract and summarize
  as a worker runs them (the language's entity model when one is installed, else its
  tokenizer), counting the pages that end done, and per detected language the pages and
  the mean summary length in sentences and words.
Prints a table per part, then one JSON line with F1 as fractions.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.summaries import textrank_nlp
from newsflow.config import Settings
from worker.clean import clean_article
from worker.entities import extract_entities
from worker.keyphrases import extract_keyphrases, extract_token_keyphrases
from worker.nlp import entity_model, get_nlp, get_sentencizer
from worker.summarize import split_sentences, summarize, terms_of

ROOT = Path(__file__).resolve().parent.parent
CONLL_TYPES = {"PERSON": "PER", "GPE": "LOC", "LOC": "LOC", "FAC": "LOC", "ORG": "ORG"}
Span = tuple[int, int, str]  # start char, end char, CoNLL type


def prf(tp: float, fp: float, fn: float) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


# NER -------------------------------------------------------------------------------------


def conll_documents(path: Path) -> Iterator[tuple[str, set[Span]]]:
    """(text, gold spans) per document of a CoNLL-2003 file (IOB1 tags)."""
    lines: list[str] = []
    spans: set[Span] = set()
    sentence: list[str] = []
    offset = 0
    open_span: list[Any] | None = None  # [start, end, type]

    def close() -> None:
        nonlocal open_span
        if open_span is not None:
            spans.add((open_span[0], open_span[1], open_span[2]))
            open_span = None

    def end_sentence() -> None:
        nonlocal offset, sentence
        close()
        if sentence:
            lines.append(" ".join(sentence))
            offset += len(lines[-1]) + 1
            sentence = []

    for row in path.read_text(encoding="utf-8").splitlines():
        if row.startswith("-DOCSTART-"):
            end_sentence()
            if lines:
                yield "\n".join(lines), spans
            lines, spans, offset = [], set(), 0
            continue
        if not row.strip():
            end_sentence()
            continue
        token, *_, tag = row.split()
        start = offset + sum(len(t) + 1 for t in sentence)
        kind = tag[2:] if tag != "O" else None
        if kind is None or tag.startswith("B-") or (open_span and open_span[2] != kind):
            close()
        if kind is not None:
            if open_span is None:
                open_span = [start, start + len(token), kind]
            else:
                open_span[1] = start + len(token)
        sentence.append(token)
    end_sentence()
    if lines:
        yield "\n".join(lines), spans


def ner(folder: Path, limit: int | None) -> dict[str, Any]:
    documents = [d for f in sorted(folder.glob("eng.test*")) for d in conll_documents(f)][:limit]
    counts = {system: Counter[str]() for system in ("spacy", "ours")}
    nlp = get_nlp()
    for (_, gold), doc in zip(documents, nlp.pipe(t for t, _ in documents), strict=True):
        predicted = {
            "spacy": {
                (e.start_char, e.end_char, CONLL_TYPES[e.label_])
                for e in doc.ents
                if e.label_ in CONLL_TYPES
            },
            "ours": {
                (m.start, m.end, CONLL_TYPES[e.label])
                for e in extract_entities(doc)
                if e.label in CONLL_TYPES
                for m in e.mentions
            },
        }
        for system, spans in predicted.items():
            for kind in ("PER", "LOC", "ORG"):
                mine = {s for s in spans if s[2] == kind}
                truth = {s for s in gold if s[2] == kind}
                counts[system][f"{kind} tp"] += len(mine & truth)
                counts[system][f"{kind} fp"] += len(mine - truth)
                counts[system][f"{kind} fn"] += len(truth - mine)
    result: dict[str, Any] = {"documents": len(documents)}
    for system, c in counts.items():
        total = [sum(c[f"{k} {x}"] for k in ("PER", "LOC", "ORG")) for x in ("tp", "fp", "fn")]
        p, r, f = prf(*total)
        result[system] = {"precision": p, "recall": r, "f1": f}
        for kind in ("PER", "LOC", "ORG"):
            result[system][kind] = prf(c[f"{kind} tp"], c[f"{kind} fp"], c[f"{kind} fn"])[2]
    return result


# HTML body -------------------------------------------------------------------------------


def shingles(text: str, n: int = 4) -> Counter[tuple[str, ...]]:
    tokens = re.findall(r"\w+", text or "")
    return Counter(tuple(tokens[i : i + n]) for i in range(len(tokens) - n + 1))


def page_score(truth: str, predicted: str) -> tuple[float, float, float]:
    """(TP, FP, FN) of one page's shingles, divided by their sum."""
    true, pred = shingles(truth), shingles(predicted)
    tp = sum((true & pred).values())
    fp = sum((pred - true).values())
    fn = sum((true - pred).values())
    total = tp + fp + fn
    return (tp / total, fp / total, fn / total) if total else (0.0, 0.0, 0.0)


def our_body(html: str) -> str:
    try:
        return clean_article(html, kind="html").text
    except Exception:  # a page we find no text in scores as an empty prediction
        return ""


def html_bodies(folder: Path, limit: int | None) -> dict[str, Any]:
    import trafilatura

    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    systems = {
        "trafilatura": lambda html: trafilatura.extract(html) or "",
        "trafilatura_precision": lambda html: trafilatura.extract(html, favor_precision=True) or "",
        "ours": our_body,
    }
    sums = {name: [0.0, 0.0, 0.0] for name in systems}
    pages = sorted(truth)[:limit]
    for page in pages:
        html = gzip.decompress((folder / "html" / f"{page}.html.gz").read_bytes())
        text = html.decode("utf-8", "replace")
        for name, extract in systems.items():
            for i, value in enumerate(page_score(truth[page]["articleBody"], extract(text))):
                sums[name][i] += value
    result: dict[str, Any] = {"pages": len(pages)}
    for name, (tp, fp, fn) in sums.items():
        p, r, f = prf(tp, fp, fn)
        result[name] = {"precision": p, "recall": r, "f1": f}
    return result


# Keyphrases ------------------------------------------------------------------------------


def _stemmer() -> Any:
    from nltk.stem.porter import PorterStemmer

    stemmer = PorterStemmer()
    return lambda phrase: " ".join(stemmer.stem(w) for w in re.findall(r"\w+", phrase.lower()))


def keyphrases(folder: Path, limit: int | None) -> dict[str, Any]:
    stem = _stemmer()
    textrank = textrank_nlp()
    docs = sorted((folder / "docsutf8").glob("*.txt"))[:limit]
    scores: dict[str, list[tuple[float, float, float]]] = {
        "textrank": [], "ours": [], "ours_tokens_only": []
    }  # fmt: skip
    for path in docs:
        keys = folder / "keys" / f"{path.stem}.key"
        truth = {stem(k) for k in keys.read_text(encoding="utf-8").splitlines() if k.strip()}
        text = path.read_text(encoding="utf-8").strip()
        predicted = {
            "textrank": [p.text for p in textrank(text)._.phrases],
            "ours": [k.text for k in extract_keyphrases(get_nlp()(text), top=10)],
            "ours_tokens_only": [
                k.text for k in extract_token_keyphrases(get_sentencizer("en")(text), top=10)
            ],
        }
        for system, phrases in predicted.items():
            top: list[str] = []
            for phrase in map(stem, phrases):
                if phrase and phrase not in top:
                    top.append(phrase)
            top = top[:10]
            hits = len(set(top) & truth)
            scores[system].append(prf(hits, len(top) - hits, len(truth) - hits))
    result: dict[str, Any] = {"documents": len(docs)}
    for system, rows in scores.items():
        n = max(len(rows), 1)
        p, r, f = (sum(row[i] for row in rows) / n for i in range(3))
        result[system] = {"precision": p, "recall": r, "f1": f}
    return result


# Languages -------------------------------------------------------------------------------


def _process(html: str) -> tuple[str | None, list[Any]]:
    """(language, summary sentences) of a page run through the three stages as a worker
    runs them; raises where a stage would fail."""
    cleaned = clean_article(html, kind="html")
    language = cleaned.language
    if model := entity_model(Settings().entity_models(), language):
        doc = get_nlp(model)(cleaned.text)
        extract_entities(doc, title=cleaned.title)
        extract_keyphrases(doc)
    else:
        extract_token_keyphrases(get_sentencizer(language)(cleaned.text))
    sentencizer = get_sentencizer(language)
    sentences = split_sentences(sentencizer, cleaned.text, language)
    return language, summarize(sentences, title_terms=terms_of(sentencizer, cleaned.title or ""))


def languages(folder: Path, limit: int | None) -> dict[str, Any]:
    truth = json.loads((folder / "ground-truth.json").read_text(encoding="utf-8"))
    pages = sorted(truth)[:limit]
    done = 0
    failures: list[str] = []
    per: dict[str, list[tuple[int, int]]] = {}
    for page in pages:
        html = gzip.decompress((folder / "html" / f"{page}.html.gz").read_bytes())
        try:
            language, summary = _process(html.decode("utf-8", "replace"))
        except Exception as exc:  # what the stage would store as the page's error
            failures.append(f"{page}: {type(exc).__name__}: {exc}"[:200])
            continue
        done += 1
        words = sum(s.words for s in summary)
        per.setdefault(language or "?", []).append((len(summary), words))
    return {
        "pages": len(pages),
        "done": done,
        "failures": failures,
        "languages": {
            code: {
                "pages": len(rows),
                "sentences": sum(r[0] for r in rows) / len(rows),
                "words": sum(r[1] for r in rows) / len(rows),
            }
            for code, rows in sorted(per.items(), key=lambda item: -len(item[1]))
        },
    }


# Report ----------------------------------------------------------------------------------


def table(title: str, columns: list[str], rows: dict[str, dict[str, Any]]) -> Table:
    out = Table(title=title)
    out.add_column("system")
    for column in columns:
        out.add_column(column, justify="right")
    for system, figures in rows.items():
        out.add_row(system, *(f"{100 * figures[c]:.1f}" for c in columns))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "eval")
    parser.add_argument("--limit", type=int, help="documents per part (default: all)")
    args = parser.parse_args()
    console = Console()
    summary: dict[str, dict[str, float]] = {}
    if (args.data / "conll2003").is_dir():
        result = ner(args.data / "conll2003", args.limit)
        systems = {s: result[s] for s in ("spacy", "ours")}
        columns = ["precision", "recall", "f1", "PER", "LOC", "ORG"]
        console.print(table(f"NER, CoNLL-2003: {result['documents']} documents", columns, systems))
        summary["ner"] = {"spacy_f1": result["spacy"]["f1"], "ours_f1": result["ours"]["f1"]}
    if (args.data / "article_extraction").is_dir():
        result = html_bodies(args.data / "article_extraction", args.limit)
        systems = {s: result[s] for s in ("trafilatura", "trafilatura_precision", "ours")}
        title = f"HTML body, article extraction benchmark: {result['pages']} pages"
        console.print(table(title, ["precision", "recall", "f1"], systems))
        summary["html"] = {f"{s}_f1": v["f1"] for s, v in systems.items()}
    if (args.data / "kpcrowd").is_dir():
        result = keyphrases(args.data / "kpcrowd", args.limit)
        systems = {s: result[s] for s in ("textrank", "ours", "ours_tokens_only")}
        title = f"Keyphrases, KPCrowd: {result['documents']} documents, @10"
        console.print(table(title, ["precision", "recall", "f1"], systems))
        summary["keyphrases"] = {f"{s}_f1_at_10": v["f1"] for s, v in systems.items()}
    if (args.data / "article_extraction").is_dir():
        result = languages(args.data / "article_extraction", args.limit)
        out = Table(title=f"Every language: {result['done']} of {result['pages']} pages done")
        for column in ("language", "pages", "summary sentences", "summary words"):
            out.add_column(column, justify="right")
        for code, row in result["languages"].items():
            out.add_row(code, str(row["pages"]), f"{row['sentences']:.1f}", f"{row['words']:.1f}")
        console.print(out)
        for failure in result["failures"]:
            console.print(f"not done: {failure}", highlight=False)
        summary["languages"] = {"done_share": result["done"] / max(result["pages"], 1)}
    print(json.dumps({part: {k: round(v, 4) for k, v in f.items()} for part, f in summary.items()}))


if __name__ == "__main__":
    main()
