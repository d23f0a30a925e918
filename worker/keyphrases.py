"""The keyphrases half of the extract stage: a parsed Doc -> ranked, deduplicated phrases.

Candidates are spaCy's noun chunks, trimmed of determiners, pronouns and numbers at their
edges. A candidate's score is the sum, over its occurrences, of 1 + (1 - position), times
a small bonus for phrases of two or three words; phrases that differ only by case or
inflection (their lemmas) count as one, shown in their most frequent surface form.
Scores are scaled so the best phrase scores 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

EDGE_POS = frozenset({"DET", "PRON", "NUM", "PUNCT", "CCONJ", "ADP", "PART", "SYM", "SPACE"})
LENGTH_BONUS = {1: 1.0, 2: 1.3, 3: 1.2}


@dataclass
class Keyphrase:
    text: str
    score: float


def _trimmed(chunk: Any) -> Any | None:
    start, end = chunk.start, chunk.end
    doc = chunk.doc
    while start < end and (doc[start].pos_ in EDGE_POS or doc[start].is_stop):
        start += 1
    while end > start and (doc[end - 1].pos_ in EDGE_POS or doc[end - 1].is_stop):
        end -= 1
    if end <= start or end - start > 5:
        return None
    span = doc[start:end]
    if "\n" in span.text or len(span.text) < 3 or not any(t.is_alpha for t in span):
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
        surface = forms.setdefault(key, {})
        surface[span.text] = surface.get(span.text, 0) + 1
    ranked = sorted(scores, key=lambda k: scores[k], reverse=True)[:top]
    best = scores[ranked[0]] if ranked else 1.0
    return [
        Keyphrase(max(forms[k], key=lambda f: forms[k][f]), round(scores[k] / best, 4))
        for k in ranked
    ]
