"""How the CLI shows things: rich tables and views of plain records, apart from parsing.

Every text that comes from an article or a service goes through terminal.shown first, so
it cannot carry markup or control sequences into the terminal.
"""

from __future__ import annotations

from typing import Any

from rich.console import Group
from rich.table import Table
from rich.text import Text

from newsflow.contract import ARTICLE_STATUSES, FAILED
from newsflow.record import (
    ArticleRecord,
    ArticleRow,
    EntityCount,
    ServiceStatus,
    Snippet,
    StoryDetail,
    StoryRow,
)
from producer.terminal import CONTROL, shown


def results_table(records: list[ArticleRecord]) -> Table:
    """What `run` prints at the end: a row per article."""
    table = Table(title="newsflow results")
    for column in ("id", "title", "agency", "top entities", "summary", "status"):
        table.add_column(column, overflow="fold" if column == "title" else "ellipsis")
    for r in records:
        names = ", ".join(e.name for e in r.entities[:3])
        status = r.status if r.status != FAILED else "[red]failed"
        title = r.title or f"({r.external_id or r.submitted_from or 'untitled'})"
        table.add_row(
            str(r.id),
            shown(title[:60]),
            shown(r.agency or ""),
            shown(names),
            f"{len(r.summary.sentences)} sent.",
            status,
        )
    return table


def status_view(report: ServiceStatus) -> Table:
    """`status`: queues, workers, batches with progress, latest failures."""
    grid = Table.grid(padding=(0, 1))
    queues = Table(title="queues")
    for column in ("queue", "ready", "unacked"):
        queues.add_column(column)
    for name, depth in report.queues.items():
        queues.add_row(name, str(depth.ready), str(depth.unacked))
    if report.broker.error:
        grid.add_row(f"[red]{shown(report.broker.error)}")
    else:
        grid.add_row(queues)
        workers = (
            ", ".join(
                f"{w.name} ({w.concurrency} proc, {w.active} active, "
                f"up {w.uptime_s} s, last heard {w.last_seen[11:19]} UTC)"
                for w in report.workers
            )
            or "none heard from in the last 20 s"
        )
        grid.add_row(f"workers: {shown(workers)}")
    if report.languages:
        spoken = ", ".join(f"{code} {n}" for code, n in report.languages.items())
        grid.add_row(f"languages: {shown(spoken)}")
    batches = Table(title="batches")
    for column in ("id", "name", "total", *ARTICLE_STATUSES, "progress", "per min 1m/5m", "ETA"):
        batches.add_column(column)
    for b in report.batches:
        share = (b.done + b.failed) / b.total if b.total else 1.0
        bar = "█" * int(share * 20) + "·" * (20 - int(share * 20))
        eta = f"{b.eta_seconds // 60}m{b.eta_seconds % 60:02d}s" if b.eta_seconds else ""
        batches.add_row(
            str(b.id),
            shown(b.name or ""),
            str(b.total),
            *(str(getattr(b, s)) for s in ARTICLE_STATUSES),
            f"{bar} {share:.0%}",
            f"{b.per_minute_1m or 0:.0f}/{b.per_minute_5m or 0:.0f}",
            eta,
        )
    grid.add_row(batches)
    for problem in report.problems:
        grid.add_row(f"[red]worker {shown(problem.worker)} {shown(problem.reason)} "
                     f"(since {problem.since})")  # fmt: skip
    for stall in report.stalls:
        grid.add_row(f"[red]{shown(str(stall))}")
    if report.failures:
        failures = Table(title="latest failures")
        for column in ("article", "stage", "reason"):
            failures.add_column(column)
        for f in report.failures:
            failures.add_row(str(f.record_id), f.stage, shown(f.error or ""))
        grid.add_row(failures)
    return grid


def article_view(record: ArticleRecord) -> Group:
    """`results show`: one article's fields, summary, entities, keyphrases and stages."""
    lines: list[Any] = []  # markup lines (article text escaped by shown) and tables
    title = shown(record.title or "(untitled)")
    lines.append(f"[bold]{title}[/]  #{record.id} {record.status}")
    if record.content_submissions > 1:
        lines.append(
            f"content {record.content_id}, shared by {record.content_submissions} submissions"
        )
    for key in ("external_id", "agency", "byline", "language", "published", "url", "source"):
        if value := getattr(record, key):
            lines.append(f"{key}: {shown(value)}")
    if dateline := record.dateline:
        place_date = ", ".join(v for v in (dateline.place, dateline.date) if v)
        lines.append(f"dateline: {shown(place_date)}")
    lines.append(f"\n[bold]summary[/]\n{shown(record.summary.text)}\n")
    entities = Table(title="entities")
    for column in ("name", "label", "count", "salience", "aliases"):
        entities.add_column(column)
    for e in record.entities[:15]:
        entities.add_row(
            shown(e.name), e.label, str(e.count), f"{e.salience:.3f}", shown(", ".join(e.aliases))
        )
    lines.append(entities)
    lines.append(f"keyphrases: {shown('; '.join(k.text for k in record.keyphrases))}")
    lines.extend(f"caption: {shown(caption)}" for caption in record.captions)
    for name, stage in record.stages.items():
        error = f"  [red]{shown(stage.error)}" if stage.error else ""
        lines.append(f"stage {name}: {stage.status} {stage.seconds or 0:.3f} s{error}")
    return Group(*(Text.from_markup(x) if isinstance(x, str) else x for x in lines))


def listing_table(rows: list[ArticleRow]) -> Table:
    """`results list`: a row per article of the page."""
    table = Table()
    searched = any(r.snippet is not None for r in rows)
    for column in ("id", "batch", "your id", "status", "title", "agency", "entities"):
        table.add_column(column)
    if searched:
        table.add_column("matched")
    for r in rows:
        cells: list[str | Text] = [
            str(r.id),
            str(r.batch_id),
            shown(r.external_id or ""),
            r.status,
            shown((r.title or "")[:60]),
            shown(r.agency or ""),
            shown(", ".join(r.entities)),
        ]
        if searched:
            cells.append(snippet_text(r.snippet))
        table.add_row(*cells)
    return table


def snippet_text(snippet: Snippet | None) -> Text:
    """A snippet with its matches in bold (the text itself is never markup)."""
    out = Text()
    if snippet is None:
        return out
    at = 0
    for start, end in snippet.marks:
        out.append(CONTROL.sub("", snippet.text[at:start]))
        out.append(CONTROL.sub("", snippet.text[start:end]), style="bold")
        at = end
    out.append(CONTROL.sub("", snippet.text[at:]))
    return out


def entities_table(rows: list[EntityCount]) -> Table:
    """`results entities`: the top entities across articles."""
    table = Table()
    for column in ("name", "label", "articles", "contents", "mentions", "salience"):
        table.add_column(column)
    for r in rows:
        table.add_row(
            shown(r.name), r.label, str(r.articles), str(r.contents), str(r.mentions),
            f"{r.salience:.3f}",
        )  # fmt: skip
    return table


def stories_table(rows: list[StoryRow]) -> Table:
    """`results stories`: the largest stories."""
    table = Table()
    for column in ("story", "texts", "records", "first seen", "title"):
        table.add_column(column)
    for r in rows:
        table.add_row(str(r.id), str(r.size), str(r.records), r.first_seen, shown(r.title or ""))
    return table


def story_table(story: StoryDetail) -> Table:
    """`results stories ID`: a story's records, the first one marked."""
    title = f"story {story.id}: {shown(story.title or '')} (first seen {story.first_seen})"
    table = Table(title=title)
    for column in ("record", "first", "source", "agency", "published", "words", "similar", "title"):
        table.add_column(column)
    for c in story.copies:
        table.add_row(
            str(c.id), "*" if c.first else "", shown(c.source or c.url or ""),
            shown(c.agency or ""), c.published or "", str(c.word_count or ""),
            f"{c.similarity:.2f}", shown(c.title or ""),
        )  # fmt: skip
    return table
