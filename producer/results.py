"""Reading results: output records (DESIGN.md's contract), listings, search, export."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Collection, Iterator, Sequence
from dataclasses import dataclass
from functools import cache
from typing import IO, Any, Literal

from sqlalchemy import bindparam, func, or_
from sqlalchemy import select as select_columns
from sqlalchemy.orm import aliased
from sqlmodel import Session, col, select

from newsflow import record as rec
from newsflow.contract import FAILED, QUEUED, STAGES, Stage, Status
from newsflow.delivery import batch_members
from newsflow.models import (
    Article,
    BatchArticle,
    Entity,
    Keyphrase,
    Mention,
    StageRow,
    SummarySentence,
)
from newsflow.record import ArticleRecord, ArticleRow, EntityCount
from producer.monitor import article_status, statuses_of
from producer.terminal import cell

PAGE = 200


def _grouped(session: Session, table: Any, ids: Sequence[int], *order: Any) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = defaultdict(list)
    query = select(table).where(table.article_id.in_(ids)).order_by(table.article_id, *order)
    for row in session.execute(query).scalars():
        groups[row.article_id].append(row)
    return groups


def records(session: Session, ids: Sequence[int]) -> list[ArticleRecord]:
    """Output records of these articles, in the order of `ids`, each as its first
    submission described it."""
    found = {r.id: r for r in submission_records(session, first_submissions(session, ids))}
    return [found[i] for i in ids if i in found]


def first_submissions(session: Session, ids: Sequence[int]) -> list[BatchArticle]:
    """The first submission of each of these articles."""
    if not ids:
        return []
    first = (
        select(func.min(col(BatchArticle.id)))
        .where(col(BatchArticle.article_id).in_(ids))
        .group_by(col(BatchArticle.article_id))
    )
    return list(
        session.execute(select(BatchArticle).where(col(BatchArticle.id).in_(first))).scalars()
    )


def submission_records(session: Session, members: Sequence[BatchArticle]) -> list[ArticleRecord]:
    """One output record per submission, in the order given: the shared processing
    results with what that submitter said (id, url, title, published, source)."""
    ids = sorted({m.article_id for m in members})
    if not ids:
        return []
    articles = {
        a.id: a for a in session.execute(select(Article).where(col(Article.id).in_(ids))).scalars()
    }
    statuses = statuses_of(session, ids)
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
                statuses.get(member.article_id, QUEUED),
                member,
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
    status: str,
    member: BatchArticle,
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
        id=article.id or 0,
        external_id=member.external_id,
        batch_id=member.batch_id,
        status=Status(status),
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


@dataclass(frozen=True)
class Filters:
    """Which articles a listing, search or export covers; None means any."""

    batch_id: int | None = None
    status: str | None = None
    entity: str | None = None
    agency: str | None = None  # any case
    language: str | None = None
    since: str | None = None  # published on or after, an ISO date (compared as text)
    until: str | None = None  # published on or before

    def params(self) -> dict[str, Any]:
        """The bound values of the filters given, by parameter name (see _filtered)."""
        given: dict[str, Any] = {}
        if self.agency is not None:
            given["agency"] = self.agency.casefold()
        if self.language is not None:
            given["language"] = self.language
        if self.since is not None:
            given["since"] = self.since
        if self.until is not None:  # "2026-08-31" takes in "2026-08-31T18:00:00Z"
            given["until"], given["until_length"] = self.until, len(self.until)
        if self.status is not None:
            given["status"] = str(self.status)
        if self.entity is not None:
            needle = self.entity.strip().casefold()
            escaped = _like_escape(needle)
            given |= {"entity": needle, "entity_first": f"{escaped} %",
                      "entity_last": f"% {escaped}"}  # fmt: skip
        if self.batch_id is not None:
            given["batch_id"] = self.batch_id
        return given


def _filtered(query: Any, given: Collection[str], published: Any) -> Any:
    """`query` (over articles) narrowed by every filter in `given` (the names of
    Filters.params) but the batch, as bound parameters: one statement serves any values."""
    if "agency" in given:
        query = query.where(func.lower(col(Article.agency)) == bindparam("agency"))
    if "language" in given:
        query = query.where(col(Article.language) == bindparam("language"))
    if "since" in given:
        query = query.where(published >= bindparam("since"))
    if "until" in given:
        query = query.where(
            func.substr(published, 1, bindparam("until_length")) <= bindparam("until")
        )
    if "status" in given:
        sub = article_status()
        query = query.where(
            col(Article.id).in_(select(sub.c.article_id).where(sub.c.status == bindparam("status")))
        )
    if "entity" in given:
        query = query.where(col(Article.id).in_(entity_articles()))
    return query


def article_ids(
    session: Session,
    filters: Filters = Filters(),
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[int]:
    """Ids matching the filters, ascending, after `after` (keyset paging)."""
    query = select(col(Article.id)).where(col(Article.id) > after).order_by(col(Article.id))
    published = func.coalesce(col(Article.published), col(Article.guessed_published))
    params = filters.params()
    query = _filtered(query, params, published)
    if filters.batch_id is not None:
        query = query.where(col(Article.id).in_(batch_members(filters.batch_id)))
    return list(session.execute(query.limit(limit), params).scalars())


def submissions(
    session: Session,
    filters: Filters,
    *,
    after: int = 0,
    limit: int | None = None,
) -> list[BatchArticle]:
    """A batch's submissions matching the filters, by submission id, after `after`."""
    assert filters.batch_id is not None
    published = func.coalesce(col(BatchArticle.published), col(Article.guessed_published))
    query = (
        select(BatchArticle)
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.batch_id) == filters.batch_id, col(BatchArticle.id) > after)
        .order_by(col(BatchArticle.id))
    )
    params = filters.params()
    query = _filtered(query, params, published)
    return list(session.execute(query.limit(limit), params).scalars())


@cache
def _listing(batched: bool, given: frozenset[str]) -> Any:
    """The statement of a listing page, for filters of these names, built once: the
    values are bound at each execution (`after`, `limit` and Filters.params)."""
    published = func.coalesce(col(BatchArticle.published), col(Article.guessed_published))
    columns: tuple[Any, ...] = (
        col(Article.id), col(BatchArticle.batch_id), col(BatchArticle.title).label("given"),
        col(Article.title), col(Article.given_title), col(Article.agency),
        col(Article.language), published.label("published"),
    )  # fmt: skip
    if batched:
        key = col(BatchArticle.id)
        query = (
            select_columns(key.label("key"), *columns)
            .join(Article, col(Article.id) == col(BatchArticle.article_id))
            .where(col(BatchArticle.batch_id) == bindparam("batch_id"))
        )
    else:  # each article with its first submission
        key = col(Article.id)
        first = aliased(BatchArticle)
        first_id = select(func.min(first.id)).where(first.article_id == Article.id)
        query = (
            select_columns(key.label("key"), *columns)
            .select_from(Article)
            .join(BatchArticle, col(BatchArticle.id) == first_id.scalar_subquery())
        )
        published = func.coalesce(col(Article.published), col(Article.guessed_published))
    query = _filtered(query, given, published)
    query = query.where(key > bindparam("after")).order_by(key)
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
    paged on submission ids within a batch, else on article ids (with the article's first
    submission), so rows added meanwhile never shift a page; `offset` skips rows after the
    cursor (the CLI's page numbers). Four prepared statements, none reading article text,
    mentions or summaries: this is what GET /articles and `results list` serve."""
    params = filters.params()
    query = _listing(filters.batch_id is not None, frozenset(params))
    bounds = {"after": after, "limit": limit + 1, "offset": offset}
    found = session.execute(query, {**params, **bounds}).all()
    more, found = len(found) > limit, found[:limit]
    ids = sorted({r.id for r in found})
    statuses = statuses_of(session, ids)
    names: dict[int, list[str]] = defaultdict(list)
    for article_id, name in session.execute(_TOP_NAMES, {"ids": ids}):
        names[article_id].append(name)
    errors: dict[int, dict[Stage, str]] = defaultdict(dict)
    for article_id, stage, error in session.execute(_ERRORS, {"ids": ids}):
        errors[article_id][Stage(stage)] = error
    listed = [
        ArticleRow(
            id=r.id,
            batch_id=r.batch_id,
            status=Status(statuses[r.id]),
            title=r.given or (r.title if r.title != r.given_title else None),
            agency=r.agency,
            language=r.language,
            published=r.published,
            entities=names[r.id],
            errors=errors[r.id],
        )
        for r in found
    ]
    return listed, found[-1].key if more else None


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def entity_articles() -> Any:
    """Ids of articles with an entity called `:entity` (canonical name, a word-aligned part
    of it, or any mention's text), case-insensitive; see Filters.params."""
    by_name = select(col(Entity.article_id)).where(
        or_(
            col(Entity.name_lower) == bindparam("entity"),
            col(Entity.name_lower).like(bindparam("entity_first"), escape="\\"),
            col(Entity.name_lower).like(bindparam("entity_last"), escape="\\"),
        )
    )
    by_mention = select(col(Mention.article_id)).where(
        func.lower(col(Mention.text)) == bindparam("entity")
    )
    return by_name.union(by_mention)


def iter_records(session: Session, filters: Filters = Filters()) -> Iterator[ArticleRecord]:
    """Every matching record, a page at a time: constant memory whatever the table size."""
    after = 0
    if filters.batch_id is not None:
        while members := submissions(session, filters, after=after, limit=PAGE):
            yield from submission_records(session, members)
            after = members[-1].id or 0
            session.expunge_all()
        return
    while ids := article_ids(session, filters, after=after, limit=PAGE):
        yield from records(session, ids)
        session.expunge_all()
        after = ids[-1]


def top_entities(
    session: Session, *, batch_id: int | None = None, label: str | None = None, top: int = 20
) -> list[EntityCount]:
    """Entities across articles: in how many articles, how many mentions, mean salience."""
    query = select_columns(
        col(Entity.name),
        col(Entity.label),
        func.count(func.distinct(col(Entity.article_id))).label("articles"),
        func.sum(col(Entity.count)).label("mentions"),
        func.avg(col(Entity.salience)).label("salience"),
    ).group_by(col(Entity.name), col(Entity.label))
    if batch_id is not None:
        query = query.where(col(Entity.article_id).in_(batch_members(batch_id)))
    if label is not None:
        query = query.where(col(Entity.label) == label.upper())
    query = query.order_by(
        func.count(func.distinct(col(Entity.article_id))).desc(), func.sum(col(Entity.count)).desc()
    ).limit(top)
    return [
        EntityCount(
            name=r.name,
            label=r.label,
            articles=r.articles,
            mentions=int(r.mentions),
            salience=round(float(r.salience), 4),
        )
        for r in session.execute(query)
    ]


CSV_FIELDS = (
    "id",
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
    filters: Filters = Filters(),
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
