"""Readers for every input format -> validated article records, or a rejection with a reason.

A bad record never stops the batch: each reader yields a `Rejection` (source, line, reason
a person can act on) in its place and goes on with the next one.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, BinaryIO

from pydantic import BaseModel, ConfigDict, StrictInt, StrictStr, ValidationError

from newsflow.record import Rejection

TEXT_SUFFIXES = {".txt": "text", ".text": "text", ".html": "html", ".htm": "html"}
JSONL_SUFFIXES = {".jsonl", ".ndjson"}
CHARSET = re.compile(rb"""<meta[^>]+charset=["']?([\w-]+)""", re.I)


@dataclass(frozen=True)
class Record:
    """One article ready to store: its raw content and what the submitter told about it."""

    kind: str  # "text" or "html"
    content: str
    source: str  # file:line, for messages and provenance
    external_id: str | None = None
    title: str | None = None
    url: str | None = None
    published: str | None = None
    origin: str | None = None  # the record's own "source" field (a site or feed name)


class InputRecord(BaseModel):
    """The JSONL record schema: `text` or `html` required, the rest optional."""

    model_config = ConfigDict(extra="ignore")

    text: StrictStr | None = None
    html: StrictStr | None = None
    id: StrictStr | StrictInt | None = None  # not true/false, which are no ids
    title: StrictStr | None = None
    url: StrictStr | None = None
    published: StrictStr | None = None
    source: StrictStr | None = None


def _content_problem(content: str, limit: int) -> str | None:
    size = len(content.encode("utf-8", "surrogatepass"))
    if size > limit:
        return (
            f"article is {size:,} bytes, over the limit of {limit:,} bytes "
            "(raise NEWSFLOW_MAX_ARTICLE_BYTES to accept it)"
        )
    if "\x00" in content:
        return "contains NUL bytes: binary data, not article text"
    if not content.strip():
        return "empty text: the record has no characters besides whitespace"
    return None


def _surrogate_field(item: InputRecord) -> str | None:
    """The first field holding a lone surrogate (a JSON escape like \\ud800 with no pair),
    which no database can store as text."""
    for name, value in item:
        if isinstance(value, str):
            try:
                value.encode("utf-8")
            except UnicodeEncodeError:
                return name
    return None


def _validation_reason(error: ValidationError) -> str:
    parts: list[str] = []
    for item in error.errors():
        loc = item["loc"]
        field = str(loc[0]) if loc else "record"
        expected = "a string or an integer" if field == "id" else "a string"
        if item["type"].endswith("_type"):
            part = f"field {field!r} must be {expected}, got {type(item['input']).__name__}"
        else:
            part = f"field {field!r}: {item['msg']}"
        if part not in parts:  # an id fails both kinds of a union with one reason
            parts.append(part)
    return "; ".join(parts)


def from_mapping(data: Any, *, source: str, line: int | None, limit: int) -> Record | Rejection:
    """Validate one JSON object / dict into a Record."""
    if not isinstance(data, dict):
        return Rejection.at(source, line, f"expected a JSON object, got {type(data).__name__}")
    try:
        item = InputRecord.model_validate(data)
    except ValidationError as exc:
        return Rejection.at(source, line, _validation_reason(exc))
    if field := _surrogate_field(item):
        return Rejection.at(
            source,
            line,
            f"field {field!r} holds an unpaired surrogate escape (like \\ud800): not text; "
            "fix the encoder that wrote it",
        )
    if item.text is None and item.html is None:
        return Rejection.at(source, line, "missing 'text' or 'html': one of them is required")
    if item.text is not None and item.html is not None:
        return Rejection.at(source, line, "both 'text' and 'html' given: send one of them")
    kind, content = ("html", item.html) if item.html is not None else ("text", item.text)
    assert content is not None
    if problem := _content_problem(content, limit):
        return Rejection.at(source, line, problem)
    where = f"{source}:{line}" if line is not None else source
    return Record(
        kind=kind,
        content=content,
        source=where,
        external_id=None if item.id is None else str(item.id),
        title=item.title,
        url=item.url,
        published=item.published,
        origin=item.source,
    )


def read_jsonl_lines(
    lines: Iterable[bytes | None], *, source: str, limit: int
) -> Iterator[Record | Rejection]:
    """Records of JSONL lines; a None line is one `bounded_lines` found too long."""
    for number, raw in enumerate(lines, start=1):
        if raw is None:
            yield Rejection.at(
                source, number, f"line is over the size limit of {line_limit(limit):,} bytes"
            )
        elif raw.strip():
            yield from_json(raw, source=source, line=number, limit=limit)


def from_json(raw: bytes, *, source: str, line: int, limit: int) -> Record | Rejection:
    """One record from the bytes of its JSON object (a JSONL line, an array's item)."""
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        return Rejection.at(
            source, line, f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at column {exc.start + 1})"
        )
    try:
        data = json.loads(text)
    except json.JSONDecodeError as exc:
        return Rejection.at(source, line, f"malformed JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return Rejection.at(source, line, "JSON nested too deeply to read")
    except ValueError as exc:  # e.g. an integer of more than 4,300 digits
        return Rejection.at(source, line, f"unreadable JSON: {exc}")
    return from_mapping(data, source=source, line=line, limit=limit)


def line_limit(limit: int) -> int:
    """Longest JSONL line read: escaped JSON may be up to ~2x the text, plus its fields."""
    return limit * 2 + 1024


def bounded_lines(stream: IO[bytes], limit: int) -> Iterator[bytes | None]:
    """The lines of `stream`, never holding more than `limit` bytes of one: a longer line
    is skipped to its end and given as None."""
    while True:
        line = stream.readline(limit + 1)
        if not line:
            return
        if len(line) <= limit or line.endswith(b"\n"):
            yield line
            continue
        while line and not line.endswith(b"\n"):  # drain the rest, a piece at a time
            line = stream.readline(1 << 20)
        yield None


def _decode(raw: bytes, kind: str) -> str:
    if b"\x00" in raw[:8192]:
        raise ValueError("binary file (NUL bytes), not article text")
    try:
        return raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        if kind == "html" and (match := CHARSET.search(raw[:4096])):
            try:
                return raw.decode(match.group(1).decode("ascii"))
            except (LookupError, UnicodeDecodeError):
                pass
        raise ValueError(
            f"not valid UTF-8 (byte 0x{raw[exc.start]:02x} at offset {exc.start}); "
            "convert the file to UTF-8"
        ) from exc


def read_file(path: Path, *, limit: int) -> Iterator[Record | Rejection]:
    """One .txt/.html article, or the records of a .jsonl file."""
    source = str(path)
    suffix = path.suffix.lower()
    if suffix in JSONL_SUFFIXES:
        with path.open("rb") as handle:
            lines = bounded_lines(handle, line_limit(limit))
            yield from read_jsonl_lines(lines, source=source, limit=limit)
        return
    kind = TEXT_SUFFIXES.get(suffix)
    if kind is None:
        yield Rejection.at(
            source,
            None,
            f"unsupported file type {suffix or '(none)'!r}; expected .jsonl, .txt or .html",
        )
        return
    size = path.stat().st_size
    if size > limit:
        yield Rejection.at(
            source,
            None,
            f"file is {size:,} bytes, over the limit of {limit:,} bytes "
            "(raise NEWSFLOW_MAX_ARTICLE_BYTES to accept it)",
        )
        return
    try:
        content = _decode(path.read_bytes(), kind)
    except ValueError as exc:
        yield Rejection.at(source, None, str(exc))
        return
    if problem := _content_problem(content, limit):
        yield Rejection.at(source, None, problem)
        return
    yield Record(kind=kind, content=content, source=source, external_id=path.name)


def _not_regular(path: Path) -> str:
    if path.is_symlink() and path.is_dir():
        return "a symlinked folder, not followed (pass its target to read it)"
    if path.is_fifo():
        return "a FIFO, not a file; pipe it to `newsflow submit -` to read it as a stream"
    if path.is_char_device() or path.is_block_device():
        return "a device, not a file"
    if path.is_socket():
        return "a socket, not a file"
    if path.is_symlink() and not path.exists():
        return "a broken symlink"
    return "not a regular file"


def _folder(folder: Path) -> Iterator[Path | Rejection]:
    """Every file under `folder`, sorted, and a rejection for each entry that is not one."""
    for root, dirs, names in os.walk(folder):
        here = Path(root)
        dirs.sort()
        for name in sorted(dirs):
            if (here / name).is_symlink():
                yield Rejection.at(str(here / name), None, _not_regular(here / name))
        dirs[:] = [d for d in dirs if not d.startswith(".")]
        for name in sorted(names):
            path = here / name
            if name.startswith("."):
                continue
            if path.is_file():
                yield path
            else:
                yield Rejection.at(str(path), None, _not_regular(path))


def read_path(path: str | Path, *, limit: int) -> Iterator[Record | Rejection]:
    """A file, a folder (every article file in it, sorted), or '-' for stdin."""
    if str(path) == "-":
        yield from read_stdin(limit=limit)
        return
    path = Path(path)
    if path.is_dir():
        for entry in _folder(path):
            if isinstance(entry, Rejection):
                yield entry
            else:
                yield from read_file(entry, limit=limit)
    elif path.is_file():
        yield from read_file(path, limit=limit)
    elif path.exists() or path.is_symlink():
        yield Rejection.at(str(path), None, _not_regular(path))
    else:
        yield Rejection.at(str(path), None, "no such file or folder")


def read_stdin(*, limit: int, stream: BinaryIO | None = None) -> Iterator[Record | Rejection]:
    """JSONL when the input starts with '{', else one plain-text article; read as a
    stream, so memory stays bounded whatever comes in."""
    stream = stream or sys.stdin.buffer
    head = stream.peek(64) if hasattr(stream, "peek") else b""
    if head.lstrip().startswith(b"{"):
        lines = bounded_lines(stream, line_limit(limit))
        yield from read_jsonl_lines(lines, source="<stdin>", limit=limit)
        return
    data = stream.read(limit + 1)
    if len(data) > limit:
        yield Rejection.at(
            "<stdin>",
            None,
            f"plain text on stdin is over the limit of {limit:,} bytes "
            "(raise NEWSFLOW_MAX_ARTICLE_BYTES, or send JSONL, one article a line)",
        )
        return
    try:
        content = _decode(data, "text")
    except ValueError as exc:
        yield Rejection.at("<stdin>", None, str(exc))
        return
    if problem := _content_problem(content, limit):
        yield Rejection.at("<stdin>", None, problem)
    else:
        yield Record(kind="text", content=content, source="<stdin>")


def read_inputs(items: Iterable[Any], *, limit: int) -> Iterator[Record | Rejection]:
    """Paths, dicts or already read records, as the Python API accepts them, in one stream."""
    for index, item in enumerate(items, start=1):
        if isinstance(item, (Record, Rejection)):
            yield item
        elif isinstance(item, dict):
            yield from_mapping(item, source="<records>", line=index, limit=limit)
        elif isinstance(item, (str, Path)):
            yield from read_path(item, limit=limit)
        else:
            yield Rejection.at(
                "<records>", index, f"expected a dict or a path, got {type(item).__name__}"
            )
