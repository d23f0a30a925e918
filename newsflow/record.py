"""The output record, typed: what export, every `--json`, the Python API and the HTTP API
give for a submission (README "Output record"), the other documents the door returns, and
the filters it takes.

A record is a submission: what one submitter sent (its id, url, title, date, source) with
the processing output of its content, which is shared by every submission of the same
text (the content hash) and computed once.
"""

from __future__ import annotations

from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from newsflow.contract import Stage, Status


class _Out(BaseModel):
    model_config = ConfigDict(frozen=True)


class Dateline(_Out):
    place: str | None
    date: str | None


class Removal(_Out):
    text: str
    reason: str


class Mention(_Out):
    start: int  # offsets index the record's `text`
    end: int
    text: str


class Entity(_Out):
    name: str
    label: str
    count: int
    salience: float
    aliases: list[str]
    mentions: list[Mention]


class Keyphrase(_Out):
    text: str
    score: float


class SummarySentence(_Out):
    index: int  # the sentence's position in the text
    start: int
    end: int
    text: str


class Summary(_Out):
    text: str
    sentences: list[SummarySentence]


class StageOutcome(_Out):
    status: Status
    error: str | None  # why it failed, or for a skipped stage why it was skipped
    seconds: float | None


class Produced(_Out):
    version: str | None  # the newsflow version whose stage wrote the output
    model: str | None


class Pipeline(_Out):
    version: str | None  # of the extract stage, as before; `stages` has every stage's
    model: str | None
    stages: dict[Stage, Produced] = Field(default_factory=dict)


class StoryRef(_Out):
    """The story a record's content belongs to (the story stage): `size` contents (an
    identical copy is the same content), `similarity` to the member it joined (1.0 for the
    one that made the story), `first_seen` when its earliest member arrived."""

    id: int
    size: int
    similarity: float
    first_seen: str


class ArticleRecord(_Out):
    """One submission, with everything the stages found in its content."""

    id: int  # the submission's own id
    content_id: int  # the processed content it shares with every copy of the same text
    content_submissions: int  # how many submissions share that content, this one included
    external_id: str | None
    batch_id: int
    status: Status
    title: str | None
    byline: str | None
    dateline: Dateline | None
    agency: str | None
    language: str | None
    published: str | None
    published_from: Literal["submitter", "article"] | None
    url: str | None
    source: str | None
    submitted_from: str | None
    text: str | None
    captions: list[str]
    word_count: int | None
    removed: list[Removal]
    entities: list[Entity]
    keyphrases: list[Keyphrase]
    summary: Summary
    story: StoryRef | None = None  # None until the story stage has placed it (or too short)
    stages: dict[Stage, StageOutcome]
    pipeline: Pipeline

    def errors(self) -> dict[Stage, str]:
        """The error of each stage that failed."""
        return {
            stage: s.error
            for stage, s in self.stages.items()
            if s.status == Status.FAILED and s.error
        }


class StoryRow(_Out):
    """A story in a listing (`results stories`, GET /stories)."""

    id: int
    size: int  # member contents
    records: int  # submissions of them: its coverage, identical copies included
    first_seen: str
    title: str | None  # of the content that made it


class StoryCopy(_Out):
    """One record of a story, as a story page shows it."""

    id: int
    content_id: int
    batch_id: int
    title: str | None
    source: str | None
    url: str | None
    agency: str | None
    published: str | None
    word_count: int | None
    similarity: float  # to the member it matched (1.0: it made the story)
    matched_content: int | None  # the content it matched
    first: bool  # its content made the story


class StoryDetail(StoryRow):
    """A story with its records, the one that made it first, the rest by arrival."""

    copies: list[StoryCopy]


class EntityCount(_Out):
    """An entity across articles (`results entities`, GET /entities)."""

    name: str
    label: str
    articles: int  # submissions naming it: its coverage, syndicated copies counted
    contents: int  # distinct contents naming it: each text once however often it was sent
    mentions: int  # in those contents
    salience: float  # mean over those contents


class Snippet(_Out):
    """A stretch of a record's body around what a full-text query matched."""

    text: str
    marks: list[tuple[int, int]]  # (start, end) of each match in `text`


class ArticleRow(_Out):
    """A record in a listing (`results list`, GET /articles): enough to pick one."""

    id: int
    content_id: int
    batch_id: int
    external_id: str | None
    url: str | None
    source: str | None
    submitted_from: str | None
    status: Status
    title: str | None
    agency: str | None
    language: str | None
    published: str | None
    entities: list[str]  # the names of the three most salient
    errors: dict[Stage, str]
    rank: float | None = None  # with a full-text query: how well it matches (higher first)
    snippet: Snippet | None = None  # with a full-text query: where the body matches

    @classmethod
    def of(cls, record: ArticleRecord) -> ArticleRow:
        return cls(
            id=record.id,
            content_id=record.content_id,
            batch_id=record.batch_id,
            external_id=record.external_id,
            url=record.url,
            source=record.source,
            submitted_from=record.submitted_from,
            status=record.status,
            title=record.title,
            agency=record.agency,
            language=record.language,
            published=record.published,
            entities=[e.name for e in record.entities[:3]],
            errors=record.errors(),
        )


class ArticlePage(_Out):
    """A page of a listing; `next_cursor` asks for the next one (None: this was the last)."""

    items: list[ArticleRow]
    next_cursor: str | None


class BatchProgress(_Out):
    """A batch's figures, as `status --json` gives them."""

    id: int
    name: str | None
    created_at: str
    total: int  # submissions
    queued: int
    processing: int
    done: int
    failed: int
    duplicates: int
    rejected: int
    per_minute_1m: float | None  # None: not asked for (Client.progress, for a wait)
    per_minute_5m: float | None
    eta_seconds: int | None

    @property
    def finished(self) -> bool:
        """The one "batch finished" rule: every submission is done or failed."""
        return self.done + self.failed >= self.total


class QueueDepth(_Out):
    ready: int  # waiting
    unacked: int  # delivered, not yet acknowledged


class WorkerInfo(_Out):
    """A worker that answered a broadcast."""

    name: str
    host: str
    concurrency: int | None
    active: int
    processed: int
    uptime_s: int | None
    last_seen: str  # when it answered


class Failure(_Out):
    """A failed stage of a content, with the first record that holds it."""

    record_id: int
    content_id: int
    batch_id: int
    stage: Stage
    error: str | None
    at: str


class Stall(_Out):
    """An unfinished stage of a content that showed no sign of life for a while."""

    record_id: int  # the batch's first record of the content
    content_id: int
    stage: Stage
    status: Status
    since: str


class BrokerState(_Out):
    url: str  # password masked
    error: str | None  # why it could not be reached, or None


class WorkerProblem(_Out):
    """A worker that said it cannot serve: refusing a queue, or waiting for a service."""

    worker: str
    reason: str
    since: str
    refusing: bool  # it gives the queue's messages back and takes no more of them


class StallNote(_Out):
    """Work of a batch that made no progress for a while, and the likeliest why."""

    batch_id: int
    articles: int
    minutes: int
    reason: str

    def __str__(self) -> str:
        return (
            f"batch {self.batch_id}: {self.articles} articles made no progress for "
            f"{self.minutes} min: {self.reason}"
        )


class ServiceStatus(_Out):
    """What `status --json` and GET /status give."""

    queues: dict[str, QueueDepth]
    workers: list[WorkerInfo]
    problems: list[WorkerProblem]  # workers that cannot serve, and why
    stalls: list[StallNote]
    batches: list[BatchProgress]
    failures: list[Failure]
    languages: dict[str, int]  # contents per detected language
    broker: BrokerState


class Rejection(_Out):
    """A record that was not stored, and why."""

    source: str  # the file (or "<request>") it came from
    line: int | None  # the record's line (JSONL) or position (JSON array), from 1
    reason: str

    @classmethod
    def at(cls, source: str, line: int | None, reason: str) -> Rejection:
        return cls(source=source, line=line, reason=reason)

    def __str__(self) -> str:
        where = f"{self.source}:{self.line}" if self.line is not None else self.source
        return f"{where}: {self.reason}"


class Submitted(_Out):
    """What a submit did: `submit --json`, POST /batches and Client.submit give it."""

    batch_id: int
    submitted: int  # the batch's records
    duplicates: int  # of them, those whose content was already stored
    queued: int  # articles this submit sent to the workers
    rejected: list[Rejection]

    @property
    def id(self) -> int:
        return self.batch_id


DATE = r"^\d{4}(-\d{2}(-\d{2})?)?$"
MAX_ID = 2**31 - 1  # ids are 32-bit integers on PostgreSQL: a larger one names nothing


class Filters(BaseModel):
    """Which records a listing, search or export covers: every filter given must hold
    (None means any). The CLI's options and the API's query parameters both become one."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    batch_id: int | None = Field(default=None, ge=1, le=MAX_ID, description="Only this batch.")
    external_id: str | None = Field(
        default=None, max_length=1000, description="Only what was submitted under this id."
    )
    status: Status | None = Field(default=None, description="queued, processing, done, failed.")
    entity: str | None = Field(default=None, max_length=200, description="Names this entity.")
    story: int | None = Field(default=None, ge=1, le=MAX_ID, description="Only this story.")
    agency: str | None = Field(default=None, max_length=200, description="This agency, any case.")
    language: str | None = Field(default=None, max_length=20, description="This language code.")
    query: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description='Full-text search of title and body: words, "a phrase", or, -word. '
        "Ranked, best first; on PostgreSQL a query in much of what is stored, with no other "
        "filter, is ranked over its newest matches.",
    )
    since: str | None = Field(default=None, pattern=DATE, description="Published on or after.")
    until: str | None = Field(default=None, pattern=DATE, description="Published on or before.")

    @field_validator("since", "until")
    @classmethod
    def _a_date(cls, value: str | None) -> str | None:
        """A real date: 2026, 2026-03 or 2026-03-01 (not 2026-99-99)."""
        if value is not None:
            year, month, day = [*value.split("-"), "01", "01"][:3]
            date(int(year), int(month), int(day))  # raises ValueError for a date that is none
        return value


NO_FILTERS = Filters()  # every record
