"""The JSON API: batches in, progress out as Server-Sent Events, records and listings.

Route functions are plain `def`s: FastAPI runs them in its thread pool, where the Client's
blocking database and Redis calls belong."""

from __future__ import annotations

import asyncio
import json
import tempfile
from collections.abc import AsyncIterator, Iterator
from typing import IO, Annotated, Any

from fastapi import APIRouter, HTTPException, Query, Request, Response
from fastapi.concurrency import run_in_threadpool
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from pydantic import ConfigDict, Field
from sse_starlette import EventSourceResponse

from newsflow.config import Settings
from newsflow.contract import Stage
from newsflow.record import (
    ArticlePage,
    ArticleRecord,
    BatchProgress,
    EntityCount,
    Filters,
    Rejection,
    ServiceStatus,
    Submitted,
)
from producer.client import Client
from producer.metrics import NewsflowCollector
from producer.sources import Record, bounded_lines, from_mapping, line_limit
from producer.sources import read_jsonl_lines as jsonl_records
from producer.web.auth import Reader, Writer, client_of

router = APIRouter()
JSON, NDJSON = "application/json", "application/x-ndjson"
SOURCE = "<request>"
POLL = 0.5  # seconds between two looks at a batch's progress, for its event stream


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
    with tempfile.SpooledTemporaryFile(max_size=8 * 1024 * 1024) as body:
        await _spool(request, body, client.settings.max_request_bytes)
        return await run_in_threadpool(_submit, client, body, kind, name)


async def _spool(request: Request, body: IO[bytes], limit: int) -> None:
    """The request body into `body`, refused past `limit` bytes."""
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise TooLarge(
                f"the body is over the limit of {limit:,} bytes (NEWSFLOW_MAX_REQUEST_BYTES); "
                "send the records as several batches"
            )
        body.write(chunk)
    body.seek(0)


def _submit(client: Client, body: IO[bytes], kind: str, name: str | None) -> Submitted:
    records = _ndjson(body, client.settings) if kind == NDJSON else _array(body, client.settings)
    return client.submit(records, name=name)


def _over_records(settings: Settings, count: int) -> TooLarge:
    return TooLarge(
        f"the body holds {count:,} records, over the limit of {settings.max_records:,} "
        "records per batch (NEWSFLOW_MAX_RECORDS); send them as several batches"
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
    """The records of a JSON array, which is parsed whole: big batches go better as JSONL."""
    try:
        data = json.load(body)
    except UnicodeDecodeError as exc:
        raise HTTPException(400, f"the body is not UTF-8 (at byte {exc.start})") from None
    except json.JSONDecodeError as exc:
        raise HTTPException(
            400, f"the body is not JSON: {exc.msg} at line {exc.lineno} column {exc.colno}"
        ) from None
    except (RecursionError, ValueError) as exc:
        raise HTTPException(400, f"the body is unreadable JSON: {exc}") from None
    if not isinstance(data, list):
        raise HTTPException(
            400, f"expected a JSON array of records, got {type(data).__name__}; send "
            f"[{{\"text\": ...}}, ...] or {NDJSON}"
        )  # fmt: skip
    if not data:
        raise HTTPException(400, "the body holds no records: the array is empty")
    if len(data) > settings.max_records:
        raise _over_records(settings, len(data))
    limit = settings.max_article_bytes
    return (
        from_mapping(item, source=SOURCE, line=index, limit=limit)
        for index, item in enumerate(data, start=1)
    )


def _batch(client: Client, batch_id: int) -> BatchProgress:
    return client.batches(batch_id)[0]


@router.get("/batches", tags=["batches"])
def list_batches(client: Reader) -> list[BatchProgress]:
    """Every batch with its counts, articles per minute and ETA."""
    return client.batches()


@router.get("/batches/{batch_id}", tags=["batches"])
def get_batch(batch_id: int, client: Reader) -> BatchProgress:
    return _batch(client, batch_id)


@router.get("/batches/{batch_id}/events", tags=["batches"], response_class=EventSourceResponse)
async def batch_events(batch_id: int, client: Reader) -> EventSourceResponse:
    """Server-Sent Events: a `progress` event whenever the batch's figures change, then
    one `finished` event when every article is done or failed, and the stream ends."""
    first = await run_in_threadpool(_batch, client, batch_id)

    async def events() -> AsyncIterator[dict[str, str]]:
        progress, last = first, None
        while True:
            if progress != last:
                yield {"event": "progress", "data": progress.model_dump_json()}
                last = progress
            if progress.finished:
                yield {"event": "finished", "data": progress.model_dump_json()}
                return
            await asyncio.sleep(POLL)
            progress = await run_in_threadpool(_batch, client, batch_id)

    return EventSourceResponse(events(), ping=15)


@router.post("/batches/{batch_id}/requeue", tags=["batches"])
def requeue_batch(
    batch_id: int,
    client: Writer,
    stage: Stage | None = None,
    failed: Annotated[bool, Query(description="Also retry failed stages.")] = False,
    force: Annotated[bool, Query(description="Also what may have a live message.")] = False,
) -> dict[str, Any]:
    """Send again what of the batch has no live message; says what it skipped and why."""
    found = client.requeue(batch_id=batch_id, stage=stage, failed=failed, force=force)
    return {"sent": found.sent, "skipped": found.skipped}


def _cursor(cursor: str | None) -> int:
    if cursor is None:
        return 0
    if not cursor.isdigit():
        raise HTTPException(400, f"cursor {cursor!r} is not one this API gave (next_cursor)")
    return int(cursor)


def _query_name(field: str) -> str:
    return "batch" if field == "batch_id" else field  # ?batch=, as everywhere in the API


class ArticleQuery(Filters):
    """GET /articles: the filters, and where the page starts."""

    model_config = ConfigDict(alias_generator=_query_name)

    cursor: str | None = Field(None, max_length=20, description="A `next_cursor` given.")
    limit: int = Field(50, ge=1, le=500, description="Rows per page.")

    def filters(self) -> Filters:
        return Filters.model_validate(self.model_dump(include=set(Filters.model_fields)))


@router.get("/articles", tags=["articles"])
def list_articles(client: Reader, query: Annotated[ArticleQuery, Query()]) -> ArticlePage:
    """Records (one per submission) matching every filter given, a page at a time: pass
    `next_cursor` back as `cursor` for the next page. Pages stay stable while records are
    added. `external_id` finds what you submitted under your own id."""
    items, after = client.rows(query.filters(), after=_cursor(query.cursor), limit=query.limit)
    return ArticlePage(items=items, next_cursor=None if after is None else str(after))


@router.get("/articles/{article_id}", tags=["articles"])
def get_article(article_id: int, client: Reader) -> ArticleRecord:
    """The output record of a submission."""
    return client.record(article_id)


@router.get("/entities", tags=["articles"])
def top_entities(
    client: Reader,
    batch: int | None = None,
    label: Annotated[str | None, Query(max_length=20)] = None,
    top: Annotated[int, Query(ge=1, le=1000)] = 20,
) -> list[EntityCount]:
    """The entities named in the most records (of a batch, or of all): `articles` counts
    submissions (coverage, syndicated copies included), `contents` distinct texts."""
    return client.entities(batch_id=batch, label=label, top=top)


@router.get("/status", tags=["service"])
def service_status(client: Reader) -> ServiceStatus:
    """Queues, workers, batches and the latest failures, as `newsflow status --json`."""
    return client.status()


@router.get("/healthz", tags=["service"])
def health(request: Request) -> Response:
    """200 when the database and the broker answer, else 503 with what is wrong; open to
    load balancers whatever NEWSFLOW_API_GUARD_READS says."""
    checks = client_of(request).health()
    healthy = all(v == "ok" for v in checks.values())
    return Response(json.dumps(checks), status_code=200 if healthy else 503,
                    media_type=JSON)  # fmt: skip


@router.get("/metrics", tags=["service"], response_class=Response)
def metrics(client: Reader) -> Response:
    """Prometheus metrics: the gauges of `newsflow metrics`."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(NewsflowCollector(client.settings))
    return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)
