"""Hostile input and unsafe output: one bad line fails alone, memory stays bounded, secrets
stay masked, untrusted text never acts on a terminal or in a spreadsheet."""

from __future__ import annotations

import csv
import io
import json
import os
import sqlite3
import stat
import subprocess
import sys
import time
from pathlib import Path

import pytest

from newsflow import db
from newsflow.config import Settings, mask_secrets, mask_url, private_folder
from producer.sources import Record, Rejection, bounded_lines, read_path, read_stdin
from producer.submit import store_batch
from producer.terminal import cell, shown

LIMIT = 10_000


def test_each_hostile_jsonl_line_is_rejected_alone(tmp_path: Path) -> None:
    path = tmp_path / "hostile.jsonl"
    lines = [
        json.dumps({"id": "ok-1", "text": "The harbour of Valmera reopened on Monday."}),
        "[" * 100_000,
        '{"text": "fine", "views": ' + "7" * 5000 + "}",
        '{"id": "s", "text": "lone \\ud800 surrogate"}',
        json.dumps({"id": True, "text": "An id that is a boolean."}),
        json.dumps({"id": "ok-2", "text": "Farmers in the Tarn valley began the harvest."}),
    ]
    path.write_text("\n".join(lines), encoding="utf-8")
    outcomes = list(read_path(path, limit=1_000_000))  # long enough for the deep line
    good = [o.external_id for o in outcomes if isinstance(o, Record)]
    bad = {o.line: o.reason for o in outcomes if isinstance(o, Rejection)}
    assert good == ["ok-1", "ok-2"]
    assert bad[2] == "JSON nested too deeply to read"
    assert bad[3].startswith("unreadable JSON: Exceeds the limit (4300 digits)")
    assert bad[4].startswith("field 'text' holds an unpaired surrogate escape")
    assert bad[5].startswith("field 'id'")


@pytest.mark.parametrize("kind", ["sqlite", "postgres"])
def test_hostile_lines_never_reach_the_database(kind: str, tmp_path: Path) -> None:
    from tests.conftest import fresh_database

    path = tmp_path / "hostile.jsonl"
    path.write_text(
        '{"id": "s", "title": "\\udfff", "text": "Surrogate in the title."}\n'
        + json.dumps({"id": "ok", "text": "The council met on Tuesday in Corvale."})
        + "\n",
        encoding="utf-8",
    )
    for url in fresh_database(kind, tmp_path):
        result, ids = store_batch(
            Settings(database_url=url), read_path(path, limit=LIMIT), name=None
        )
        assert (result.submitted, len(result.rejected), len(ids)) == (1, 1, 1)
        assert result.rejected[0].line == 1


def test_an_overlong_line_is_skipped_without_being_held(tmp_path: Path) -> None:
    path = tmp_path / "long.jsonl"
    with path.open("wb") as handle:
        handle.write(b'{"text": "' + b"x" * 5_000_000 + b'"}\n')
        handle.write(json.dumps({"id": "next", "text": "The next line is read."}).encode())
    with path.open("rb") as handle:
        lines = list(bounded_lines(handle, 1000))
    assert lines[0] is None and lines[1] is not None and b"next" in lines[1]
    outcomes = list(read_path(path, limit=100))
    assert isinstance(outcomes[0], Rejection) and "over the size limit" in outcomes[0].reason
    assert isinstance(outcomes[1], Record) and outcomes[1].external_id == "next"


def test_stdin_is_read_as_a_bounded_stream() -> None:
    endless = io.BufferedReader(io.BytesIO(b"\x00" * 5_000_000))  # like /dev/zero
    (only,) = read_stdin(limit=LIMIT, stream=endless)
    assert isinstance(only, Rejection) and "over the limit of 10,000 bytes" in only.reason
    assert endless.tell() <= LIMIT + 1 + io.DEFAULT_BUFFER_SIZE
    jsonl = io.BufferedReader(
        io.BytesIO(b'{"text": "one"}\n{"text": "' + b"y" * 50_000 + b'"}\n{"text": "three"}\n')
    )
    outcomes = list(read_stdin(limit=LIMIT, stream=jsonl))
    assert [type(o).__name__ for o in outcomes] == ["Record", "Rejection", "Record"]


def test_fifos_devices_and_symlinked_folders_are_reported(tmp_path: Path) -> None:
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "story.txt").write_text("A short story about a bridge.", encoding="utf-8")
    os.mkfifo(inbox / "pipe.txt")
    (inbox / "zero.txt").symlink_to("/dev/zero")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    (inbox / "linked").symlink_to(elsewhere)
    outcomes = list(read_path(inbox, limit=LIMIT))
    reasons = {Path(o.source).name: o.reason for o in outcomes if isinstance(o, Rejection)}
    assert reasons["pipe.txt"].startswith("a FIFO, not a file")
    assert reasons["zero.txt"] == "a device, not a file"
    assert reasons["linked"].startswith("a symlinked folder, not followed")
    assert [o.external_id for o in outcomes if isinstance(o, Record)] == ["story.txt"]
    (direct,) = read_path("/dev/zero", limit=LIMIT)
    assert isinstance(direct, Rejection) and direct.reason == "a device, not a file"


@pytest.mark.parametrize(
    ("url", "masked"),
    [
        ("redis://:s3cret@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://:p@ss@host:6379/0", "redis://:***@host:6379/0"),
        ("redis://:my pass@host/0", "redis://:***@host/0"),
        ("redis://127.0.0.1:9/0?password=hunter2", "redis://127.0.0.1:9/0?password=***"),
        (
            "postgresql+psycopg://u:pa%40ss@db/x?sslmode=require&password=s3cret",
            "postgresql+psycopg://u:***@db/x?sslmode=require&password=***",
        ),
        ("sqlite:///newsflow.db", "sqlite:///newsflow.db"),
        ("redis://user@host/0", "redis://user@host/0"),
    ],
)
def test_every_url_form_is_masked(url: str, masked: str) -> None:
    assert mask_url(url) == masked
    # In free text a URL ends at a space, so a password holding one is found by its
    # literal form, which the configured URL gives (Settings.mask passes it).
    given = f"could not connect to {url}: refused"
    assert mask_secrets(given, url) == f"could not connect to {masked}: refused"
    if " " not in url:
        assert mask_secrets(given) == f"could not connect to {masked}: refused"


def test_literal_passwords_are_masked_in_free_text() -> None:
    text = "auth failed for 'my pass' at host"
    assert "my pass" not in mask_secrets(text, "redis://:my pass@host/0")


def test_a_fallback_socket_folder_must_be_private(tmp_path: Path) -> None:
    mine = private_folder(tmp_path / "fresh")
    assert stat.S_IMODE(mine.stat().st_mode) == 0o700
    shared = tmp_path / "shared"
    shared.mkdir(mode=0o777)
    shared.chmod(0o777)
    with pytest.raises(PermissionError, match="not a private folder"):
        private_folder(shared)
    target = tmp_path / "target"
    target.mkdir(mode=0o700)
    (tmp_path / "trap").symlink_to(target)
    with pytest.raises(PermissionError, match="not a private folder"):
        private_folder(tmp_path / "trap")


def test_long_data_dirs_use_a_per_user_folder() -> None:
    settings = Settings(data_dir=Path("/tmp") / ("d" * 120))
    assert settings.embedded_socket.parent.name.startswith(f"newsflow-{os.getuid()}-")


def test_untrusted_text_is_inert_on_a_terminal_and_in_a_sheet() -> None:
    assert shown("\x1b]0;pwned\x07[/]title\x9b31m") == "]0;pwned\\[/]title31m"
    assert shown("[update] Minister resigns") == "\\[update] Minister resigns"
    for formula in ("=1+1", "+1", "-1", "@SUM(A1)", "\tx", "\rx", '=HYPERLINK("http://x")'):
        assert cell(formula) == "'" + formula
    assert cell("Minister resigns") == "Minister resigns" and cell(None) == ""


def _cli(*args: str, url: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("NEWSFLOW_")}
    env |= {"NEWSFLOW_DATABASE_URL": url, "NEWSFLOW_BROKER_URL": "redis://127.0.0.1:9/0"}
    return subprocess.run(
        [sys.executable, "-m", "producer.cli", *args],
        env={**env, "COLUMNS": "200"},
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=120,
    )


@pytest.fixture
def hostile_db(tmp_path: Path) -> str:
    url = f"sqlite:///{tmp_path / 'hostile.db'}"
    db.upgrade(url)
    titles = [
        '=HYPERLINK("http://evil")',
        "\x1b[2J\x1b]0;owned\x07Clear",
        "[/]",
        "[update] Minister resigns",
    ]
    records = [
        Record(kind="text", content=f"Story {i} about the port of Valmera.", source=f"in:{i}",
               external_id=f"t{i}", title=title)
        for i, title in enumerate(titles)
    ]  # fmt: skip
    store_batch(Settings(database_url=url), records, name="[bold]batch[/bold]")
    return url


def test_results_commands_survive_hostile_titles(hostile_db: str, tmp_path: Path) -> None:
    for article_id in ("1", "2", "3", "4"):
        shown_one = _cli("results", "show", article_id, url=hostile_db, cwd=tmp_path)
        assert shown_one.returncode == 0, shown_one.stderr
        assert "\x1b" not in shown_one.stdout and "Traceback" not in shown_one.stderr
    listed = _cli("results", "list", "--batch", "1", url=hostile_db, cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert "[update] Minister resigns" in listed.stdout and "[/]" in listed.stdout
    assert "\x1b" not in listed.stdout
    status = _cli("status", url=hostile_db, cwd=tmp_path)
    assert status.returncode == 0 and "[bold]batch[/bold]" in status.stdout


def test_csv_export_neutralises_formulas(hostile_db: str, tmp_path: Path) -> None:
    out = tmp_path / "out.csv"
    done = _cli("results", "export", "--format", "csv", "--output", str(out), url=hostile_db,
                cwd=tmp_path)  # fmt: skip
    assert done.returncode == 0, done.stderr
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert rows[0]["title"] == '\'=HYPERLINK("http://evil")'
    assert all(not row[key].startswith(("=", "+", "-", "@")) for row in rows for key in row)


def test_export_never_empties_its_file_and_reads_never_create_a_database(
    hostile_db: str, tmp_path: Path
) -> None:
    out = tmp_path / "keep.jsonl"
    out.write_text("yesterday's export\n", encoding="utf-8")
    typo = tmp_path / "typo.db"
    failed = _cli("results", "export", "--output", str(out), url=f"sqlite:///{typo}", cwd=tmp_path)
    assert failed.returncode == 2 and "no database at" in failed.stderr
    assert out.read_text(encoding="utf-8") == "yesterday's export\n"
    assert not typo.exists()
    unknown = _cli("results", "export", "--batch", "999", url=hostile_db, cwd=tmp_path)
    assert unknown.returncode == 2 and "no batch 999" in unknown.stderr
    bad_page = _cli("results", "list", "--page", "0", url=hostile_db, cwd=tmp_path)
    assert bad_page.returncode == 2 and "--page" in bad_page.stderr


def test_sqlite_readers_do_not_wait_for_a_writer(hostile_db: str, tmp_path: Path) -> None:
    writer = sqlite3.connect(hostile_db.removeprefix("sqlite:///"), isolation_level=None)
    writer.execute("BEGIN IMMEDIATE")  # a long submit or save holds the write lock
    writer.execute("INSERT INTO batches (name, created_at, submitted, duplicates, rejected) "
                   "VALUES ('held', '2026-01-01', 0, 0, 0)")  # fmt: skip
    try:
        started = time.monotonic()
        for args in (("status", "--json"), ("results", "list"), ("results", "export")):
            done = _cli(*args, url=hostile_db, cwd=tmp_path)
            assert done.returncode == 0, (args, done.stderr)
        assert time.monotonic() - started < 30  # each used to wait 60 s, then fail
    finally:
        writer.execute("ROLLBACK")
        writer.close()
