"""Peak memory against hostile input: the producer reading huge input, a worker on one huge
article. Every case runs in a process of its own; its peak RSS comes from wait4.

    python -m bench.memory [--mb 100]

Producer (`newsflow submit`, SQLite, embedded Redis): JSONL of MB/10 and MB megabytes on
stdin, and the larger from a file (each record stored: memory must not follow the input),
one line of MB megabytes with no newline, and 1 GB of zero bytes on stdin.
Server (`newsflow serve`): a JSON array of ARRAY_MB megabytes of `{}` (refused with 413:
more records than NEWSFLOW_MAX_RECORDS) and one of as many megabytes of real records,
each POSTed to /batches; the server's peak RSS while it reads them.
Worker: the extract pipeline on one article at the NEWSFLOW_MAX_EXTRACT_CHARS cap and on
a normal one, and the clean stage on 1.1 MB of HTML with 100,000 tiny paragraphs (refused
by NEWSFLOW_MAX_HTML_ELEMENTS before trafilatura parses it). Prints a table, then JSON.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from bench.corpus import corpus
from newsflow.config import Settings
from producer.embedded import EmbeddedRedis


def peak_of_command(command: list[str], env: dict[str, str], stdin: Any) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of a command run to its end."""
    started = time.monotonic()
    process = subprocess.Popen(
        command, env=env, stdin=stdin, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    _, _, usage = os.wait4(process.pid, 0)
    process.returncode = 0
    return usage.ru_maxrss / 1024, time.monotonic() - started


def peak_of_call(work: Callable[[], Any]) -> tuple[float, float]:
    """(peak RSS in MB, seconds) of `work` run in a forked process."""
    started = time.monotonic()
    child = multiprocessing.get_context("fork").Process(target=work)
    child.start()
    assert child.pid is not None
    _, _, usage = os.wait4(child.pid, 0)
    return usage.ru_maxrss / 1024, time.monotonic() - started


def write_jsonl(path: Path, megabytes: int) -> int:
    stories = corpus(200)
    written = count = 0
    with path.open("w", encoding="utf-8") as handle:
        while written < megabytes * 2**20:
            record = dict(stories[count % len(stories)], id=f"m{count}")
            record["text"] += f" (copy {count})"  # a distinct article every line
            line = json.dumps(record) + "\n"
            handle.write(line)
            written += len(line)
            count += 1
    return count


def producer_cases(megabytes: int, home: Path) -> dict[str, tuple[float, float]]:
    data, small = home / "big.jsonl", home / "small.jsonl"
    records = write_jsonl(data, megabytes)
    few = write_jsonl(small, max(1, megabytes // 10))
    oneline = home / "oneline.jsonl"
    with oneline.open("wb") as handle:
        block = b"x" * 2**20
        handle.write(b'{"text": "')
        for _ in range(megabytes):
            handle.write(block)
    cases: dict[str, tuple[float, float]] = {}
    with EmbeddedRedis(home / "redis.sock") as broker:
        for name, args, source in (
            (f"submit - < {max(1, megabytes // 10)} MB JSONL ({few:,} records)", ["-"], small),
            (f"submit - < {megabytes} MB JSONL ({records:,} records)", ["-"], data),
            (f"submit FILE, {megabytes} MB JSONL", [str(data)], None),
            (f"submit - < one {megabytes} MB line", ["-"], oneline),
            ("submit - < 1 GB of zero bytes", ["-"], "zeros"),
        ):
            url = f"sqlite:///{home / (str(len(cases)) + '.db')}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
            env |= {"NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url}
            command = [sys.executable, "-m", "producer.cli", "submit", *args, "--json"]
            if source == "zeros":
                zeros = subprocess.Popen(["head", "-c", str(2**30), "/dev/zero"],
                                         stdout=subprocess.PIPE)  # fmt: skip
                cases[name] = peak_of_command(command, env, zeros.stdout)
                zeros.kill()
                zeros.wait()
            elif source is None:
                cases[name] = peak_of_command(command, env, subprocess.DEVNULL)
            else:
                with Path(source).open("rb") as stdin:
                    cases[name] = peak_of_command(command, env, stdin)
    return cases


def server_cases(megabytes: int, home: Path) -> dict[str, tuple[float, float]]:
    """POST /batches of a JSON array of `megabytes` MB of `{}` (refused: over
    NEWSFLOW_MAX_RECORDS) and of as many MB of real records (stored), each to a `newsflow
    serve` of its own, whose peak RSS is read when it stops."""
    from bench.api import TOKEN, serving

    empty = home / "empty.json"
    with empty.open("wb") as out:
        out.write(b"[" + b"{}," * (megabytes * 2**20 // 3) + b"{}]")
    stories = home / "array.json"
    with stories.open("wb") as out:
        out.write(b"[")
        written = count = 0
        texts = [story["text"] for story in corpus(200)]
        while written < megabytes * 2**20 - 65536:  # under the default limit; each stored
            story = {"text": texts[count % len(texts)]}
            item = json.dumps({"id": f"a{count}", "text": story["text"] + f" ({count})"})
            out.write((b"," if count else b"") + item.encode())
            written, count = written + len(item) + 1, count + 1
        out.write(b"]")
    cases: dict[str, tuple[float, float]] = {}
    with EmbeddedRedis(home / "redis-serve.sock") as broker:
        for name, body in (
            (f"serve, POST a {megabytes} MB array of {{}} (413)", empty),
            (f"serve, POST a {megabytes} MB array ({count:,} records)", stories),
        ):
            url = f"sqlite:///{home / ('serve' + str(len(cases)) + '.db')}"
            env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
            env |= {"NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": broker.url,
                    "NEWSFLOW_API_TOKEN": TOKEN}  # fmt: skip
            pid: list[int] = []
            started = time.monotonic()
            with serving(env, home / "serve.log", pid_out=pid) as api:
                with body.open("rb") as content:
                    posted = subprocess.run(
                        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", "-H",
                         f"Authorization: Bearer {TOKEN}", "-H", "Content-Type: application/json",
                         "--data-binary", "@-", f"{api}/batches"],
                        stdin=content, check=True, capture_output=True, text=True,
                    )  # fmt: skip
                expected = "413" if body == empty else "201"
                assert posted.stdout == expected, f"{name}: HTTP {posted.stdout}"
                peak = _peak_of_pid(pid[0])
            cases[name] = (peak, time.monotonic() - started)
    return cases


def _peak_of_pid(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


def worker_cases() -> dict[str, tuple[float, float]]:
    from worker.clean import clean_article
    from worker.nlp import get_nlp

    settings = Settings()
    nlp = get_nlp()  # loaded before forking, as in a worker's pool process
    story = " ".join(r["text"] for r in corpus(400))
    at_cap = story[: settings.max_extract_chars]
    normal = corpus(1)[0]["text"]
    html = "<html><body>" + "<p>a</p>" * 100_000 + "</body></html>"

    def extract(text: str) -> Callable[[], None]:
        def work() -> None:
            for _ in nlp.pipe([text]):
                pass

        return work

    def clean() -> None:
        try:
            clean_article(html, kind="html", max_elements=settings.max_html_elements)
        except Exception:
            return

    return {
        "worker process, model loaded, no article": peak_of_call(lambda: None),
        f"extract, one normal article ({len(normal):,} chars)": peak_of_call(extract(normal)),
        f"extract, one article at the cap ({len(at_cap):,} chars)": peak_of_call(extract(at_cap)),
        f"clean, {len(html) / 2**20:.1f} MB HTML of 100,000 <p> (refused)": peak_of_call(clean),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--mb", type=int, default=100, help="size of the large inputs")
    parser.add_argument("--array-mb", type=int, default=256, help="size of the POSTed arrays")
    args = parser.parse_args()
    home = Path(tempfile.mkdtemp(prefix="nf-memory-"))
    cases = {**producer_cases(args.mb, home), **server_cases(args.array_mb, home),
             **worker_cases()}  # fmt: skip
    table = Table(title="peak RSS per process")
    for column in ("case", "peak RSS MB", "seconds"):
        table.add_column(column, justify="left" if column == "case" else "right")
    for name, (peak, seconds) in cases.items():
        table.add_row(name, f"{peak:.0f}", f"{seconds:.1f}")
    Console().print(table)
    print(json.dumps({name: round(peak, 1) for name, (peak, _) in cases.items()}))


if __name__ == "__main__":
    main()
