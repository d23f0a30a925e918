"""Full-text search over each article's title and clean body: the index each database
keeps (migration 0006) and the pieces of a search query.

PostgreSQL: `articles.search`, a tsvector the database computes from the title (weight A)
and the body (weight B) with the text search configuration of the article's language
(its stemmer and stop words; 'simple' for a language PostgreSQL has none for), under a GIN
index. A query is parsed as web search syntax ("a phrase", or, -word) once per
configuration of the languages stored, so each article is matched with its own stemming.

SQLite: an FTS5 table over the same columns whose content is the articles table itself,
kept by triggers; a query's words are matched as quoted terms (all of them), since FTS5's
own syntax errors on a stray quote or bracket.
"""

from __future__ import annotations

import re
from collections.abc import Iterable

# ISO 639-1 codes (as the clean stage detects them) -> PostgreSQL's configurations.
POSTGRES_CONFIGS = {
    "ar": "arabic", "hy": "armenian", "eu": "basque", "ca": "catalan", "da": "danish",
    "nl": "dutch", "en": "english", "fi": "finnish", "fr": "french", "de": "german",
    "el": "greek", "hi": "hindi", "hu": "hungarian", "id": "indonesian", "ga": "irish",
    "it": "italian", "lt": "lithuanian", "ne": "nepali", "no": "norwegian", "nb": "norwegian",
    "nn": "norwegian", "pt": "portuguese", "ro": "romanian", "ru": "russian", "sr": "serbian",
    "es": "spanish", "sv": "swedish", "ta": "tamil", "tr": "turkish", "yi": "yiddish",
}  # fmt: skip
FALLBACK = "simple"
# Private-use characters around each match in a snippet: no article text holds them, and
# the reader turns them into offsets (`marked`).
MARK_START, MARK_END = "\ue000", "\ue001"
SNIPPET_WORDS = 30


def postgres_config(language_column: str = "language") -> str:
    """The SQL of the configuration for an article's language (immutable, as a generated
    column needs: each branch is a constant)."""
    branches = " ".join(
        f"WHEN '{code}' THEN '{config}'::regconfig" for code, config in POSTGRES_CONFIGS.items()
    )
    return f"(CASE {language_column} {branches} ELSE '{FALLBACK}'::regconfig END)"


def postgres_document() -> str:
    """The SQL of an article's search document."""
    config = postgres_config()
    return (
        f"setweight(to_tsvector({config}, coalesce(title, '')), 'A') || "
        f"setweight(to_tsvector({config}, coalesce(text, '')), 'B')"
    )


def postgres_configs(languages: Iterable[str]) -> list[str]:
    """The configurations a query is parsed with: those of the languages stored."""
    return sorted({POSTGRES_CONFIGS.get(code, FALLBACK) for code in languages} | {FALLBACK})


SQLITE_TABLE = (
    "CREATE VIRTUAL TABLE article_search USING fts5(title, text, content='articles', "
    "content_rowid='id', tokenize='porter unicode61 remove_diacritics 2')"
)
_OLD = "INSERT INTO article_search(article_search, rowid, title, text) VALUES ('delete', old.id, old.title, old.text);"  # noqa: E501
_NEW = "INSERT INTO article_search(rowid, title, text) VALUES (new.id, new.title, new.text);"
SQLITE_TRIGGERS = (
    f"CREATE TRIGGER article_search_ai AFTER INSERT ON articles BEGIN {_NEW} END",
    f"CREATE TRIGGER article_search_ad AFTER DELETE ON articles BEGIN {_OLD} END",
    f"CREATE TRIGGER article_search_au AFTER UPDATE OF title, text ON articles BEGIN {_OLD} {_NEW} END",  # noqa: E501
)

_WORD = re.compile(r"\w+", re.UNICODE)
_PART = re.compile(r'(-?)"([^"]*)"?|(\S+)')


def sqlite_query(query: str) -> str:
    """A user's query in web search syntax as an FTS5 query that cannot be a syntax error:
    words are all required, "a phrase" keeps its order, `or` between two parts takes
    either, `-word` leaves out what has it; every word is quoted, so no character of the
    input is FTS5 syntax. '' when nothing is left to look for."""
    groups: list[list[str]] = [[]]  # parts ANDed within a group, groups ORed
    excluded: list[str] = []
    joining = False
    for match in _PART.finditer(query):
        negated, phrase, bare = match.group(1), match.group(2), match.group(3)
        if bare is not None and bare.casefold() == "or":
            joining = bool(groups[-1])
            continue
        if bare is not None and bare.startswith("-"):
            negated, bare = "-", bare[1:]
        words = _WORD.findall(phrase if phrase is not None else bare or "")
        if not words:
            continue
        term = '"' + " ".join(words) + '"'  # a quoted string is a phrase in FTS5
        if negated:
            excluded.append(term)
        elif joining:
            groups.append([term])
        else:
            groups[-1].append(term)
        joining = False
    wanted = [" AND ".join(group) for group in groups if group]
    if not wanted:
        return ""
    expression = " OR ".join(f"({w})" for w in wanted) if len(wanted) > 1 else wanted[0]
    return " NOT ".join([f"({expression})", *excluded]) if excluded else expression


def marked(snippet: str) -> tuple[str, list[tuple[int, int]]]:
    """A snippet with its marks taken out, and the (start, end) of each marked stretch."""
    text: list[str] = []
    marks: list[tuple[int, int]] = []
    length, opened = 0, None
    for part in re.split(f"([{MARK_START}{MARK_END}])", snippet):
        if part == MARK_START:
            opened = length
        elif part == MARK_END:
            if opened is not None and length > opened:
                marks.append((opened, length))
            opened = None
        else:
            text.append(part)
            length += len(part)
    return "".join(text), marks
