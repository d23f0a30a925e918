"""The keyphrases half of the extract stage: a parsed Doc -> ranked, deduplicated phrases.

Candidates are spaCy's noun chunks, trimmed of determiners, pronouns and numbers at their
edges (a hyphenated compound such as "nine-day strike" stays whole); a chunk that is only
a date, time or figure ("Sunday", "last year") is no keyphrase. A candidate's score is
the sum, over its occurrences, of 1 + (1 - position), times a small bonus for phrases of
two or three words; phrases that differ only by case or inflection (their lemmas) count
as one, shown in their most frequent surface form. Scores are scaled so the best phrase
scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from worker.names import NUMERIC_LABELS

EDGE_POS = frozenset({"DET", "PRON", "NUM", "PUNCT", "CCONJ", "ADP", "PART", "SYM", "SPACE"})
LENGTH_BONUS = {1: 1.0, 2: 1.3, 3: 1.2}


@dataclass
class Keyphrase:
    text: str
    score: float


def _hyphenated(token: Any) -> bool:
    """True for "nine" in "nine-day": the token is glued to a hyphen that follows it."""
    doc = token.doc
    return not token.whitespace_ and token.i + 1 < len(doc) and doc[token.i + 1].text == "-"


def _edge(token: Any) -> bool:
    return token.pos_ in EDGE_POS or token.is_stop


def _trimmed(chunk: Any) -> Any | None:
    start, end = chunk.start, chunk.end
    doc = chunk.doc
    while start < end and _edge(doc[start]) and not _hyphenated(doc[start]):
        start += 1
    while end > start and _edge(doc[end - 1]):
        end -= 1
    if end <= start or end - start > 5:
        return None
    span = doc[start:end]
    if "\n" in span.text or len(span.text) < 3 or not any(t.is_alpha for t in span):
        return None
    if all(t.ent_type_ in NUMERIC_LABELS for t in span if t.is_alpha):
        return None
    return span


def extract_keyphrases(doc: Any, *, top: int = 10) -> list[Keyphrase]:
    """The `top` keyphrases of one parsed article, best first."""
    length = max(len(doc.text), 1)
    scores: dict[str, float] = {}
    forms: dict[str, dict[str, int]] = {}
    for chunk in doc.noun_chunks:
        span = _trimmed(chunk)
        if span is None:
            continue
        key = " ".join(t.lemma_.casefold() or t.lower_ for t in span)
        bonus = LENGTH_BONUS.get(len(span), 1.0)
        scores[key] = scores.get(key, 0.0) + (2 - span.start_char / length) * bonus
        surfaces = forms.setdefault(key, {})
        surfaces[span.text] = surfaces.get(span.text, 0) + 1
    ranked = sorted(scores, key=lambda k: scores[k], reverse=True)[:top]
    best = scores[ranked[0]] if ranked else 1.0
    return [
        Keyphrase(max(forms[k], key=lambda f: forms[k][f]), round(scores[k] / best, 4))
        for k in ranked
    ]
