"""The entities half of the extract stage: a spaCy Doc -> one canonical entity per thing.

spaCy gives mentions; a reader wants one entity per real-world thing, under the name the
article uses, with the label the article supports. On top of the clean names of
worker/names.py, in this order:
- mentions group by name regardless of case, spaces, hyphens and dots ("TimeWarner" and
  "Time Warner", "U.S." and "US");
- a person mentioned by part of the name ("Xi" after "Xi Jinping") is that person, also
  when spaCy gave the short form another label ("Cavusoglu" as ORG); an organisation
  mentioned by the first or last word of its name ("the Commission" after "European
  Commission", "Cairn" after "Cairn Energy") is that organisation;
- "Full Name (ABBR)" and "ABBR (Full Name)" make the abbreviation, and its later bare
  uses, the same entity, shown under the full name; without brackets an all-capital
  abbreviation joins the one name of the article it spells ("EU", "European Union");
- one name under several labels, a country's names ("US", "United States", "America")
  and a demonym's singular and plural ("Italian", "Italians") are one entity. Its label
  is a vote: each mention votes spaCy's label, each context cue of worker/labels.py
  ("shares in X", "X's chief executive", "based in X") counts three votes, and a
  country's name two for GPE;
- a capitalised common word is no entity: a name the article also writes in lower case
  ("Budget" beside "the budget"; not for people, whose names are often words: Rose,
  Hope), or a one-word name that is only ever a common noun starting a sentence
  ("Closures"), unless a cue or a country says it is a name;
- further occurrences of a known name that spaCy missed are added as mentions;
- a name keeps a final 's that every occurrence has when one of them is not followed
  by what it would own ("Sainsbury's said", but "Google's profits");
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
from collections import Counter
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
from spacy.attrs import DEP, IDX, IS_LOWER, LENGTH, POS
from spacy.symbols import NOUN

from worker.abbreviations import definitions, spelled_initials
from worker.known import PARTY_LABEL, countries_of, country_name, party
from worker.labels import country, cues, squash
from worker.names import POSSESSIVE_S, RELABEL_TO_PERSON, Name, names

# A mention that is the subject of its clause ("Xi said ...") is what the sentence is about.
SUBJECT_DEPS = frozenset({"nsubj", "nsubjpass"})
SUBJECT_WEIGHT = 2.0
CUE_VOTES = 3
COUNTRY_VOTES = 2
PLACE_LABELS = frozenset({"GPE", "LOC", "ORG", "NORP", "FAC"})
# An abbreviation whose small letters stand for the lower-case words of the name: "MoD"
# (Ministry of Defence), "DfES"; its capitals are the initials of the name's other words.
MIXED_ABBREVIATION = re.compile(r"[A-Z](?:[a-z]?[A-Z])+")
NAME_PARTS = re.compile(r"[\s-]+")  # what separates a person's names
NOT_SURNAMES = frozenset(
    """january february march april may june july august september october november
    december monday tuesday wednesday thursday friday saturday sunday will new the""".split()
)
# What may follow a possessive 's when it is one: "Google's [new] [2004] profits".
OWNED_POS = frozenset({"NOUN", "PROPN", "ADJ", "NUM", "ADV"})


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


@dataclass
class _Group:
    """The mentions of one entity while the article is read, and the evidence for its label."""

    label: str
    mentions: list[Mention] = field(default_factory=list)
    votes: Counter[str] = field(default_factory=Counter)  # spaCy's label of each mention
    cues: Counter[str] = field(default_factory=Counter)  # labels the context points to
    long_form: str | None = None  # the full name its abbreviation or last word stands for
    known: str | None = None  # the name it goes by in every article (worker/known.py)

    @property
    def forms(self) -> set[str]:
        return {m.text for m in self.mentions}

    @property
    def fullest(self) -> str:
        """The form with the most name parts: a person's full name."""
        return max(self.forms, key=lambda f: (len(_person_parts(f)), len(f)))

    def absorb(self, other: _Group, *, as_label: str | None = None) -> None:
        """Take the other group's mentions and evidence; `as_label` turns its votes into
        votes for that label (a surname folded into a person votes PERSON)."""
        self.mentions.extend(other.mentions)
        if as_label:
            self.votes[as_label] += other.votes.total()
        else:
            self.votes.update(other.votes)
        self.cues.update(other.cues)
        self.long_form = self.long_form or other.long_form
        self.known = self.known or other.known

    def country(self) -> bool:
        return self.country_code() is not None

    def country_code(self) -> str | None:
        """The country this group names, when one of its names is a country's and some
        mention was taken for a place."""
        if not any(self.votes[label] for label in PLACE_LABELS):
            return None
        return next((code for form in sorted(self.forms) if (code := country(form))), None)

    def decide_label(self) -> None:
        score = Counter(self.votes)
        for label, n in self.cues.items():
            score[label] += CUE_VOTES * n
        if self.country():
            score["GPE"] += COUNTRY_VOTES
        if self.long_form and len(score) > 1:
            del score["PERSON"]  # no one's name comes with an abbreviation in brackets
        self.label = max(score, key=lambda label: (score[label], self.votes[label]))


@lru_cache(maxsize=4096)  # asked for every pair of groups, and names repeat
def _person_parts(name: str) -> tuple[str, ...]:
    return tuple(part for part in NAME_PARTS.split(name) if part)


def _contains(longer: tuple[str, ...], shorter: tuple[str, ...]) -> bool:
    """True when `shorter`'s parts appear in `longer` in order and contiguously."""
    n = len(shorter)
    return any(longer[i : i + n] == shorter for i in range(len(longer) - n + 1))


def _spelled_initials(group: _Group) -> str | None:
    """The initials an abbreviation of this group's name would spell, unless it is a
    person's name."""
    if group.votes["PERSON"] > group.votes.total() / 2:
        return None
    return spelled_initials(group.fullest)


class _Builder:
    """Groups the mentions of one document into canonical entities."""

    def __init__(self, doc: Any, title: str | None) -> None:
        self.doc = doc
        self.text = doc.text
        self.title_words = _words(title or "")
        self.groups: dict[tuple[str, str], _Group] = {}
        self.covered: list[tuple[int, int]] = []  # sorted, non-overlapping mention spans
        # The token attributes as one array of numbers: a Token object per token would
        # cost more than all that is done with it here.
        columns = doc.to_array([IDX, LENGTH, DEP, IS_LOWER, POS])
        starts = columns[:, 0].tolist()  # token index by character offset:
        self.token_at: dict[int, int] = {start: i for i, start in enumerate(starts)}
        subject = np.array([doc.vocab.strings[dep] for dep in SUBJECT_DEPS], dtype=np.uint64)
        # The sorted offsets of the tokens that are a subject.
        self.subjects: list[int] = columns[np.isin(columns[:, 2], subject), 0].tolist()
        # Words written in lower case, and those of them that are nouns.
        lower = [(self.text[s : s + n], pos) for s, n, _, lc, pos in columns.tolist() if lc]
        self.lower_words = {word for word, _ in lower}
        self.lower_nouns = {word for word, pos in lower if pos == NOUN}

    def add(self, name: Name) -> None:
        start, end, label = name
        first, last = self.doc[start], self.doc[end - 1]
        mention = self._mention(first.idx, last.idx + len(last))
        group = self.groups.setdefault((label, squash(mention.text)), _Group(label))
        group.mentions.append(mention)
        group.votes[label] += 1
        group.cues.update(cues(self.doc, start, end, self.text))

    def _mention(self, start: int, end: int) -> Mention:
        bisect.insort(self.covered, (start, end))
        return Mention(start, end, self.text[start:end])

    def overlaps(self, start: int, end: int) -> bool:
        """True when [start, end) overlaps a known mention (spans are sorted and disjoint)."""
        i = bisect.bisect_left(self.covered, (start, end))
        return any(s < end and start < e for s, e in self.covered[max(i - 1, 0) : i + 1])

    def merge_people(self) -> None:
        """Fold each partial name into the unique fuller person name that contains it."""
        people = [g for (label, _), g in self.groups.items() if label == "PERSON"]
        for key, group in list(self.groups.items()):
            label, _ = key
            if label != "PERSON" and label not in RELABEL_TO_PERSON:
                continue
            parts = _person_parts(group.fullest)
            fuller = [
                p
                for p in people
                if len(_person_parts(p.fullest)) > len(parts)
                and _contains(_person_parts(p.fullest), parts)
            ]
            if label != "PERSON":
                # Only a surname or a full name changes label, never an organisation's name.
                fuller = [p for p in fuller if _person_parts(p.fullest)[-len(parts) :] == parts]
            elif group.cues["PERSON"] and not fuller:
                # "Ms Hessel" is a person: so is "Helena Hessel", whatever spaCy said.
                fuller = [
                    g
                    for (other, _), g in self.groups.items()
                    if other in RELABEL_TO_PERSON
                    and len(_person_parts(g.fullest)) > len(parts)
                    and _person_parts(g.fullest)[-len(parts) :] == parts
                ]
            if len(fuller) == 1:
                fuller[0].absorb(self.groups.pop(key), as_label="PERSON")
                people = [p for p in people if p is not group]

    def merge_organisations(self) -> None:
        """Fold a one-word organisation named after a longer name that it ends or starts
        into that name ("the Commission" after "European Commission", "Cairn" after "Cairn
        Energy"), when exactly one earlier longer name does so."""
        orgs = [g for (label, _), g in self.groups.items() if label == "ORG"]
        for key, group in list(self.groups.items()):
            word = group.fullest  # an organisation, or one spaCy took for a person
            if (
                key[0] not in {"ORG", "PERSON"}
                or " " in word
                or self._written_lower(word, nouns_only=False)
            ):
                continue  # "the Ballet" beside "ballet" may be any ballet company
            first = min(m.start for m in group.mentions)
            longer = [
                g
                for g in orgs
                if (g.fullest.endswith(f" {word}") or g.fullest.startswith(f"{word} "))
                and min(m.start for m in g.mentions) < first
            ]
            if len(longer) == 1:
                longer[0].absorb(self.groups.pop(key), as_label="ORG")
                longer[0].long_form = longer[0].long_form or longer[0].fullest

    def link_abbreviations(self) -> None:
        """An abbreviation defined in brackets becomes a mention of the full name's entity
        (worker/abbreviations.py finds them); unify() then brings its other uses along."""
        owner = {(m.start, m.end): (g, m) for g in self.groups.values() for m in g.mentions}
        for full, short in definitions(self.doc, self.text, set(owner)):
            self._join(full, short, owner)
        self.groups = {key: group for key, group in self.groups.items() if group.mentions}

    def _join(
        self,
        full: tuple[int, int],
        short: tuple[int, int],
        owner: dict[tuple[int, int], tuple[_Group, Mention]],
    ) -> None:
        """Make the abbreviation at `short` a mention of the entity named at `full`."""
        if full in owner:
            group = owner[full][0]
        else:  # read from the words: the fragments spaCy tagged in it give way
            fragments = [span for span in owner if span[0] < full[1] and full[0] < span[1]]
            labels = [owner[span][0].label for span in [*fragments, short] if span in owner]
            for span in fragments:
                self._forget(*owner.pop(span))
            mention = self._mention(*full)
            label = labels[0] if labels else "ORG"
            group = self.groups.setdefault((label, squash(mention.text)), _Group(label))
            group.mentions.append(mention)
            group.votes[label] += 1
            owner[full] = group, mention
        group.long_form = self.text[slice(*full)]
        if short in owner:
            holder, mention = owner[short]
            self._forget(holder, mention)
            bisect.insort(self.covered, short)
        else:
            mention = self._mention(*short)
        group.mentions.append(mention)
        owner[short] = group, mention

    def _forget(self, group: _Group, mention: Mention) -> None:
        group.mentions.remove(mention)
        self.covered.remove((mention.start, mention.end))

    def unify(self) -> None:
        """One group per thing: groups that share a name (case, spaces and dots aside), a
        country or a demonym are merged, and each merged group's label is decided."""
        keys = list(self.groups)
        parent = {key: key for key in keys}

        def root(key: tuple[str, str]) -> tuple[str, str]:
            while parent[key] != key:
                key = parent[key]
            return key

        spelled = Counter(i for g in self.groups.values() if (i := _spelled_initials(g)))
        forms = {form for group in self.groups.values() for form in group.forms}
        named = {
            code
            for g in self.groups.values()
            if g.country()
            for f in g.forms
            if (code := country(f))
        }
        setting = countries_of(self.text, forms, named)
        owner: dict[str, tuple[str, str]] = {}
        for key in keys:
            identities = self._identities(self.groups[key], setting)
            if (initials := _spelled_initials(self.groups[key])) and spelled[initials] == 1:
                identities.add(f"initials:{initials}")
            for identity in identities:
                if identity in owner:
                    parent[root(key)] = root(owner[identity])
                else:
                    owner[identity] = key
        for key in keys:
            if root(key) != key:
                self.groups[root(key)].absorb(self.groups.pop(key))
        for group in self.groups.values():
            group.decide_label()
            if found := {p.name for form in group.forms if (p := party(form, setting))}:
                group.known, group.label = min(found), PARTY_LABEL
            elif group.label == "GPE" and (code := group.country_code()):
                group.known = country_name(code)

    @staticmethod
    def _identities(group: _Group, setting: set[str]) -> set[str]:
        forms = {squash(form) for form in group.forms}
        identities = set(forms)
        identities |= {f"party:{p.name}" for form in group.forms if (p := party(form, setting))}
        if any(group.votes[label] for label in PLACE_LABELS):
            identities |= {f"country:{code}" for form in group.forms if (code := country(form))}
        if group.votes["NORP"]:
            identities |= {form[:-1] for form in forms if form.endswith("s")}  # Italians
        identities |= {f"initials:{f}" for f in group.forms if f.isupper() and f.isalpha()}
        identities |= {  # "MoD", "BoE", "DfT": the small letters are the connectors'
            f"initials:{''.join(c for c in f if c.isupper())}"
            for f in group.forms
            if MIXED_ABBREVIATION.fullmatch(f)
        }
        return identities

    def drop_common_words(self) -> None:
        """Leave out capitalised common words that spaCy took for names."""
        for key, group in list(self.groups.items()):
            if group.cues or group.long_form or group.known or group.country():
                continue
            forms = group.forms
            if any(form.isupper() for form in forms):
                continue  # an abbreviation
            person = group.label == "PERSON"  # Rose, Hope: names are often words
            lower = all(self._written_lower(form, nouns_only=person) for form in forms)
            if lower or all(self._common_noun_opening(m) for m in group.mentions):
                del self.groups[key]

    def _written_lower(self, form: str, *, nouns_only: bool) -> bool:
        """True when the text also writes `form` in lower case (as a noun, if asked)."""
        lower = form.lower()
        if lower == form:
            return False
        if lower.isalpha():  # one token: "Budget"; "Sci-fi" is three
            return lower in (self.lower_nouns if nouns_only else self.lower_words)
        if lower not in self.text:  # spares compiling a pattern for each name
            return False
        for match in re.finditer(rf"(?<![\w-]){re.escape(lower)}(?![\w-])", self.text):
            i = self.token_at.get(match.start())
            if not nouns_only or (i is not None and self.doc[i].pos_ == "NOUN"):
                return True
        return False

    def _common_noun_opening(self, mention: Mention) -> bool:
        """A one-word mention that starts a sentence and that the tagger reads as a common
        word, not a proper noun ("Closures at the plant ...")."""
        i = self.token_at.get(mention.start)
        if i is None or " " in mention.text:
            return False
        token = self.doc[i]
        opening = token.is_sent_start or (
            i > 0 and self.doc[i - 1].is_sent_start and self.doc[i - 1].is_punct
        )
        return opening and token.pos_ != "PROPN"

    def find_missed(self) -> None:
        """Add occurrences of known names (and people's surnames) that spaCy did not tag.

        One pass over the text with every form at once, so a long document with many
        entities costs one scan, not one per entity. A form two entities share is skipped.
        """
        owner: dict[str, _Group | None] = {}
        for group in self.groups.values():
            forms = group.forms
            if group.label == "PERSON":
                parts = _person_parts(group.fullest)
                if len(parts) > 1 and parts[-1].casefold() not in NOT_SURNAMES:
                    forms.add(parts[-1])
            for form in forms:
                if len(form) >= 2 and form[0].isupper():
                    owner[form] = group if owner.get(form, group) is group else None
        unique = {form: g for form, g in owner.items() if g is not None}
        if not unique:
            return
        alternatives = "|".join(map(re.escape, sorted(unique, key=len, reverse=True)))
        for match in re.finditer(rf"(?<![\w-])(?:{alternatives})(?![\w-])", self.text):
            start, end = match.span()
            if not self.overlaps(start, end):
                unique[match.group()].mentions.append(self._mention(start, end))

    def keep_possessive_names(self) -> None:
        """Names written with a final 's ("Sainsbury's", "Standard & Poor's") keep it."""
        for group in self.groups.values():
            if group.label == "PERSON":
                continue
            for form in group.forms:
                if len(re.split(r"[\s&]+", form)) > 2:
                    continue  # "New York Stock Exchange's": long names do not end in 's
                mentions = [m for m in group.mentions if m.text == form]
                tails = [self.token_at.get(m.end) for m in mentions]
                if any(i is None or self.doc[i].lower_ not in POSSESSIVE_S for i in tails):
                    continue
                if all(self._owns(i) for i in tails if i is not None):
                    continue  # "Google's profits": a possessive every time
                for mention in mentions:
                    mention.end += 2
                    mention.text = self.text[mention.start : mention.end]
                if group.long_form == form:
                    group.long_form = mentions[0].text

    def _owns(self, i: int) -> bool:
        """True when the 's at token i is followed by what it owns: a possessive."""
        return i + 1 < len(self.doc) and self.doc[i + 1].pos_ in OWNED_POS

    def is_subject(self, mention: Mention) -> bool:
        i = bisect.bisect_left(self.subjects, mention.start)
        return i < len(self.subjects) and self.subjects[i] < mention.end

    def finish(self) -> list[EntityOut]:
        length = max(len(self.text), 1)
        entities = []
        for group in self.groups.values():
            group.mentions.sort(key=lambda m: m.start)
            forms = group.forms
            name = _canonical(group)
            weight = sum(
                (2 - m.start / length) * (SUBJECT_WEIGHT if self.is_subject(m) else 1)
                for m in group.mentions
            )
            if any(_words(form) in self.title_words for form in forms):
                weight += 2
            entities.append(
                EntityOut(name, group.label, group.mentions, sorted(forms - {name}), weight)
            )
        total = sum(e.salience for e in entities) or 1.0
        for entity in entities:
            entity.salience = round(entity.salience / total, 4)
        return sorted(entities, key=lambda e: (-e.salience, e.mentions[0].start))


def _words(text: str) -> str:
    """Text as its lower-case words between spaces, so that " xi " in " xi visits athens "
    finds a name among whole words."""
    return " " + " ".join(re.findall(r"\w+", text.casefold())) + " "


def _canonical(group: _Group) -> str:
    if group.known:
        return group.known
    if group.label == "PERSON":
        return group.fullest
    if group.long_form and group.long_form in group.forms:
        return group.long_form
    counts = Counter(m.text for m in group.mentions)
    mixed = {f.casefold() for f in counts if not f.isupper()}
    # "MARSEILLE" (a dateline, a headline) is "Marseille" when the text also writes it so
    return max(
        counts, key=lambda f: (not (f.isupper() and f.casefold() in mixed), counts[f], len(f))
    )


def extract_entities(
    doc: Any, *, title: str | None = None, numeric: bool = False
) -> list[EntityOut]:
    """Canonical entities of one parsed article, most salient first."""
    builder = _Builder(doc, title)
    for name in names(doc, numeric=numeric):
        builder.add(name)
    builder.merge_people()
    builder.merge_organisations()
    builder.link_abbreviations()
    builder.unify()
    builder.drop_common_words()
    builder.find_missed()
    builder.keep_possessive_names()
    return builder.finish()
