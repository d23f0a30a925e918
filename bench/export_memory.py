"""Export memory: peak RSS of `newsflow results export` as the table grows.

    python -m bench.export_memory [--sizes 10000,100000,300000] [--db-dir DIR]

Fills SQLite databases with generated finished articles (each with 4 entities, 8
mentions, 5 keyphrases and a 3-sentence summary, written straight into the tables), then
runs the real export command over each and reads its peak RSS. Flat means streaming.
Prints a table and one JSON line.
"""

from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from newsflow import db
from newsflow.db import session_scope
from newsflow.models import (
    Article,
    Batch,
    BatchArticle,
    Entity,
    Keyphrase,
    Mention,
    StageRow,
    SummarySentence,
)

TEXT = ("The council of Brookfield approved plan {i} on Tuesday, said Mayor Ana Ruiz. " * 6).strip()


def article_rows(i: int) -> dict[Any, list[dict[str, Any]]]:
    """Every row of one finished article, per table."""
    text = TEXT.format(i=i)
    article = {
        "id": i, "content_hash": f"{i:064x}", "batch_id": 1, "kind": "text", "raw": text,
        "text": text, "title": f"Plan {i}", "agency": "AP", "language": "en",
        "word_count": len(text.split()),
    }  # fmt: skip
    entity = {"article_id": i, "label": "PERSON", "count": 2, "salience": 0.25, "aliases": []}
    return {
        Article: [article],
        BatchArticle: [{"batch_id": 1, "article_id": i}],
        StageRow: [
            {"article_id": i, "stage": stage, "status": "done", "seconds": 0.01}
            for stage in ("clean", "extract", "summarize")
        ],
        Entity: [
            {**entity, "idx": e, "name": f"Name {e}", "name_lower": f"name {e}"} for e in range(4)
        ],
        Mention: [
            {
                "article_id": i,
                "entity_idx": e,
                "idx": m,
                "start": 10 * m,
                "end": 10 * m + 6,
                "text": f"Name {e}",
            }
            for e in range(4)
            for m in range(2)
        ],
        Keyphrase: [
            {"article_id": i, "rank": k, "text": f"plan {k}", "score": 1 - k / 10} for k in range(5)
        ],
        SummarySentence: [
            {
                "article_id": i,
                "position": s,
                "sentence_index": s,
                "start": 0,
                "end": 70,
                "text": text[:70],
            }
            for s in range(3)
        ],
    }


def fill(url: str, n: int, step: int = 5000) -> None:
    db.upgrade(url)
    with session_scope(url) as session:
        session.add(Batch(id=1, name="generated"))
    for first in range(1, n + 1, step):
        rows: dict[Any, list[dict[str, Any]]] = {}
        for i in range(first, min(first + step, n + 1)):
            for model, values in article_rows(i).items():
                rows.setdefault(model, []).extend(values)
        with session_scope(url) as session:
            for model, values in rows.items():
                session.execute(db.insert(session, model), values)


def export_peak_mb(url: str, out: Path) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of one `newsflow results export` process."""
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "producer.cli", "--db", url, "results", "export",
                    "--output", str(out)], check=True, capture_output=True)  # fmt: skip
    peak_kb = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    return peak_kb / 1024, time.monotonic() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", default="10000,100000,300000")
    parser.add_argument("--db-dir", type=Path, default=Path(tempfile.mkdtemp(prefix="nf-export-")))
    args = parser.parse_args()
    table = Table(title="results export: peak RSS by table size (SQLite)")
    for column in ("articles", "peak RSS MB", "seconds", "records/s", "output MB"):
        table.add_column(column, justify="right")
    figures = []
    for n in (int(x) for x in args.sizes.split(",")):
        url = f"sqlite:///{args.db_dir / f'export-{n}.db'}"
        fill(url, n)
        out = args.db_dir / f"export-{n}.jsonl"
        # ru_maxrss of children is the max over all children so far: sizes go up, so each
        # row is the peak of the largest export run yet.
        peak, seconds = export_peak_mb(url, out)
        lines = sum(1 for _ in out.open())
        assert lines == n, f"exported {lines} of {n}"
        figures.append({"articles": n, "peak_rss_mb": round(peak, 1), "seconds": round(seconds, 1)})
        table.add_row(f"{n:,}", f"{peak:.1f}", f"{seconds:.1f}", f"{n / seconds:,.0f}",
                      f"{out.stat().st_size / 2**20:.0f}")  # fmt: skip
    Console().print(table)
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
