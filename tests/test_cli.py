"""The `newsflow` command as a user runs it: real processes, exit codes, no tracebacks."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from newsflow.contract import QUEUES
from tests.conftest import ROOT, SHARED, Stack

pytestmark = pytest.mark.integration
NEWSFLOW = [sys.executable, "-m", "producer.cli"]


def newsflow(
    *args: str, env: dict[str, str], cwd: Path, stdin: str | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    clean_env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    return subprocess.run(
        [*NEWSFLOW, *args],
        env={**clean_env, **env},
        cwd=cwd,
        input=stdin,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _env(stack: Stack) -> dict[str, str]:
    return {
        "NEWSFLOW_DATABASE_URL": stack.settings.database_url,
        "NEWSFLOW_BROKER_URL": stack.settings.broker(),
        "COLUMNS": "200",
    }


def test_submit_reports_bad_records_and_exits_1(stack: Stack, tmp_path: Path) -> None:
    path = tmp_path / "mixed.jsonl"
    path.write_text(
        json.dumps({"id": "good", "text": "The Brenner pass reopened to lorries on Monday."}) + "\n"
        "{broken\n" + json.dumps({"id": "empty", "text": " "}) + "\n",
        encoding="utf-8",
    )
    result = newsflow("submit", str(path), "--json", "--wait", env=_env(stack), cwd=tmp_path)
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    assert report["submitted"] == 1 and report["duplicates"] == 0
    assert [(r["source"], r["line"]) for r in report["rejected"]] == [
        (str(path), 2),
        (str(path), 3),
    ]
    assert report["rejected"][0]["reason"].startswith("malformed JSON")

    shown = newsflow(
        "results",
        "list",
        "--batch",
        str(report["batch_id"]),
        "--json",
        env=_env(stack),
        cwd=tmp_path,
    )
    rows = json.loads(shown.stdout)
    assert [r["status"] for r in rows] == ["done"]


def test_stdin_status_show_export_search(stack: Stack, tmp_path: Path) -> None:
    story = (
        "GENEVA (Reuters) - Aid agencies led by Marta Kowalski asked donors for more money "
        "on Tuesday.\n\nKowalski said the appeal covered food for six months."
    )
    submitted = newsflow(
        "submit",
        "-",
        "--wait",
        "--json",
        "--name",
        "stdin-batch",
        env=_env(stack),
        cwd=tmp_path,
        stdin=story,
    )
    assert submitted.returncode == 0, submitted.stderr
    batch_id = json.loads(submitted.stdout)["batch_id"]

    status = json.loads(
        newsflow("status", "--json", "--batch", str(batch_id), env=_env(stack), cwd=tmp_path).stdout
    )
    assert set(status["queues"]) == set(QUEUES)
    assert status["batches"][0]["done"] == 1 and status["batches"][0]["name"] == "stdin-batch"
    assert status["workers"], "the running worker should answer"
    worker = status["workers"][0]
    assert worker["concurrency"] == 2 and worker["host"] and worker["last_seen"]

    exported = newsflow(
        "results", "export", "--batch", str(batch_id), env=_env(stack), cwd=tmp_path
    )
    record = json.loads(exported.stdout.splitlines()[0])
    assert record["agency"] == "Reuters" and record["dateline"]["place"] == "Geneva"
    article_id = record["id"]
    shown = newsflow("results", "show", str(article_id), env=_env(stack), cwd=tmp_path)
    assert "Marta Kowalski" in shown.stdout and "stage extract: done" in shown.stdout

    out_file = tmp_path / "out.csv"
    newsflow(
        "results",
        "export",
        "--batch",
        str(batch_id),
        "--format",
        "csv",
        "--output",
        str(out_file),
        env=_env(stack),
        cwd=tmp_path,
    )
    rows = list(csv.DictReader(io.StringIO(out_file.read_text(encoding="utf-8"))))
    assert len(rows) == 1 and "Marta Kowalski (PERSON)" in rows[0]["entities"]

    for query in ("kowalski", "MARTA KOWALSKI", "Marta"):
        found = json.loads(
            newsflow(
                "results", "search", "--entity", query, "--json", env=_env(stack), cwd=tmp_path
            ).stdout
        )
        assert article_id in [r["id"] for r in found], query
    for hostile in ("%", "_", "' OR 1=1 --", "Kowalski%"):
        found = json.loads(
            newsflow(
                "results", "search", "--entity", hostile, "--json", env=_env(stack), cwd=tmp_path
            ).stdout
        )
        assert found == [], hostile

    top = json.loads(
        newsflow(
            "results", "entities", "--batch", str(batch_id), "--json", env=_env(stack), cwd=tmp_path
        ).stdout
    )
    assert top[0]["name"] == "Marta Kowalski" and top[0]["mentions"] == 2


def test_unreachable_services_get_a_clear_masked_error(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("Some story text.", encoding="utf-8")
    no_db = newsflow(
        "--db",
        "postgresql+psycopg://newsflow:s3cret@127.0.0.1:9/nowhere",
        "--broker",
        "redis://:hunter2@127.0.0.1:9/0",
        "submit",
        "a.txt",
        env={},
        cwd=tmp_path,
    )
    assert no_db.returncode == 2
    assert "Traceback" not in no_db.stderr
    assert "s3cret" not in no_db.stderr + no_db.stdout
    assert "hunter2" not in no_db.stderr + no_db.stdout
    assert "127.0.0.1:9" in no_db.stderr and "NEWSFLOW_" in no_db.stderr

    db = f"sqlite:///{tmp_path / 'x.db'}"
    missing = newsflow("--db", db, "results", "list", env={}, cwd=tmp_path)
    assert missing.returncode == 2 and "no database at" in missing.stderr
    assert not (tmp_path / "x.db").exists()  # a read never creates one
    sqlite3.connect(tmp_path / "x.db").close()  # an empty file: a database with no tables
    unmigrated = newsflow("--db", db, "results", "list", env={}, cwd=tmp_path)
    assert unmigrated.returncode == 2 and "run `newsflow db upgrade`" in unmigrated.stderr
    assert newsflow("--db", db, "db", "upgrade", env={}, cwd=tmp_path).returncode == 0
    status = newsflow(
        "--db",
        db,
        "--broker",
        "redis://:hunter2@127.0.0.1:9/0",
        "status",
        "--json",
        env={},
        cwd=tmp_path,
    )
    report = json.loads(status.stdout)
    assert (
        report["batches"] == []
        and "cannot reach Redis at redis://:***@127.0.0.1:9/0" in report["broker"]["error"]
    )


def test_submit_refuses_an_older_schema_instead_of_migrating_it(tmp_path: Path) -> None:
    from newsflow import db

    (tmp_path / "a.txt").write_text("Some story text.", encoding="utf-8")
    url = f"sqlite:///{tmp_path / 'old.db'}"
    db.upgrade(url, "0001")
    args = ("--db", url, "--broker", "redis://127.0.0.1:9/0", "submit", "a.txt")
    behind = newsflow(*args, env={}, cwd=tmp_path)
    said = " ".join(behind.stderr.split())  # rich wraps long lines
    assert behind.returncode == 2 and "Traceback" not in said
    assert "schema revision 0001" in said and "run `newsflow db upgrade`" in said
    with sqlite3.connect(tmp_path / "old.db") as connection:  # left as it was
        assert connection.execute("SELECT version_num FROM alembic_version").fetchall() == [
            ("0001",)
        ]
    assert newsflow("--db", url, "db", "upgrade", env={}, cwd=tmp_path).returncode == 0
    db.ensure_schema(url)  # now at the code's revision: nothing to say
    with sqlite3.connect(tmp_path / "old.db") as connection:
        connection.execute("UPDATE alembic_version SET version_num = '0099'")
    ahead = newsflow(*args, env={}, cwd=tmp_path)
    assert ahead.returncode == 2 and "upgraded by a newer newsflow" in " ".join(
        ahead.stderr.split()
    )


def test_submit_creates_the_tables_of_a_new_database(tmp_path: Path) -> None:
    from newsflow import db

    url = f"sqlite:///{tmp_path / 'sub' / 'new.db'}"
    db.ensure_schema(url)
    with sqlite3.connect(tmp_path / "sub" / "new.db") as connection:
        assert connection.execute("SELECT count(*) FROM articles").fetchone() == (0,)


def _leftovers(folder: Path) -> list[str]:
    """Command lines of live processes working in or under `folder` (what `run` started)."""
    found, folder = [], folder.resolve()
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and Path(proc / "cwd").resolve().is_relative_to(folder):
                found.append((proc / "cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue
    return found


def test_run_on_the_embedded_default_leaves_nothing_behind(tmp_path: Path) -> None:
    inputs = [str(ROOT / "examples")]
    if (SHARED / "samples").exists():
        inputs.append(str(SHARED / "samples"))
    result = newsflow(
        "run", *inputs, "--workers", "2", env={"COLUMNS": "200"}, cwd=tmp_path, timeout=600
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "newsflow results" in result.stdout
    assert "Port of Valmera reopens" in result.stdout
    assert "done, 0 failed" in result.stderr
    assert (tmp_path / "newsflow.db").exists()
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / ".newsflow" / "redis.sock").exists()

    # Run again: everything is a duplicate, nothing is processed twice, still exit 0.
    again = newsflow("run", *inputs, "--workers", "1", "--json", env={}, cwd=tmp_path, timeout=600)
    assert again.returncode == 0, again.stderr[-3000:]
    report = json.loads(again.stdout)
    assert report["duplicates"] == report["submitted"] and report["progress"]["failed"] == 0
    assert _leftovers(tmp_path) == []


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    wide = {"COLUMNS": "300"}  # the usage box is not wrapped
    bad = newsflow("requeue", "--stage", "polish", env=wide, cwd=tmp_path)
    said = " ".join(bad.stderr.split())
    assert bad.returncode == 2 and "choose from clean, extract, summarize" in said
    bad = newsflow("results", "list", "--status", "lost", env=wide, cwd=tmp_path)
    said = " ".join(bad.stderr.split())
    assert bad.returncode == 2 and "choose from queued, processing, done, failed" in said


def test_broker_worker_and_submit_in_separate_terminals(tmp_path: Path) -> None:
    """`newsflow broker` keeps the embedded Redis up; `worker` and `submit` find it."""
    env = {
        **{k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")},
        "NEWSFLOW_DATA_DIR": str(tmp_path / "data"),
    }
    upgrade = newsflow("db", "upgrade", env=env, cwd=tmp_path)
    assert upgrade.returncode == 0, upgrade.stderr
    broker = subprocess.Popen(
        [*NEWSFLOW, "broker"], env=env, cwd=tmp_path, stderr=subprocess.PIPE, text=True
    )
    worker = None
    try:
        assert "embedded Redis on" in (broker.stderr.readline() if broker.stderr else "")
        worker = subprocess.Popen(
            [*NEWSFLOW, "worker", "--concurrency", "1"],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        result = newsflow(
            "submit", str(ROOT / "examples"), "--wait", "--json", env=env, cwd=tmp_path
        )
        assert result.returncode == 0, result.stderr
        report = json.loads(result.stdout)
        assert report["submitted"] >= 6 and report["rejected"] == []
    finally:
        for process in (worker, broker):
            if process is not None:
                process.terminate()
                process.wait(timeout=60)
    assert worker is not None and worker.returncode == 0
    assert _leftovers(tmp_path) == []
    assert not (tmp_path / "data" / "redis.sock").exists()


def test_list_filters_status_rates_and_metrics(stack: Stack, tmp_path: Path) -> None:
    records = [
        {"id": "f1", "published": "2026-03-02", "text": "PARIS (AFP) - The Louvre reopened a "
         "wing on Monday after two years of repairs, its director said."},
        {"id": "f2", "published": "2026-05-20T08:00:00Z", "text": "LONDON (Reuters) - Rail "
         "fares will rise in June, the transport ministry said on Tuesday."},
    ]  # fmt: skip
    path = tmp_path / "two.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records), encoding="utf-8")
    submitted = newsflow("submit", str(path), "--wait", "--json", env=_env(stack), cwd=tmp_path)
    batch = str(json.loads(submitted.stdout)["batch_id"])

    def listed(*flags: str) -> list[str]:
        shown = newsflow("results", "list", "--batch", batch, "--json", *flags, env=_env(stack),
                         cwd=tmp_path)  # fmt: skip
        return [r["agency"] for r in json.loads(shown.stdout)]

    assert len(listed()) == 2
    assert listed("--agency", "afp") == listed("--agency", "AFP") == ["AFP"]
    assert len(listed("--language", "en")) == 2 and listed("--language", "fr") == []
    assert listed("--since", "2026-04-01") == ["Reuters"]
    assert len(listed("--until", "2026-05-20")) == 2 and len(listed("--until", "2026-05-19")) == 1

    report = json.loads(newsflow("status", "--json", "--batch", batch, env=_env(stack),
                                 cwd=tmp_path).stdout)  # fmt: skip
    assert {"per_minute_1m", "per_minute_5m", "eta_seconds"} <= set(report["batches"][0])

    import socket
    import urllib.request

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    env = {**os.environ, **_env(stack)}
    server = subprocess.Popen([*NEWSFLOW, "metrics", "--port", str(port)], env=env, cwd=tmp_path,
                              stderr=subprocess.PIPE, text=True)  # fmt: skip
    try:
        assert server.stderr is not None and "metrics on" in server.stderr.readline()
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=30) as response:
            text = response.read().decode()
    finally:
        server.terminate()
        server.wait(timeout=30)
    assert 'newsflow_stage_articles{stage="extract",status="done"}' in text
    assert "newsflow_broker_up 1.0" in text
    assert 'newsflow_queue_ready{queue="clean"}' in text
    assert "newsflow_workers_online" in text
