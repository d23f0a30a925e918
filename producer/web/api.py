"""The JSON API: batches in, progress out as Server-Sent Events, records and listings.

Route functions are plain `def`s: FastAPI runs them in its thread pool, where the Client's
blocking database and Redis calls belong."""

from __future__ import annotations

import json
import re
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from packaging.version import Version
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import BaseModel, ConfigDict, Field, field_validator
from sse_starlette import EventSourceResponse

from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.record import (
    MAX_ID,
    ArticlePage,
    ArticleRecord,
    BatchProgress,
    EntityCount,
    Filters,
    Rejection,
    ServiceStatus,
    StoryDetail,
    StoryRow,
    Submitted,
)
from producer.client import Client
from producer.json_array import MalformedArray, array_items
from producer.metrics import NewsflowCollector
from producer.sources import Record, bounded_lines, from_json, line_limit
from producer.sources import read_jsonl_lines as jsonl_records
from producer.web.auth import PROBLEM, Reader, Writer, client_of
from producer.web.streams import BatchWatch

router = APIRouter()
JSON, NDJSON = "application/json", "application/x-ndjson"
SOURCE = "<request>"


class Problem(BaseModel):
    """A problem document (RFC 9457): every 4xx and 5xx answer of the API."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str  # what is wrong, and what to change


def _problem(description: str) -> dict[str, Any]:
    schema = {"schema": {"$ref": "#/components/schemas/Problem"}}
    return {"model": Problem, "description": description, "content": {PROBLEM: schema}}


PROBLEMS: dict[int | str, dict[str, Any]] = {
    400: _problem("The body or a parameter is malformed; `detail` says where."),
    401: _problem("The API token is missing or wrong."),
    403: _problem("A write sent by another site's page."),
    404: _problem("No such batch or record."),
    408: _problem("The request body stalled."),
    413: _problem("The body is over NEWSFLOW_MAX_REQUEST_BYTES or NEWSFLOW_MAX_RECORDS."),
    415: _problem("Neither JSON nor JSONL."),
    422: _problem("A parameter is out of its range or of the wrong type."),
    429: _problem("This client holds as many event streams as it may."),
    503: _problem("The database or broker is away (see Retry-After), or the streams are full."),
}
Id = Annotated[int, Path(ge=1, le=MAX_ID, description="An id this API gave.")]


class TooLarge(HTTPException):
    def __init__(self, detail: str) -> None:
        super().__init__(413, detail)


@router.post("/batches", status_code=201, tags=["batches"])
async def submit_batch(
    request: Request,
    client: Writer,
    name: Annotated[str | None, Query(max_length=200, description="A name for the batch.")] = None,
) -> Submitted:
    """Submit a batch: a JSON array of records, or JSONL (`application/x-ndjson`), one
    record a line, read as a stream. Each record is checked as `newsflow submit` checks
    it: a bad one is listed under `rejected` with its line and reason, the rest goes on."""
    kind = request.headers.get("content-type", "").partition(";")[0].strip().lower()
    if kind not in (JSON, NDJSON):
        raise HTTPException(415, f"send {JSON} (an array of records) or {NDJSON} (one a line)")
    declared = request.headers.get("content-length", "")
    if re.fullmatch(r"[0-9]{1,30}", declared) and int(declared) > client.settings.max_request_bytes:
        raise _too_large(client.settings.max_request_bytes)  # said before a byte is read
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as body:
        await _spool(request, body, client.settings.max_request_bytes)
        return await run_in_threadpool(_submit, client, body, kind, name)


async def _spool(request: Request, body: IO[bytes], limit: int) -> None:
    """The request body into `body`, refused past `limit` bytes."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        body.write(chunk)
    body.seek(0)


def _too_large(limit: int) -> TooLarge:
    return TooLarge(
        f"the body is over the limit of {limit:,} bytes (NEWSFLOW_MAX_REQUEST_BYTES); "
        "send the records as several batches"
    )


def _submit(client: Client, body: IO[bytes], kind: str, name: str | None) -> Submitted:
    records = _ndjson(body, client.settings) if kind == NDJSON else _array(body, client.settings)
    return client.submit(records, name=name)


def _over_records(settings: Settings, count: int, *, at_least: bool = False) -> TooLarge:
    return TooLarge(
        f"the body holds {'more than ' if at_least else ''}{count - at_least:,} records, over "
        f"the limit of {settings.max_records:,} records per batch (NEWSFLOW_MAX_RECORDS); "
        "send them as several batches"
    )


def _ndjson(body: IO[bytes], settings: Settings) -> Iterator[Record | Rejection]:
    longest = line_limit(settings.max_article_bytes)
    count = sum(line is None or bool(line.strip()) for line in bounded_lines(body, longest))
    if count == 0:
        raise HTTPException(400, "the body holds no records: send one JSON object a line")
    if count > settings.max_records:
        raise _over_records(settings, count)
    body.seek(0)
    lines = bounded_lines(body, longest)
    return jsonl_records(lines, source=SOURCE, limit=settings.max_article_bytes)


def _array(body: IO[bytes], settings: Settings) -> Iterator[Record | Rejection]:
    """The records of a JSON array, read as a stream (json_array): checked and counted
    first, so a malformed or oversized body stores nothing, then parsed item by item."""
    longest = line_limit(settings.max_article_bytes)
    count = 0
    try:
        for _ in array_items(body, limit=longest, keep=False):
            count += 1
            if count > settings.max_records:
                raise _over_records(settings, count, at_least=True)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the body is not UTF-8 (at byte {exc.start})") from None
    except MalformedArray as exc:
        raise HTTPException(400, f"the body is not JSON (an array of records): {exc}") from None
    if count == 0:
        raise HTTPException(400, "the body holds no records: the array is empty")
    body.seek(0)
    return _array_records(body, settings)


def _array_records(body: IO[bytes], settings: Settings) -> Iterator[Record | Rejection]:
    longest = line_limit(settings.max_article_bytes)
    limit = settings.max_article_bytes
    for index, raw in enumerate(array_items(body, limit=longest), start=1):
        if raw is None:
            yield Rejection.at(SOURCE, index, f"record is over the size limit of {longest:,} bytes")
        else:
            yield from_json(raw, source=SOURCE, line=index, limit=limit)


def _batch(client: Client, batch_id: int) -> BatchProgress:
    return client.batches(batch_id)[0]


@router.get("/batches", tags=["batches"])
def list_batches(client: Reader) -> list[BatchProgress]:
    """Every batch with its counts, articles per minute and ETA."""
    return client.batches()


@router.get("/batches/{batch_id}", tags=["batches"])
def get_batch(batch_id: Id, client: Reader) -> BatchProgress:
    return _batch(client, batch_id)


@router.get("/batches/{batch_id}/events", tags=["batches"], response_class=EventSourceResponse)
async def batch_events(batch_id: Id, request: Request, client: Reader) -> EventSourceResponse:
    """Server-Sent Events: a `progress` event whenever the batch's figures change, then
    one `finished` event when every article is done or failed, and the stream ends. One
    poll serves every stream of a batch; streams are capped in all (503) and per client
    address (429)."""
    watch: BatchWatch = request.app.state.streams
    peer = request.client.host if request.client else "?"
    first = await run_in_threadpool(_batch, client, batch_id)
    watch.admit(peer)

    async def events() -> AsyncIterator[dict[str, str]]:
        try:
            async for progress in watch.follow(batch_id, first):
                yield {"event": "progress", "data": progress.model_dump_json()}
                if progress.finished:
                    yield {"event": "finished", "data": progress.model_dump_json()}
        finally:
            watch.leave(peer)

    return EventSourceResponse(events(), ping=15)


@router.post("/batches/{batch_id}/requeue", tags=["batches"])
def requeue_batch(
    batch_id: Id,
    client: Writer,
    stage: Stage | None = None,
    failed: Annotated[bool, Query(description="Also retry failed stages.")] = False,
    force: Annotated[bool, Query(description="Also what may have a live message.")] = False,
) -> dict[str, Any]:
    """Send again what of the batch has no live message; says what it skipped and why."""
    found = client.requeue(batch_id=batch_id, stage=stage, failed=failed, force=force)
    return {"sent": found.sent, "skipped": found.skipped}


class Reprocess(BaseModel):
    """POST /reprocess: which stored output to make again."""

    model_config = ConfigDict(extra="forbid")

    batch: int | None = Field(default=None, ge=1, le=MAX_ID, description="Only this batch.")
    stages: list[Stage] = Field(
        default=list(Stage),
        min_length=1,
        description="The stages to run again (clean runs the later ones too).",
    )
    before: str | None = Field(
        default=None,
        max_length=40,
        description="Only output made by a newsflow older than this version.",
    )
    model: str | None = Field(
        default=None, max_length=200, description="Only output made with this model."
    )

    @field_validator("before")
    @classmethod
    def _a_version(cls, before: str | None) -> str | None:
        if before is not None:
            Version(before)  # InvalidVersion is a ValueError: a 422 naming the field
        return before


@router.post("/reprocess", status_code=202, tags=["batches"])
def reprocess(request: Reprocess, client: Writer) -> dict[str, Any]:
    """Run stages again on stored articles after the rules or the model changed, queued as
    new work while the service runs: readers see the old output until the new one is
    stored; GET /status shows the progress. Says how many stage runs were queued."""
    if request.before is not None and request.model is not None:
        raise HTTPException(422, "give `before` or `model`, not both")
    found = client.reprocess(
        batch_id=request.batch, stages=request.stages, before=request.before, model=request.model
    )
    return {"queued": found.sent}


def _query_name(field: str) -> str:
    return {"batch_id": "batch", "query": "q"}.get(field, field)  # ?batch=, ?q=


class ArticleQuery(Filters):
    """GET /articles: the filters, and where the page starts."""

    model_config = ConfigDict(alias_generator=_query_name)

    cursor: str | None = Field(
        default=None, pattern=r"^[0-9]{1,10}$", description="A `next_cursor` this API gave."
    )
    limit: int = Field(default=50, ge=1, le=500, description="Rows per page.")

    @field_validator("cursor")
    @classmethod
    def _an_id(cls, cursor: str | None) -> str | None:
        if cursor is not None and int(cursor) > MAX_ID:
            raise ValueError("not a cursor this API gave (next_cursor)")
        return cursor

    def filters(self) -> Filters:
        return Filters.model_validate(self.model_dump(include=set(Filters.model_fields)))


@router.get("/articles", tags=["articles"])
def list_articles(client: Reader, query: Annotated[ArticleQuery, Query()]) -> ArticlePage:
    """Records (one per submission) matching every filter given, a page at a time: pass
    `next_cursor` back as `cursor` for the next page. Pages stay stable while records are
    added. `external_id` finds what you submitted under your own id."""
    start = int(query.cursor or 0)
    items, after = client.rows(query.filters(), after=start, limit=query.limit)
    return ArticlePage(items=items, next_cursor=None if after is None else str(after))


@router.get("/articles/{article_id}", tags=["articles"])
def get_article(article_id: Id, client: Reader) -> ArticleRecord:
    """The output record of a submission."""
    return client.record(article_id)


@router.get("/entities", tags=["articles"])
def top_entities(
    client: Reader,
    batch: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    label: Annotated[str | None, Query(max_length=20)] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[EntityCount]:
    """The entities named in the most records (of a batch, or of all): `articles` counts
    submissions (coverage, syndicated copies included), `contents` distinct texts."""
    return client.entities(batch_id=batch, label=label, top=top)


@router.get("/stories", tags=["stories"])
def list_stories(
    client: Reader,
    batch: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    min_size: Annotated[int, Query(ge=1, le=MAX_ID)] = 2,
    top: Annotated[int, Query(ge=1, le=1000)] = 50,
) -> list[StoryRow]:
    """The largest stories (of a batch, or of all): groups of the copies, cuts and updated
    versions of one article. `size` counts distinct texts, `records` submissions."""
    return client.stories(batch_id=batch, min_size=min_size, limit=top)


@router.get("/stories/{story_id}", tags=["stories"])
def get_story(story_id: Id, client: Reader) -> StoryDetail:
    """A story's records with their source, agency, published date and similarity; the
    one whose text made the story comes first (`first`)."""
    return client.story(story_id)


@router.get("/status", tags=["service"])
def service_status(client: Reader) -> ServiceStatus:
    """Queues, workers, batches and the latest failures, as `newsflow status --json`."""
    return client.status()


@router.get("/healthz", tags=["service"])
def health(request: Request) -> Response:
    """200 when the database and the broker answer, else 503 with what is wrong; open to
    load balancers whatever NEWSFLOW_API_GUARD_READS says. `workers` names the workers
    that cannot serve, and why, without failing the check (the API itself is fine)."""
    checks = client_of(request).health()
    healthy = checks["database"] == checks["broker"] == "ok"  # a worker's trouble is not ours
    return Response(json.dumps(checks), status_code=200 if healthy else 503,
                    media_type=JSON)  # fmt: skip


@router.get("/metrics", tags=["service"], response_class=Response)
def metrics(client: Reader) -> Response:
    """Prometheus metrics: the gauges of `newsflow metrics`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NewsflowCollector(client.settings))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
