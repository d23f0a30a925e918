"""One corpus of bad input, written here, submitted the way a user would: every record's
outcome is asserted, every good record is processed, nothing crashes."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from newsflow.record import Filters
from producer.embedded import EmbeddedRedis
from tests.conftest import Stack, fresh_database, make_stack

pytestmark = pytest.mark.integration
GOOD_LINES = 10_000
LIMIT = 1_000_000


@pytest.fixture
def stack(tmp_path: Path) -> Iterator[Stack]:
    home = Path(tempfile.mkdtemp(prefix="nf-bad-"))
    with EmbeddedRedis(home / "redis.sock") as broker:
        for url in fresh_database("sqlite", tmp_path):
            built = make_stack(url, broker.url, tmp_path)
            built.start_worker(concurrency=2)
            try:
                yield built
            finally:
                built.stop_worker()


STORY = "The harbour of Valmera reopened on Monday after a strike, the port authority said."
FRENCH = (
    "Le conseil municipal de Valmera a voté mardi un nouveau budget pour les transports "
    "publics, a annoncé la mairie dans un communiqué publié dans la soirée."
)
SCRIPTS_ONLY = (
    "<html><head><style>body{}</style><script>var a=1;</script></head>"
    "<body><script>track()</script></body></html>"
)
MIXED = [
    json.dumps({"id": "m1", "text": STORY + " First of the mixed file."}).encode(),
    b'{"id": "m2", "text": "unterminated',
    json.dumps({"id": "m3", "text": ["a", "list"]}).encode(),
    json.dumps({"id": "m4", "title": "A title and nothing else"}).encode(),
    json.dumps(
        {"id": "m5", "text": STORY + " It has a field we do not know.", "mood": "x"}
    ).encode(),
    b'{"id": "m6", "text": "bad \xfe\xff bytes"}',
    json.dumps({"id": "m7", "text": "nul \u0000 inside"}).encode(),
    json.dumps({"id": "m8", "text": ""}).encode(),
    json.dumps({"id": "m9", "html": "<p>" + STORY + "</p>", "published": 2026}).encode(),
    json.dumps("just a string").encode(),
]
MIXED_REJECTED = {  # line of MIXED -> what its rejection says
    2: "malformed JSON",
    3: "field 'text' must be a string, got list",
    4: "missing 'text' or 'html'",
    6: "not valid UTF-8 (byte 0xfe",
    7: "NUL bytes",
    8: "empty text",
    9: "field 'published' must be a string, got int",
    10: "expected a JSON object, got str",
}
BAD_WIRES = {  # a bad line among good wire items -> what its rejection says
    b"{oops": "malformed JSON",
    b'{"text": 17}': "field 'text' must be a string, got int",
    b'{"html": null}': "missing 'text' or 'html'",
}


def write_corpus(folder: Path) -> dict[tuple[str, int | None], str]:
    """Writes the corpus; returns the expected rejections: (file, line) -> reason fragment."""
    folder.mkdir()
    (folder / "good.txt").write_text(STORY, encoding="utf-8")
    (folder / "empty.txt").write_text("", encoding="utf-8")
    (folder / "blank.txt").write_text("  \n\t\n ", encoding="utf-8")
    (folder / "nul.txt").write_bytes(b"Half a story\x00and binary after it")
    (folder / "latin1.txt").write_bytes("Caf\xe9 owners in Valmera protested.".encode("latin-1"))
    (folder / "photo.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00" + bytes(range(256)))
    (folder / "disguised.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(64))
    with (folder / "huge.txt").open("w", encoding="utf-8") as handle:  # 50 MB
        line = "Endless words about the harbour strike in Valmera go on and on. " * 16 + "\n"
        for _ in range(50 * 1024 * 1024 // len(line) + 1):
            handle.write(line)
    (folder / "scripts.html").write_text(SCRIPTS_ONLY, encoding="utf-8")
    (folder / "french.txt").write_text(FRENCH, encoding="utf-8")

    (folder / "mixed.jsonl").write_bytes(b"\n".join(MIXED) + b"\n")

    bad_at = dict(zip((1_234, 5_000, 9_999), BAD_WIRES, strict=True))
    with (folder / "wires.jsonl").open("wb") as handle:
        number = 0
        for i in range(GOOD_LINES + len(bad_at)):
            number += 1
            if number in bad_at:
                handle.write(bad_at[number] + b"\n")
                continue
            record = {"id": f"w{i}", "text": f"Wire item {i}: the council of Brookfield approved "
                      f"plan number {i} on Tuesday, officials in Brookfield said."}  # fmt: skip
            handle.write(json.dumps(record).encode() + b"\n")

    return {
        ("empty.txt", None): "empty text",
        ("blank.txt", None): "empty text",
        ("nul.txt", None): "binary file (NUL bytes)",
        ("latin1.txt", None): "not valid UTF-8 (byte 0xe9",
        ("photo.jpg", None): "unsupported file type '.jpg'",
        ("disguised.txt", None): "binary file (NUL bytes)",
        ("huge.txt", None): f"over the limit of {LIMIT:,} bytes",
        **{("mixed.jsonl", line): reason for line, reason in MIXED_REJECTED.items()},
        **{("wires.jsonl", line): BAD_WIRES[raw] for line, raw in bad_at.items()},
    }


def test_every_bad_record_is_reported_and_every_good_one_processed(
    stack: Stack, tmp_path: Path
) -> None:
    folder = tmp_path / "inbox"
    expected = write_corpus(folder)
    env = {"NEWSFLOW_DATABASE_URL": stack.settings.database_url,
           "NEWSFLOW_BROKER_URL": stack.settings.broker(),
           "NEWSFLOW_MAX_ARTICLE_BYTES": str(LIMIT), "NEWSFLOW_CHUNK_SIZE": "64"}  # fmt: skip
    command = [sys.executable, "-m", "producer.cli", "submit", str(folder), "--json", "--wait"]
    result = subprocess.run(command, env=env, capture_output=True, text=True, timeout=900)
    assert result.returncode == 1, result.stderr[-2000:]
    assert "Traceback" not in result.stderr
    report = json.loads(result.stdout)
    got = {(Path(r["source"]).name, r["line"]): r["reason"] for r in report["rejected"]}
    assert set(got) == set(expected)
    for key, fragment in expected.items():
        assert fragment in got[key], (key, got[key])
    assert "NEWSFLOW_MAX_ARTICLE_BYTES" in got[("huge.txt", None)]

    # Accepted: good.txt, scripts.html, french.txt, m1, m5 (unknown field ignored), 10,000 wires.
    assert report["submitted"] == 5 + GOOD_LINES and report["duplicates"] == 0
    outcomes = {
        r.external_id: r for r in stack.client.results(Filters(batch_id=report["batch_id"]))
    }
    failed = {key: r for key, r in outcomes.items() if r.status != "done"}
    assert set(failed) == {"scripts.html"}  # a language is no reason to fail (see #14)
    assert "no article text found in the HTML" in failed["scripts.html"].stages["clean"].error
    french = outcomes["french.txt"]
    assert french.language == "fr" and french.status == "done" and french.summary.sentences
    assert outcomes["m5"].status == "done"
    assert sum(key.startswith("w") for key in outcomes) == GOOD_LINES
    assert stack.worker is not None and stack.worker.poll() is None, "a worker crashed"
