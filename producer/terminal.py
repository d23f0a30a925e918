"""Untrusted text (titles, names, reasons, file names) made safe for a terminal and a sheet.

Article text comes from anyone: on a terminal it must never act as rich markup ("[/]"
crashes, "[update]" vanishes) or as control sequences (ESC could recolour, retitle or
rewrite the screen); in a CSV cell it must never start a formula (OWASP's CSV injection).
"""

from __future__ import annotations

import re

from rich.markup import escape

CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")  # C0 and C1, but tab and newline
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def shown(value: object) -> str:
    """`value` as text for rich to print: control characters dropped, markup escaped."""
    return escape(CONTROL.sub("", str(value)))


def cell(value: object) -> str:
    """`value` for a CSV cell: a leading formula character is quoted away with an
    apostrophe, as spreadsheet programs and OWASP advise."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text
