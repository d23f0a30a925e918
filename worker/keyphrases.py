"""The keyphrases half of the extract stage: a parsed Doc -> ranked, deduplicated phrases.

Candidates are spaCy's noun chunks, trimmed of determiners, pronouns and numbers at their
edges (a hyphenated compound such as "nine-day strike" stays whole); a chunk that is only
a date, time or figure ("Sunday", "last year") is no keyphrase. Phrases that differ only
by case or inflection (their lemmas) count as one, shown in their most frequent form.

A candidate's weight is the sum, over its occurrences, of 1 + (1 - position), times a
small bonus for phrases of two or three words. The ten heaviest make the list, with one
correction for readers: a bare common word ("economy", "people", "rise") is generic
unless the article uses it at least 1,000 times as often as the language does in
general (wordfreq's figures; "broadband" in a broadband story passes, "economy" in an
economy story does not). Generic words rank below the other phrases (their weight counts
a fifth), and give way to the next specific phrases until five of the list are specific.
Scores are the final weights, scaled so the best phrase scores 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from typing import Any

from spacy.attrs import IS_ALPHA, LEMMA

from worker.names import HONORIFICS, NUMERIC_LABELS, TITLES
from worker.nlp import UNSPACED

EDGE_POS = frozenset({"DET", "PRON", "NUM", "PUNCT", "CCONJ", "ADP", "PART", "SYM", "SPACE"})
LENGTH_BONUS = {1: 1.0, 2: 1.3, 3: 1.2}
CHAR_BONUS = {2: 1.0, 3: 1.2, 4: 1.3}  # characters of an unspaced script, about 1-2 a word
MAX_WORDS = 3
# Chinese (and Japanese) particles, conjunctions and prepositions, never a word's first or last
# character in a keyphrase (spaCy's Chinese stop words also hold characters like 地 and 市
# that begin or end ordinary words).
PARTICLES = frozenset(
    "的了着过吗呢吧啊和与及或而但在于对为将把被让从向也都就又还这那是はのをがにへとでもや"
)  # and Japanese ones, cut by character too
SPECIFIC_RATIO = 1000  # how much more often than in general a bare word must occur here
GENERIC_WEIGHT = 0.2  # a generic word's weight counts a fifth in the ranking
UNITS = frozenset({"m", "bn", "k", "mn", "million", "billion", "trillion", "%", "percent"})
SPECIFIC_FIRST = 5  # specific phrases the list holds when the article has them


@dataclass
class Keyphrase:
    text: str
    score: float


def _length(doc: Any) -> int:
    """The characters of doc.text, without joining it anew from the tokens."""
    return doc[-1].idx + len(doc[-1].text_with_ws) if len(doc) else 0


def _hyphenated(token: Any) -> bool:
    """True for "nine" in "nine-day": the token is glued to a hyphen that follows it."""
    doc = token.doc
    return not token.whitespace_ and token.i + 1 < len(doc) and doc[token.i + 1].text == "-"


def _edge(token: Any) -> bool:
    return token.pos_ in EDGE_POS or token.is_stop


def _leading(token: Any) -> bool:
    """A word that may start a noun chunk but not a keyphrase: "Mr Pande", "Actor Bruce
    Willis", the "m" of "2,850m euros"."""
    doc = token.doc
    word = token.lower_.rstrip(".")
    following = doc[token.i + 1] if token.i + 1 < len(doc) else None
    if word in HONORIFICS or (word in TITLES and following and following.ent_type_ == "PERSON"):
        return True
    return word in UNITS and token.i > 0 and doc[token.i - 1].like_num


def _trimmed(chunk: Any) -> Any | None:
    start, end = chunk.start, chunk.end
    doc = chunk.doc
    while start < end and (_edge(doc[start]) or _leading(doc[start])):
        if _hyphenated(doc[start]):
            break
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


@cache
def _word_lists() -> frozenset[str]:
    """The languages wordfreq has a small list for (it reads its folder on every ask)."""
    from wordfreq import available_languages

    return frozenset(available_languages(wordlist="small"))


def _frequency(word: str, lang: str) -> float:
    """How often `word` occurs in the language in general, as a share of all words; 0 for
    rare words (wordfreq's small lists hold the frequent ones, which is all this needs)."""
    from wordfreq import zipf_frequency

    if not word or lang not in _word_lists():
        return 0.0
    return float(10 ** (zipf_frequency(word, lang, wordlist="small") - 9))


def _generic(lemma: str, shown: str, uses: int, words: int, lang: str) -> bool:
    """True for a bare common word that the article uses (`uses` times in `words`) less
    than SPECIFIC_RATIO times as often as the language does in general."""
    general = max(_frequency(shown, lang), _frequency(lemma, lang))
    return uses < SPECIFIC_RATIO * general * words


def extract_keyphrases(doc: Any, *, top: int = 10) -> list[Keyphrase]:
    """The `top` keyphrases of one parsed article, best first."""
    length = max(_length(doc), 1)
    lemmas = doc.count_by(LEMMA)  # by hash; counted in C, a Python pass costs more
    words = doc.count_by(IS_ALPHA).get(1, 0)
    weights: dict[str, float] = {}
    forms: dict[str, Counter[str]] = {}
    uses: dict[str, int] = {}  # one-word phrases read as common nouns: their lemma's count
    for chunk in doc.noun_chunks:
        span = _trimmed(chunk)
        if span is None:
            continue
        key = " ".join(t.lemma_.casefold() or t.lower_ for t in span)
        bonus = LENGTH_BONUS.get(len(span), 1.0)
        weights[key] = weights.get(key, 0.0) + (2 - span.start_char / length) * bonus
        forms.setdefault(key, Counter())[span.text] += 1
        if len(span) == 1 and (span[0].pos_ == "NOUN" or span.text.islower()):
            uses[key] = lemmas.get(span[0].lemma, 0)
    shown = {key: surfaces.most_common(1)[0][0] for key, surfaces in forms.items()}
    seen: dict[str, str] = {}  # two lemmas shown alike ("Bloglines") are one phrase
    for key in list(weights):
        first = seen.setdefault(shown[key].casefold(), key)
        if first != key:
            weights[first] += weights.pop(key)
    generic = {
        key
        for key in weights
        if key in uses and _generic(key, shown[key], uses[key], words, doc.lang_)
    }
    return _choose(weights, shown, generic, top)


def _choose(
    weights: dict[str, float], shown: dict[str, str], generic: set[str], top: int
) -> list[Keyphrase]:
    """The `top` heaviest phrases, generic ones ranked below and giving way to specific
    ones until SPECIFIC_FIRST are specific; scores scaled so the best is 1."""
    ranked = sorted(weights, key=lambda k: weights[k], reverse=True)
    chosen = [k for k in ranked[:top] if k not in generic]
    chosen += [k for k in ranked[top:] if k not in generic][: max(SPECIFIC_FIRST - len(chosen), 0)]
    chosen += [k for k in ranked[:top] if k in generic][: top - len(chosen)]
    scores = {k: weights[k] * (GENERIC_WEIGHT if k in generic else 1.0) for k in chosen}
    chosen.sort(key=lambda k: scores[k], reverse=True)
    best = scores[chosen[0]] if chosen else 1.0
    return [Keyphrase(shown[k], round(scores[k] / best, 4)) for k in chosen]


def _runs(doc: Any, unspaced: bool) -> Iterator[list[Any]]:
    """Runs of content words: tokens between stop words, punctuation, numbers, line and
    sentence breaks, and single letters. In an unspaced script (a token a character of
    Chinese) only punctuation, numbers and breaks end a run: its stop words are single
    characters that are also parts of words (地 of 地铁, "metro"); PARTICLES bound the
    candidates instead."""
    run: list[Any] = []
    for token in doc:
        content = token.is_alpha and (unspaced or (not token.is_stop and len(token.text) > 1))
        if run and (not content or token.is_sent_start or "\n" in doc[token.i - 1].whitespace_):
            yield run
            run = []
        if content:
            run.append(token)
    if run:
        yield run


def extract_token_keyphrases(doc: Any, *, top: int = 10) -> list[Keyphrase]:
    """Keyphrases from tokens and the language's stop words alone, for languages with no
    parser: RAKE's candidates (runs of content words between stop words and punctuation,
    up to three words) plus the parts of longer runs that recur, weighted as the parsed
    path weights noun chunks, names (capitalised inside a sentence) counting 1.5 times.
    In unspaced scripts (Chinese) the tokens are characters, and candidates are two to
    four of them."""
    unspaced = doc.lang_ in UNSPACED
    shortest, longest = (2, 4) if unspaced else (1, MAX_WORDS)
    joiner = "" if unspaced else " "
    length = max(_length(doc), 1)
    found: dict[str, list[Any]] = {}  # phrase key -> its occurrences (token lists)
    whole: set[str] = set()  # keys that were a whole run
    longer: dict[str, set[str]] = {}  # key -> the keys one word longer around it
    for run in _runs(doc, unspaced):
        lowered = [t.lower_ for t in run]
        for n in range(shortest, min(longest, len(run)) + 1):
            for i in range(len(run) - n + 1):
                piece = run[i : i + n]
                if unspaced and (piece[0].text in PARTICLES or piece[-1].text in PARTICLES):
                    continue  # a Chinese phrase neither starts nor ends with a particle
                key = joiner.join(lowered[i : i + n])
                found.setdefault(key, []).append(piece)
                if n == len(run):
                    whole.add(key)
                if n < longest:
                    around = longer.setdefault(key, set())
                    around.update(joiner.join(lowered[a : a + n + 1]) for a in (i - 1, i)
                                  if a >= 0 and a + n < len(run))  # fmt: skip
    counts = {key: len(uses) for key, uses in found.items()}
    weights: dict[str, float] = {}
    shown: dict[str, str] = {}
    for key, uses in found.items():
        words = len(uses[0])
        if words > shortest and counts[key] < 2 and key not in whole:
            continue  # a part of one long run, seen once
        if any(counts.get(other, 0) == counts[key] for other in longer.get(key, ())):
            continue  # never seen outside a longer phrase
        named = sum(u[0].text[:1].isupper() and not u[0].is_sent_start for u in uses)
        bonus = CHAR_BONUS.get(words, 1.0) if unspaced else LENGTH_BONUS.get(words, 1.0)
        weight = sum(2 - u[0].idx / length for u in uses) * bonus
        weights[key] = weight * (1.5 if named * 2 > len(uses) else 1.0)
        forms = Counter(doc[u[0].i : u[-1].i + 1].text for u in uses)
        shown[key] = forms.most_common(1)[0][0]
    total = sum(1 for t in doc if t.is_alpha)
    generic = {
        key
        for key in weights
        if joiner not in key
        and not unspaced
        and _generic(key, shown[key], counts[key], total, doc.lang_)
    }
    return _choose(weights, shown, generic, top)
