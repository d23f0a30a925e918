"""Reading results: output records (DESIGN.md's contract), listings, search, export."""

from __future__ import annotations

import csv
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any, Literal

from sqlalchemy import func, or_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from newsflow import record as rec
from newsflow.contract import QUEUED, STAGES, Stage, Status
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


def _filtered(query: Any, filters: Filters, published: Any) -> Any:
    """`query` (over articles) narrowed by every filter but the batch."""
    if filters.agency is not None:
        query = query.where(func.lower(col(Article.agency)) == filters.agency.casefold())
    if filters.language is not None:
        query = query.where(col(Article.language) == filters.language)
    if filters.since is not None:
        query = query.where(published >= filters.since)
    if filters.until is not None:  # "2026-08-31" takes in "2026-08-31T18:00:00Z"
        query = query.where(func.substr(published, 1, len(filters.until)) <= filters.until)
    if filters.status is not None:
        sub = article_status()
        query = query.where(
            col(Article.id).in_(select(sub.c.article_id).where(sub.c.status == filters.status))
        )
    if filters.entity is not None:
        query = query.where(col(Article.id).in_(entity_articles(filters.entity)))
    return query


def article_ids(
    session: Session,
    filters: Filters = Filters(),
    *,
    after: int = 0,
    limit: int | None = None,
    offset: int = 0,
) -> list[int]:
    """Ids matching the filters, ascending, from `after` (keyset paging) or `offset`."""
    query = select(col(Article.id)).where(col(Article.id) > after).order_by(col(Article.id))
    published = func.coalesce(col(Article.published), col(Article.guessed_published))
    query = _filtered(query, filters, published)
    if filters.batch_id is not None:
        query = query.where(col(Article.id).in_(batch_members(filters.batch_id)))
    return list(session.execute(_paged(query, limit, offset)).scalars())


def _paged(query: Any, limit: int | None, offset: int) -> Any:
    if offset:
        query = query.offset(offset)
    return query if limit is None else query.limit(limit)


def submissions(
    session: Session,
    filters: Filters,
    *,
    after: int = 0,
    limit: int | None = None,
    offset: int = 0,
) -> list[BatchArticle]:
    """A batch's submissions matching the filters, by submission id (keyset or offset)."""
    assert filters.batch_id is not None
    published = func.coalesce(col(BatchArticle.published), col(Article.guessed_published))
    query = (
        select(BatchArticle)
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .where(col(BatchArticle.batch_id) == filters.batch_id, col(BatchArticle.id) > after)
        .order_by(col(BatchArticle.id))
    )
    query = _filtered(query, filters, published)
    return list(session.execute(_paged(query, limit, offset)).scalars())


def rows(
    session: Session, filters: Filters, *, after: int = 0, limit: int = 50
) -> tuple[list[ArticleRow], int | None]:
    """A page of listing rows and the cursor of the next page (None on the last). Keyset
    paged on submission ids within a batch, else on article ids, so rows added meanwhile
    never shift a page. Reads no article text, mentions or summaries."""
    if filters.batch_id is not None:
        members = submissions(session, filters, after=after, limit=limit + 1)
        more, members = len(members) > limit, members[:limit]
        last = members[-1].id if members else None
    else:
        ids = article_ids(session, filters, after=after, limit=limit + 1)
        more, ids = len(ids) > limit, ids[:limit]
        by_article = {m.article_id: m for m in first_submissions(session, ids)}
        members = [by_article[i] for i in ids if i in by_article]
        last = ids[-1] if ids else None
    ids = sorted({m.article_id for m in members})
    articles = {
        a.id: a
        for a in session.execute(
            select_columns(
                col(Article.id),
                col(Article.title),
                col(Article.given_title),
                col(Article.agency),
                col(Article.language),
                col(Article.guessed_published),
            ).where(col(Article.id).in_(ids))
        )
    }
    statuses = statuses_of(session, ids)
    names: dict[int, list[str]] = defaultdict(list)
    top = select_columns(col(Entity.article_id), col(Entity.name)).where(
        col(Entity.article_id).in_(ids), col(Entity.idx) < 3
    )
    for article_id, name in session.execute(top.order_by(col(Entity.article_id), col(Entity.idx))):
        names[article_id].append(name)
    errors: dict[int, dict[Stage, str]] = defaultdict(dict)
    failed = select_columns(col(StageRow.article_id), col(StageRow.stage), col(StageRow.error))
    for article_id, stage, error in session.execute(
        failed.where(col(StageRow.article_id).in_(ids), col(StageRow.error).is_not(None))
    ):
        errors[article_id][Stage(stage)] = error
    found = []
    for m in members:
        a = articles[m.article_id]
        found.append(
            ArticleRow(
                id=m.article_id,
                batch_id=m.batch_id,
                status=Status(statuses[m.article_id]),
                title=m.title or (a.title if a.title != a.given_title else None),
                agency=a.agency,
                language=a.language,
                published=m.published or a.guessed_published,
                entities=names[m.article_id],
                errors=errors[m.article_id],
            )
        )
    return found, last if more else None


def page(session: Session, filters: Filters, *, limit: int, offset: int) -> list[ArticleRecord]:
    """One page of records: per submission within a batch, else per article."""
    if filters.batch_id is not None:
        return submission_records(
            session, submissions(session, filters, limit=limit, offset=offset)
        )
    return records(session, article_ids(session, filters, limit=limit, offset=offset))


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def entity_articles(name: str) -> Any:
    """Ids of articles with an entity called `name` (canonical name, a word-aligned part of
    it, or any mention's text), case-insensitive."""
    needle = name.strip().casefold()
    escaped = _like_escape(needle)
    by_name = select(col(Entity.article_id)).where(
        or_(
            col(Entity.name_lower) == needle,
            col(Entity.name_lower).like(f"{escaped} %", escape="\\"),
            col(Entity.name_lower).like(f"% {escaped}", escape="\\"),
        )
    )
    by_mention = select(col(Mention.article_id)).where(func.lower(col(Mention.text)) == needle)
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
