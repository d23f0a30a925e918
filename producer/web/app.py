"""`newsflow serve`: the HTTP API and the dashboard in one ASGI app, on the same Client as
the CLI. Errors are problem details (RFC 9457) a person can act on: 4xx for what the client
sent, 503 for a service that is away, never a traceback."""

from __future__ import annotations

import asyncio
import logging
import os
from functools import partial
from pathlib import Path
from typing import Any, cast

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException
from swagger_ui_bundle import swagger_ui_path

from newsflow import __version__
from newsflow.config import Settings
from newsflow.db import error_reason
from newsflow.errors import ConfigurationError, NewsflowError, NotFound, ServiceUnavailable
from producer.client import Client
from producer.web import api, pages
from producer.web.auth import problem
from producer.web.guard import (
    BACKLOG,
    AllowedHosts,
    BodyDeadline,
    BodyTimedOut,
    GuardedH11Protocol,
    Limits,
    allowed_hosts,
    connection_cap,
    quiet_accept_errors,
)
from producer.web.streams import BatchWatch

log = logging.getLogger(__name__)
HERE = Path(__file__).parent


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = " ".join(str(part) for part in error["loc"])  # e.g. "query limit"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _install_problem_handlers(app: FastAPI, settings: Settings) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, _validation_detail(exc))

    @app.exception_handler(ServiceUnavailable)
    async def away(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        return problem(503, settings.mask(str(exc)), headers={"Retry-After": "10"})

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_: Request, exc: ConfigurationError) -> JSONResponse:
        return problem(503, settings.mask(str(exc)))

    @app.exception_handler(BodyTimedOut)
    async def stalled(_: Request, exc: BodyTimedOut) -> JSONResponse:
        return problem(408, str(exc), headers={"Connection": "close"})

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(NewsflowError)
    async def refused(_: Request, exc: NewsflowError) -> JSONResponse:
        return problem(400, settings.mask(str(exc)))

    @app.exception_handler(SQLAlchemyError)
    async def database(_: Request, exc: SQLAlchemyError) -> JSONResponse:
        detail = f"the database failed: {error_reason(exc)}; is it up and upgraded?"
        return problem(503, detail, headers={"Retry-After": "10"})

    @app.exception_handler(Exception)
    async def unexpected(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unexpected error")
        return problem(500, f"unexpected {type(exc).__name__}; the server log has the details")


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for `settings` (default: the NEWSFLOW_* environment), behind the Host check
    and the body deadline (guard.py)."""
    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title="newsflow",
        version=__version__,
        summary="Submit news articles, follow their processing, read the annotated records.",
        docs_url=None,  # pages.docs serves Swagger UI from its package, under the CSP
        redoc_url=None,
        responses=api.PROBLEMS,
    )
    app.state.client = Client(settings)
    app.state.streams = BatchWatch(
        lambda batch_id: app.state.client.batches(batch_id)[0],
        max_streams=settings.api_max_streams,
        max_per_client=settings.api_max_streams_per_client,
    )
    _install_problem_handlers(app, settings)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.mount("/docs/assets", StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")
    app.add_middleware(BodyDeadline, seconds=settings.api_body_timeout)
    hosts = allowed_hosts(settings.api_allowed_hosts, "127.0.0.1")
    app.add_middleware(AllowedHosts, hosts=hosts)
    quiet_accept_errors()  # here too: with --workers N each process builds its own app
    return app


def run(settings: Settings, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    """Serve until stopped, with the connection cap and header deadline of guard.py; with
    several worker processes each builds its app from the environment, so the settings
    given here are put there first."""
    import uvicorn

    hosts = ",".join(allowed_hosts(settings.api_allowed_hosts, host))
    settings = settings.model_copy(update={"api_allowed_hosts": hosts})
    limits = Limits(
        header_timeout=settings.api_header_timeout,
        max_connections=connection_cap(settings.api_max_connections),
    )
    protocol = cast(type[asyncio.Protocol], partial(GuardedH11Protocol, limits=limits))
    options |= {"http": protocol, "timeout_keep_alive": settings.api_keepalive_timeout,
                "host": host, "port": port, "backlog": BACKLOG}  # fmt: skip
    quiet_accept_errors()
    if workers == 1:
        uvicorn.run(create_app(settings), **options)
        return
    os.environ["NEWSFLOW_DATABASE_URL"] = settings.database_url
    os.environ["NEWSFLOW_BROKER_URL"] = settings.broker()
    os.environ["NEWSFLOW_API_ALLOWED_HOSTS"] = hosts
    uvicorn.run(f"{__name__}:create_app", factory=True, workers=workers, **options)
