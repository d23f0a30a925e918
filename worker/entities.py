"""The entities half of the extract stage: a spaCy Doc -> one canonical entity per thing.

spaCy gives mentions; a reader wants entities. On top of spaCy's spans:
- names lose a leading "the", people lose titles ("President", "Premier", "Mr.") and
  nationality words, every name a trailing "'s";
- a span that runs two names together is split where a spaced punctuation mark or a
  number separates them ("Dampier / Kaohsiung", "Arsenal 2 Derby 2"), and a person or
  place loses a trailing number ("Slovenia 432" in a results table);
- a span that crosses a line break is split there (it joined two unrelated lines);
- a person mentioned later by part of the name ("Xi" after "Xi Jinping") is the same
  person, also when spaCy gave the short form another label ("Cavusoglu" as ORG);
- further occurrences of a known name that spaCy missed are added as mentions;
- numeric types (DATE, MONEY, CARDINAL...) are left out unless asked for.

Salience, in [0, 1] and summing to 1 over an article's entities: each mention weighs
2 - position, position being its offset as a fraction of the text (early mentions count
up to twice as much as late ones), doubled when the mention is the subject of its clause
("Xi said ..."); the entity's weight is the sum over its mentions, plus 2 if it is named
in the title.
"""

from __future__ import annotations

import bisect
import re
from dataclasses import dataclass, field
from typing import Any

NUMERIC_LABELS = frozenset({"CARDINAL", "ORDINAL", "QUANTITY", "MONEY", "PERCENT", "DATE", "TIME"})
# Labels whose span may really be a person's surname wrongly typed by spaCy.
RELABEL_TO_PERSON = frozenset({"ORG", "PRODUCT", "WORK_OF_ART", "EVENT", "FAC", "LAW"})
# Names that never end in a number ("Slovenia 432" is a place and a score).
PLAIN_NAME_LABELS = frozenset({"PERSON", "GPE", "LOC", "NORP"})
# Names that may hold numbers and dashes of their own ("Star Wars - Episode I", "Windows 95").
TITLED_LABELS = frozenset({"WORK_OF_ART", "PRODUCT", "EVENT", "LAW"}) | NUMERIC_LABELS

# A mention that is the subject of its clause ("Xi said ...") is what the sentence is about.
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
SUBJECT_WEIGHT = 2.0

TITLES = frozenset(
    """president premier prime minister chancellor king queen prince princess sheikh emir
    mr mr. mrs mrs. ms ms. dr dr. sir dame lord lady gen gen. general col col. lt capt
    captain adm admiral sen sen. senator rep rep. representative gov gov. governor mayor
    secretary chairman chairwoman chair ceo director judge justice pope cardinal
    bishop rev rev. father sister brother vice deputy foreign defense defence finance
    state former late acting interim chief coach striker midfielder defender goalkeeper
    player actor actress singer counterpart spokesman spokeswoman spokesperson
    ambassador envoy minister-president""".split()
)
NOT_SURNAMES = frozenset(
    """january february march april may june july august september october november
    december monday tuesday wednesday thursday friday saturday sunday will new the""".split()
)


@dataclass
class Mention:
    start: int
    end: int
    text: str


@dataclass
class EntityOut:
    """One canonical entity of an article, as stored."""

    name: str
    label: str
    mentions: list[Mention] = field(default_factory=list)
    aliases: list[str] = field(default_factory=list)
    salience: float = 0.0

    @property
    def count(self) -> int:
        return len(self.mentions)


def _separates(token: Any, label: str) -> bool:
    """A token that stands between two names inside one span, never inside a name: a line
    break, a spaced punctuation mark ("Dampier / Kaohsiung", "Forwards - Antonio Folha") or
    a number followed by another name ("Arsenal 2 Derby 2"). Titles of works and products
    keep their own dashes and numbers ("Windows 95")."""
    if token.is_space:
        return True
    if label in TITLED_LABELS:
        return False
    doc = token.doc
    if token.is_punct and token.i > 0 and doc[token.i - 1].whitespace_ and token.whitespace_:
        return True
    following = doc[token.i + 1] if token.i + 1 < len(doc) else None
    return token.like_num and following is not None and following.is_title


def _trim(doc: Any, start: int, end: int, label: str) -> tuple[int, int] | None:
    """Token bounds of a name without a leading "the", a person's titles and nationality
    words, a trailing number on a person or place ("Slovenia 432"), or a possessive 's."""
    while start < end - 1 and doc[start].lower_ == "the":
        start += 1
    if label == "PERSON":
        while start < end - 1 and (
            doc[start].lower_ in TITLES or doc[start].ent_type_ == "NORP" or doc[start].is_punct
        ):
            start += 1
    while end > start and (
        doc[end - 1].lower_ in {"'s", "’s", "'"}
        or doc[end - 1].is_punct
        or (label in PLAIN_NAME_LABELS and doc[end - 1].like_num)
    ):
        end -= 1
    if end <= start:
        return None
    capitalised = any(t.is_alpha and t.text[0].isupper() for t in doc[start:end])
    if label not in NUMERIC_LABELS and not capitalised:
        return None  # a name has a capitalised word: not "the" or "- ." left over
    return start, end


def _titled_person(span: Any, surnames: set[str]) -> tuple[int, int] | None:
    """Token bounds of the person in a span the tagger gave another label because of the
    title before the name ("Kazakh President Kassym-Jomart Tokayev" as ORG), when the name
    ends in the surname of a person the article names elsewhere."""
    doc = span.doc
    titles = [t.i for t in span[:-1] if t.lower_ in TITLES]
    if span.label_ not in RELABEL_TO_PERSON or not titles or doc[span.end - 1].text not in surnames:
        return None
    start = titles[-1] + 1
    name = doc[start : span.end]
    if all(t.is_title or (t.text == "-" and not t.whitespace_) for t in name):
        return start, span.end
    return None


def _names(span: Any) -> list[tuple[int, int]]:
    """Token bounds of the names in one entity span: usually one, more when the tagger ran
    names together across a line break or a results table ("Luton 2 Boreham Wood 1")."""
    names, start = [], span.start
    for i in range(span.start, span.end + 1):
        if i == span.end or _separates(span.doc[i], span.label_):
            if i > start and (bounds := _trim(span.doc, start, i, span.label_)):
                names.append(bounds)
            start = i + 1
    return names


def _person_parts(name: str) -> list[str]:
    return [part for part in re.split(r"[\s-]+", name) if part]


class _Builder:
    """Groups the mentions of one document into canonical entities."""

    def __init__(self, text: str, title: str | None, subjects: list[int]) -> None:
        self.text = text
        self.title = title or ""
        self.subjects = subjects  # sorted offsets of the tokens that are a clause's subject
        self.entities: dict[tuple[str, str], EntityOut] = {}
        self.covered: list[tuple[int, int]] = []  # sorted, non-overlapping mention spans

    def add(self, label: str, start: int, end: int) -> None:
        surface = self.text[start:end]
        key = (label, surface.casefold())
        entity = self.entities.setdefault(key, EntityOut(name=surface, label=label))
        entity.mentions.append(Mention(start, end, surface))
        bisect.insort(self.covered, (start, end))

    def overlaps(self, start: int, end: int) -> bool:
        """True when [start, end) overlaps a known mention (spans are sorted and disjoint)."""
        i = bisect.bisect_left(self.covered, (start, end))
        return any(s < end and start < e for s, e in self.covered[max(i - 1, 0) : i + 1])

    def merge_people(self) -> None:
        """Fold each partial name into the unique fuller person name that contains it."""
        people = [e for (label, _), e in self.entities.items() if label == "PERSON"]
        people.sort(key=lambda e: (len(_person_parts(e.name)), len(e.name)), reverse=True)
        for key, entity in list(self.entities.items()):
            label, _ = key
            if label != "PERSON" and label not in RELABEL_TO_PERSON:
                continue
            parts = _person_parts(entity.name)
            fuller = [
                p
                for p in people
                if p is not entity
                and len(_person_parts(p.name)) > len(parts)
                and _contains(_person_parts(p.name), parts)
            ]
            if label != "PERSON":
                # Only a surname or a full name changes label, never an organisation's name.
                fuller = [p for p in fuller if _person_parts(p.name)[-len(parts) :] == parts]
            if len({p.name for p in fuller}) != 1:
                continue
            target = fuller[0]
            target.mentions.extend(entity.mentions)
            del self.entities[key]

    def find_missed(self) -> None:
        """Add occurrences of known names (and people's surnames) that spaCy did not tag.

        One pass over the text with every form at once, so a long document with many
        entities costs one scan, not one per entity. A form two entities share is skipped.
        """
        owner: dict[str, EntityOut | None] = {}
        for entity in self.entities.values():
            forms = {m.text for m in entity.mentions}
            if entity.label == "PERSON":
                parts = _person_parts(entity.name)
                if len(parts) > 1 and parts[-1].casefold() not in NOT_SURNAMES:
                    forms.add(parts[-1])
            for form in forms:
                if len(form) >= 2 and form[0].isupper():
                    owner[form] = entity if owner.get(form, entity) is entity else None
        unique = {form: e for form, e in owner.items() if e is not None}
        if not unique:
            return
        alternatives = "|".join(map(re.escape, sorted(unique, key=len, reverse=True)))
        for match in re.finditer(rf"(?<![\w-])(?:{alternatives})(?![\w-])", self.text):
            start, end = match.span()
            if not self.overlaps(start, end):
                unique[match.group()].mentions.append(Mention(start, end, match.group()))
                bisect.insort(self.covered, (start, end))

    def is_subject(self, mention: Mention) -> bool:
        i = bisect.bisect_left(self.subjects, mention.start)
        return i < len(self.subjects) and self.subjects[i] < mention.end

    def finish(self) -> list[EntityOut]:
        length = max(len(self.text), 1)
        title = self.title.casefold()
        for entity in self.entities.values():
            entity.mentions.sort(key=lambda m: m.start)
            forms = {m.text for m in entity.mentions}
            entity.name = _canonical(entity, forms)
            entity.aliases = sorted(forms - {entity.name})
            weight = sum(
                (2 - m.start / length) * (SUBJECT_WEIGHT if self.is_subject(m) else 1)
                for m in entity.mentions
            )
            if any(re.search(rf"\b{re.escape(f.casefold())}\b", title) for f in forms):
                weight += 2
            entity.salience = weight
        total = sum(e.salience for e in self.entities.values()) or 1.0
        for entity in self.entities.values():
            entity.salience = round(entity.salience / total, 4)
        return sorted(self.entities.values(), key=lambda e: (-e.salience, e.mentions[0].start))


def _contains(longer: list[str], shorter: list[str]) -> bool:
    """True when `shorter`'s parts appear in `longer` in order and contiguously."""
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def _canonical(entity: EntityOut, forms: set[str]) -> str:
    if entity.label == "PERSON":
        return max(forms, key=lambda f: (len(_person_parts(f)), len(f)))
    counts: dict[str, int] = {}
    for mention in entity.mentions:
        counts[mention.text] = counts.get(mention.text, 0) + 1
    return max(counts, key=lambda f: (counts[f], len(f)))


def extract_entities(
    doc: Any, *, title: str | None = None, numeric: bool = False
) -> list[EntityOut]:
    """Canonical entities of one parsed article, most salient first."""
    subjects = [t.idx for t in doc if t.dep_ in SUBJECT_DEPS]
    builder = _Builder(doc.text, title, subjects)
    surnames = {span[-1].text for span in doc.ents if span.label_ == "PERSON"}
    for span in doc.ents:
        if span.label_ in NUMERIC_LABELS and not numeric:
            continue
        if person := _titled_person(span, surnames):
            names, label = [person], "PERSON"
        else:
            names, label = _names(span), span.label_
        for start, end in names:
            builder.add(label, doc[start].idx, doc[end - 1].idx + len(doc[end - 1]))
    builder.merge_people()
    builder.find_missed()
    return builder.finish()
