"""The output record, typed: what export, every `--json`, the Python API and the HTTP API
give for an article (README "Output record"), and the other documents the API returns."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict

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


class Pipeline(_Out):
    version: str | None
    model: str | None


class ArticleRecord(_Out):
    """One article as one submission described it, with everything the stages found."""

    id: int
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
    stages: dict[Stage, StageOutcome]
    pipeline: Pipeline

    def errors(self) -> dict[Stage, str]:
        """The error of each stage that failed."""
        return {
            stage: s.error
            for stage, s in self.stages.items()
            if s.status == Status.FAILED and s.error
        }


class EntityCount(_Out):
    """An entity across articles (`results entities`, GET /entities)."""

    name: str
    label: str
    articles: int
    mentions: int
    salience: float


class ArticleRow(_Out):
    """An article in a listing (`results list`, GET /articles): enough to pick one."""

    id: int
    batch_id: int
    status: Status
    title: str | None
    agency: str | None
    language: str | None
    published: str | None
    entities: list[str]  # the names of the three most salient
    errors: dict[Stage, str]

    @classmethod
    def of(cls, record: ArticleRecord) -> ArticleRow:
        return cls(
            id=record.id,
            batch_id=record.batch_id,
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
    per_minute_1m: float
    per_minute_5m: float
    eta_seconds: int | None

    @property
    def finished(self) -> bool:
        return self.done + self.failed >= self.total


class Rejection(_Out):
    line: int | None  # the record's line (JSONL) or position (JSON array), from 1
    reason: str


class Submitted(_Out):
    """What POST /batches answers."""

    batch_id: int
    submitted: int
    duplicates: int
    queued: int
    rejected: list[Rejection]
