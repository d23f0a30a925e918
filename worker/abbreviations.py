"""Abbreviations and the names they stand for, as an article defines or spells them.

- "Full Name (ABBR)" and "ABBR (Full Name)" define an abbreviation when its letters are
  the initials of the name's capitalised words ("International Energy Agency (IEA)",
  "Bank of England (BoE)", "Tara (Total Abstract Rendering Architecture)");
- when spaCy cut the full name short ("The Office of the Deputy" before "(ODPM)"), it is
  read back from the capitalised words before the bracket;
- without brackets, an all-capital abbreviation may stand for a name whose initials it
  spells ("EU", "European Union"): spelled_initials() gives the key to match them.
"""

from __future__ import annotations

import re
from typing import Any

from worker.names import POSSESSIVE_S, tokens_written

# Lower-case words inside a spelled-out name: "Office of the Deputy Prime Minister".
CONNECTORS = frozenset({"of", "for", "and", "the", "&", "de", "on", "in", "to"})

Span = tuple[int, int]  # character offsets


def is_abbreviation(token: Any) -> bool:
    """A token that can be an abbreviation: "IEA", "BoE", "Opec", "Tara", "S&P"."""
    text = token.text
    return 2 <= len(text) <= 8 and text.replace("&", "").isalpha() and text[0].isupper()


def letters(abbr: str) -> list[str]:
    """The letters an abbreviation spells: its capitals ("BoE" -> B, E), or all of its
    letters when it is written as a word ("Opec" -> O, P, E, C)."""
    capitals = [c for c in abbr if c.isupper()]
    return capitals if len(capitals) >= 2 else [c.upper() for c in abbr if c.isalpha()]


def initials_match(full: str, abbr: str) -> bool:
    """True when the abbreviation's letters are the initials of the capitalised words
    ending `full`: "International Energy Agency" / "IEA", "Bank of England" / "BoE",
    "Organisation of the Petroleum Exporting Countries" / "Opec"."""
    spelled = letters(abbr)
    words = [w for w in re.split(r"[\s&]+", full) if w[:1].isupper()]
    if len(spelled) < 2 or len(words) < len(spelled):
        return False
    return [w[0] for w in words[-len(spelled) :]] == spelled


def spelled_initials(name: str) -> str | None:
    """The initials of a name of two to six capitalised words ("European Union" -> "EU"),
    connectors aside; None for any other name."""
    words = [w for w in re.split(r"[\s&]+", name) if w.lower() not in CONNECTORS]
    if not 2 <= len(words) <= 6 or not all(w[:1].isupper() and w.isalpha() for w in words):
        return None
    return "".join(w[0] for w in words)


def _spelled_out(doc: Any, bracket: int, abbr: str) -> Span | None:
    """The capitalised words just before a bracket whose initials spell the abbreviation
    in it."""
    wanted, words = letters(abbr), list[Any]()
    i = bracket - 1
    while i >= 0 and len(words) < len(wanted):
        token = doc[i]
        if token.text[:1].isupper():
            words.append(token)
        elif token.lower_ not in CONNECTORS:
            return None
        i -= 1
    if [w.text[0] for w in reversed(words)] != wanted:
        return None
    last = doc[bracket - 1]
    return words[-1].idx, last.idx + len(last)


def definitions(doc: Any, text: str, names: set[Span]) -> list[tuple[Span, Span]]:
    """(full name, abbreviation) spans of the abbreviations the document (whose text is
    `text`) defines in brackets; `names` are the spans already taken for names, which a
    full name or an abbreviation before a bracket must be (unless the full name is read
    from its words)."""
    found = []
    for bracket in tokens_written(doc, "("):
        if not 0 < bracket.i < len(doc) - 2:
            continue
        closing = next((t for t in doc[bracket.i + 2 : bracket.i + 12] if t.text == ")"), None)
        inner, last = doc[bracket.i + 1], doc[bracket.i - 1]
        if last.lower_ in POSSESSIVE_S:  # "Standard & Poor's (S&P)"
            last = doc[bracket.i - 2]
        before = next((span for span in names if span[1] == last.idx + len(last)), None)
        inside = next((span for span in names if span[0] == inner.idx), None)
        if closing is None:
            continue
        if closing.i == inner.i + 1 and is_abbreviation(inner):  # "Full Name (ABBR)"
            full = before
            if full is None or not initials_match(text[slice(*full)], inner.text):
                full = _spelled_out(doc, bracket.i, inner.text)
            if full is not None:
                found.append((full, (inner.idx, inner.idx + len(inner))))
        elif before and inside and before[0] == last.idx and is_abbreviation(last):
            expanded = inside[1] <= closing.idx and initials_match(text[slice(*inside)], last.text)
            if expanded:
                found.append((inside, before))  # "ABBR (Full Name)"
    return found
