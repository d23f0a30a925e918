"""The Python API: the same functions the CLI uses, for producer scripts."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import IO, Any

from rich.console import Console
from sqlmodel import Session

from newsflow import db
from newsflow.config import Settings
from newsflow.contract import STAGES
from newsflow.db import read_scope
from newsflow.delivery import Reopened
from newsflow.errors import NewsflowError, NotFound
from newsflow.models import Batch
from newsflow.record import (
    NO_FILTERS,
    ArticleRecord,
    ArticleRow,
    BatchProgress,
    EntityCount,
    Filters,
    ServiceStatus,
    StoryDetail,
    StoryRow,
    Submitted,
)
from producer import broker, export, monitor, results, submit
from producer.broker import check_broker
from producer.progress import progress_bar
from producer.sources import read_inputs

Progress = Callable[[BatchProgress], None]


class Client:
    """Submit batches, wait for them, read their records.

    >>> client = Client()                      # NEWSFLOW_* settings
    >>> batch = client.submit([{"text": "..."}], name="monday-wires")
    >>> client.wait(batch.id)
    >>> for record in client.results(Filters(batch_id=batch.id)): ...

    A record is a submission: its `id` is the submission's, `content_id` the processed
    text it shares with every copy of it.
    """

    def __init__(self, settings: Settings | None = None) -> None:
        self.settings = settings if settings is not None else Settings()
        self._schema_ready = False

    def upgrade(self) -> None:
        """Create or migrate the tables to this code's schema."""
        db.upgrade(self.settings.database_url)
        self._schema_ready = True

    def submit(
        self, items: Iterable[Any], *, name: str | None = None, resume_unfinished: bool = False
    ) -> Submitted:
        """Submit dicts ({"text"|"html", "id", "title", ...}), paths, or a mix, as one batch.

        A new database gets its tables; one at an older schema raises ConfigurationError
        saying to run `newsflow db upgrade` (or call upgrade()).
        """
        if not self._schema_ready:
            db.ensure_schema(self.settings.database_url)
            self._schema_ready = True
        records = read_inputs(items, limit=self.settings.max_article_bytes)
        return submit.submit(self.settings, records, name=name, resume_unfinished=resume_unfinished)

    def progress(self, batch_id: int) -> BatchProgress:
        """A batch's counts by status (no rates: cheap enough to poll); NotFound if unknown."""
        with read_scope(self.settings.database_url) as session:
            return monitor.batch_progress(session, batch_id, rates=False)[0]

    def batches(self, batch_id: int | None = None) -> list[BatchProgress]:
        """Every batch (or one: NotFound if unknown) with its counts, articles per minute
        and ETA."""
        with read_scope(self.settings.database_url) as session:
            return monitor.batch_progress(session, batch_id)

    def wait(
        self,
        batch_id: int,
        *,
        timeout: float | None = None,
        poll: float = 0.5,
        on_progress: Progress | None = None,
        alive: Callable[[], bool] | None = None,
    ) -> BatchProgress:
        """Block until every article of the batch is done or failed; returns the counts.

        Without `on_progress`, a progress bar is drawn on stderr when it is a terminal.
        `alive` is checked on every poll: when it returns False (the workers died) the wait
        stops with RuntimeError rather than hang.
        """
        if on_progress is None:
            bar, update = progress_bar(Console(stderr=True))
            with bar:
                return self.wait(batch_id, timeout=timeout, poll=poll, on_progress=update,
                                 alive=alive)  # fmt: skip
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            progress = self.progress(batch_id)
            on_progress(progress)
            if progress.finished:
                return progress
            if alive is not None and not alive():
                raise RuntimeError("the workers stopped before the batch finished")
            if deadline is not None and time.monotonic() > deadline:
                raise TimeoutError(self._unfinished(progress, timeout or 0))
            time.sleep(poll)

    def _unfinished(self, progress: BatchProgress, waited: float) -> str:
        """What a wait that timed out says: where the batch stands and what is stuck."""
        with read_scope(self.settings.database_url) as session:
            stuck = monitor.stalled(session, progress.id, older_than=min(waited, 60))
        counts = ", ".join(
            f"{getattr(progress, s)} {s}" for s in ("queued", "processing", "done", "failed")
        )
        lines = [f"batch {progress.id} not finished after {waited:.0f} s ({counts})"]
        if stuck:
            lines.append(
                "no progress on: "
                + ", ".join(
                    f"article {s.record_id} {s.stage} {s.status} since {s.since}" for s in stuck
                )
                + "; are workers running (`newsflow status`)? Their recovery loop sends "
                f"work no message names again within {self._recovery_delay():.0f} s"
            )
        return "; ".join(lines)

    def _recovery_delay(self) -> float:
        """How long lost work waits for the recovery loop at most: quiet for `lost_after`,
        then found by the next pass, which comes every `recovery_interval`."""
        return self.settings.lost_after + self.settings.recovery_interval

    def rows(
        self, filters: Filters = NO_FILTERS, *, after: int = 0, limit: int = 50, offset: int = 0
    ) -> tuple[list[ArticleRow], int | None]:
        """A page of listing rows from the keyset cursor `after` (and `offset` rows on),
        and the next page's cursor (None on the last)."""
        with read_scope(self.settings.database_url) as session:
            _known_batch(session, filters.batch_id)
            return results.rows(session, filters, after=after, limit=limit, offset=offset)

    def export(
        self,
        out: IO[str],
        filters: Filters = NO_FILTERS,
        *,
        fmt: str = "jsonl",
        limit: int | None = None,
    ) -> int:
        """Every record matching the filters (at most `limit`) written to `out` as JSONL
        or CSV (a line or row per submission), streamed in constant memory; returns how
        many."""
        with read_scope(self.settings.database_url) as session:
            _known_batch(session, filters.batch_id)
            return export.write_records(session, out, fmt=fmt, filters=filters, limit=limit)

    def results(self, filters: Filters = NO_FILTERS) -> Iterator[ArticleRecord]:
        """Output records matching the filters, streamed a page at a time."""
        with read_scope(self.settings.database_url) as session:
            _known_batch(session, filters.batch_id)
            yield from results.iter_records(session, filters)

    def search(self, entity: str, *, limit: int = 500) -> list[ArticleRecord]:
        """Records whose content mentions an entity (name or alias, any case)."""
        with read_scope(self.settings.database_url) as session:
            found = results.submissions(session, Filters(entity=entity), limit=limit)
            return [ArticleRecord.model_validate(d) for d in results.documents(session, found)]

    def find(self, external_id: str) -> list[ArticleRecord]:
        """The records a submitter sent under its own id (exact), oldest first: several
        batches may hold the same one."""
        return list(self.results(Filters(external_id=external_id)))

    def record(self, record_id: int) -> ArticleRecord:
        """One record by its id; NotFound if there is none."""
        found = self.records([record_id])
        if not found:
            raise NotFound(f"no article {record_id}; `newsflow results list` lists them")
        return found[0]

    def records(self, record_ids: Sequence[int]) -> list[ArticleRecord]:
        """These records, in the order given (ids that name none left out)."""
        with read_scope(self.settings.database_url) as session:
            return results.records(session, record_ids)

    def entities(
        self, *, batch_id: int | None = None, label: str | None = None, top: int = 20
    ) -> list[EntityCount]:
        """The entities named in the most records (see EntityCount for what counts)."""
        with read_scope(self.settings.database_url) as session:
            _known_batch(session, batch_id)
            return results.top_entities(session, batch_id=batch_id, label=label, top=top)

    def stories(
        self, *, batch_id: int | None = None, min_size: int = 2, limit: int = 50
    ) -> list[StoryRow]:
        """The largest stories: groups of copies and versions of one article."""
        with read_scope(self.settings.database_url) as session:
            _known_batch(session, batch_id)
            return results.stories(session, batch_id=batch_id, min_size=min_size, limit=limit)

    def story(self, story_id: int) -> StoryDetail:
        """One story with its records; NotFound if there is none."""
        with read_scope(self.settings.database_url) as session:
            found = results.story(session, story_id)
        if found is None:
            raise NotFound(f"no story {story_id}; `newsflow results stories` lists them")
        return found

    def status(self, *, batch_id: int | None = None) -> ServiceStatus:
        """Queues, workers, batches and the latest failures."""
        return monitor.status(self.settings, batch_id=batch_id)

    def health(self) -> dict[str, str]:
        """ "ok" or the reason, for the database, the broker and the workers (those that
        said they cannot serve, and why)."""
        checks = {
            "database": lambda: db.check_connection(self.settings.database_url),
            "broker": lambda: check_broker(self.settings),
        }
        found = {}
        for name, check in checks.items():
            try:
                check()
                found[name] = "ok"
            except NewsflowError as exc:
                found[name] = str(exc)
        if found["broker"] == "ok":
            notes = broker.problems(self.settings)
            found["workers"] = "; ".join(f"{p['worker']} {p['reason']}" for p in notes) or "ok"
        return found

    def requeue(
        self,
        *,
        batch_id: int | None = None,
        stage: str | None = None,
        failed: bool = False,
        force: bool = False,
    ) -> Reopened:
        """Send again what has no live message (see submit.requeue); says what it skipped."""
        if batch_id is not None:
            with read_scope(self.settings.database_url) as session:
                _known_batch(session, batch_id)
        return submit.requeue(self.settings, batch_id, stage=stage, failed=failed, force=force)

    def reprocess(
        self,
        *,
        batch_id: int | None = None,
        stages: Sequence[str] = STAGES,
        before: str | None = None,
        model: str | None = None,
    ) -> Reopened:
        """Run stages again on stored articles, by the version or model that made their
        output (see submit.reprocess); the old output stays readable until replaced."""
        if batch_id is not None:
            with read_scope(self.settings.database_url) as session:
                _known_batch(session, batch_id)
        return submit.reprocess(
            self.settings, batch_id=batch_id, stages=stages, before=before, model=model
        )


def _known_batch(session: Session, batch_id: int | None) -> None:
    if batch_id is not None and session.get(Batch, batch_id) is None:
        raise NotFound(f"no batch {batch_id}; `newsflow status` lists the batches")
