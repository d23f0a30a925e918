"""The `newsflow` command: a thin layer over the producer functions.

Exit codes: 0 all good, 1 some records were rejected or failed, 2 usage or configuration
error (including an unreachable broker or database), 130 interrupted.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
import re
import signal
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import IO, Annotated

import typer
from packaging.version import InvalidVersion
from pydantic import BaseModel, ValidationError
from rich.console import Console
from rich.live import Live
from sqlalchemy.exc import SQLAlchemyError

from newsflow import db
from newsflow.config import Settings, mask_secrets, mask_url
from newsflow.contract import ARTICLE_STATUSES, QUEUES, STAGES
from newsflow.errors import NewsflowError, NotFound
from newsflow.record import ArticleRow, Filters, Submitted
from producer import embedded, views
from producer.client import Client
from producer.local import LocalWorkers, worker_command, worker_env
from producer.terminal import shown

app = typer.Typer(
    help="newsflow: clean, annotate and summarise news articles through Redis and Celery.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
results_app = typer.Typer(help="Read stored results.", no_args_is_help=True)
db_app = typer.Typer(help="Database schema.", no_args_is_help=True)
app.add_typer(results_app, name="results")
app.add_typer(db_app, name="db")

out = Console()
err = Console(stderr=True)

JsonFlag = Annotated[bool, typer.Option("--json", help="Print JSON for scripts.")]
BatchOption = Annotated[int | None, typer.Option("--batch", help="Only this batch.")]


class Invocation:
    """What one run of the command knows: its settings (the environment and the global
    flags), once the callback has read them; the error handler masks with them."""

    settings: Settings | None = None


@app.callback()
def main_options(
    ctx: typer.Context,
    db_url: Annotated[
        str | None, typer.Option("--db", help="Database URL (overrides NEWSFLOW_DATABASE_URL).")
    ] = None,
    broker_url: Annotated[
        str | None, typer.Option("--broker", help="Redis URL (overrides NEWSFLOW_BROKER_URL).")
    ] = None,
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    logging.basicConfig(
        level=logging.INFO if verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    overrides = {k: v for k, v in (("database_url", db_url), ("broker_url", broker_url)) if v}
    if not isinstance(ctx.obj, Invocation):
        ctx.obj = Invocation()
    ctx.obj.settings = Settings().model_copy(update=overrides)


def _settings(ctx: typer.Context) -> Settings:
    invocation = ctx.find_object(Invocation)
    assert invocation is not None and invocation.settings is not None
    return invocation.settings


def _report_submit(result: Submitted, as_json: bool) -> None:
    if as_json:
        out.print_json(result.model_dump_json())
        return
    for rejected in result.rejected:
        err.print(f"[red]rejected[/] {shown(rejected)}", highlight=False)
    err.print(
        f"batch {result.batch_id}: {result.submitted} submitted "
        f"({result.duplicates} already stored), {len(result.rejected)} rejected, "
        f"{result.queued} queued",
        highlight=False,
    )


@app.command()
def submit(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="JSONL, .txt or .html files, folders, or - for stdin.")
    ],
    name: Annotated[str | None, typer.Option(help="A name for the batch.")] = None,
    chunk_size: Annotated[int | None, typer.Option(help="Articles per queue message.")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Wait for the batch to finish, with progress.")
    ] = False,
    timeout: Annotated[
        float | None,
        typer.Option(help="With --wait: give up after this many seconds, saying what is stuck."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Store a batch of articles and queue them for the workers."""
    settings = _settings(ctx)
    if chunk_size:
        settings = settings.model_copy(update={"chunk_size": chunk_size})
    client = Client(settings)
    result = client.submit(paths, name=name)
    _report_submit(result, as_json)
    failed = 0
    if wait:
        failed = client.wait(result.batch_id, timeout=timeout).failed
    raise typer.Exit(1 if result.rejected or failed else 0)


@app.command()
def run(
    ctx: typer.Context,
    paths: Annotated[
        list[str], typer.Argument(help="JSONL, .txt or .html files, folders, or - for stdin.")
    ],
    workers: Annotated[int, typer.Option(help="Worker processes (default: one per core).")] = 0,
    name: Annotated[str | None, typer.Option(help="A name for the batch.")] = None,
    as_json: JsonFlag = False,
    serve: Annotated[
        bool, typer.Option("--serve", help="Then keep the dashboard up on --port until Ctrl-C.")
    ] = False,
    port: Annotated[int, typer.Option(help="The dashboard's port, with --serve.")] = 8000,
) -> None:
    """All in one: broker (embedded unless configured), workers, submit, progress, results."""
    settings = _settings(ctx)
    client = Client(settings)
    client.upgrade()
    started = time.monotonic()
    with ExitStack() as stack:
        fresh_broker = False  # a broker we just started holds no messages
        if settings.embedded:
            _, fresh_broker = stack.enter_context(embedded.shared(settings.embedded_socket))
        local = stack.enter_context(
            LocalWorkers(settings, concurrency=workers or os.cpu_count() or 1)
        )
        # A broker we just started holds no messages: resume anything left unfinished.
        result = client.submit(paths, name=name, resume_unfinished=fresh_broker)
        if not as_json:
            _report_submit(result, False)
        try:
            progress = client.wait(result.batch_id, alive=local.alive)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; see {local.log}") from None
        seconds = time.monotonic() - started
        records = list(client.results(Filters(batch_id=result.batch_id)))
        if as_json:
            report = {
                **result.model_dump(mode="json"),
                "progress": progress.model_dump(mode="json"),
                "seconds": round(seconds, 2),
            }
            out.print_json(json.dumps(report))
        else:
            out.print(views.results_table(records))
            err.print(
                f"{progress.done} done, {progress.failed} failed in {seconds:.1f} s; "
                f"see `newsflow results show ID` or `newsflow results export`",
                highlight=False,
            )
        if serve:  # broker and workers stay up with it, so a requeue from the page runs
            _serve(settings, "127.0.0.1", port)
    raise typer.Exit(1 if result.rejected or progress.failed else 0)


@app.command()
def worker(
    ctx: typer.Context,
    queues: Annotated[str, typer.Option(help="Comma-separated queues to serve.")] = ",".join(
        QUEUES
    ),
    concurrency: Annotated[int, typer.Option(help="Worker processes (default: one per core).")] = 0,
    loglevel: Annotated[str, typer.Option(help="Celery log level.")] = "INFO",
) -> None:
    """Run a worker (needs the worker extra: pip install 'newsflow[worker]')."""
    from producer.broker import check_broker

    settings = _settings(ctx)
    unknown = set(queues.split(",")) - set(QUEUES)
    if unknown:
        raise typer.BadParameter(f"unknown queue(s) {sorted(unknown)}; choose from {list(QUEUES)}")
    check_broker(settings)
    db.check_connection(settings.database_url)
    if importlib.util.find_spec("spacy") is None:
        raise NewsflowError("the worker needs its extra: pip install 'newsflow[worker]'")
    command = worker_command(
        queues=queues,
        concurrency=concurrency or os.cpu_count() or 1,
        loglevel=loglevel,
        name=f"newsflow-{os.getpid()}",
    )
    os.execve(sys.executable, command, worker_env(settings))  # celery takes this process


@app.command()
def broker(
    ctx: typer.Context,
    persist: Annotated[
        bool, typer.Option(help="Keep queues on disk (AOF) across restarts.")
    ] = True,
) -> None:
    """Keep the embedded Redis up (for `worker` and `submit` in other terminals) until Ctrl-C."""
    settings = _settings(ctx)
    if not settings.embedded:
        raise NewsflowError(
            "NEWSFLOW_BROKER_URL is set, so the embedded broker is not used; unset it"
        )
    with embedded.shared(settings.embedded_socket, persist=persist) as (url, _):
        err.print(
            f"embedded Redis on {url}; Ctrl-C leaves it (it stops when nothing else uses it)",
            highlight=False,
        )
        while embedded.is_running(settings.embedded_socket):
            time.sleep(0.5)


@app.command()
def status(
    ctx: typer.Context,
    batch: BatchOption = None,
    watch: Annotated[bool, typer.Option("--watch", help="Refresh in place until Ctrl-C.")] = False,
    as_json: JsonFlag = False,
) -> None:
    """Queues, workers, batch progress and latest failures."""
    client = Client(_settings(ctx))
    if as_json:
        out.print_json(client.status(batch_id=batch).model_dump_json())
        return
    if not watch:
        out.print(views.status_view(client.status(batch_id=batch)))
        return
    with Live(views.status_view(client.status(batch_id=batch)), console=out) as live:
        while True:
            time.sleep(2)
            live.update(views.status_view(client.status(batch_id=batch)))


@app.command()
def metrics(
    ctx: typer.Context,
    port: Annotated[int, typer.Option(help="Port of the /metrics endpoint.")] = 9808,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
) -> None:
    """Serve Prometheus metrics (queues, articles by stage and status, workers) until Ctrl-C."""
    from prometheus_client import REGISTRY, start_http_server

    from producer.metrics import NewsflowCollector

    REGISTRY.register(NewsflowCollector(_settings(ctx)))
    start_http_server(port, addr=host)
    err.print(f"metrics on http://{host}:{port}/metrics; Ctrl-C stops", highlight=False)
    while True:
        time.sleep(3600)


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@app.command()
def serve(
    ctx: typer.Context,
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on.")] = 8000,
    workers: Annotated[int, typer.Option(help="Server processes.", min=1)] = 1,
) -> None:
    """The HTTP API (OpenAPI at /docs) and the dashboard (at /) until Ctrl-C."""
    settings = _settings(ctx)
    if settings.api_token is None and host not in LOCAL_HOSTS:
        raise NewsflowError(
            f"refusing to listen on {host} without a token: anyone who reaches it could "
            "submit and requeue; set NEWSFLOW_API_TOKEN (or keep --host 127.0.0.1)"
        )
    db.ensure_schema(settings.database_url)
    _serve(settings, host, port, workers)


def _serve(settings: Settings, host: str, port: int, workers: int = 1) -> None:
    guard = "token needed for writes" if settings.api_token else "no token: this machine only"
    if settings.api_guard_reads:
        guard += " and reads"
    err.print(f"newsflow on http://{host}:{port}/ ({guard}); Ctrl-C stops", highlight=False)
    from producer.web.app import run as run_server

    run_server(settings, host=host, port=port, workers=workers, log_level="warning")


@app.command()
def requeue(
    ctx: typer.Context,
    batch: BatchOption = None,
    stage: Annotated[
        str | None, typer.Option(help=f"Only this stage ({', '.join(STAGES)}).")
    ] = None,
    failed: Annotated[bool, typer.Option("--failed", help="Also retry failed stages.")] = False,
    force: Annotated[
        bool,
        typer.Option(
            "--force", help="Also what may still have a live message (after a broker loss)."
        ),
    ] = False,
) -> None:
    """Queue again, from the DB, what has no live message; says what it skipped and why."""
    if stage is not None and stage not in STAGES:
        raise typer.BadParameter(f"unknown stage {stage!r}; choose from {', '.join(STAGES)}")
    found = Client(_settings(ctx)).requeue(batch_id=batch, stage=stage, failed=failed, force=force)
    sent = ", ".join(f"{found.sent.get(s, 0)} {s}" for s in STAGES)
    err.print(f"requeued: {sent}", highlight=False)
    for name, reasons in found.skipped.items():
        for reason, count in reasons.items():
            err.print(f"skipped {count} {name}: {reason}", highlight=False)
    if found.skipped and not force:
        err.print(
            "after a broker restart or flush nothing is live: `--force` sends those too",
            highlight=False,
        )


@app.command()
def reprocess(
    ctx: typer.Context,
    batch: BatchOption = None,
    stage: Annotated[
        list[str] | None,
        typer.Option(help=f"Only this stage ({', '.join(STAGES)}); repeat for more. Default all."),
    ] = None,
    before: Annotated[
        str | None,
        typer.Option(help="Only output made by a newsflow older than this version (e.g. 0.2.0)."),
    ] = None,
    model: Annotated[
        str | None, typer.Option(help="Only output made with this model (`results show`).")
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """Run stages again on stored articles, after the rules or the model changed: queued
    like new work while the service runs; readers see the old output until the new one
    is stored. A clean run again runs the later stages again too."""
    unknown = [s for s in stage or () if s not in STAGES]
    if unknown:
        raise typer.BadParameter(f"unknown stage {unknown[0]!r}; choose from {', '.join(STAGES)}")
    if before is not None and model is not None:
        raise typer.BadParameter("give --before or --model, not both")
    try:
        found = Client(_settings(ctx)).reprocess(
            batch_id=batch, stages=stage or STAGES, before=before, model=model
        )
    except InvalidVersion:
        raise typer.BadParameter(f"--before: {before!r} is not a version (e.g. 0.2.0)") from None
    if as_json:
        out.print_json(json.dumps({"queued": found.sent}))
        return
    sent = ", ".join(f"{found.sent.get(s, 0)} {s}" for s in STAGES)
    err.print(f"queued again: {sent}; `newsflow status` shows the progress", highlight=False)


@db_app.command("upgrade")
def db_upgrade(ctx: typer.Context) -> None:
    """Create or migrate the tables to the latest schema."""
    Client(_settings(ctx)).upgrade()
    err.print("database schema is up to date", highlight=False)


def _json_list(items: Sequence[BaseModel]) -> str:
    return "[" + ",".join(item.model_dump_json() for item in items) + "]"


@results_app.command("show")
def results_show(
    ctx: typer.Context,
    record_id: Annotated[int | None, typer.Argument(help="The record's id.")] = None,
    external_id: Annotated[
        str | None,
        typer.Option("--external-id", help="Instead: the records you submitted under this id."),
    ] = None,
    as_json: JsonFlag = False,
) -> None:
    """One record, or those you submitted under your own id: fields, summary, entities,
    keyphrases, stages."""
    if (record_id is None) == (external_id is None):
        raise typer.BadParameter("give a record ID or --external-id (one of them)")
    client = Client(_settings(ctx))
    if external_id is None:
        assert record_id is not None
        found = [client.record(record_id)]
    elif not (found := client.find(external_id)):
        raise NotFound(f"no article was submitted with the id {external_id!r}")
    if as_json:
        only = found[0] if external_id is None else None
        out.print_json(only.model_dump_json() if only else _json_list(found))
        return
    for record in found:
        out.print(views.article_view(record))


def _status_option(status: str | None) -> str | None:
    if status is not None and status not in ARTICLE_STATUSES:
        raise typer.BadParameter(
            f"unknown status {status!r}; choose from {', '.join(ARTICLE_STATUSES)}"
        )
    return status


def _filters(**given: object) -> Filters:
    """The Filters of the options given; a malformed one is a usage error naming it."""
    try:
        return Filters.model_validate({k: v for k, v in given.items() if v is not None})
    except ValidationError as exc:
        first = exc.errors()[0]
        option = "--" + str(first["loc"][0]).removesuffix("_id").replace("_", "-")
        raise typer.BadParameter(f"{option}: {first['msg']}") from None


StatusOption = Annotated[
    str | None,
    typer.Option(help="queued, processing, done or failed.", callback=_status_option),
]


@results_app.command("list")
def results_list(
    ctx: typer.Context,
    batch: BatchOption = None,
    status: StatusOption = None,
    entity: Annotated[str | None, typer.Option(help="Only articles naming this entity.")] = None,
    story: Annotated[
        int | None, typer.Option(help="Only the records of this story.", min=1)
    ] = None,
    agency: Annotated[str | None, typer.Option(help="Only this agency, any case.")] = None,
    language: Annotated[str | None, typer.Option(help="Only this language code.")] = None,
    since: Annotated[str | None, typer.Option(help="Published on or after (YYYY-MM-DD).")] = None,
    until: Annotated[str | None, typer.Option(help="Published on or before (YYYY-MM-DD).")] = None,
    external_id: Annotated[
        str | None, typer.Option("--external-id", help="Only what you submitted under this id.")
    ] = None,
    query: Annotated[
        str | None,
        typer.Option(
            "--query",
            "-q",
            help='Full-text search of title and body: words, "a phrase", or, -word; '
            "best match first, with where it matched.",
        ),
    ] = None,
    limit: Annotated[int, typer.Option(help="Rows per page.", min=1, max=1000)] = 50,
    page: Annotated[int, typer.Option(help="Page number, from 1.", min=1)] = 1,
    as_json: JsonFlag = False,
) -> None:
    """Records (one per submission) with their status, a page at a time."""
    filters = _filters(
        batch_id=batch, status=status, entity=entity, agency=agency, language=language,
        since=since, until=until, external_id=external_id, query=query, story=story,
    )  # fmt: skip
    rows, _ = Client(_settings(ctx)).rows(filters, limit=limit, offset=(page - 1) * limit)
    if as_json:
        out.print_json(_json_list(rows))
        return
    out.print(views.listing_table(rows))


@results_app.command("export")
def results_export(
    ctx: typer.Context,
    batch: BatchOption = None,
    fmt: Annotated[str, typer.Option("--format", help="jsonl or csv.")] = "jsonl",
    output: Annotated[
        Path | None, typer.Option("--output", help="File to write (default stdout).")
    ] = None,
    status: StatusOption = None,
) -> None:
    """Every record (one per submission), streamed in constant memory as JSONL or CSV."""
    if fmt not in ("jsonl", "csv"):
        raise typer.BadParameter("--format must be jsonl or csv")
    client = Client(_settings(ctx))
    filters = _filters(batch_id=batch, status=status)
    if output is None:
        count = client.export(sys.stdout, filters, fmt=fmt)
    else:
        with _replacing(output) as target:  # FILE is untouched unless the export completes
            count = client.export(target, filters, fmt=fmt)
    err.print(f"exported {count} records", highlight=False)


@contextmanager
def _replacing(path: Path) -> Iterator[IO[str]]:
    """A temporary file beside `path` that takes its place only when the block succeeds."""
    descriptor, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with open(descriptor, "w", encoding="utf-8", newline="") as handle:
            yield handle
        os.replace(name, path)
    except BaseException:
        Path(name).unlink(missing_ok=True)
        raise


@results_app.command("search")
def results_search(
    ctx: typer.Context,
    entity: Annotated[str, typer.Option(help="Entity name or alias, any case.")],
    as_json: JsonFlag = False,
) -> None:
    """Articles that mention an entity."""
    rows = [ArticleRow.of(r) for r in Client(_settings(ctx)).search(entity)]
    if as_json:
        out.print_json(_json_list(rows))
        return
    for r in rows:
        out.print(f"{r.id}\t{shown(r.title or '')}\t{shown(r.agency or '')}", highlight=False)


@results_app.command("entities")
def results_entities(
    ctx: typer.Context,
    batch: BatchOption = None,
    label: Annotated[str | None, typer.Option(help="Only this label, e.g. PERSON.")] = None,
    top: Annotated[int, typer.Option(help="How many.")] = 20,
    as_json: JsonFlag = False,
) -> None:
    """Who and what a batch is about: entities across its records (`articles` counts
    submissions, syndicated copies included; `contents` the distinct texts)."""
    rows = Client(_settings(ctx)).entities(batch_id=batch, label=label, top=top)
    if as_json:
        out.print_json(_json_list(rows))
        return
    out.print(views.entities_table(rows))


@results_app.command("stories")
def results_stories(
    ctx: typer.Context,
    story: Annotated[int | None, typer.Argument(help="Show this story's records.")] = None,
    batch: BatchOption = None,
    min_size: Annotated[int, typer.Option(help="At least this many texts.", min=1)] = 2,
    top: Annotated[int, typer.Option(help="How many.", min=1, max=1000)] = 50,
    as_json: JsonFlag = False,
) -> None:
    """Stories: the copies, cuts and updated versions of one article, grouped (largest
    first); with an id, that story's records, the one that came first on top."""
    client = Client(_settings(ctx))
    if story is not None:
        found = client.story(story)
        if as_json:
            out.print_json(found.model_dump_json())
            return
        out.print(views.story_table(found))
        return
    rows = client.stories(batch_id=batch, min_size=min_size, limit=top)
    if as_json:
        out.print_json(_json_list(rows))
        return
    out.print(views.stories_table(rows))


def _database_hint(exc: SQLAlchemyError, settings: Settings) -> str:
    reason = db.error_reason(exc)
    url = mask_url(settings.database_url)
    if re.search(r"no such table|does not exist|UndefinedTable", reason):
        return f"the database at {url} has no newsflow tables ({reason}); run `newsflow db upgrade`"
    if "database is locked" in reason:
        return (
            f"the SQLite database at {url} stayed locked by another writer for 60 s (a large "
            "submit?); try again when it is done, or use PostgreSQL for heavy concurrent writes"
        )
    return f"database error at {url}: {reason}; check NEWSFLOW_DATABASE_URL (or --db)"


@contextmanager
def _friendly_errors(invocation: Invocation) -> Iterator[None]:
    def masked(exc: BaseException) -> str:
        given = invocation.settings
        return shown(given.mask(str(exc)) if given else mask_secrets(str(exc)))

    try:
        yield
    except SQLAlchemyError as exc:
        settings = invocation.settings or Settings()
        err.print(f"[red]error:[/] {shown(_database_hint(exc, settings))}", highlight=False)
        raise SystemExit(2) from None
    except NewsflowError as exc:
        err.print(f"[red]error:[/] {masked(exc)}", highlight=False)
        raise SystemExit(2) from None
    except (RuntimeError, TimeoutError) as exc:
        err.print(f"[red]error:[/] {masked(exc)}", highlight=False)
        raise SystemExit(1) from None
    except KeyboardInterrupt:
        err.print("interrupted; stopped what this command started", highlight=False)
        raise SystemExit(130) from None
    except Exception as exc:
        logging.getLogger("newsflow").info("unexpected error", exc_info=True)
        err.print(
            f"[red]unexpected error:[/] {type(exc).__name__}: {masked(exc)} "
            "(run with --verbose for the traceback)",
            highlight=False,
        )
        raise SystemExit(2) from None


def _terminate(signum: int, _frame: object) -> None:
    raise SystemExit(128 + signum)  # unwinds, so `run` and `broker` stop what they started


def main() -> None:
    for signum in (signal.SIGTERM, signal.SIGHUP):  # a closed terminal stops us cleanly too
        signal.signal(signum, _terminate)
    invocation = Invocation()
    with _friendly_errors(invocation):
        app(obj=invocation)


if __name__ == "__main__":
    main()
