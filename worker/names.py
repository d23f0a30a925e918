"""From spaCy's entity spans to clean names: token bounds and a label per name.

- names are joined across "&" ("Standard & Poor's", "Marks & Spencer"), unless both sides
  are people's full names ("Richard Madeley & Judy Finnigan");
- a span is split where brackets, quotes, a line break, a spaced punctuation mark
  ("Dampier / Kaohsiung") or a number between names ("Arsenal 2 Derby 2") separate two
  names; works and products keep their own dashes and numbers ("Windows 95");
- names lose a leading "the" or plural common noun ("Analysts Gartner"), punctuation
  and quotes at their edges and a trailing possessive 's; people lose titles
  ("President", "Crown Prince") and nationality words,
  and a person or place a trailing number ("Slovenia 432" in a results table), any
  name a score after it ("Barnsley 2-1");
- an honorific ("Ms Hessel", "Mr. Ash") makes the name a person's whatever label spaCy
  gave it, and a title before a known surname does the same ("Kazakh President
  Kassym-Jomart Tokayev" typed ORG).
"""

from __future__ import annotations

from typing import Any

from spacy.attrs import ORTH
from spacy.strings import get_string_id

# Models trained on WikiNER (spaCy's French, German, Spanish... pipelines) label PER, LOC,
# ORG and MISC. PER is our PERSON; LOC stays LOC, a country's name still votes itself GPE
# (worker/labels.py); ORG and MISC keep their names.
FOREIGN_LABELS = {"PER": "PERSON"}
NUMERIC_LABELS = frozenset({"CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME"})
# Labels whose span may really be a person's name wrongly typed by spaCy.
RELABEL_TO_PERSON = frozenset({"ORG", "PRODUCT", "WORK_OF_ART", "EVENT", "FAC", "LAW"})
# Names that never end in a number ("Slovenia 432" is a place and a score).
PLAIN_NAME_LABELS = frozenset({"PERSON", "GPE", "LOC", "NORP"})
# Names that may hold numbers and dashes of their own ("Star Wars - Episode I", "Windows 95").
WORK_LABELS = frozenset({"WORK_OF_ART", "PRODUCT", "EVENT", "LAW"})
TITLED_LABELS = WORK_LABELS | NUMERIC_LABELS

HONORIFICS = frozenset("mr mrs ms miss mx dr sir dame lord lady prof".split())
TITLES = HONORIFICS | frozenset(
    """president premier prime minister chancellor king queen crown prince princess sheikh
    emir general col lt capt captain adm admiral sen senator rep representative gov
    governor mayor secretary chairman chairwoman chair ceo director judge justice pope
    cardinal bishop archbishop rev father sister brother vice deputy foreign defense
    defence finance state former late acting interim chief executive boss founder coach
    striker midfielder defender goalkeeper player actor actress singer counterpart
    spokesman spokeswoman spokesperson ambassador envoy minister-president professor
    commissioner inspector detective sergeant producer writer author novelist presenter
    host comedian rapper drummer guitarist designer photographer analyst economist
    veteran veterans star legend composer conductor dancer broadcaster dj""".split()
)
ARTICLES = frozenset({"the", "a", "an"})
JOINING = frozenset({"CCONJ", "SCONJ"})  # a lower-case "and", "plus", "while" is no name's
POSSESSIVE_S = frozenset({"'s", "’s"})
POSSESSIVES = POSSESSIVE_S | {"'", "’"}  # and the bare apostrophe of "Providers'"

Name = tuple[int, int, str]  # token start, token end, label


def _word(token: Any) -> str:
    return token.lower_.rstrip(".")


def tokens_written(doc: Any, word: str) -> list[Any]:
    """The tokens of `doc` that are `word`, found in one pass over the token array: a
    Token object per token would cost more than all that is done with the few found."""
    wanted = get_string_id(word)
    return [doc[int(i)] for i in (doc.to_array(ORTH) == wanted).nonzero()[0]]


def _capitalised(token: Any) -> bool:
    return token.is_alpha and token.text[0].isupper()


def _plural_possessive(token: Any) -> bool:
    """The apostrophe of "Providers' Association", not a quote mark."""
    previous = token.doc[token.i - 1] if token.i else None
    return (
        token.text in {"'", "’"}
        and previous is not None
        and not previous.whitespace_
        and previous.lower_.endswith("s")
    )


def _separates(token: Any, label: str) -> bool:
    """A token that stands between two names inside one span, never inside a name."""
    if token.is_space or token.is_bracket or (token.is_quote and not _plural_possessive(token)):
        return True
    if label in TITLED_LABELS:
        return False
    if label == "PERSON" and token.pos_ in JOINING and token.is_lower:
        return True  # "Marco Rinaldi plus Ryan Ollerby" (but "Procter and Gamble" is one)
    doc = token.doc
    spaced = token.i > 0 and doc[token.i - 1].whitespace_ and token.whitespace_
    if token.is_punct and spaced and token.text != "&":  # "Marks & Spencer" is one name
        return True
    following = doc[token.i + 1] if token.i + 1 < len(doc) else None
    return token.like_num and following is not None and following.is_title


def _trim(doc: Any, start: int, end: int, label: str) -> Name | None:
    """A name without its leading "the" or "and", edge punctuation, a person's titles and
    nationality words, a trailing number on a person or place, or a possessive 's."""
    edge = label not in NUMERIC_LABELS  # "$2 billion" keeps its sign
    while start < end - 1 and (
        doc[start].lower_ == "the"
        or (edge and doc[start].is_punct)
        or (doc[start].pos_ in JOINING and doc[start].is_lower)  # "plus Ryan Giggs"
    ):
        start += 1
    plural = doc[start].tag_ == "NNS" and end - start > 1 and doc[start + 1].pos_ == "PROPN"
    if plural and label not in WORK_LABELS:
        start += 1  # "Analysts Gartner", "Firms AM3D": a plural noun is no name's head
    if label not in WORK_LABELS and end - start > 1 and _word(doc[start]) in HONORIFICS:
        label = "PERSON"  # "Ms Hessel" is a person whatever spaCy said
    if label == "PERSON":
        while start < end - 1 and (
            _word(doc[start]) in TITLES or doc[start].ent_type_ == "NORP" or doc[start].is_punct
        ):
            start += 1
    if edge:
        end = _before_score(doc, start, end)
    while end > start and (
        doc[end - 1].lower_ in POSSESSIVES
        or doc[end - 1].is_punct
        or (label in PLAIN_NAME_LABELS and doc[end - 1].like_num)
    ):
        end -= 1
    if end <= start or all(t.lower_ in ARTICLES for t in doc[start:end]):
        return None
    capitalised = any(t.text[0].isupper() for t in doc[start:end])  # "U.S." too
    if label not in NUMERIC_LABELS and not capitalised:
        return None  # a name has a capitalised word: not "- ." left over
    return start, end, label


def _before_score(doc: Any, start: int, end: int) -> int:
    """The end of a name before the score that follows it: "Barnsley 2-1", or "Chelsea 2"
    cut from "Chelsea 2-1 Arsenal"."""
    for i in range(max(start + 1, end - 3), end):
        score = doc[i : i + 3]
        if (
            len(score) == 3
            and score[0].like_num
            and score[1].text == "-"
            and score[2].like_num
            and not (score[0].whitespace_ or score[1].whitespace_)
            and doc[i - 1].text != "-"  # "1996-12-07" is a date
        ):
            return i
    return end


def _titled_person(doc: Any, span: Name, surnames: set[str]) -> Name | None:
    """The person in a span spaCy gave another label because of the title before the name
    ("Kazakh President Kassym-Jomart Tokayev" as ORG), when the name ends in the surname
    of a person the article names elsewhere."""
    start, end, label = span
    titles = [i for i in range(start, end - 1) if _word(doc[i]) in TITLES]
    if label not in RELABEL_TO_PERSON or not titles or doc[end - 1].text not in surnames:
        return None
    first = titles[-1] + 1
    if all(t.is_title or (t.text == "-" and not t.whitespace_) for t in doc[first:end]):
        return first, end, "PERSON"
    return None


def _split(doc: Any, span: Name) -> list[Name]:
    """The names in one entity span: usually one, more when the tagger ran names together
    across a bracket, a line break or a results table ("Luton 2 Boreham Wood 1")."""
    names, (start, end, label) = [], span
    piece = start
    for i in range(start, end + 1):
        if i == end or _separates(doc[i], label):
            if i > piece and (name := _trim(doc, piece, i, label)):
                names.append(name)
            piece = i + 1
    return names


def _run(doc: Any, i: int, step: int, taken: dict[int, Name]) -> int:
    """The last capitalised word of the run from token i going left (step -1) or right
    (+1): inside the sentence, off other names, at most three words."""
    j = i
    for _ in range(2):
        k = j + step
        if not 0 <= k < len(doc) or k in taken or not _capitalised(doc[k]):
            break
        if doc[max(j, k)].is_sent_start:  # k is in another sentence
            break
        j = k
    return j


def _join_ampersands(doc: Any, spans: list[Name]) -> list[Name]:
    """Spans joined across a "&" between capitalised words: "Standard & Poor", "Food &
    Agriculture Organisation". A joined name is an organisation (firms, partnerships,
    bodies) unless a part was a work or product."""
    taken = {i: span for span in spans for i in range(span[0], span[1])}
    for token in tokens_written(doc, "&"):
        if not 0 < token.i < len(doc) - 1:
            continue
        before, after = doc[token.i - 1], doc[token.i + 1]
        if not (_capitalised(before) and _capitalised(after)):
            continue
        left, right = taken.get(before.i), taken.get(after.i)
        if left is right:  # neither side is a name, or one name holds the "&" already
            continue
        if (left and left[1] != token.i) or (right and right[0] != after.i):
            continue
        people = [s for s in (left, right) if s and s[2] == "PERSON" and s[1] - s[0] > 1]
        if len(people) == 2:
            continue  # "Richard Madeley & Judy Finnigan": two people
        labels = {s[2] for s in (left, right) if s}
        label = next(iter(labels & WORK_LABELS), "ORG")
        start = left[0] if left else _run(doc, before.i, -1, taken)
        end = right[1] if right else _run(doc, after.i, +1, taken) + 1
        joined = (start, end, label)
        for i in range(start, end):
            taken[i] = joined
    return sorted(set(taken.values()))


def names(doc: Any, *, numeric: bool = False) -> list[Name]:
    """(token start, token end, label) of every name in the parsed document, in order."""
    spans = [
        (span.start, span.end, FOREIGN_LABELS.get(span.label_, span.label_))
        for span in doc.ents
        if numeric or span.label_ not in NUMERIC_LABELS
    ]
    surnames = {doc[end - 1].text for start, end, label in spans if label == "PERSON"}
    found = []
    for span in _join_ampersands(doc, spans):
        person = _titled_person(doc, span, surnames)
        found.extend([person] if person else _split(doc, span))
    return found
