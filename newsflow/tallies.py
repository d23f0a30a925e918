"""What the reads need kept up to date as the data changes, so that no read re-aggregates
every stored row: each submission's status (models.BatchArticle.status), counts per batch
(models.Count), entities' standing per batch (models.EntityTally) and the names entities
answer to (models.EntityKey).

Every transaction that changes stage rows calls `settle` after them; the extract stage
counts, in one write, what its old entities take away and its new ones add
(`standing`, `count_entities`); a submit calls `submissions_added`; the clean stage
`languages_changed`. Each first locks the contents it touches (in id
order, FOR NO KEY UPDATE on PostgreSQL, which a submission's foreign key check does not
wait for), then reads what to count, then writes counts in key order: two transactions
that count the same content run one after the other, and no two wait for each other in
a circle. `recount` computes everything from scratch: the migration that introduced the
counts fills them with it, and the tests compare it with what was kept.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from sqlalchemy import case, delete, func, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col

from newsflow.contract import DONE, FAILED, FINISHED, QUEUED, REQUIRED, RUNNING, STAGES
from newsflow.db import among, insert
from newsflow.models import (
    Article,
    BatchArticle,
    Count,
    Entity,
    EntityKey,
    EntityTally,
    Mention,
    StageRow,
    table_of,
    utcnow,
)

ALL = 0  # the batch id of counts over every batch
STATUS, LANGUAGE = "status", "language"
UNKNOWN_LANGUAGE = "?"
PAGE = 1000  # ids per statement: SQLite takes 32,766 parameters at most


def pages(ids: Iterable[int]) -> Iterable[list[int]]:
    ordered = sorted(set(ids))
    for start in range(0, len(ordered), PAGE):
        yield ordered[start : start + PAGE]


def _stage_counts() -> tuple[Any, Any, Any, Any]:
    """Per article: its failed stage rows, its finished (done or skipped) rows of the stages
    it needs, its started (finished or processing) rows and its unfinished ones."""

    def count(*statuses: str, stages: tuple[str, ...] = STAGES) -> Any:
        chosen = col(StageRow.status).in_(statuses) & col(StageRow.stage).in_(stages)
        return func.sum(case((chosen, 1), else_=0))

    return (
        count(FAILED),
        count(*FINISHED, stages=REQUIRED),
        count(*FINISHED, RUNNING),
        count(QUEUED, RUNNING),
    )


def status_rule(failed: Any, done: Any, started: Any, unfinished: Any) -> Any:
    """The article status from its stage counts, the one place it is decided: failed if a
    stage failed, done when every stage it needs is finished and none of its other rows is
    waiting (an article with no row of a stage added later stays done), queued while none
    has started."""
    return case(
        (failed > 0, FAILED),
        ((done >= len(REQUIRED)) & (unfinished == 0), DONE),
        (started > 0, RUNNING),
        else_=QUEUED,
    )


_STATUS = status_rule(*_stage_counts())


def statuses_of(session: Session, ids: Sequence[int]) -> dict[int, str]:
    """The status of each of these contents (one without stage rows yet is queued), read
    from their own stage rows only."""
    query = (
        select_columns(col(StageRow.article_id), _STATUS)
        .where(among(session, col(StageRow.article_id), ids))
        .group_by(col(StageRow.article_id))
    )
    found: dict[int, str] = dict(session.execute(query).tuples().all())
    return {i: found.get(i, QUEUED) for i in ids}


def lock_contents(session: Session, ids: Sequence[int]) -> None:
    """Hold these contents' rows until the transaction ends (a no-op on SQLite, whose
    write lock already serialises writers)."""
    session.execute(
        select_columns(col(Article.id))
        .where(among(session, col(Article.id), ids))
        .order_by(col(Article.id))
        .with_for_update(key_share=True)
    )


def add(session: Session, changes: Mapping[tuple[int, str, str], int]) -> None:
    """Add to the counts: (batch id, kind, key) -> how many more (or fewer)."""
    rows = [
        {"batch_id": b, "kind": kind, "key": key, "n": n}
        for (b, kind, key), n in sorted(changes.items())
        if n
    ]
    if not rows:
        return
    statement = insert(session, Count)
    session.execute(
        statement.on_conflict_do_update(
            index_elements=["batch_id", "kind", "key"],
            set_={"n": table_of(Count).c.n + statement.excluded.n},
        ),
        rows,
    )


def _among(session: Session, content_ids: Iterable[int]) -> Any:
    """Submissions of these contents. The range the ids imply is for PostgreSQL's planner:
    given a page of 1,000 ids alone it scanned every submission (39 ms at 100,000 stored,
    ten times that at a million) instead of reading the index."""
    ids = list(content_ids)
    column = col(BatchArticle.article_id)
    return among(session, column, ids) & column.between(min(ids, default=0), max(ids, default=0))


def _submissions(session: Session, ids: Sequence[int]) -> list[Any]:
    """(article_id, batch_id, status, n): these contents' submissions, grouped."""
    if not ids:
        return []
    query = (
        select_columns(
            col(BatchArticle.article_id),
            col(BatchArticle.batch_id),
            col(BatchArticle.status),
            func.count().label("n"),
        )
        .where(_among(session, ids))
        .group_by(
            col(BatchArticle.article_id), col(BatchArticle.batch_id), col(BatchArticle.status)
        )
    )
    return list(session.execute(query))


def settle(session: Session, content_ids: Iterable[int]) -> None:
    """Bring the stored status of these contents' submissions, and the status counts, to
    what their stage rows now say. Call it after changing stage rows, in that transaction."""
    now = utcnow()
    for page in pages(content_ids):
        lock_contents(session, page)
        status = statuses_of(session, page)
        changes: Counter[tuple[int, str, str]] = Counter()
        moved: dict[str, set[int]] = defaultdict(set)
        for row in _submissions(session, page):
            new = status[row.article_id]
            if row.status == new:
                continue
            moved[new].add(row.article_id)
            for batch_id in (row.batch_id, ALL):
                changes[(batch_id, STATUS, row.status)] -= row.n
                changes[(batch_id, STATUS, new)] += row.n
        for new, ids in sorted(moved.items()):
            session.execute(
                update(BatchArticle)
                .where(_among(session, ids), col(BatchArticle.status) != new)
                .values(status=new, finished_at=now if new in (DONE, FAILED) else None)
            )
        add(session, changes)


def submissions_added(session: Session, batch_id: int, content_ids: Sequence[int]) -> None:
    """Count the submissions just stored in `batch_id` (one content id per submission, in
    any order): their status (that of their content, which may be done already), the
    contents new to the batch by language, and the entities of contents extracted before."""
    slab = Counter(content_ids)
    ids = sorted(slab)
    lock_contents(session, ids)
    status = statuses_of(session, ids)
    for new in {status[i] for i in ids} - {QUEUED}:
        session.execute(
            update(BatchArticle)
            .where(
                col(BatchArticle.batch_id) == batch_id,
                _among(session, [i for i in ids if status[i] == new]),
            )
            .values(status=new)
        )
    in_batch = dict(
        session.execute(
            select_columns(col(BatchArticle.article_id), func.count())
            .where(col(BatchArticle.batch_id) == batch_id, _among(session, ids))
            .group_by(col(BatchArticle.article_id))
        )
        .tuples()
        .all()
    )
    first = {i for i in ids if in_batch.get(i, 0) == slab[i]}  # new to this batch
    everywhere = dict(
        session.execute(
            select_columns(col(BatchArticle.article_id), func.count())
            .where(_among(session, ids))
            .group_by(col(BatchArticle.article_id))
        )
        .tuples()
        .all()
    )
    languages = dict(
        session.execute(
            select_columns(col(Article.id), col(Article.language)).where(col(Article.id).in_(ids))
        )
        .tuples()
        .all()
    )
    changes: Counter[tuple[int, str, str]] = Counter()
    for i in ids:
        for b in (batch_id, ALL):
            changes[(b, STATUS, status[i])] += slab[i]
        language = languages.get(i) or UNKNOWN_LANGUAGE
        if i in first:
            changes[(batch_id, LANGUAGE, language)] += 1
        if everywhere[i] == slab[i]:  # a new content
            changes[(ALL, LANGUAGE, language)] += 1
    tallies: Standing = {}
    for article_id, (name, label), (mentions, salience) in _entities(session, ids):
        k, fresh = slab[article_id], int(article_id in first)
        _tally(tallies, (batch_id, name, label), k, fresh, mentions * fresh, salience * fresh)
        _tally(tallies, (ALL, name, label), k, 0, 0, 0.0)
    _add_entities(session, tallies)
    add(session, changes)


def _tally(
    tallies: dict[tuple[int, str, str], list[float]],
    key: tuple[int, str, str],
    *figures: float,
) -> None:
    into = tallies.setdefault(key, [0, 0, 0, 0.0])
    for position, figure in enumerate(figures):
        into[position] += figure


def _entities(
    session: Session, ids: Sequence[int]
) -> Iterable[tuple[int, tuple[str, str], tuple[int, float]]]:
    """(content, (name, label), (mentions, salience)) for each entity of these contents, one
    per name and label (two entities of one article under one name count once)."""
    query = (
        select_columns(
            col(Entity.article_id),
            col(Entity.name),
            col(Entity.label),
            func.sum(col(Entity.count)),
            func.max(col(Entity.salience)),
        )
        .where(col(Entity.article_id).in_(ids))
        .group_by(col(Entity.article_id), col(Entity.name), col(Entity.label))
    )
    for article_id, name, label, mentions, salience in session.execute(query):
        yield article_id, (name, label), (int(mentions), float(salience))


def _add_entities(session: Session, tallies: Mapping[tuple[int, str, str], list[float]]) -> None:
    rows = [
        {
            "batch_id": b,
            "name": name,
            "label": label,
            "articles": int(figures[0]),
            "contents": int(figures[1]),
            "mentions": int(figures[2]),
            "salience": figures[3],
        }
        for (b, name, label), figures in sorted(tallies.items())
        if any(figures)
    ]
    if not rows:
        return
    table = table_of(EntityTally)
    statement = insert(session, table)
    session.execute(  # one statement, its rows sent as a batch: compiled once, not per call
        statement.on_conflict_do_update(
            index_elements=["batch_id", "name", "label"],
            set_={
                key: table.c[key] + statement.excluded[key]
                for key in ("articles", "contents", "mentions", "salience")
            },
        ),
        rows,
    )


Standing = dict[tuple[int, str, str], list[float]]  # (batch, name, label) -> figures


def standing(session: Session, content_ids: Sequence[int], sign: int = 1) -> Standing:
    """What the stored entities of these contents add (sign 1) or take away (sign -1)
    from the entities' standing, in every batch that holds a submission of them."""
    ids = sorted(set(content_ids))
    lock_contents(session, ids)
    copies: dict[int, dict[int, int]] = defaultdict(lambda: defaultdict(int))
    for row in _submissions(session, ids):
        copies[row.article_id][row.batch_id] += row.n
    tallies: Standing = {}
    for article_id, (name, label), (mentions, salience) in _entities(session, ids):
        per_batch = copies.get(article_id, {})
        for b, k in (*per_batch.items(), (ALL, sum(per_batch.values()))):
            _tally(tallies, (b, name, label), sign * k, sign, sign * mentions, sign * salience)
    return tallies


def count_entities(session: Session, *parts: Standing) -> None:
    """Add these changes to the entities' standing, as one write in key order: the extract
    stage passes what its old entities took away and what its new ones add, so two
    stages never hold some of each other's rows."""
    merged: Standing = {}
    for part in parts:
        for key, figures in part.items():
            _tally(merged, key, *figures)
    _add_entities(session, merged)


def languages_changed(
    session: Session, changed: Mapping[int, tuple[str | None, str | None]]
) -> None:
    """Move contents between language counts: content id -> (language before, after)."""
    moved = {i: pair for i, pair in changed.items() if pair[0] != pair[1]}
    if not moved:
        return
    batches: dict[int, set[int]] = defaultdict(set)
    for row in _submissions(session, sorted(moved)):
        batches[row.article_id].add(row.batch_id)
    changes: Counter[tuple[int, str, str]] = Counter()
    for i, (before, after) in moved.items():
        for b in (*batches[i], ALL):
            changes[(b, LANGUAGE, before or UNKNOWN_LANGUAGE)] -= 1
            changes[(b, LANGUAGE, after or UNKNOWN_LANGUAGE)] += 1
    add(session, changes)


def entity_keys(name: str, mentions: Iterable[str]) -> set[str]:
    """The names an entity answers to in the entity filter, casefolded: the canonical name,
    each run of its words from either end, and every mention's text."""
    words = name.casefold().split()
    keys = {" ".join(words[:n]) for n in range(1, len(words) + 1)}
    keys |= {" ".join(words[n:]) for n in range(len(words))}
    keys |= {" ".join(m.casefold().split()) for m in mentions}
    return {k for k in keys if k}


def write_keys(session: Session, keys: Mapping[int, set[str]]) -> None:
    """Replace the entity keys of these contents."""
    session.execute(delete(EntityKey).where(col(EntityKey.article_id).in_(list(keys))))
    rows = [{"key": k, "article_id": i} for i, found in keys.items() for k in sorted(found)]
    for start in range(0, len(rows), PAGE):
        session.execute(insert(session, EntityKey), rows[start : start + PAGE])


def recount(session: Session, *, keys: bool = True) -> None:
    """Compute every kept figure from the stored data, replacing what was kept: for a
    database that had none (the migration that added them), or to check what was kept.
    `keys` also rebuilds the entity keys (the longest part)."""
    for table in (Count, EntityTally):
        session.execute(delete(table))
    ids = list(session.execute(select_columns(col(Article.id)).order_by(col(Article.id))).scalars())
    session.execute(update(BatchArticle).values(status=QUEUED, finished_at=None))
    for page in pages(ids):
        statuses = statuses_of(session, page)
        last_change = (
            select_columns(func.max(col(StageRow.updated_at)))
            .where(col(StageRow.article_id) == col(BatchArticle.article_id))
            .scalar_subquery()
        )
        for status in {statuses[i] for i in page} - {QUEUED}:
            values: dict[str, Any] = {"status": status}
            if status in (DONE, FAILED):
                values["finished_at"] = last_change
            chosen = [i for i in page if statuses[i] == status]
            session.execute(update(BatchArticle).where(_among(session, chosen)).values(values))
        count_entities(session, standing(session, page))
        if keys:
            write_keys(session, _stored_keys(session, page))
    changes: Counter[tuple[int, str, str]] = Counter()
    by_status = select_columns(
        col(BatchArticle.batch_id), col(BatchArticle.status), func.count()
    ).group_by(col(BatchArticle.batch_id), col(BatchArticle.status))
    for batch_id, status, n in session.execute(by_status):
        changes[(batch_id, STATUS, status)] += n
        changes[(ALL, STATUS, status)] += n
    contents = (
        select_columns(
            col(BatchArticle.batch_id),
            col(Article.language),
            func.count(func.distinct(col(Article.id))),
        )
        .join(Article, col(Article.id) == col(BatchArticle.article_id))
        .group_by(col(BatchArticle.batch_id), col(Article.language))
    )
    for batch_id, language, n in session.execute(contents):
        changes[(batch_id, LANGUAGE, language or UNKNOWN_LANGUAGE)] += n
    overall = select_columns(col(Article.language), func.count()).group_by(col(Article.language))
    for language, n in session.execute(overall):
        changes[(ALL, LANGUAGE, language or UNKNOWN_LANGUAGE)] += n
    add(session, changes)


def _stored_keys(session: Session, ids: Sequence[int]) -> dict[int, set[str]]:
    mentions: dict[tuple[int, int], list[str]] = defaultdict(list)
    for article_id, entity_idx, text in session.execute(
        select_columns(col(Mention.article_id), col(Mention.entity_idx), col(Mention.text)).where(
            col(Mention.article_id).in_(ids)
        )
    ):
        mentions[(article_id, entity_idx)].append(text)
    keys: dict[int, set[str]] = {i: set() for i in ids}
    for article_id, idx, name in session.execute(
        select_columns(col(Entity.article_id), col(Entity.idx), col(Entity.name)).where(
            col(Entity.article_id).in_(ids)
        )
    ):
        keys[article_id] |= entity_keys(name, mentions[(article_id, idx)])
    return keys


def kept(session: Session) -> dict[str, Any]:
    """Every kept figure, for comparing with a recount (tests)."""
    counts = {
        (r.batch_id, r.kind, r.key): r.n
        for r in session.execute(select_columns(table_of(Count)))
        if r.n
    }
    standing = {
        (r.batch_id, r.name, r.label): (r.articles, r.contents, r.mentions, round(r.salience, 6))
        for r in session.execute(select_columns(table_of(EntityTally)))
        if r.articles
    }
    statuses = sorted(
        session.execute(select_columns(col(BatchArticle.id), col(BatchArticle.status))).tuples()
    )
    keys = sorted(
        session.execute(select_columns(col(EntityKey.key), col(EntityKey.article_id))).tuples()
    )
    return {"counts": counts, "entities": standing, "statuses": statuses, "keys": keys}
