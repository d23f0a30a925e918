"""Reading results: output records (DESIGN.md's contract), listings, search, export."""

from __future__ import annotations

import csv
import json
from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import IO, Any

from sqlalchemy import func, or_
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from newsflow.contract import QUEUED, STAGES, Stage
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
from producer.monitor import article_status
from producer.terminal import cell

PAGE = 200


def _grouped(session: Session, table: Any, ids: Sequence[int], *order: Any) -> dict[int, list[Any]]:
    groups: dict[int, list[Any]] = defaultdict(list)
    query = select(table).where(table.article_id.in_(ids)).order_by(table.article_id, *order)
    for row in session.execute(query).scalars():
        groups[row.article_id].append(row)
    return groups


def records(session: Session, ids: Sequence[int]) -> list[dict[str, Any]]:
    """Output records of these articles, in the order of `ids`, each as its first
    submission described it."""
    if not ids:
        return []
    first = (
        select(func.min(col(BatchArticle.id)))
        .where(col(BatchArticle.article_id).in_(ids))
        .group_by(col(BatchArticle.article_id))
    )
    members = session.execute(select(BatchArticle).where(col(BatchArticle.id).in_(first)))
    by_article = {m.article_id: m for m in members.scalars()}
    found = {r["id"]: r for r in submission_records(session, list(by_article.values()))}
    return [found[i] for i in ids if i in found]


def submission_records(session: Session, members: Sequence[BatchArticle]) -> list[dict[str, Any]]:
    """One output record per submission, in the order given: the shared processing
    results with what that submitter said (id, url, title, published, source)."""
    ids = sorted({m.article_id for m in members})
    if not ids:
        return []
    articles = {
        a.id: a for a in session.execute(select(Article).where(col(Article.id).in_(ids))).scalars()
    }
    statuses = _statuses(session, ids)
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


def _statuses(session: Session, ids: Sequence[int]) -> dict[int, str]:
    sub = article_status()
    return dict(
        session.execute(
            select(sub.c.article_id, sub.c.status).where(sub.c.article_id.in_(ids))
        ).all()
    )


def _record(
    article: Article,
    status: str,
    member: BatchArticle,
    stages: list[StageRow],
    entities: list[Entity],
    mentions: dict[int, list[Mention]],
    phrases: list[Keyphrase],
    sentences: list[SummarySentence],
) -> dict[str, Any]:
    extract = next((s for s in stages if s.stage == Stage.EXTRACT), None)
    dateline = (
        {"place": article.dateline_place, "date": article.dateline_date}
        if article.dateline_place or article.dateline_date
        else None
    )
    # A title the clean stage found in the text is everyone's; one it took from the first
    # submitter is that submitter's own.
    found_title = article.title if article.title != article.given_title else None
    published, published_from = (
        (member.published, "submitter")
        if member.published
        else (article.guessed_published, "article" if article.guessed_published else None)
    )
    return {
        "id": article.id,
        "external_id": member.external_id,
        "batch_id": member.batch_id,
        "status": status,
        "title": member.title or found_title,
        "byline": article.byline,
        "dateline": dateline,
        "agency": article.agency,
        "language": article.language,
        "published": published,
        "published_from": published_from,
        "url": member.url,
        "source": member.origin,
        "submitted_from": member.source,
        "text": article.text,
        "captions": article.captions or [],
        "word_count": article.word_count,
        "removed": article.removed or [],
        "entities": [
            {
                "name": e.name,
                "label": e.label,
                "count": e.count,
                "salience": e.salience,
                "aliases": e.aliases or [],
                "mentions": [
                    {"start": m.start, "end": m.end, "text": m.text} for m in mentions[e.idx]
                ],
            }
            for e in entities
        ],
        "keyphrases": [{"text": k.text, "score": k.score} for k in phrases],
        "summary": {
            "text": " ".join(s.text for s in sentences),
            "sentences": [
                {"index": s.sentence_index, "start": s.start, "end": s.end, "text": s.text}
                for s in sentences
            ],
        },
        "stages": {
            s.stage: {"status": s.status, "error": s.error, "seconds": s.seconds}
            for s in sorted(stages, key=lambda s: STAGES.index(s.stage) if s.stage in STAGES else 9)
        },
        "pipeline": {
            "version": extract.version if extract else None,
            "model": extract.model if extract else None,
        },
    }


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


def page(session: Session, filters: Filters, *, limit: int, offset: int) -> list[dict[str, Any]]:
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


def iter_records(session: Session, filters: Filters = Filters()) -> Iterator[dict[str, Any]]:
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
) -> list[dict[str, Any]]:
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
        {
            "name": r.name,
            "label": r.label,
            "articles": r.articles,
            "mentions": int(r.mentions),
            "salience": round(float(r.salience), 4),
        }
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


def csv_row(record: dict[str, Any]) -> dict[str, str]:
    """One flat row per article: top entities and keyphrases joined with '; ', and no cell
    that a spreadsheet would run as a formula."""
    dateline = record["dateline"] or {}
    row = {
        **{
            k: record[k]
            for k in CSV_FIELDS
            if k in record and not isinstance(record[k], (dict, list))
        },
        "dateline": ", ".join(v for v in (dateline.get("place"), dateline.get("date")) if v),
        "entities": "; ".join(f"{e['name']} ({e['label']})" for e in record["entities"][:10]),
        "keyphrases": "; ".join(k["text"] for k in record["keyphrases"]),
        "summary": record["summary"]["text"],
        "errors": "; ".join(
            f"{name}: {s['error']}" for name, s in record["stages"].items() if s["error"]
        ),
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
            out.write(json.dumps(record, ensure_ascii=False) + "\n")
        count += 1
    return count
