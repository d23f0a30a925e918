"""Input readers: every bad record is reported with where it is and why; the rest goes on."""

import json
from pathlib import Path

from newsflow.config import mask_secrets, mask_url
from producer.sources import Record, Rejection, read_path

LIMIT = 10_000


def _outcomes(path: Path) -> list[Record | Rejection]:
    return list(read_path(path, limit=LIMIT))


def test_jsonl_bad_lines_are_reported_and_good_ones_kept(tmp_path: Path) -> None:
    lines = [
        json.dumps({"id": 1, "text": "A good article about the harbour."}).encode(),
        b"{not json",
        json.dumps({"title": "no body"}).encode(),
        json.dumps({"text": 42}).encode(),
        json.dumps({"text": "   "}).encode(),
        json.dumps(["a", "list"]).encode(),
        b'{"text": "bad byte \xff here"}',
        json.dumps({"text": "x" * (LIMIT + 1)}).encode(),
        json.dumps({"text": "nul \u0000 inside"}).encode(),
        json.dumps({"text": "t", "html": "<p>h</p>"}).encode(),
        b"",
        json.dumps({"html": "<p>Second good one.</p>", "extra": "ignored"}).encode(),
    ]
    path = tmp_path / "in.jsonl"
    path.write_bytes(b"\n".join(lines))
    outcomes = _outcomes(path)
    good = [o for o in outcomes if isinstance(o, Record)]
    bad = {o.line: o.reason for o in outcomes if isinstance(o, Rejection)}
    assert [(r.kind, r.external_id, r.source) for r in good] == [
        ("text", "1", f"{path}:1"),
        ("html", None, f"{path}:12"),
    ]
    assert bad[2].startswith("malformed JSON")
    assert "missing 'text' or 'html'" in bad[3]
    assert bad[4] == "field 'text' must be a string, got int"
    assert bad[5].startswith("empty text")
    assert bad[6] == "expected a JSON object, got list"
    assert bad[7].startswith("not valid UTF-8 (byte 0xff")
    assert "over the limit of 10,000 bytes" in bad[8]
    assert "NUL" in bad[9]
    assert "both 'text' and 'html'" in bad[10]
    assert str(Rejection.at("f.jsonl", 3, "why")) == "f.jsonl:3: why"


def test_folder_reads_articles_and_reports_files_it_cannot(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("First story body.", encoding="utf-8")
    (tmp_path / "b.html").write_text("<p>Second.</p>", encoding="utf-8")
    (tmp_path / "c.html").write_bytes('<meta charset="latin-1"><p>Caf\xe9</p>'.encode("latin-1"))
    (tmp_path / "d.txt").write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00binary")
    (tmp_path / "e.txt").write_bytes("caf\xe9".encode("latin-1"))
    (tmp_path / "f.pdf").write_bytes(b"%PDF")
    (tmp_path / "g.txt").write_text("y" * (LIMIT + 1))
    outcomes = {Path(o.source.split(":")[0]).name: o for o in _outcomes(tmp_path)}
    assert isinstance(outcomes["a.txt"], Record) and outcomes["a.txt"].kind == "text"
    assert isinstance(outcomes["b.html"], Record) and outcomes["b.html"].kind == "html"
    assert isinstance(outcomes["c.html"], Record) and "Café" in outcomes["c.html"].content
    assert "binary file" in outcomes["d.txt"].reason  # type: ignore[union-attr]
    assert "not valid UTF-8" in outcomes["e.txt"].reason  # type: ignore[union-attr]
    assert "unsupported file type '.pdf'" in outcomes["f.pdf"].reason  # type: ignore[union-attr]
    assert "NEWSFLOW_MAX_ARTICLE_BYTES" in outcomes["g.txt"].reason  # type: ignore[union-attr]
    missing = _outcomes(tmp_path / "nope")
    assert isinstance(missing[0], Rejection) and missing[0].reason == "no such file or folder"


def test_passwords_are_masked() -> None:
    assert mask_url("redis://:s3cret@host:6379/0") == "redis://:***@host:6379/0"
    assert (
        mask_url("postgresql+psycopg://user:pa%40ss@db/x") == "postgresql+psycopg://user:***@db/x"
    )
    assert mask_url("sqlite:///newsflow.db") == "sqlite:///newsflow.db"
    assert "s3cret" not in mask_secrets("failed: redis://u:s3cret@h:1/0 refused")
