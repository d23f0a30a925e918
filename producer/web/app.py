"""`newsflow serve`: the HTTP API and the dashboard in one ASGI app, on the same Client as
the CLI. Errors are problem details (RFC 9457) a person can act on: 4xx for what the client
sent, 503 for a service that is away, never a traceback."""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsflow import __version__
from newsflow.config import Settings
from newsflow.db import error_reason
from newsflow.errors import ConfigurationError, NewsflowError, NotFound, ServiceUnavailable
from producer.client import Client
from producer.web import api, pages
from producer.web.auth import problem

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
    """The app for `settings` (default: the NEWSFLOW_* environment)."""
    settings = settings if settings is not None else Settings()
    app = FastAPI(
        title="newsflow",
        version=__version__,
        summary="Submit news articles, follow their processing, read the annotated records.",
        docs_url="/docs",
    )
    app.state.client = Client(settings)
    _install_problem_handlers(app, settings)
    app.include_router(api.router)
    app.include_router(pages.router)
    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    return app


def run(settings: Settings, *, host: str, port: int, workers: int = 1, **options: Any) -> None:
    """Serve until stopped; with several worker processes, each builds its app from the
    environment, so the settings given here are put there first."""
    import uvicorn

    if workers == 1:
        uvicorn.run(create_app(settings), host=host, port=port, **options)
        return
    os.environ["NEWSFLOW_DATABASE_URL"] = settings.database_url
    os.environ["NEWSFLOW_BROKER_URL"] = settings.broker()
    uvicorn.run(f"{__name__}:create_app", factory=True, host=host, port=port, workers=workers,
                **options)  # fmt: skip
