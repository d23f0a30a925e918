"""Things news calls by several names, shown under one name and label in every article.

Within an article the rules of worker/entities.py join the forms they can see are one
thing; a political party's forms share no words ("Tories", "Conservative Party"), so
nothing joined them, and each article showed the form it used most: one batch's entity
table listed "Tory", "Tories" and "Conservatives" as three entities, under two labels.
A party here has its name, the forms only it goes by, and the forms it shares with other
things ("Conservatives" are also conservatives anywhere, "Democrats" a party in many
countries): a shared form is the party only in an article set in its country (a place of
it named, or another of its country's parties by a form of its own).

Countries are the other such case (their names are in worker/labels.py): an article's
"Britain", "UK" and "United Kingdom" were already one entity, shown as whichever the
article used most; `country_name` is the one name each country is shown under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import cache

from worker.labels import squash


@dataclass(frozen=True)
class Party:
    name: str
    country: str  # ISO 3166 code
    forms: tuple[str, ...]  # names that are this party wherever they appear
    shared: tuple[str, ...] = ()  # names that are this party in an article set in its country


PARTIES = (
    Party("Conservative Party", "GB", ("Conservative Party", "Tory Party", "Tories", "Tory"),
          ("Conservatives", "Conservative")),
    Party("Labour Party", "GB", ("Labour Party",), ("Labour",)),
    Party("Liberal Democrats", "GB", ("Liberal Democrats", "Liberal Democrat Party", "Lib Dems",
                                      "Lib Dem", "LibDems"), ("Liberal Democrat",)),
    Party("Scottish National Party", "GB", ("Scottish National Party", "SNP")),
    Party("UK Independence Party", "GB", ("UK Independence Party", "UKIP", "Ukip")),
    Party("Plaid Cymru", "GB", ("Plaid Cymru",)),
    Party("Democratic Unionist Party", "GB", ("Democratic Unionist Party", "DUP")),
    Party("Ulster Unionist Party", "GB", ("Ulster Unionist Party", "UUP")),
    Party("Green Party", "GB", (), ("Green Party", "Greens")),
    Party("Democratic Party", "US", (), ("Democratic Party", "Democrats", "Democrat")),
    Party("Republican Party", "US", ("GOP",), ("Republican Party", "Republicans", "Republican")),
)  # fmt: skip
# Besides its name (worker/labels.py), words that set an article in a country.
SETTINGS = {
    "GB": ("England", "Scotland", "Wales", "Northern Ireland", "London", "Westminster",
           "Downing Street", "Whitehall", "House of Commons", "the Commons"),
    "US": ("Washington", "White House", "Congress", "Capitol Hill"),
}  # fmt: skip
PARTY_LABEL = "ORG"

# How pycountry's ISO names differ from the one news uses, where they do.
COUNTRY_NAMES = {
    "RU": "Russia", "TR": "Turkey", "BN": "Brunei", "CD": "DR Congo", "PS": "Palestine",
    "VA": "Vatican City", "FM": "Micronesia",
}  # fmt: skip


@cache
def _forms() -> dict[str, tuple[Party, bool]]:
    """squashed form -> (party, whether the form is the party's alone)."""
    found: dict[str, tuple[Party, bool]] = {}
    for party in PARTIES:
        found.update({squash(form): (party, False) for form in party.shared})
        found.update({squash(form): (party, True) for form in party.forms})
    return found


@cache
def _settings() -> re.Pattern[str]:
    words = sorted({w for words in SETTINGS.values() for w in words}, key=len, reverse=True)
    return re.compile(rf"(?<![\w-])(?:{'|'.join(map(re.escape, words))})(?![\w-])")


def countries_of(text: str, forms: set[str], countries: set[str]) -> set[str]:
    """The countries an article is set in: those it names (`countries`, from its
    entities), those its place words say, and those of the parties it names by a form
    of their own (`forms`, its entities' names)."""
    found = set(countries)
    for match in _settings().finditer(text):
        found |= {code for code, words in SETTINGS.items() if match.group() in words}
    for form in forms:
        party, own = _forms().get(squash(form), (None, False))
        if party and own:
            found.add(party.country)
    return found


def party(form: str, countries: set[str]) -> Party | None:
    """The party `form` names in an article set in `countries`, or None."""
    found, own = _forms().get(squash(form), (None, False))
    if found and (own or found.country in countries):
        return found
    return None


def country_name(code: str) -> str:
    """The name a country is shown under: "United Kingdom" for "UK" and "Britain" alike."""
    import pycountry

    if code in COUNTRY_NAMES:
        return COUNTRY_NAMES[code]
    country = pycountry.countries.get(alpha_2=code)
    return str(getattr(country, "common_name", None) or country.name) if country else code
