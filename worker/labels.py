"""Evidence for an entity's label beyond spaCy's guess: context cues and country names.

A cue is a few words around one mention that say what the name is, whatever the tagger
thought (it types Yukos or Winn-Dixie PERSON, Electrolux GPE):
- ORG: "shares in X", "stake in X", "chief executive of X", "boss of X", "X's chief
  executive", "X's profits". ("X said profits rose" is no cue: analysts say it too.)
- GPE: "based in X", "capital of X", "government of X", "X's government", "X's economy",
  "X-based";
- ORG, in sport: "X manager", "the X striker", "X fans", "X's ground", "beat X", "signed
  from X", "X 2-1 Y", a name ending in "United" or "Rovers" (a club is often named after
  its town, which spaCy then takes for a place: "West Ham", "Newcastle"); never for a
  country's name, whose national side is the country's entity;
- PERSON: "Ms X" (an honorific), "X, 45," (an age), "X's wife";
- WORK_OF_ART: "the film X", "the album X".
"""

from __future__ import annotations

import re
from functools import cache
from typing import Any

from worker.names import HONORIFICS

# "shares in X": the two words before a name that make it an organisation or a place.
ORG_BEFORE = frozenset(
    {("shares", "in"), ("shares", "of"), ("stake", "in"), ("shareholders", "in"),
     ("shareholders", "of"), ("executive", "of"), ("boss", "of"), ("chairman", "of"),
     ("chairwoman", "of"), ("founder", "of"), ("subsidiary", "of"), ("takeover", "of")}
)  # fmt: skip
GPE_BEFORE = frozenset(
    {("based", "in"), ("capital", "of"), ("city", "of"), ("government", "of"),
     ("embassy", "in"), ("ambassador", "to"), ("citizens", "of")}
)  # fmt: skip
# "the film Kinsey", "the album Musicology": a work's name after what kind of work it is.
WORKS = frozenset(
    """film movie album single song book novel musical opera documentary sitcom series
    play""".split()
)
# "X's ...": what a name owns says what it is.
ORG_OWNS = frozenset(
    """shares shareholders profit profits sales revenue revenues earnings turnover board
    boss chairman chairwoman ceo founder subsidiary takeover customers""".split()
)
ORG_OWNS_CHIEF = frozenset({"executive", "financial", "operating", "technology"})  # X's chief ...
GPE_OWNS = frozenset(
    "government economy capital parliament population currency citizens army military".split()
)
# Sport: the words before a club's name ("beat Villa"), the word after it ("Villa
# manager"), and what it owns ("Villa's ground").
CLUB_BEFORE = frozenset(
    {("beat",), ("beating",), ("defeat", "to"), ("defeat", "by"), ("lost", "to"),
     ("losing", "to"), ("draw", "with"), ("drew", "with"), ("win", "over"), ("victory", "over"),
     ("signed", "from"), ("loan", "from")}
)  # fmt: skip
CLUB_AFTER = frozenset(
    """manager boss coach striker midfielder defender goalkeeper keeper winger forward
    skipper fans supporters squad""".split()
)
CLUB_OWNS = CLUB_AFTER | frozenset("ground stadium players".split())
# The last word of many clubs' names ("Leeds United"), never of a place's ("X City" and
# "X Town" are both).
CLUB_ENDINGS = frozenset("united rovers athletic wanderers albion hotspur argyle fc afc".split())
# Sides that play as a nation but are no country of ISO 3166.
NATIONAL_SIDES = frozenset({"England", "Scotland", "Wales", "Northern Ireland", "West Indies"})
# A score between two names: "Villa 2-1 Charlton" (not "Halftime 1-0" in a results table).
SCORE_AFTER = re.compile(r" ?\d{1,2}-\d{1,2} [A-Z]")
SCORE_BEFORE = re.compile(r"[A-Z][\w.'-]* \d{1,2}-\d{1,2} ?$")
PERSON_OWNS = frozenset(
    """wife husband son daughter father mother brother sister widow girlfriend boyfriend
    parents""".split()
)


def cues(doc: Any, start: int, end: int, text: str) -> list[str]:
    """The labels that the words around doc[start:end] point to, one per cue; `text` is
    doc.text, which spaCy joins anew from the tokens on every read."""
    before = tuple(t.lower_ for t in doc[max(start - 2, 0) : start])
    after = [t.lower_ for t in doc[end : end + 6]]
    found = []
    if before[-1:] and before[-1].rstrip(".") in HONORIFICS:  # "Ms Hessel"
        found.append("PERSON")
    if before in ORG_BEFORE and doc[start].ent_type_ != "NORP":  # not "stake in Irish ..."
        found.append("ORG")
    if before in GPE_BEFORE:
        found.append("GPE")
    if start and doc[start - 1].lower_ in WORKS and doc[start - 1].pos_ == "NOUN":
        found.append("WORK_OF_ART")
    if after[:1] in (["'s"], ["’s"]) and len(after) > 1:
        owned = after[1]
        if owned in ORG_OWNS or (owned == "chief" and after[2:3] and after[2] in ORG_OWNS_CHIEF):
            found.append("ORG")
        elif owned in GPE_OWNS:
            found.append("GPE")
        elif owned in PERSON_OWNS:
            found.append("PERSON")
    named_club = end - start > 1 and doc[end - 1].lower_ in CLUB_ENDINGS
    if named_club or _club(doc[start:end], before, after, text):
        found.append("ORG")
    if after[:2] == ["-", "based"] and not doc[end - 1].whitespace_:
        found.append("GPE")
    if len(after) >= 3 and after[0] == "," and after[2] == "," and _age(after[1]):
        found.append("PERSON")
    return found


def _club(span: Any, before: tuple[str, ...], after: list[str], text: str) -> bool:
    """A sport cue around `span`, a club's name. Never a country's name or a national side's
    (the team is the country), a demonym ("the Brazilian striker") or a common word
    ("Halftime 1-0"); a person's full name takes only the words after it ("beat Mark
    Cairns 15-10" is a match between people)."""
    first = span[0]
    if span.text in NATIONAL_SIDES or country(span.text) or first.ent_type_ == "NORP":
        return False
    following = after[0] if after else None
    owned = after[1] if following in ("'s", "’s") and len(after) > 1 else None
    if following in CLUB_AFTER or owned in CLUB_OWNS:
        return True
    if first.ent_type_ == "PERSON" and len(span) > 1:
        return False
    scored = SCORE_AFTER.match(text, span.end_char) or SCORE_BEFORE.search(
        text, max(span.start_char - 20, 0), span.start_char
    )
    return bool(before in CLUB_BEFORE or before[-1:] in CLUB_BEFORE or scored)


def _age(word: str) -> bool:
    return word.isdigit() and 15 <= int(word) <= 110


def squash(name: str) -> str:
    """A name without case, spaces, hyphens or dots: "Time Warner" and "TimeWarner", "U.S."
    and "US" are one name."""
    return re.sub(r"[\s.\-‐‑]+", "", name.casefold())


# Names news uses for a country beside pycountry's (ISO 3166) names.
COUNTRY_ALIASES = {
    "US": "US", "USA": "US", "America": "US", "United States of America": "US",
    "UK": "GB", "Britain": "GB", "Great Britain": "GB", "United Kingdom": "GB",
    "Russia": "RU", "Ivory Coast": "CI", "Burma": "MM", "Holland": "NL",
    "Czech Republic": "CZ", "Vatican": "VA", "Congo": "CG", "Macedonia": "MK",
    "South Korea": "KR", "North Korea": "KP", "Palestine": "PS", "Swaziland": "SZ",
}  # fmt: skip


@cache
def _countries() -> dict[str, str]:
    import pycountry

    codes = {squash(alias): code for alias, code in COUNTRY_ALIASES.items()}
    for country in pycountry.countries:
        for attribute in ("name", "common_name", "official_name"):
            if name := getattr(country, attribute, None):
                codes.setdefault(squash(name), country.alpha_2)
    return codes


def country(name: str) -> str | None:
    """The ISO code of the country `name` names ("America" -> "US"), or None."""
    return _countries().get(squash(name))
