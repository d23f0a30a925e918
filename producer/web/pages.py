"""The dashboard: server-rendered pages, readable without JavaScript; static/live.js only
moves the progress bars (EventSource) and sends requeues with the token.

Every text from an article goes through Jinja's autoescaping, and the pages forbid inline
scripts (Content-Security-Policy), so a hostile title stays text twice over."""

from __future__ import annotations

from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import urlencode

import jinja2
from fastapi import APIRouter, Query, Request
from fastapi.responses import HTMLResponse
from starlette.templating import Jinja2Templates

from newsflow.contract import ARTICLE_STATUSES, FAILED, Status
from newsflow.record import MAX_ID, ArticleRecord, Filters, Snippet
from producer.web.api import Id
from producer.web.auth import Reader

router = APIRouter(include_in_schema=False)
templates = Jinja2Templates(
    env=jinja2.Environment(
        loader=jinja2.FileSystemLoader(Path(__file__).parent / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
)
POLICY = "default-src 'self'; script-src 'self'; style-src 'self'; object-src 'none'"
BATCH_ROWS = 500


def _page(request: Request, name: str, **context: Any) -> HTMLResponse:
    response = templates.TemplateResponse(request, name, context)
    response.headers["Content-Security-Policy"] = POLICY
    response.headers["X-Content-Type-Options"] = "nosniff"
    return response


@router.get("/", response_class=HTMLResponse)
def overview(request: Request, client: Reader) -> HTMLResponse:
    report = client.status()
    batches = list(reversed(report.batches))
    per_minute = sum(b.per_minute_1m or 0 for b in batches)
    return _page(request, "overview.html", report=report, batches=batches, per_minute=per_minute)


@router.get("/docs", response_class=HTMLResponse)
def docs(request: Request, _: Reader) -> HTMLResponse:
    """Swagger UI for the OpenAPI document, from its package, under the pages' policy."""
    return _page(request, "docs.html")


@router.get("/view/batches/{batch_id}", response_class=HTMLResponse)
def batch_page(
    request: Request, batch_id: int, client: Reader, status: Status | None = None
) -> HTMLResponse:
    batch = client.batches(batch_id)[0]
    rows, more = client.rows(Filters(batch_id=batch_id, status=status), limit=BATCH_ROWS)
    rows.sort(key=lambda r: r.status != FAILED)  # failures first, else in submission order
    return _page(
        request,
        "batch.html",
        batch=batch,
        rows=rows,
        more=more is not None,
        status=status,
        statuses=ARTICLE_STATUSES,
    )


@router.get("/view/articles", response_class=HTMLResponse)
def articles_page(
    request: Request,
    client: Reader,
    entity: Annotated[str | None, Query(max_length=200)] = None,
    batch: int | None = None,
    q: Annotated[str | None, Query(max_length=500)] = None,
    story: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    cursor: Annotated[int, Query(ge=0)] = 0,
) -> HTMLResponse:
    """Records, a page at a time: of a batch, naming an entity, or matching a search (the
    box on every page), best match first with where it matched."""
    q = (q or "").strip() or None
    filters = Filters(entity=entity, batch_id=batch, query=q, story=story)
    rows, after = client.rows(filters, after=cursor, limit=100)
    more = {"entity": entity, "batch": batch, "q": q, "story": story, "cursor": after}
    return _page(
        request,
        "articles.html",
        rows=rows,
        entity=entity,
        batch=batch,
        q=q,
        story=story,
        after=after,
        next_page=urlencode({k: v for k, v in more.items() if v is not None}),
    )


def snippet_parts(snippet: Snippet) -> list[tuple[str, bool]]:
    """A snippet as (text, matched) stretches, for the template to mark without markup."""
    parts, at = [], 0
    for start, end in snippet.marks:
        parts += [(snippet.text[at:start], False), (snippet.text[start:end], True)]
        at = end
    return [*parts, (snippet.text[at:], False)]


templates.env.filters["snippet_parts"] = snippet_parts


@router.get("/view/articles/{article_id}", response_class=HTMLResponse)
def article_page(request: Request, article_id: int, client: Reader) -> HTMLResponse:
    record = client.record(article_id)
    return _page(request, "article.html", record=record, blocks=highlighted(record))


@router.get("/view/entities", response_class=HTMLResponse)
def entities_page(
    request: Request,
    client: Reader,
    batch: int | None = None,
    label: Annotated[str | None, Query(max_length=20)] = None,
) -> HTMLResponse:
    rows = client.entities(batch_id=batch, label=label, top=100)
    return _page(request, "entities.html", rows=rows, batch=batch, label=label)


@router.get("/view/stories", response_class=HTMLResponse)
def stories_page(
    request: Request,
    client: Reader,
    batch: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
    min_size: Annotated[int, Query(ge=1, le=MAX_ID)] = 2,
) -> HTMLResponse:
    rows = client.stories(batch_id=batch, min_size=min_size, limit=100)
    return _page(request, "stories.html", rows=rows, batch=batch, min_size=min_size)


SIDE_BY_SIDE = 6  # copies whose texts a story page shows in columns


@router.get("/view/stories/{story_id}", response_class=HTMLResponse)
def story_page(request: Request, story_id: Id, client: Reader) -> HTMLResponse:
    story = client.story(story_id)
    shown = [c.id for c in story.copies[:SIDE_BY_SIDE]]
    texts = client.records(shown)
    return _page(request, "story.html", story=story, texts=texts)


@dataclass
class Piece:
    """A run of text, inside one entity mention (`mention` is its number) or outside any."""

    text: str
    mention: int | None = None
    label: str | None = None
    entity: str | None = None


@dataclass
class Block:
    """A run of text inside one summary sentence (`sentence` is its index) or between."""

    sentence: int | None
    pieces: list[Piece] = field(default_factory=list)


def highlighted(record: ArticleRecord) -> list[Block]:
    """The clean text cut at every mention and summary sentence edge, for the article page.
    A mention that overlaps an earlier one is left plain; one that crosses a sentence edge
    is shown in two pieces with one number."""
    text = record.text or ""
    mentions = sorted(
        (m.start, m.end, entity.label, entity.name)
        for entity in record.entities
        for m in entity.mentions
    )
    kept: list[tuple[int, int, str, str]] = []
    for mention in mentions:
        if not kept or mention[0] >= kept[-1][1]:
            kept.append(mention)
    sentences = sorted((s.start, s.end, s.index) for s in record.summary.sentences)
    edges = {
        0,
        len(text),
        *(p for m in kept for p in m[:2]),
        *(p for s in sentences for p in s[:2]),
    }
    blocks: list[Block] = []
    m = s = 0  # the first mention and sentence that may still hold a piece
    for start, end in pairwise(sorted(edges)):
        while m < len(kept) and kept[m][1] <= start:
            m += 1
        while s < len(sentences) and sentences[s][1] <= start:
            s += 1
        inside = s < len(sentences) and sentences[s][0] <= start
        sentence = sentences[s][2] if inside else None
        if not blocks or blocks[-1].sentence != sentence:
            blocks.append(Block(sentence))
        if m < len(kept) and kept[m][0] <= start:
            _, _, label, name = kept[m]
            blocks[-1].pieces.append(Piece(text[start:end], m, label, name))
        else:
            blocks[-1].pieces.append(Piece(text[start:end]))
    return blocks
