"""The summarize stage: clean text -> an extractive summary with sentence offsets.

Sentences are found per paragraph (so none spans a paragraph break) by spaCy's rule-based
sentencizer, which is cheap. Questions, fragments under 6 words and sentences over 80
words are not candidates. Sentences are chosen greedily, skipping one that repeats more
than half of the words of one already chosen (redundancy), and returned in article order.

The first three places follow how news is written: the point comes first. There a
sentence scores 1.5 x position (1 / (1 + i), plus 0.2 for a paragraph's first sentence)
+ the mean document frequency of its content words (what the article keeps talking
about, scaled to [0, 1]) + 0.7 x the share of the title's words it repeats. This is why
it stays level with or above LEAD-3, the first three sentences, on short summaries.

Longer summaries must cover more of the article, and there position says less about
what belongs. Places after the third go to the most central sentences: a sentence's
summed word overlap with every other sentence (TextRank's edge weight, normalised by
the log of the two lengths), scaled to [0, 1], plus a light 0.5 / (1 + i) position prior.

A short article gets at most half of its sentences, so a summary never pads itself out
to the whole text.

Words are compared as they are written, after stop words: English's own short list and
pattern (kept as the figures of the README were measured with them), any other language
through its spaCy tokenizer and stop words. Where words are not separated by spaces
(Chinese, Japanese, Thai...) a sentence's length in words is taken as half its letters
and digits, a Chinese word's usual length being one to two characters.
"""

from __future__ import annotations

import math
import re
from collections import Counter
from dataclasses import dataclass
from typing import Any

from worker.nlp import UNSPACED

LEAD_SLOTS = 3  # the first slots follow news order; the rest go to the most central sentences
GRAPH_LIMIT = 400  # sentences compared pairwise for centrality, bounding the cost
OPENING_QUOTE = re.compile(r"\s+[\"“‘']$")
WORD = re.compile(r"[A-Za-z][A-Za-z'’-]+|\d+")
STOP = frozenset(
    """a about above after again against all also am an and any are as at be because been
    before being below between both but by can could did do does doing down during each few
    for from further had has have having he her here hers him his how i if in into is it its
    itself just me more most my no nor not now of off on once only or other our out over own
    said same says she should so some such than that the their them then there these they
    this those through to too under until up very was we were what when where which while who
    whom why will with would you your""".split()
)


@dataclass
class Sentence:
    index: int
    start: int
    end: int
    text: str
    words: int = 0  # its length in words
    terms: frozenset[str] = frozenset()  # its content words, compared across sentences


def terms_of(sentencizer: Any, text: str) -> frozenset[str]:
    """The content words of `text` in the sentencizer's language."""
    if sentencizer.lang == "en":
        return frozenset(_content(text))
    return _token_terms(sentencizer.make_doc(text))


def _token_terms(tokens: Any) -> frozenset[str]:
    return frozenset(
        t.lower_ for t in tokens if (t.is_alpha or t.like_num) and not t.is_stop and not t.is_punct
    )


def _measured(sentence: Sentence, doc: Any, start: int, end: int, language: str) -> Sentence:
    """`sentence` (doc's characters start to end) with its words and terms."""
    if language == "en":
        sentence.words = len(sentence.text.split())
        sentence.terms = frozenset(_content(sentence.text))
        return sentence
    tokens = doc.char_span(start, end, alignment_mode="expand") or ()
    if language in UNSPACED:
        sentence.words = max(1, sum(ch.isalnum() for ch in sentence.text) // 2)
    else:
        sentence.words = len(sentence.text.split())
    sentence.terms = _token_terms(tokens)
    return sentence


def split_sentences(sentencizer: Any, text: str, language: str | None = None) -> list[Sentence]:
    """Sentences of `text` with offsets, never crossing a paragraph break. `language` is
    the text's when the sentencizer is the multilingual one standing in for it."""
    language = language or sentencizer.lang
    sentences: list[Sentence] = []
    offset = 0
    paragraphs = []
    for paragraph in text.split("\n\n"):
        paragraphs.append((offset, paragraph))
        offset += len(paragraph) + 2
    docs = sentencizer.pipe(p for _, p in paragraphs)
    for (base, paragraph), doc in zip(paragraphs, docs, strict=True):
        bounds = [(s.start_char, s.end_char) for s in doc.sents]
        for i, (start, end) in enumerate(bounds):
            # The sentencizer leaves an opening quote at the end of the sentence before it.
            if i + 1 < len(bounds) and (dangling := OPENING_QUOTE.search(paragraph, start, end)):
                end = dangling.start()
                bounds[i + 1] = (dangling.start() + len(dangling.group()) - 1, bounds[i + 1][1])
            chunk = paragraph[start:end]
            stripped = chunk.strip()
            if stripped:
                offset = base + start + len(chunk) - len(chunk.lstrip())
                found = Sentence(len(sentences), offset, offset + len(stripped), stripped)
                sentences.append(_measured(found, doc, start, end, language))
    return sentences


def _content(text: str) -> list[str]:
    return [w for w in (m.casefold() for m in WORD.findall(text)) if w not in STOP]


def _redundant(words: set[str], chosen: list[set[str]]) -> bool:
    return any(len(words & other) > 0.5 * max(len(words), 1) for other in chosen)


def _centrality(words: list[set[str]]) -> list[float]:
    """Each sentence's summed word overlap with every other (TextRank's edge weight),
    scaled so the most central sentence scores 1."""
    scores = []
    for i, mine in enumerate(words):
        total = 0.0
        for j, other in enumerate(words):
            if i != j and mine and other:
                total += len(mine & other) / (math.log(len(mine) + 1) + math.log(len(other) + 1))
        scores.append(total)
    top = max(scores, default=0.0) or 1.0
    return [score / top for score in scores]


def summarize(
    sentences: list[Sentence],
    *,
    title: str | None = None,
    title_terms: frozenset[str] | None = None,
    length: int = 3,
    text: str = "",
    ratio: float | None = None,
    max_words: int | None = None,
) -> list[Sentence]:
    """The chosen summary sentences, in article order.

    Length is `length` sentences, or `ratio` of the article's sentences when given; with
    `max_words`, sentences that would take the summary past that many words are passed
    over (the first one chosen always stays). The title's words are `title_terms` when
    given (terms_of), else read as English from `title`."""
    if not sentences:
        return []
    if ratio is not None:
        length = max(1, round(ratio * len(sentences)))
    limit = min(length, max(1, math.ceil(len(sentences) / 2)))
    words = [set(s.terms) for s in sentences]
    frequency = Counter(w for ws in words for w in ws)
    top = max(frequency.values(), default=1)
    title_words = set(title_terms if title_terms is not None else _content(title or ""))
    paragraph_starts = {0} | {m.end() for m in re.finditer(r"\n\n", text)}

    def lead_score(i: int) -> float:
        sentence, ws = sentences[i], words[i]
        position = 1 / (1 + i) + (0.2 if sentence.start in paragraph_starts else 0.0)
        centrality = sum(frequency[w] for w in ws) / (len(ws) * top) if ws else 0.0
        overlap = len(title_words & ws) / len(title_words) if title_words else 0.0
        return 1.5 * position + centrality + 0.7 * overlap

    candidates = [
        i
        for i, s in enumerate(sentences)
        if 6 <= s.words <= 80 and not s.text.rstrip("\"'”’ ").endswith(("?", "？", "؟"))
    ] or [i for i in (0,) if sentences[0].words <= 80]
    chosen: list[int] = []

    def fits(i: int) -> bool:
        if max_words is None or not chosen:
            return True
        used = sum(sentences[j].words for j in chosen)
        return used + sentences[i].words <= max_words

    def pick(order: list[int], until: int) -> None:
        for i in order:
            if len(chosen) >= until:
                return
            if i in chosen or not fits(i):
                continue
            if not _redundant(words[i], [words[j] for j in chosen]):
                chosen.append(i)

    pick(sorted(candidates, key=lead_score, reverse=True), min(limit, LEAD_SLOTS))
    if len(chosen) < limit:
        pool = candidates[:GRAPH_LIMIT]
        central = dict(zip(pool, _centrality([words[i] for i in pool]), strict=True))
        pick(sorted(pool, key=lambda i: central[i] + 0.5 / (1 + i), reverse=True), limit)
    return [sentences[i] for i in sorted(chosen)]
