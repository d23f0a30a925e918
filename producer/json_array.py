"""A JSON array read as a stream of its items' bytes, in memory bounded by one item.

`json.load` of a request body builds every record at once (64 MB of `[{},{},...]` took
1.9 GB); this reads a block at a time and cuts the array at its top-level commas, so the
records are parsed one by one, as JSONL lines are. Only brackets, braces, quotes, commas
and backslashes are looked at, found by regular expression, so the bytes of a string are
skipped in C. An item longer than `limit` is skipped to its end without being held.
"""

from __future__ import annotations

import codecs
import re
from collections.abc import Iterator
from typing import IO

BLOCK = 1 << 20
OUTSIDE = re.compile(rb'[\[\]{}",]')  # what matters between strings
INSIDE = re.compile(rb'["\\]')  # what matters inside one


class MalformedArray(ValueError):
    """Raised when the body is not one JSON array; the message says what and where."""


def array_items(body: IO[bytes], *, limit: int, keep: bool = True) -> Iterator[bytes | None]:
    """The bytes of each top-level item of the JSON array in `body`: None for an item over
    `limit` bytes, and for every item when not `keep` (to count them). Raises
    MalformedArray for a body that is not one array, UnicodeDecodeError (with the body's
    offset) for one that is not UTF-8."""
    scanner = _Scanner(limit, keep)
    decoder = codecs.getincrementaldecoder("utf-8")()
    offset = 0
    while block := body.read(BLOCK):
        try:
            decoder.decode(block)
        except UnicodeDecodeError as exc:
            start, end = offset + exc.start, offset + exc.end
            raise UnicodeDecodeError("utf-8", block, start, end, exc.reason) from None
        yield from scanner.feed(block)
        scanner.moved(block)
        offset += len(block)
    decoder.decode(b"", final=True)
    scanner.close()


class _Scanner:
    """The state of one array's scan between blocks."""

    def __init__(self, limit: int, keep: bool) -> None:
        self.limit, self.keep = limit, keep
        self.depth = 0  # 1: in the array between items; more: inside an item
        self.in_string = self.escaped = self.done = False
        self.held = bytearray()  # the current item's bytes from earlier blocks
        self.seen = self.oversized = False  # the current item has begun / is too long
        self.items = 0
        self.line, self.line_start, self.offset = 1, 0, 0

    def feed(self, block: bytes) -> Iterator[bytes | None]:
        i, n = 0, len(block)
        start = 0  # where the current item's bytes in this block begin
        if self.escaped:  # a backslash ended the last block: skip the byte it escapes
            self.escaped, i = False, 1
        while i < n:
            if self.done:
                rest = block[i:]
                if rest.strip():
                    first = i + len(rest) - len(rest.lstrip())
                    raise MalformedArray(f"extra data after the array at {self.at(block, first)}")
                return
            if self.in_string:
                found = INSIDE.search(block, i)
                if found is None:
                    break
                i = found.end()
                if found[0] == b"\\":
                    i += 1
                    self.escaped = i > n
                else:
                    self.in_string = False
                continue
            found = OUTSIDE.search(block, i)
            j = found.start() if found else n
            if block[i:j].strip():
                if self.depth == 0:
                    raise MalformedArray(f"expected a JSON array at {self.at(block, i)}")
                self.seen = True
            if found is None:
                break
            i, char = found.end(), found[0]
            if self.depth == 0:
                if char != b"[":
                    raise MalformedArray(f"expected a JSON array at {self.at(block, j)}")
                self.depth, start = 1, i
            elif char == b'"':
                self.in_string = self.seen = True
            elif char in b"[{":
                self.depth, self.seen = self.depth + 1, True
            elif char in b"]}":
                self.depth -= 1
                if self.depth == 0:
                    if char != b"]":
                        raise MalformedArray(f"a '}}' closes the array at {self.at(block, j)}")
                    if self.seen:
                        yield self._item(block[start:j])
                    elif self.items:
                        raise MalformedArray(f"a comma before ']' at {self.at(block, j)}")
                    self.done = True
            elif char == b"," and self.depth == 1:
                if not self.seen:
                    raise MalformedArray(f"an item is missing at {self.at(block, j)}")
                yield self._item(block[start:j])
                start = i
        if self.depth >= 1 and not self.done:
            self._hold(block[start:])

    def _hold(self, piece: bytes) -> None:
        if not self.keep or self.oversized:
            return
        if len(self.held) + len(piece) > self.limit:
            self.held.clear()
            self.oversized = True
        else:
            self.held += piece

    def _item(self, last: bytes) -> bytes | None:
        self._hold(last)
        item = None if self.oversized or not self.keep else bytes(self.held)
        self.held.clear()
        self.seen = self.oversized = False
        self.items += 1
        return item

    def moved(self, block: bytes) -> None:
        """Past `block`: keep the line and column count for messages."""
        newlines = block.count(b"\n")
        if newlines:
            self.line += newlines
            self.line_start = self.offset + block.rindex(b"\n") + 1
        self.offset += len(block)

    def at(self, block: bytes, index: int) -> str:
        before = block[:index]
        newlines = before.count(b"\n")
        line_start = self.offset + before.rindex(b"\n") + 1 if newlines else self.line_start
        return f"line {self.line + newlines} column {self.offset + index - line_start + 1}"

    def close(self) -> None:
        if self.done:
            return
        if self.depth == 0:
            raise MalformedArray("the body holds no JSON array: send [{...}, ...]")
        end = f"line {self.line} column {self.offset - self.line_start + 1}"
        raise MalformedArray(f"the body ends inside the array at {end}: a ']' or '}}' is missing")
