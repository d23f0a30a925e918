"""Generated wire stories for tests and benchmarks: varied, deterministic, any number.

Every story is made of the same kinds of parts as real wire copy (dateline, named
people with later surname references, organisations, places, figures, quotes), and is
different for every index and always the same for the same index.
"""

from __future__ import annotations

FIRST = ["Amira", "Jonas", "Leila", "Mateo", "Ingrid", "Kwame", "Sofia", "Ravi", "Elena",
         "Tomas", "Hana", "Oskar", "Nadia", "Felix", "Yara", "Bruno", "Mei", "Arjun"]  # fmt: skip
LAST = ["Haddad", "Berg", "Osei", "Novak", "Castillo", "Lindqvist", "Mensah", "Kovacs",
        "Duarte", "Sato", "Petrov", "Adeyemi", "Moreau", "Larsen", "Okafor", "Brandt"]  # fmt: skip
PLACES = ["Valmera", "Corvale", "Brookfield", "Ostravia", "Tarnby", "Elmsford", "Lanzhou Bay",
          "Port Amell", "Riverton", "Kestrel Point", "Dunmore", "Haiqiao"]  # fmt: skip
ORGS = ["Harbour Authority", "Water Agency", "Rail Group", "Health Ministry", "Farmers Union",
        "Energy Board", "Teachers Federation", "Port Council", "Trade Office"]  # fmt: skip
TOPICS = ["budget", "strike", "drought", "vaccine plan", "rail line", "harvest", "bridge",
          "election", "flood defence", "fuel price", "school reform", "trade deal"]  # fmt: skip
AGENCIES = ["Reuters", "AP", "AFP", "Xinhua"]
FILLER = [
    "Officials said the figures would be checked again before the end of the quarter.",
    "Local businesses have asked for clearer rules and more time to adapt.",
    "The plan was first announced two years ago but was delayed by a legal dispute.",
    "Residents who spoke at a public meeting on Monday were divided over the proposal.",
    "Analysts said the decision could set an example for other regions facing similar costs.",
    "A final vote is expected next month after a committee reviews the amendments.",
    "The opposition has called for an independent inquiry into how the contracts were awarded.",
    "Similar measures in neighbouring provinces have had mixed results, according to a study.",
]


def _person(i: int, salt: int) -> str:
    return f"{FIRST[(i * 7 + salt) % len(FIRST)]} {LAST[(i * 11 + salt * 3) % len(LAST)]}"


def article(i: int, paragraphs: int = 4) -> dict[str, str]:
    """Story number i as a JSONL record ({"id", "text"}); more paragraphs make it longer."""
    person, other = _person(i, 1), _person(i, 5)
    place, org = PLACES[i % len(PLACES)], ORGS[i * 3 % len(ORGS)]
    topic, agency = TOPICS[i * 5 % len(TOPICS)], AGENCIES[i % len(AGENCIES)]
    parts = [
        f"{place.upper()}, March {i % 28 + 1} ({agency}) - {person} said on Tuesday that the "
        f"{place} {org} would publish its {topic} review number {i} within {i % 9 + 2} weeks.",
        f"{person.split()[1]} told reporters the review had cost {i * 13 % 900 + 100} thousand "
        f"dollars and involved {i % 40 + 3} staff.",
        f"{other}, who leads the opposition in {place}, said the {topic} plan came too late. "
        f'"We asked for this in {2010 + i % 15}," {other.split()[1]} said.',
    ]
    for k in range(max(paragraphs - 3, 0)):
        parts.append(" ".join(FILLER[(i + k + j) % len(FILLER)] for j in range(3)))
    return {"id": f"a{i:06d}", "text": "\n\n".join(parts)}


def corpus(n: int, paragraphs: int = 4) -> list[dict[str, str]]:
    return [article(i, paragraphs) for i in range(n)]
