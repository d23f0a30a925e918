"""Which stage of which article has a live message: the bookkeeping that makes the database
heal the queue.

Every stage row is written as 'queued' before a message for it exists. Sending is a claim:
an UPDATE that stamps `sent_at` on rows that have none, so however many submits, workers or
recovery loops race, each row is sent by exactly one of them. A row whose message is lost
(no message in the broker names it, and it has shown no sign of life for a while) is
reopened (its stamp cleared) and claimed again. Neither producer nor worker
code is imported here: the caller passes the function that sends.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import ColumnElement, and_, case, exists, false, literal, or_, true, update
from sqlalchemy import select as select_columns
from sqlmodel import Session, col, select

from newsflow import tallies
from newsflow.contract import AFTER_CLEAN, DONE, FAILED, FINISHED, QUEUED, RUNNING, STAGES, Stage
from newsflow.db import among, insert, session_scope
from newsflow.models import Article, BatchArticle, StageRow, utcnow

log = logging.getLogger(__name__)
Send = Callable[[str, list[int]], None]  # (stage, article ids) -> one message
UPDATE_PAGE = 1000  # ids per statement: SQLite takes 32,766 parameters at most
# Rows a resend reopens and claims in one transaction, each page costing a few
# milliseconds beyond its rows. At a million stored, a pass over 396,000 lost rows took
# 19.6 s in pages of 1,000 and 16.3-18.3 s in pages of 10,000.
RESEND_PAGE = 10_000


def chunked(ids: Sequence[int], size: int) -> list[list[int]]:
    return [list(ids[i : i + size]) for i in range(0, len(ids), size)]


def mark_queued(session: Session, *, stage: str, article_ids: Sequence[int]) -> None:
    """Give each existing article a 'queued' row for `stage` unless it has one already."""
    now = utcnow()
    for page in chunked(article_ids, UPDATE_PAGE):
        rows = select_columns(
            col(Article.id), literal(stage), literal(QUEUED), literal(0), literal(0), literal(now)
        ).where(among(session, col(Article.id), page))
        statement = insert(session, StageRow).from_select(
            ["article_id", "stage", "status", "attempts", "runs", "updated_at"], rows
        )
        session.execute(statement.on_conflict_do_nothing(index_elements=["article_id", "stage"]))


def claim_unsent(session: Session, *, stage: str, article_ids: Sequence[int]) -> list[int]:
    """Stamp the never-sent queued rows among `article_ids`; returns the ids this caller
    now has to send (a concurrent caller gets the others)."""
    if not article_ids:
        return []
    statement = (
        update(StageRow)
        .where(
            col(StageRow.stage) == stage,
            among(session, col(StageRow.article_id), article_ids),
            col(StageRow.status) == QUEUED,
            col(StageRow.sent_at).is_(None),
        )
        .values(sent_at=utcnow())
        .returning(col(StageRow.article_id))
    )
    return sorted(session.execute(statement).scalars())


def release(session: Session, *, stage: str, article_ids: Sequence[int]) -> None:
    """Clear the stamp of rows whose message could not be sent, so the next claim sends them."""
    if article_ids:
        session.execute(
            update(StageRow)
            .where(
                col(StageRow.stage) == stage, among(session, col(StageRow.article_id), article_ids)
            )
            .where(col(StageRow.status) == QUEUED)
            .values(sent_at=None)
        )


def dispatch(url: str, stage: str, article_ids: Sequence[int], send: Send, chunk_size: int) -> int:
    """Claim and send the never-sent rows of `stage` among `article_ids`; returns how many.

    Claims go a page at a time (a statement takes only so many parameters).
    """
    sent = 0
    for page in chunked(article_ids, UPDATE_PAGE):
        with session_scope(url) as session:
            claimed = claim_unsent(session, stage=stage, article_ids=page)
        sent += send_claimed(url, stage, claimed, send, chunk_size)
    return sent


def send_claimed(url: str, stage: str, claimed: Sequence[int], send: Send, chunk_size: int) -> int:
    """Send rows this caller has claimed, `chunk_size` ids a message. When sending fails,
    what is not sent yet is released for the next claim (a re-submit, `requeue` or the
    recovery loop) and the error goes up."""
    chunks = chunked(claimed, chunk_size)
    for position, chunk in enumerate(chunks):
        try:
            send(stage, chunk)
        except Exception:
            unsent = [i for c in chunks[position:] for i in c]
            try:
                with session_scope(url) as session:
                    release(session, stage=stage, article_ids=unsent)
            except Exception:  # the database went too: the recovery loop finds them
                log.warning("could not release %s unsent %s rows", len(unsent), stage)
            raise
    return len(claimed)


@dataclass
class Reopened:
    """What a requeue or a recovery pass did per stage: the ids reopened, how many of them
    it sent, and what it skipped with why."""

    ids: dict[str, list[int]] = field(default_factory=dict)
    sent: dict[str, int] = field(default_factory=dict)
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # stage -> reason -> n
    moving: dict[str, set[int]] = field(default_factory=dict)  # found processing or failed


SKIP_LIVE = "a message for it is in the broker (waiting, or held by a worker)"
SKIP_SENT = "sent moments ago"
SKIP_RUNNING = "a worker started it moments ago"
SKIP_FAILED = "failed (add --failed to retry)"


def ensure_rows(session: Session, members: Any) -> None:
    """Rows for stages an article needs but has none for (data from before stage rows were
    written at submit): clean for every article, the later stages once clean is done."""
    missing_clean = select_columns(col(Article.id)).where(
        col(Article.id).in_(members),
        ~exists().where(
            col(StageRow.article_id) == col(Article.id), col(StageRow.stage) == Stage.CLEAN
        ),
    )
    mark_queued(
        session, stage=Stage.CLEAN, article_ids=list(session.execute(missing_clean).scalars())
    )
    cleaned = select_columns(col(StageRow.article_id)).where(
        col(StageRow.article_id).in_(members),
        col(StageRow.stage) == Stage.CLEAN,
        col(StageRow.status) == DONE,
    )
    ids = list(session.execute(cleaned).scalars())
    for stage in AFTER_CLEAN:
        mark_queued(session, stage=stage, article_ids=ids)


def _quiet(
    cutoff: datetime, *, failed: bool, force: bool, unsent_now: bool
) -> dict[str, ColumnElement[bool]]:
    """Per status, what makes a stage row in it quiet: no sign of life since `cutoff`
    (see `reopen`)."""
    never_sent: ColumnElement[bool] = col(StageRow.sent_at).is_(None)
    if not unsent_now:
        never_sent = and_(never_sent, col(StageRow.updated_at) < cutoff)
    quiet: dict[str, ColumnElement[bool]] = {
        QUEUED: or_(never_sent, col(StageRow.sent_at) < cutoff),
        RUNNING: col(StageRow.updated_at) < cutoff,
    }
    if force:
        quiet = {QUEUED: true(), RUNNING: true()}
    if failed:
        quiet[FAILED] = true()
    return quiet


def _quiet_in(quiet: Mapping[str, ColumnElement[bool]], statuses: Sequence[str]) -> Any:
    """A row is quiet (`quiet`, per status) in one of `statuses`, as one CASE on its status:
    the planner takes no index condition from a CASE, so a statement that names its rows by
    primary key finds them by it. With the status in its WHERE, and statistics from before
    much was lost, PostgreSQL read every queued row of the status index for each page (a
    pass over a lot lost grew with its square)."""
    arms = [(col(StageRow.status) == s, quiet[s]) for s in statuses if s in quiet]
    return case(*arms, else_=false())  # queued and processing rows always have an arm


def find_lost(
    session: Session,
    quiet: Mapping[str, ColumnElement[bool]],
    *,
    live: Mapping[str, set[int]] | None,
    members: Any = None,
    stage: str | None = None,
    force: bool = False,
) -> Reopened:
    """The rows whose message is lost (`ids`, per stage, with those found processing or
    failed in `moving`) and what was skipped, reading the unfinished rows only (through
    the status index): proportional to the work not done, not to what is stored."""
    scope: ColumnElement[bool] = col(StageRow.stage).in_([stage] if stage else STAGES)
    if members is not None:
        scope = and_(scope, col(StageRow.article_id).in_(members))
    result = Reopened()

    def skip(name: str, reason: str) -> None:
        counts = result.skipped.setdefault(name, {})
        counts[reason] = counts.get(reason, 0) + 1

    rows = session.execute(
        select_columns(
            col(StageRow.stage),
            col(StageRow.article_id),
            col(StageRow.status),
            _quiet_in(quiet, [QUEUED, RUNNING, FAILED]),
        )
        .where(scope, col(StageRow.status).in_((QUEUED, RUNNING, FAILED)))  # the index's terms
        .order_by(col(StageRow.stage), col(StageRow.article_id))
    )
    for name, article_id, status, is_quiet in rows:
        if not is_quiet:
            skip(name, {RUNNING: SKIP_RUNNING, FAILED: SKIP_FAILED}.get(status, SKIP_SENT))
        elif not force and status != FAILED and live is not None and article_id in live[name]:
            skip(name, SKIP_LIVE)
        else:
            result.ids.setdefault(name, []).append(article_id)
            if status != QUEUED:
                result.moving.setdefault(name, set()).add(article_id)
    return result


class Page(NamedTuple):
    """Rows of one stage to reopen if still quiet in the status they were found in
    (`quiet`), and whether that moves their contents' status (`settle`)."""

    stage: str
    ids: list[int]
    quiet: Any
    settle: bool


def pages(found: Reopened, quiet: Mapping[str, ColumnElement[bool]], size: int) -> list[Page]:
    """What `find_lost` found, in pages of `size`: per stage the rows found queued (which
    stay queued: their contents' status stays too), then those found processing or
    failed (whose contents are settled after)."""
    queued, moving = _quiet_in(quiet, [QUEUED]), _quiet_in(quiet, [RUNNING, FAILED])
    result = []
    for name, ids in found.ids.items():
        changing = found.moving.get(name, set())
        for group, when, settle in (
            ([i for i in ids if i not in changing], queued, False),
            (sorted(changing), moving, True),
        ):
            result += [Page(name, page, when, settle) for page in chunked(group, size)]
    return result


def reopen_page(session: Session, page: Page, *, claim: bool = False) -> list[int]:
    """Reopen the rows of `page` that are still quiet (a worker may just have begun one):
    queued, their stamp cleared for the next claim, or with `claim` stamped at once for
    the caller to send (`send_claimed`); returns those reopened.

    One UPDATE finds the rows by primary key and locks each; PostgreSQL checks a row's
    quietness again on its newest version, if a worker changed it meanwhile. (A SELECT ...
    FOR UPDATE before it, to read their statuses, took two fifths of a page's time.)"""
    now = utcnow()
    reopened = session.execute(
        update(StageRow)
        .where(
            col(StageRow.stage) == page.stage,
            among(session, col(StageRow.article_id), page.ids),
            page.quiet,
        )
        .values(status=QUEUED, sent_at=now if claim else None, claim=None, updated_at=now)
        .returning(col(StageRow.article_id))
    )
    ids = sorted(reopened.scalars())
    if page.settle:
        tallies.settle(session, ids)
    return ids


def reopen(
    session: Session,
    *,
    cutoff: datetime,
    live: Mapping[str, set[int]] | None = None,
    members: Any = None,
    stage: str | None = None,
    failed: bool = False,
    force: bool = False,
    unsent_now: bool = True,
) -> Reopened:
    """Clear the stamp of every row whose message is lost, so a claim sends it again, in
    this one transaction (`resend` does it a page at a time).

    Lost means no message in the broker names it (`live`, per stage, as read from the
    broker; None when unknown) and no sign of life since `cutoff`: queued and never sent
    (at once with `unsent_now`, since a submit may be about to send it otherwise), or sent
    before `cutoff`; processing and untouched since `cutoff`. Failed rows count with
    `failed`. `force` takes every row that is not done, live or not.
    """
    quiet = _quiet(cutoff, failed=failed, force=force, unsent_now=unsent_now)
    found = find_lost(session, quiet, live=live, members=members, stage=stage, force=force)
    reopened: dict[str, list[int]] = {name: [] for name in found.ids}
    for page in pages(found, quiet, UPDATE_PAGE):
        reopened[page.stage] += reopen_page(session, page)
    found.ids = {name: sorted(ids) for name, ids in reopened.items()}
    return found


def batch_members(batch_id: int) -> Any:
    """The ids of a batch's articles, as a subquery: the one query of batch membership."""
    return select(col(BatchArticle.article_id)).where(col(BatchArticle.batch_id) == batch_id)


def resend(
    url: str,
    send: Send,
    *,
    chunk_size: int,
    older_than: float,
    batch_id: int | None = None,
    stage: str | None = None,
    failed: bool = False,
    force: bool = False,
    unsent_now: bool = True,
    live: Mapping[str, set[int]] | None = None,
) -> Reopened:
    """Reopen what is lost (see `reopen`) and send it, a page at a time: each page is
    reopened in a short transaction of its own, the next one while this one is sent (the
    database and the broker work at once), so workers take the first pages (and their own
    chunks' rows are never held) while later ones are reopened, and a pass that finds
    much holds only the ids in memory."""
    cutoff = utcnow() - timedelta(seconds=older_than)
    members = batch_members(batch_id) if batch_id is not None else None
    quiet = _quiet(cutoff, failed=failed, force=force, unsent_now=unsent_now)
    with session_scope(url) as session:
        if batch_id is not None:
            ensure_rows(session, members)
        found = find_lost(session, quiet, live=live, members=members, stage=stage, force=force)
    todo = pages(found, quiet, RESEND_PAGE)
    found.ids = {name: [] for name in found.ids}

    def claim(page: Page) -> list[int]:
        with session_scope(url) as session:
            return reopen_page(session, page, claim=True)

    with ThreadPoolExecutor(max_workers=1) as pool:
        ahead = pool.submit(claim, todo[0]) if todo else None
        for position, page in enumerate(todo):
            assert ahead is not None
            claimed = ahead.result()
            following = todo[position + 1] if position + 1 < len(todo) else None
            ahead = pool.submit(claim, following) if following else None
            found.ids[page.stage] += claimed
            try:
                sent = send_claimed(url, page.stage, claimed, send, chunk_size)
            except Exception:
                if following and ahead is not None:  # claimed meanwhile, now not to be sent
                    _release_quietly(url, following.stage, ahead)
                raise
            found.sent[page.stage] = found.sent.get(page.stage, 0) + sent
    for ids in found.ids.values():
        ids.sort()
    return found


def _release_quietly(url: str, stage: str, claiming: Future[list[int]]) -> None:
    """Release what a claim still running will have claimed; the recovery loop finds it
    if the database is away too."""
    try:
        claimed = claiming.result()
        with session_scope(url) as session:
            release(session, stage=stage, article_ids=claimed)
    except Exception:
        log.warning("could not release the %s rows claimed for sending", stage)


def reopen_later_stages(session: Session, article_ids: Sequence[int]) -> None:
    """Queue again the stages after clean of articles just cleaned anew (a reprocess of
    clean): what they made came from the old clean text. On a first clean there are no
    such rows, and a duplicate clean message never gets this far."""
    for page in chunked(article_ids, UPDATE_PAGE):
        session.execute(
            update(StageRow)
            .where(
                among(session, col(StageRow.article_id), page),
                col(StageRow.stage).in_(AFTER_CLEAN),
                col(StageRow.status).in_((*FINISHED, FAILED)),
            )
            .values(status=QUEUED, sent_at=None, claim=None, attempts=0, updated_at=utcnow())
        )


Chosen = Callable[[str | None, str | None], bool]  # (version, model) of a stage's output
_cleaned = select(col(StageRow.article_id)).where(
    col(StageRow.stage) == Stage.CLEAN, col(StageRow.status) == DONE
)


def reprocess(
    url: str,
    send: Send,
    *,
    chunk_size: int,
    stages: Sequence[str],
    chosen: Chosen,
    batch_id: int | None = None,
) -> Reopened:
    """Run `stages` again on the stored articles whose output of it is `chosen` (by the
    version and model that made it), as new work (a clean run again runs the later stages
    again after it): each finished row is queued again and
    sent through the same claims, so the recovery loop and requeue cover it too. A page
    of rows at a time, each committed and sent before the next: workers start on the
    first page while later ones are read. The old output stays readable until the stage
    commits the new one, which replaces it in one transaction."""
    result = Reopened()
    members = batch_members(batch_id) if batch_id is not None else None
    for stage in [s for s in STAGES if s in stages]:  # clean first
        after = 0
        while True:
            query = (
                select_columns(col(StageRow.article_id), col(StageRow.version), col(StageRow.model))
                .where(
                    col(StageRow.stage) == stage,
                    col(StageRow.status).in_(FINISHED),
                    col(StageRow.article_id) > after,
                )
                .order_by(col(StageRow.article_id))
                .limit(UPDATE_PAGE)
            )
            if members is not None:
                query = query.where(col(StageRow.article_id).in_(members))
            if stage != Stage.CLEAN:  # one whose clean runs again gets its later stages then
                query = query.where(col(StageRow.article_id).in_(_cleaned))
            with session_scope(url) as session:
                rows = session.execute(query).all()
                if not rows:
                    break
                after = rows[-1].article_id
                ids = [r.article_id for r in rows if chosen(r.version, r.model)]
                if not ids:
                    continue
                reopened = session.execute(
                    update(StageRow)
                    .where(
                        col(StageRow.stage) == stage,
                        among(session, col(StageRow.article_id), ids),
                        col(StageRow.status).in_(FINISHED),
                    )
                    .values(
                        status=QUEUED, sent_at=None, claim=None, attempts=0, updated_at=utcnow()
                    )
                    .returning(col(StageRow.article_id))
                )
                ids = sorted(reopened.scalars())
                tallies.settle(session, ids)
            result.ids.setdefault(stage, []).extend(ids)
            sent = dispatch(url, stage, ids, send, chunk_size)
            result.sent[stage] = result.sent.get(stage, 0) + sent
    return result
