"""SQLModel tables: the system of record for batches, articles and every stage's output."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Index, LargeBinary, Table, Text, UniqueConstraint
from sqlmodel import Field, SQLModel


def utcnow() -> datetime:
    return datetime.now(UTC)


class Batch(SQLModel, table=True):
    """One submit: its name and the counts the producer saw."""

    __tablename__ = "batches"

    id: int | None = Field(default=None, primary_key=True)
    name: str | None = None
    created_at: datetime = Field(default_factory=utcnow)
    submitted: int = 0
    duplicates: int = 0
    rejected: int = 0


class Article(SQLModel, table=True):
    """A content: raw input stored and processed once however many submissions share it
    (same content hash) and, once cleaned, its clean fields. What each submitter said about
    it (id, url, title, date, source) is on its BatchArticle rows: those are the records."""

    __tablename__ = "articles"
    __table_args__ = (UniqueConstraint("content_hash", name="uq_articles_content_hash"),)

    id: int | None = Field(default=None, primary_key=True)
    content_hash: str = Field(max_length=64)
    batch_id: int = Field(foreign_key="batches.id", index=True)  # the batch that first sent it
    kind: str = Field(max_length=8)  # "text" or "html"
    raw: str = Field(sa_column=Column(Text, nullable=False))
    given_title: str | None = None  # the first submitter's, a title hint for the clean stage
    created_at: datetime = Field(default_factory=utcnow)

    # Written by the clean stage.
    guessed_published: str | None = None  # a date found in the article itself
    title: str | None = None
    byline: str | None = None
    dateline_place: str | None = None
    dateline_date: str | None = None
    agency: str | None = Field(default=None, index=True)
    site: str | None = None  # a web page's site name, the source of records that name none
    language: str | None = None
    text: str | None = Field(default=None, sa_column=Column(Text))
    captions: list[str] | None = Field(default=None, sa_column=Column(JSON))
    removed: list[dict[str, Any]] | None = Field(default=None, sa_column=Column(JSON))
    word_count: int | None = None


class BatchArticle(SQLModel, table=True):
    """One submission, with what that submitter said about it: a record, whose id is this
    row's. The content is stored and processed once (Article); every submission of it, in
    this batch or another, keeps its own id, url, title, date and source (syndicated wire
    copy)."""

    __tablename__ = "batch_articles"
    __table_args__ = (
        Index("ix_batch_articles_status", "status", "id"),
        Index("ix_batch_articles_batch_status", "batch_id", "status", "id"),
        Index("ix_batch_articles_batch_finished", "batch_id", "finished_at"),
    )

    id: int | None = Field(default=None, primary_key=True)
    batch_id: int = Field(foreign_key="batches.id", index=True)
    article_id: int = Field(foreign_key="articles.id", index=True)
    external_id: str | None = Field(default=None, index=True)  # the submitter's own id
    source: str | None = None  # file:line it came from
    url: str | None = None
    title: str | None = None
    published: str | None = None
    origin: str | None = None  # the record's own "source" field (a site or feed name)
    # Its content's status, kept by newsflow.tallies with every change of a stage row, so
    # that a listing filters by status and a batch counts by it through an index.
    status: str = Field(default="queued", max_length=16)
    finished_at: datetime | None = None  # when its content last became done or failed


class StageRow(SQLModel, table=True):
    """One stage of one article: status, error, timing and the pipeline that ran it."""

    __tablename__ = "stages"
    __table_args__ = (Index("ix_stages_status_updated", "status", "updated_at"),)

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    stage: str = Field(primary_key=True, max_length=16)
    status: str = Field(max_length=16)
    error: str | None = Field(default=None, sa_column=Column(Text))
    seconds: float | None = None
    attempts: int = 0  # runs that died unfinished since the stage last finished
    runs: int = 0  # runs started, ever: a redelivery or a race shows here
    claim: str | None = Field(default=None, max_length=80)  # the delivery now running it
    sent_at: datetime | None = None  # when a message for it was last sent (None: never)
    version: str | None = None
    model: str | None = None
    updated_at: datetime = Field(default_factory=utcnow)


class Entity(SQLModel, table=True):
    """A canonical entity of one article (one per real-world thing)."""

    __tablename__ = "entities"
    __table_args__ = (Index("ix_entities_name_lower", "name_lower"),)

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    idx: int = Field(primary_key=True)
    name: str
    name_lower: str  # for case-insensitive search by name
    label: str = Field(max_length=16)
    count: int
    salience: float
    aliases: list[str] = Field(default_factory=list, sa_column=Column(JSON))


class Mention(SQLModel, table=True):
    """One mention of an entity, with offsets into the article's clean text."""

    __tablename__ = "mentions"

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    entity_idx: int = Field(primary_key=True)
    idx: int = Field(primary_key=True)
    start: int
    end: int
    text: str


class Keyphrase(SQLModel, table=True):
    """A ranked keyphrase of one article."""

    __tablename__ = "keyphrases"

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    rank: int = Field(primary_key=True)
    text: str
    score: float


class SummarySentence(SQLModel, table=True):
    """A sentence of an article's extractive summary, with its offsets into the clean text."""

    __tablename__ = "summary_sentences"

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    position: int = Field(primary_key=True)
    sentence_index: int
    start: int
    end: int
    text: str = Field(sa_column=Column(Text, nullable=False))


class EntityKey(SQLModel, table=True):
    """A name an article's entity answers to, casefolded: its canonical name, each run of
    its words from either end ("xi" and "jinping" of "Xi Jinping") and every mention's
    text. The entity filter is one lookup here (newsflow.tallies.entity_keys)."""

    __tablename__ = "entity_keys"

    key: str = Field(primary_key=True)
    article_id: int = Field(foreign_key="articles.id", primary_key=True, index=True)


class Count(SQLModel, table=True):
    """A count kept as the data changes (newsflow.tallies), per batch (batch 0: all of
    them): `kind` "status" counts submissions per status, "language" contents per
    detected language ("?" while unknown)."""

    __tablename__ = "counts"

    batch_id: int = Field(primary_key=True)
    kind: str = Field(primary_key=True, max_length=16)
    key: str = Field(primary_key=True, max_length=32)
    n: int = 0


class EntityTally(SQLModel, table=True):
    """An entity's standing per batch (batch 0: all), kept by the extract stage and by
    submits of contents already extracted: the submissions that name it, the distinct
    contents, their mentions and the sum of their salience."""

    __tablename__ = "entity_counts"
    __table_args__ = (
        Index("ix_entity_counts_top", "batch_id", "articles", "mentions"),
        Index("ix_entity_counts_label_top", "batch_id", "label", "articles", "mentions"),
    )

    batch_id: int = Field(primary_key=True)
    name: str = Field(primary_key=True)
    label: str = Field(primary_key=True, max_length=16)
    articles: int = 0
    contents: int = 0
    mentions: int = 0
    salience: float = 0.0


class Story(SQLModel, table=True):
    """A group of contents that are one article: its copies, cuts and updated versions
    (the story stage, worker/stages/story.py). Its id never changes once made."""

    __tablename__ = "stories"
    __table_args__ = (Index("ix_stories_size", "size", "id"),)

    id: int | None = Field(default=None, primary_key=True)
    first_article_id: int = Field(foreign_key="articles.id")  # the content that made it
    size: int = 0  # member contents (identical texts are one content, however many records)
    first_seen: str  # the earliest member's arrival, ISO 8601 UTC to the second


class StoryMember(SQLModel, table=True):
    """A content's place in its story: the member it matched (None: it made the story),
    how alike they are, and its MinHash signature for the copies that come later."""

    __tablename__ = "story_members"

    article_id: int = Field(foreign_key="articles.id", primary_key=True)
    story_id: int = Field(foreign_key="stories.id", index=True)
    matched_id: int | None = None
    similarity: float  # containment of the shorter text in the longer, estimated
    jaccard: float
    shingles: int  # distinct word shingles of its text
    signature: bytes = Field(sa_column=Column(LargeBinary, nullable=False))


class StoryBand(SQLModel, table=True):
    """The LSH index of the signatures: one row per band of each member, so that the
    contents sharing a band with a new text are one index lookup per band."""

    __tablename__ = "story_bands"

    hash: int = Field(sa_column=Column(BigInteger, primary_key=True, autoincrement=False))
    article_id: int = Field(foreign_key="articles.id", primary_key=True, index=True)


class DatabaseIdentity(SQLModel, table=True):
    """This database's identity (one row, random, made with the schema): messages name it,
    so a worker on another database knows a message is not for it."""

    __tablename__ = "database_identity"

    id: str = Field(primary_key=True, max_length=36)


def table_of(model: type[SQLModel]) -> Table:
    """The Core table of a model, for bulk statements that skip the ORM."""
    return model.__table__  # type: ignore[attr-defined,no-any-return]
