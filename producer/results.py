"""Reading results: output records (DESIGN.md's contract), listings, search, export."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from functools import cache
from typing import IO, Any, Literal

from sqlalchemy import bindparam, func
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from newsflow import record as rec
from newsflow import tallies
from newsflow.contract import FAILED, STAGES, Stage, Status
from newsflow.models import (
    Article,
    BatchArticle,
    Entity,
    EntityKey,
    EntityTally,
    Keyphrase,
    Mention,
    StageRow,
    SummarySentence,
)
from newsflow.record import NO_FILTERS, ArticleRecord, ArticleRow, EntityCount, Filters
from producer.terminal import cell

PAGE = 200


def _grouped(session: Session, table: Any, ids: Sequence[int], *order: Any) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = defaultdict(list)
    query = select(table).where(table.article_id.in_(ids)).order_by(table.article_id, *order)
    for row in session.execute(query).scalars():
        groups[row.article_id].append(row)
    return groups


_SHARES = (
    select_columns(col(BatchArticle.article_id), func.count())
    .where(col(BatchArticle.article_id).in_(bindparam("ids", expanding=True)))
    .group_by(col(BatchArticle.article_id))
)


def shares(session: Session, content_ids: Sequence[int]) -> dict[int, int]:
    """How many submissions share each of these contents."""
    return dict(session.execute(_SHARES, {"ids": list(content_ids)}).tuples().all())


def records(session: Session, ids: Sequence[int]) -> list[ArticleRecord]:
    """Output records of these submissions, in the order of `ids` (unknown ids left out)."""
    if not ids:
        return []
    query = select(BatchArticle).where(col(BatchArticle.id).in_(ids))
    found = {m.id: m for m in session.execute(query).scalars()}
    return submission_records(session, [found[i] for i in ids if i in found])


def submission_records(session: Session, members: Sequence[BatchArticle]) -> list[ArticleRecord]:
    """One output record per submission, in the order given: the shared processing
    results with what that submitter said (id, url, title, published, source)."""
    ids = sorted({m.article_id for m in members})
    if not ids:
        return []
    articles = {
        a.id: a for a in session.execute(select(Article).where(col(Article.id).in_(ids))).scalars()
    }
    shared = shares(session, ids)
    stages = _grouped(session, StageRow, ids, col(StageRow.stage))
    entities = _grouped(session, Entity, ids, col(Entity.idx))
    mentions = _grouped(session, Mention, ids, col(Mention.entity_idx), col(Mention.idx))
    phrases = _grouped(session, Keyphrase, ids, col(Keyphrase.rank))
    sentences = _grouped(session, SummarySentence, ids, col(SummarySentence.position))
    out = []
    for member in members:
        article = articles.get(member.article_id)
        if article is None:
            continue
        by_entity: dict[int, list[Mention]] = defaultdict(list)
        for m in mentions.get(member.article_id, []):
            by_entity[m.entity_idx].append(m)
        out.append(
            _record(
                article,
                member,
                shared.get(member.article_id, 1),
                stages.get(member.article_id, []),
                entities.get(member.article_id, []),
                by_entity,
                phrases.get(member.article_id, []),
                sentences.get(member.article_id, []),
            )
        )
    return out


def _record(
    article: Article,
    member: BatchArticle,
    shared_by: int,
    stages: list[StageRow],
    entities: list[Entity],
    mentions: dict[int, list[Mention]],
    phrases: list[Keyphrase],
    sentences: list[SummarySentence],
) -> ArticleRecord:
    extract = next((s for s in stages if s.stage == Stage.EXTRACT), None)
    dateline = (
        rec.Dateline(place=article.dateline_place, date=article.dateline_date)
        if article.dateline_place or article.dateline_date
        else None
    )
    # A title the clean stage found in the text is everyone's; one it took from the first
    # submitter is that submitter's own.
    found_title = article.title if article.title != article.given_title else None
    published_from: Literal["submitter", "article"] | None
    published, published_from = (
        (member.published, "submitter")
        if member.published
        else (article.guessed_published, "article" if article.guessed_published else None)
    )
    return ArticleRecord(
        id=member.id or 0,
        content_id=member.article_id,
        content_submissions=shared_by,
        external_id=member.external_id,
        batch_id=member.batch_id,
        status=Status(member.status),
        title=member.title or found_title,
        byline=article.byline,
        dateline=dateline,
        agency=article.agency,
        language=article.language,
        published=published,
        published_from=published_from,
        url=member.url,
        source=member.origin,
        submitted_from=member.source,
        text=article.text,
        captions=article.captions or [],
        word_count=article.word_count,
        removed=[rec.Removal(**r) for r in article.removed or []],
        entities=[
            rec.Entity(
                name=e.name,
                label=e.label,
                count=e.count,
                salience=e.salience,
                aliases=e.aliases or [],
                mentions=[
                    rec.Mention(start=m.start, end=m.end, text=m.text) for m in mentions[e.idx]
                ],
            )
            for e in entities
        ],
        keyphrases=[rec.Keyphrase(text=k.text, score=k.score) for k in phrases],
        summary=rec.Summary(
            text=" ".join(s.text for s in sentences),
            sentences=[
                rec.SummarySentence(index=s.sentence_index, start=s.start, end=s.end, text=s.text)
                for s in sentences
            ],
        ),
        stages={
            Stage(s.stage): rec.StageOutcome(
                status=Status(s.status), error=s.error, seconds=s.seconds
            )
            for s in sorted(stages, key=lambda s: STAGES.index(s.stage) if s.stage in STAGES else 9)
        },
        pipeline=rec.Pipeline(
            version=extract.version if extract else None,
            model=extract.model if extract else None,
        ),
    )


def params(filters: Filters) -> dict[str, Any]:
    """The bound values of the filters given, by parameter name (see _filtered)."""
    given: dict[str, Any] = {}
    if filters.batch_id is not None:
        given["batch_id"] = filters.batch_id
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
    return given


PUBLISHED = func.coalesce(col(BatchArticle.published), col(Article.guessed_published))


def _filtered(query: Any, given: Collection[str]) -> Any:
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
    if "entity" in given:
        query = query.where(col(BatchArticle.article_id).in_(ENTITY_ARTICLES))
    return query


def submissions(
    session: Session, filters: Filters, *, after: int = 0, limit: int | None = None
) -> list[BatchArticle]:
    """Submissions matching the filters, by id, after `after` (keyset paging)."""
    query = (
        select(BatchArticle)
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.id) > after)
        .order_by(col(BatchArticle.id))
    )
    given = params(filters)
    query = _filtered(query, given)
    return list(session.execute(query.limit(limit), given).scalars())


@cache
def _listing(given: frozenset[str]) -> Any:
    """The statement of a listing page, for filters of these names, built once: the
    values are bound at each execution (`after`, `limit` and `params`)."""
    query: Any = (
        select_columns(
            col(BatchArticle.id), col(BatchArticle.article_id), col(BatchArticle.batch_id),
            col(BatchArticle.external_id), col(BatchArticle.url), col(BatchArticle.origin),
            col(BatchArticle.source), col(BatchArticle.title).label("given"), col(Article.title),
            col(Article.given_title), col(Article.agency), col(Article.language),
            PUBLISHED.label("published"), col(BatchArticle.status),
        )
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.id) > bindparam("after"))
    )  # fmt: skip
    query = _filtered(query, given).order_by(col(BatchArticle.id))
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
    rows after the cursor (the CLI's page numbers). Four prepared statements, none reading
    article text, mentions or summaries: this is what GET /articles and `results list`
    serve."""
    given = params(filters)
    bounds = {"after": after, "limit": limit + 1, "offset": offset}
    found = session.execute(_listing(frozenset(given)), {**given, **bounds}).all()
    more, found = len(found) > limit, found[:limit]
    ids = sorted({r.article_id for r in found})
    names: dict[int, list[str]] = defaultdict(list)
    for article_id, name in session.execute(_TOP_NAMES, {"ids": ids}):
        names[article_id].append(name)
    errors: dict[int, dict[Stage, str]] = defaultdict(dict)
    for article_id, stage, error in session.execute(_ERRORS, {"ids": ids}):
        errors[article_id][Stage(stage)] = error
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
        )
        for r in found
    ]
    return listed, found[-1].id if more else None


# Articles with an entity that answers to `:entity` (its canonical name, a run of its
# words from either end, or a mention's text; see tallies.entity_keys): one index lookup.
ENTITY_ARTICLES = select(col(EntityKey.article_id)).where(col(EntityKey.key) == bindparam("entity"))


def iter_records(session: Session, filters: Filters = NO_FILTERS) -> Iterator[ArticleRecord]:
    """Every matching record, a page at a time: constant memory whatever the table size."""
    after = 0
    while members := submissions(session, filters, after=after, limit=PAGE):
        yield from submission_records(session, members)
        after = members[-1].id or 0
        session.expunge_all()


def top_entities(
    session: Session, *, batch_id: int | None = None, label: str | None = None, top: int = 20
) -> list[EntityCount]:
    """Entities across records: `articles` counts the submissions that name one (its
    coverage: three sites running one wire story count three), `contents` the distinct
    texts; mentions and salience are those of the contents. Read from the kept standing
    (tallies), in the order of its index."""
    query = select(EntityTally).where(
        col(EntityTally.batch_id) == (tallies.ALL if batch_id is None else batch_id),
        col(EntityTally.articles) > 0,
    )
    if label is not None:
        query = query.where(col(EntityTally.label) == label.upper())
    query = query.order_by(
        col(EntityTally.articles).desc(), col(EntityTally.mentions).desc(), col(EntityTally.name)
    )
    return [
        EntityCount(
            name=r.name,
            label=r.label,
            articles=r.articles,
            contents=r.contents,
            mentions=r.mentions,
            salience=round(r.salience / max(r.contents, 1), 4),
        )
        for r in session.execute(query.limit(top)).scalars()
    ]


CSV_FIELDS = (
    "id",
    "content_id",
    "content_submissions",
    "external_id",
    "batch_id",
    "status",
    "title",
    "byline",
    "dateline",
    "agency",
    "language",
    "published",
    "url",
    "source",
    "word_count",
    "entities",
    "keyphrases",
    "summary",
    "errors",
)


def csv_row(record: ArticleRecord) -> dict[str, str]:
    """One flat row per article: top entities and keyphrases joined with '; ', and no cell
    that a spreadsheet would run as a formula."""
    dateline = record.dateline
    flat = record.model_dump(include=set(CSV_FIELDS))
    row = {
        **{k: v for k, v in flat.items() if not isinstance(v, (dict, list))},
        "dateline": ", ".join(v for v in (dateline.place, dateline.date) if v) if dateline else "",
        "entities": "; ".join(f"{e.name} ({e.label})" for e in record.entities[:10]),
        "keyphrases": "; ".join(k.text for k in record.keyphrases),
        "summary": record.summary.text,
        "errors": "; ".join(f"{stage}: {error}" for stage, error in record.errors().items()),
    }
    return {key: cell(value) for key, value in row.items()}


def export(
    session: Session,
    out: IO[str],
    *,
    fmt: str = "jsonl",
    filters: Filters = NO_FILTERS,
) -> int:
    """Stream records to `out` as JSONL or CSV; returns how many were written."""
    count = 0
    writer = csv.DictWriter(out, fieldnames=CSV_FIELDS) if fmt == "csv" else None
    if writer:
        writer.writeheader()
    for record in iter_records(session, filters):
        if writer:
            writer.writerow(csv_row(record))
        else:
            out.write(record.model_dump_json() + "\n")
        count += 1
    return count
