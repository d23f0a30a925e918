"""Reading results: output records (DESIGN.md's contract), listings, search, export."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from functools import cache
from typing import Any

from sqlalchemy import Float, Integer, any_, bindparam, exists, func, null, text
from sqlalchemy import select as select_columns
from sqlalchemy.dialects.postgresql import ARRAY
from sqlmodel import Session, col, select

from newsflow import search, tallies
from newsflow.contract import FAILED, STAGES, Stage, Status
from newsflow.models import (
    Article,
    BatchArticle,
    Count,
    Entity,
    EntityKey,
    EntityTally,
    Keyphrase,
    Mention,
    StageRow,
    Story,
    StoryMember,
    SummarySentence,
)
from newsflow.record import (
    NO_FILTERS,
    ArticleRecord,
    ArticleRow,
    EntityCount,
    Filters,
    Snippet,
    StoryCopy,
    StoryDetail,
    StoryRow,
)

PAGE = 1000  # submissions per block of an export or a full read


_MEMBER = tuple(
    col(getattr(BatchArticle, name))
    for name in ("id", "article_id", "batch_id", "external_id", "source", "url", "title",
                 "published", "origin", "status")
)  # fmt: skip
_CONTENT = tuple(
    col(getattr(Article, name))
    for name in ("id", "title", "given_title", "byline", "dateline_place", "dateline_date",
                 "agency", "site", "language", "guessed_published", "text", "captions", "removed",
                 "word_count")
)  # fmt: skip
_PARTS = {  # what a record holds of each output table, in the record's order
    "stages": (StageRow, ("stage", "status", "error", "seconds", "version", "model"), ("stage",)),
    "entities": (Entity, ("idx", "name", "label", "count", "salience", "aliases"), ("idx",)),
    "mentions": (Mention, ("entity_idx", "start", "end", "text"), ("entity_idx", "idx")),
    "keyphrases": (Keyphrase, ("text", "score"), ("rank",)),
    "sentences": (SummarySentence, ("sentence_index", "start", "end", "text"), ("position",)),
}


@cache
def _part(name: str) -> Any:
    model, columns, order = _PARTS[name]
    article_id = col(model.article_id)  # type: ignore[attr-defined]
    return (
        select_columns(article_id, *(col(getattr(model, c)) for c in columns))
        .where(article_id.in_(bindparam("ids", expanding=True)))
        .order_by(article_id, *(col(getattr(model, c)) for c in order))
    )


_CONTENTS = select_columns(*_CONTENT).where(col(Article.id).in_(bindparam("ids", expanding=True)))
_STORIES = (
    select_columns(col(StoryMember.article_id), col(Story.id), col(Story.size),
                   col(StoryMember.similarity), col(Story.first_seen))
    .join(Story, col(Story.id) == col(StoryMember.story_id))
    .where(col(StoryMember.article_id).in_(bindparam("ids", expanding=True)))
)  # fmt: skip
_SHARES = (
    select_columns(col(BatchArticle.article_id), func.count())
    .where(col(BatchArticle.article_id).in_(bindparam("ids", expanding=True)))
    .group_by(col(BatchArticle.article_id))
)


def records(session: Session, ids: Sequence[int]) -> list[ArticleRecord]:
    """Output records of these submissions, in the order of `ids` (unknown ids left out)."""
    if not ids:
        return []
    query = select_columns(*_MEMBER).where(col(BatchArticle.id).in_(ids))
    found = {m.id: m for m in session.execute(query)}
    members = [found[i] for i in ids if i in found]
    return [ArticleRecord.model_validate(doc) for doc in documents(session, members)]


def documents(session: Session, members: Sequence[Any]) -> list[dict[str, Any]]:
    """One output record per submission (rows of _MEMBER), in the order given, as the
    plain document that ArticleRecord validates and export writes as it is: the shared
    processing results with what that submitter said (id, url, title, published, source).
    Seven statements for any number of records, none per record."""
    ids = sorted({m.article_id for m in members})
    if not ids:
        return []
    bound = {"ids": ids}
    contents = {a.id: a for a in session.execute(_CONTENTS, bound)}
    shared = dict(session.execute(_SHARES, bound).tuples().all())
    stories = {row[0]: row for row in session.execute(_STORIES, bound)}
    parts: dict[str, dict[int, list[Any]]] = {}
    for name in _PARTS:
        grouped: dict[int, list[Any]] = defaultdict(list)
        for row in session.execute(_part(name), bound):
            grouped[row[0]].append(row)
        parts[name] = grouped
    out = []
    for member in members:
        content = contents.get(member.article_id)
        if content is None:
            continue
        of = {name: grouped.get(member.article_id, []) for name, grouped in parts.items()}
        doc = _document(content, member, shared.get(member.article_id, 1), of)
        if story := stories.get(member.article_id):
            doc["story"] = {"id": story.id, "size": story.size, "similarity": story.similarity,
                            "first_seen": story.first_seen}  # fmt: skip
        out.append(doc)
    return out


def _document(
    content: Any, member: Any, shared_by: int, of: dict[str, list[Any]]
) -> dict[str, Any]:
    stages = sorted(of["stages"], key=lambda s: STAGES.index(s.stage) if s.stage in STAGES else 9)
    extract = next((s for s in stages if s.stage == Stage.EXTRACT), None)
    dateline = (
        {"place": content.dateline_place, "date": content.dateline_date}
        if content.dateline_place or content.dateline_date
        else None
    )
    # A title the clean stage found in the text is everyone's; one it took from the first
    # submitter is that submitter's own.
    found_title = content.title if content.title != content.given_title else None
    published, published_from = (
        (member.published, "submitter")
        if member.published
        else (content.guessed_published, "article" if content.guessed_published else None)
    )
    mentions: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for m in of["mentions"]:
        mentions[m.entity_idx].append({"start": m.start, "end": m.end, "text": m.text})
    sentences = of["sentences"]
    return {
        "id": member.id,
        "content_id": member.article_id,
        "content_submissions": shared_by,
        "external_id": member.external_id,
        "batch_id": member.batch_id,
        "status": member.status,
        "title": member.title or found_title,
        "byline": content.byline,
        "dateline": dateline,
        "agency": content.agency,
        "language": content.language,
        "published": published,
        "published_from": published_from,
        "url": member.url,
        "source": member.origin or content.site,
        "submitted_from": member.source,
        "text": content.text,
        "captions": content.captions or [],
        "word_count": content.word_count,
        "removed": [{"text": r["text"], "reason": r["reason"]} for r in content.removed or []],
        "entities": [
            {
                "name": e.name,
                "label": e.label,
                "count": e.count,
                "salience": e.salience,
                "aliases": e.aliases or [],
                "mentions": mentions[e.idx],
            }
            for e in of["entities"]
        ],
        "keyphrases": [{"text": k.text, "score": k.score} for k in of["keyphrases"]],
        "summary": {
            "text": " ".join(s.text for s in sentences),
            "sentences": [
                {"index": s.sentence_index, "start": s.start, "end": s.end, "text": s.text}
                for s in sentences
            ],
        },
        "story": None,
        "stages": {
            s.stage: {"status": s.status, "error": s.error, "seconds": s.seconds} for s in stages
        },
        "pipeline": {
            "version": extract.version if extract else None,
            "model": extract.model if extract else None,
            "stages": {s.stage: {"version": s.version, "model": s.model} for s in stages},
        },
    }


def params(filters: Filters) -> dict[str, Any]:
    """The bound values of the filters given, by parameter name (see _filtered)."""
    given: dict[str, Any] = {}
    if filters.batch_id is not None:
        given["batch_id"] = filters.batch_id
    if filters.story is not None:
        given["story"] = filters.story
    if filters.external_id is not None:
        given["external_id"] = filters.external_id
    if filters.agency is not None:
        given["agency"] = filters.agency.casefold()
    if filters.language is not None:
        given["language"] = filters.language
    if filters.since is not None:
        given["since"] = filters.since
    if filters.until is not None:  # "2026-08-31" takes in "2026-08-31T18:00:00Z"
        given["until"], given["until_length"] = filters.until, len(filters.until)
    if filters.status is not None:
        given["status"] = str(filters.status)
    if filters.entity is not None:
        given["entity"] = " ".join(filters.entity.casefold().split())
    if filters.query is not None:
        given["query"] = filters.query
    return given


Search = tuple[str, tuple[str, ...]]  # (dialect, PostgreSQL configurations to parse with)


def _search(session: Session, given: dict[str, Any]) -> Search | None:
    """How this database runs the full-text query in `given` (None when there is none);
    on SQLite the query's words become a safe FTS5 query in `given`."""
    if "query" not in given:
        return None
    dialect = session.get_bind().dialect.name
    if dialect != "postgresql":
        given["query"] = search.sqlite_query(given["query"])
        return dialect, ()
    stored = session.execute(_LANGUAGES).scalars()
    return dialect, tuple(search.postgres_configs(stored))


_LANGUAGES = select_columns(col(Count.key)).where(
    col(Count.batch_id) == tallies.ALL, col(Count.kind) == tallies.LANGUAGE, col(Count.n) > 0
)


def _parsed(configs: tuple[str, ...]) -> str:
    """The query `:query` parsed with each configuration, any of them to match."""
    return "(" + " || ".join(f"websearch_to_tsquery('{c}', :query)" for c in configs) + ")"


# Which matches a ranked page of a PostgreSQL search reads: ts_rank reads each match's
# vector, so ranking every match of a broad query grows with the store.
EVERY, BEST, WALK, INDEXED = "every", "best", "walk", "indexed"
# A query estimated to match more than RANKED articles (by the share of the newest PROBE
# it matches) is broad: it is ranked over its newest RECENT_RANKED matches, found the
# cheaper of two ways (WALK_US and INDEX_US, microseconds measured at a million stored):
# walking back through the newest articles, twice as many as the share says hold them,
# testing each; or reading every match's id through the index and keeping the newest.
# Either stays under ~50 ms at a million (the two cost the same at a 2% share).
PROBE, RANKED, RECENT_RANKED = 500, 2500, 500
WALK_US, INDEX_US = 0.6, 1.5


@cache
def _hits(how: Search, reads: str = EVERY) -> Any:
    """The articles the full-text query `:query` matches, with their rank (higher ranks
    first), through the database's index (see newsflow.search). On PostgreSQL `reads`
    may narrow them: BEST, the `:window` best (a listing with no other filter, whose
    page is among them, since a content has at least one submission); WALK and INDEXED,
    the newest RECENT_RANKED of a broad query's (WALK: among the newest `:walk`)."""
    dialect, configs = how
    if dialect != "postgresql":  # FTS5's rank is bm25, lower is better
        sql = (
            "SELECT rowid AS id, -rank AS rank FROM article_search "
            "WHERE article_search MATCH :query"
        )
        return text(sql).columns(id=Integer, rank=Float).subquery("hits")
    parsed = _parsed(configs)
    rank = f"SELECT id, ts_rank(search, {parsed}) AS rank FROM"
    sql = f"{rank} articles WHERE search @@ {parsed}"
    if reads == BEST:
        sql = f"SELECT id, rank FROM ({sql}) h ORDER BY rank DESC, id LIMIT :window"
    elif reads == WALK:  # no ORDER BY outside the walk, so LIMIT ends it early
        sql = (
            f"{rank} (SELECT id, search FROM articles ORDER BY id DESC LIMIT :walk) w "
            f"WHERE search @@ {parsed} LIMIT {RECENT_RANKED}"
        )
    elif reads == INDEXED:  # OFFSET 0: the ids through the index, not by a walk
        sql = (
            f"{rank} articles WHERE id IN (SELECT id FROM (SELECT id FROM articles WHERE "
            f"search @@ {parsed} OFFSET 0) m ORDER BY id DESC LIMIT {RECENT_RANKED})"
        )
    return text(sql).columns(id=Integer, rank=Float).subquery("hits")


@cache
def _probe(configs: tuple[str, ...]) -> Any:
    """How many of the newest PROBE articles the query `:query` matches, and the highest
    article id (the store's size, near enough)."""
    return text(
        f"SELECT (SELECT count(*) FROM (SELECT search FROM articles ORDER BY id DESC "
        f"LIMIT {PROBE}) w WHERE search @@ {_parsed(configs)}), (SELECT max(id) FROM articles)"
    )


def _reads(session: Session, how: Search, given: dict[str, Any]) -> tuple[str, int]:
    """Which matches a ranked page reads (EVERY, BEST, WALK or INDEXED, above), and for
    WALK how many of the newest articles. Other filters than the query need every match:
    they may keep only a few."""
    dialect, configs = how
    if dialect != "postgresql" or set(given) != {"query"}:
        return EVERY, 0
    matched, stored = session.execute(_probe(configs), {"query": given["query"]}).one()
    share = matched / PROBE
    estimate = share * (stored or 0)
    if estimate <= RANKED:
        return BEST, 0
    walk = math.ceil(2 * RECENT_RANKED / share)
    return (WALK if walk * WALK_US <= estimate * INDEX_US else INDEXED), walk


# PostgreSQL marks a snippet in the stretch of the body around the first word that begins
# with one of the query's stems (less a final "i": English stems "economy" as "economi"),
# SNIPPET_REACH characters each side: ts_headline parses all the text it is given, and a
# page of 50 whole bodies took it 14 ms. When the stretch holds no match (two words far
# apart), the whole body; when no word begins with a stem (a match in the title alone),
# the body's first stretch.
SNIPPET_REACH = 300


@cache
def _snippets(how: Search) -> Any:
    """(id, snippet) of the articles in `:ids` for the query `:query`, the matches marked."""
    dialect, configs = how
    marks = f"StartSel={search.MARK_START}, StopSel={search.MARK_END}"
    if dialect == "postgresql":
        config = search.postgres_config()

        def headline(body: str) -> str:
            return (
                f"ts_headline({config}, {body}, {_parsed(configs)}, '{marks}, "
                f"MaxWords={search.SNIPPET_WORDS}, MinWords=10, MaxFragments=1')"
            )

        stems = f"unnest(tsvector_to_array(to_tsvector({config}, :query)))"
        starts = "strpos(' ' || lower(text), ' ' || nullif(rtrim(w, 'i'), ''))"
        first = f"(SELECT min(nullif({starts}, 0)) FROM {stems} w)"
        reach = SNIPPET_REACH
        stretch = headline(f"substr(text, greatest(1, at - {reach}), {2 * reach})")
        sql = (
            f"SELECT id, CASE WHEN at IS NULL THEN {headline(f'substr(text, 1, {2 * reach})')} "
            f"WHEN strpos(near, '{search.MARK_START}') > 0 THEN near "
            f"ELSE {headline('text')} END FROM articles, LATERAL {first} s(at), "
            f"LATERAL (SELECT CASE WHEN at IS NOT NULL THEN {stretch} END) h(near) "
            "WHERE id IN :ids"
        )
    else:
        sql = (
            f"SELECT rowid, snippet(article_search, -1, '{search.MARK_START}', "
            f"'{search.MARK_END}', '…', {search.SNIPPET_WORDS}) FROM article_search "
            "WHERE article_search MATCH :query AND rowid IN :ids"
        )
    return text(sql).bindparams(bindparam("ids", expanding=True))


PUBLISHED = func.coalesce(col(BatchArticle.published), col(Article.guessed_published))
SOURCE = func.coalesce(col(BatchArticle.origin), col(Article.site))  # else the page's site


def _filtered(query: Any, given: Collection[str], how: Search | None = None) -> Any:
    """`query` (over submissions joined to their content) narrowed by every filter in
    `given` (the names of `params`), as bound parameters: one statement serves any values."""
    if "batch_id" in given:
        query = query.where(col(BatchArticle.batch_id) == bindparam("batch_id"))
    if "external_id" in given:
        query = query.where(col(BatchArticle.external_id) == bindparam("external_id"))
    if "agency" in given:
        query = query.where(func.lower(col(Article.agency)) == bindparam("agency"))
    if "language" in given:
        query = query.where(col(Article.language) == bindparam("language"))
    if "since" in given:
        query = query.where(bindparam("since") <= PUBLISHED)
    if "until" in given:
        query = query.where(
            func.substr(PUBLISHED, 1, bindparam("until_length")) <= bindparam("until")
        )
    if "status" in given:
        query = query.where(col(BatchArticle.status) == bindparam("status"))
    if "entity_ids" in given:
        query = query.where(
            col(BatchArticle.article_id).in_(bindparam("entity_ids", expanding=True))
        )
    if "entity_array" in given:  # the same ids as one PostgreSQL array (see db.among)
        query = query.where(
            col(BatchArticle.article_id) == any_(bindparam("entity_array", type_=ARRAY(Integer)))
        )
    if "entity" in given:
        query = query.where(ENTITY_NAMED)
    if "story" in given:
        query = query.where(col(BatchArticle.article_id).in_(STORY_ARTICLES))
    if how is not None:
        query = query.where(col(Article.id).in_(select_columns(_hits(how).c.id)))
    return query


def submissions(
    session: Session, filters: Filters, *, after: int = 0, limit: int | None = None
) -> list[Any]:
    """Submissions matching the filters (rows of _MEMBER), by id, after `after` (keyset
    paging)."""
    query = (
        select_columns(*_MEMBER)
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.id) > after)
        .order_by(col(BatchArticle.id))
    )
    given = _bound(session, filters)
    how = _search(session, given)
    if how is not None and not given["query"]:
        return []
    return list(session.execute(_filtered(query, given, how).limit(limit), given))


@cache
def _listing(given: frozenset[str], how: Search | None, reads: str = EVERY) -> Any:
    """The statement of a listing page, for filters of these names, built once: the
    values are bound at each execution (`after`, `limit` and `params`). A full-text query
    orders by rank (then content and submission id) instead of the keyset, and pages by
    offset."""
    query: Any = (
        select_columns(
            col(BatchArticle.id), col(BatchArticle.article_id), col(BatchArticle.batch_id),
            col(BatchArticle.external_id), col(BatchArticle.url), SOURCE.label("origin"),
            col(BatchArticle.source), col(BatchArticle.title).label("given"), col(Article.title),
            col(Article.given_title), col(Article.agency), col(Article.language),
            PUBLISHED.label("published"), col(BatchArticle.status),
        )
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.id) > bindparam("after"))
    )  # fmt: skip
    query = _filtered(query, given - {"query"})
    if how is None:
        query = query.add_columns(null().label("rank")).order_by(col(BatchArticle.id))
    else:
        hits = _hits(how, reads)
        query = query.join(hits, hits.c.id == col(Article.id)).add_columns(hits.c.rank)
        query = query.order_by(hits.c.rank.desc(), col(Article.id), col(BatchArticle.id))
    return query.limit(bindparam("limit")).offset(bindparam("offset"))


_TOP_NAMES = (
    select_columns(col(Entity.article_id), col(Entity.name))
    .where(col(Entity.article_id).in_(bindparam("ids", expanding=True)), col(Entity.idx) < 3)
    .order_by(col(Entity.article_id), col(Entity.idx))
)
_ERRORS = select_columns(col(StageRow.article_id), col(StageRow.stage), col(StageRow.error)).where(
    col(StageRow.article_id).in_(bindparam("ids", expanding=True)), col(StageRow.status) == FAILED
)


def rows(
    session: Session, filters: Filters, *, after: int = 0, limit: int = 50, offset: int = 0
) -> tuple[list[ArticleRow], int | None]:
    """A page of listing rows and the cursor of the next page (None on the last). Keyset
    paged on submission ids, so rows added meanwhile never shift a page; `offset` skips
    rows after the cursor (the CLI's page numbers). A few prepared statements, none reading
    article text, mentions or summaries: this is what GET /articles and `results list`
    serve."""
    given = _bound(session, filters)
    how = _search(session, given)
    if how is not None and not given["query"]:
        return [], None  # no word to look for
    reads = EVERY
    if how is None:
        bounds = {"after": after, "limit": limit + 1, "offset": offset}
    else:  # ranked: the cursor counts the rows given before
        bounds = {"after": 0, "limit": limit + 1, "offset": after + offset}
        bounds["window"] = after + offset + limit + 1
        reads, bounds["walk"] = _reads(session, how, given)
    statement = _listing(frozenset(given), how, reads)
    found = session.execute(statement, {**given, **bounds}).all()
    more, found = len(found) > limit, found[:limit]
    ids = sorted({r.article_id for r in found})
    names: dict[int, list[str]] = defaultdict(list)
    for article_id, name in session.execute(_TOP_NAMES, {"ids": ids}):
        names[article_id].append(name)
    errors: dict[int, dict[Stage, str]] = defaultdict(dict)
    for article_id, stage, error in session.execute(_ERRORS, {"ids": ids}):
        errors[article_id][Stage(stage)] = error
    snippets: dict[int, Snippet] = {}
    if how is not None and ids:
        for article_id, marked in session.execute(_snippets(how), {**given, "ids": ids}):
            text_of, marks = search.marked(marked or "")
            snippets[article_id] = Snippet(text=text_of, marks=marks)
    listed = [
        ArticleRow(
            id=r.id,
            content_id=r.article_id,
            batch_id=r.batch_id,
            external_id=r.external_id,
            url=r.url,
            source=r.origin,
            submitted_from=r.source,
            status=Status(r.status),
            title=r.given or (r.title if r.title != r.given_title else None),
            agency=r.agency,
            language=r.language,
            published=r.published,
            entities=names[r.article_id],
            errors=errors[r.article_id],
            rank=None if r.rank is None else round(float(r.rank), 4),
            snippet=snippets.get(r.article_id),
        )
        for r in found
    ]
    if not more:
        return listed, None
    return listed, found[-1].id if how is None else after + offset + limit


# Articles with an entity that answers to `:entity` (its canonical name, a run of its
# words from either end, or a mention's text; see tallies.entity_keys): one index lookup.
ENTITY_ARTICLES = select(col(EntityKey.article_id)).where(col(EntityKey.key) == bindparam("entity"))
# A name many contents answer to: probed per submission in id order (the key's primary
# index), so a page stops at its 50th match. As `IN (subquery)` SQLite first listed every
# content of the name (48,708 of 100,000 for "us": 75 ms; probed, 0.05 ms).
ENTITY_NAMED = exists().where(
    col(EntityKey.key) == bindparam("entity"),
    col(EntityKey.article_id) == col(BatchArticle.article_id),
)
STORY_ARTICLES = select(col(StoryMember.article_id)).where(
    col(StoryMember.story_id) == bindparam("story")
)
FEW = 5000  # an entity named by at most this many contents is looked up first
# In key order, so the check stops at its FEW + 1st entry of the key's index: unordered,
# PostgreSQL read every content of a common name first (a bitmap scan, 48,510 entries
# for "united states" at 100,000 stored: 13.9 ms; ordered, 5.0 ms and flat).
_FEW_ARTICLES = ENTITY_ARTICLES.order_by(col(EntityKey.article_id)).limit(FEW + 1)


def _bound(session: Session, filters: Filters) -> dict[str, Any]:
    """The bound values of the filters (`params`), with an entity that names few contents
    turned into their ids: the page is then read from those ids, however the planner
    guesses. A rare or absent name scanned the submissions in id order for a match
    (2.5 s at a million); a common one finds its page within a few thousand rows."""
    given = params(filters)
    if "entity" in given:
        found = list(session.execute(_FEW_ARTICLES, given).scalars())
        if len(found) <= FEW:
            postgres = session.get_bind().dialect.name == "postgresql"
            given["entity_array" if postgres else "entity_ids"] = found
            del given["entity"]
    return given


def blocks(session: Session, filters: Filters, limit: int | None) -> Iterator[list[Any]]:
    """The matching submissions (rows of _MEMBER), a block at a time, at most `limit`:
    keyset on the submission id, so each block is one indexed range read, whatever the
    table size."""
    after, left = 0, limit
    while left is None or left > 0:
        members = submissions(
            session, filters, after=after, limit=PAGE if left is None else min(PAGE, left)
        )
        if not members:
            return
        yield members
        after = members[-1].id
        if left is not None:
            left -= len(members)


def iter_documents(
    session: Session, filters: Filters = NO_FILTERS, *, limit: int | None = None
) -> Iterator[dict[str, Any]]:
    """Every matching record as its document, in constant memory; at most `limit`."""
    for members in blocks(session, filters, limit):
        yield from documents(session, members)


def iter_records(session: Session, filters: Filters = NO_FILTERS) -> Iterator[ArticleRecord]:
    """Every matching record, a block at a time: constant memory whatever the table size."""
    for doc in iter_documents(session, filters):
        yield ArticleRecord.model_validate(doc)


def top_entities(
    session: Session, *, batch_id: int | None = None, label: str | None = None, top: int = 20
) -> list[EntityCount]:
    """Entities across records: `articles` counts the submissions that name one (its
    coverage: three sites running one wire story count three), `contents` the distinct
    texts; mentions and salience are those of the contents. Read from the kept standing
    (tallies), in the order of its index.

    One name is one row: where articles labelled it differently (spaCy calls an actor an
    organisation in one review of ten), its counts are summed under the label most of its
    articles give it, and `label` filters on that label. The leading rows are read
    through the index, then the other labels of their names by primary key: a name
    enters the table by its largest label's count."""
    batch = tallies.ALL if batch_id is None else batch_id
    query = select(EntityTally).where(
        col(EntityTally.batch_id) == batch, col(EntityTally.articles) > 0
    )
    if label is not None:
        query = query.where(col(EntityTally.label) == label.upper())
    query = query.order_by(
        col(EntityTally.articles).desc(), col(EntityTally.mentions).desc(), col(EntityTally.name)
    )
    window, seen = 2 * top + 10, 0
    table: dict[str, EntityCount] = {}
    while True:
        names = [r.name for r in session.execute(query.offset(seen).limit(window)).scalars()]
        seen += window
        rows: dict[str, list[EntityTally]] = defaultdict(list)
        for r in session.execute(
            select(EntityTally).where(
                col(EntityTally.batch_id) == batch,
                col(EntityTally.name).in_(sorted(set(names) - table.keys())),
                col(EntityTally.articles) > 0,
            )
        ).scalars():
            rows[r.name].append(r)
        table.update((name, _one_name(name, labels)) for name, labels in rows.items())
        if label is not None:  # a name most articles label otherwise is not this label's
            table = {n: e for n, e in table.items() if e.label == label.upper()}
        if len(names) < window or len(table) >= top:
            break
    return sorted(table.values(), key=lambda e: (-e.articles, -e.mentions, e.name))[:top]


def _one_name(name: str, labels: Sequence[EntityTally]) -> EntityCount:
    """A name's standing under all its labels, as one entity of the most common label."""
    first = max(labels, key=lambda r: (r.articles, r.mentions, r.label))
    contents = sum(r.contents for r in labels)
    return EntityCount(
        name=name,
        label=first.label,
        articles=sum(r.articles for r in labels),
        contents=contents,
        mentions=sum(r.mentions for r in labels),
        salience=round(sum(r.salience for r in labels) / max(contents, 1), 4),
    )


def _story_records(session: Session, story_ids: Sequence[int]) -> dict[int, int]:
    """Submissions per story: read through the members of these stories only."""
    if not story_ids:
        return {}
    query = (
        select_columns(col(StoryMember.story_id), func.count())
        .join(BatchArticle, col(BatchArticle.article_id) == col(StoryMember.article_id))
        .where(col(StoryMember.story_id).in_(story_ids))
        .group_by(col(StoryMember.story_id))
    )
    return dict(session.execute(query).tuples().all())


def stories(
    session: Session, *, batch_id: int | None = None, min_size: int = 2, limit: int = 50
) -> list[StoryRow]:
    """The largest stories (of those with a record in a batch, or of all), at least
    `min_size` contents each: all of them through the (size, id) index, a batch's through
    its own submissions."""
    query = (
        select_columns(col(Story.id), col(Story.size), col(Story.first_seen), col(Article.title))
        .join(Article, col(Article.id) == col(Story.first_article_id))
        .where(col(Story.size) >= min_size)
        .order_by(col(Story.size).desc(), col(Story.id).desc())
        .limit(limit)
    )
    if batch_id is not None:
        in_batch = (
            select_columns(col(StoryMember.story_id))
            .join(BatchArticle, col(BatchArticle.article_id) == col(StoryMember.article_id))
            .where(col(BatchArticle.batch_id) == batch_id)
        )
        query = query.where(col(Story.id).in_(in_batch))
    found = session.execute(query).all()
    coverage = _story_records(session, [r.id for r in found])
    return [
        StoryRow(
            id=r.id,
            size=r.size,
            records=coverage.get(r.id, 0),
            first_seen=r.first_seen,
            title=r.title,
        )
        for r in found
    ]


def story(session: Session, story_id: int) -> StoryDetail | None:
    """A story and its records: the one whose content made it first, then by arrival."""
    head = session.execute(
        select_columns(col(Story.id), col(Story.size), col(Story.first_seen),
                       col(Story.first_article_id), col(Article.title))
        .join(Article, col(Article.id) == col(Story.first_article_id))
        .where(col(Story.id) == story_id)
    ).first()  # fmt: skip
    if head is None:
        return None
    rows = session.execute(
        select_columns(
            col(BatchArticle.id), col(BatchArticle.article_id), col(BatchArticle.batch_id),
            col(BatchArticle.title).label("given"), col(Article.title), SOURCE.label("origin"),
            col(BatchArticle.url), col(Article.agency), PUBLISHED.label("published"),
            col(Article.word_count), col(StoryMember.similarity), col(StoryMember.matched_id),
        )
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .join(StoryMember, col(StoryMember.article_id) == col(Article.id))
        .where(col(StoryMember.story_id) == story_id)
        .order_by(col(Article.id) != head.first_article_id, col(Article.created_at),
                  col(BatchArticle.id))
    ).all()  # fmt: skip
    copies = [
        StoryCopy(
            id=r.id, content_id=r.article_id, batch_id=r.batch_id, title=r.given or r.title,
            source=r.origin, url=r.url, agency=r.agency, published=r.published,
            word_count=r.word_count, similarity=r.similarity, matched_content=r.matched_id,
            first=r.article_id == head.first_article_id,
        )
        for r in rows
    ]  # fmt: skip
    return StoryDetail(id=head.id, size=head.size, records=len(copies),
                       first_seen=head.first_seen, title=head.title, copies=copies)  # fmt: skip
