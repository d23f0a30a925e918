"""`newsflow serve`: the HTTP API and the dashboard in one ASGI app, on the same Client as
the CLI. Errors are problem details (RFC 9457) a person can act on: 4xx for what the client
sent, 503 for a service that is away, never a traceback."""

from __future__ import annotations

import hmac
import logging
import os
from http import HTTPStatus
from pathlib import Path
from typing import Annotated, Any
from urllib.parse import unquote, urlsplit

from fastapi import Depends, FastAPI, HTTPException, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from fastapi.staticfiles import StaticFiles
from sqlalchemy.exc import SQLAlchemyError
from starlette.exceptions import HTTPException as StarletteHTTPException

from newsflow import __version__
from newsflow.config import Settings, get_settings, mask_secrets
from newsflow.db import error_reason
from newsflow.errors import ConfigurationError, NewsflowError, NotFound, ServiceUnavailable
from producer.client import Client

log = logging.getLogger(__name__)
HERE = Path(__file__).parent
PROBLEM = "application/problem+json"
TOKEN_COOKIE = "newsflow_token"  # set by static/live.js from the token field
bearer = HTTPBearer(auto_error=False)
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)]


def problem(status: int, detail: str, *, headers: dict[str, str] | None = None) -> JSONResponse:
    """An RFC 9457 problem document."""
    body = {"type": "about:blank", "title": HTTPStatus(status).phrase, "status": status,
            "detail": detail}  # fmt: skip
    return JSONResponse(body, status_code=status, media_type=PROBLEM, headers=headers)


def client_of(request: Request) -> Client:
    client: Client = request.app.state.client
    return client


def _token_matches(settings: Settings, given: str | None) -> bool:
    if settings.api_token is None:
        return True  # no token: `serve` listens on 127.0.0.1 only
    expected = settings.api_token.get_secret_value().encode()
    return hmac.compare_digest((given or "").encode(), expected)


def _refused(credentials: HTTPAuthorizationCredentials | None) -> HTTPException:
    detail = (
        "this needs the API token: send `Authorization: Bearer <NEWSFLOW_API_TOKEN>`"
        if credentials is None
        else "the bearer token is not this server's NEWSFLOW_API_TOKEN"
    )
    return HTTPException(401, detail, headers={"WWW-Authenticate": "Bearer"})


async def writer(request: Request, credentials: Credentials) -> Client:
    """The Client, for a request allowed to change things: with the token, and never sent
    by another site's page (a browser names the page's origin; curl and scripts send none)."""
    client = client_of(request)
    origin = request.headers.get("origin")
    if origin is not None and urlsplit(origin).netloc != request.headers.get("host"):
        raise HTTPException(403, f"a write from another site ({origin}) is refused")
    if not _token_matches(client.settings, credentials.credentials if credentials else None):
        raise _refused(credentials)
    return client


async def reader(request: Request, credentials: Credentials) -> Client:
    """The Client, for a request allowed to read (open unless NEWSFLOW_API_GUARD_READS).
    A guarded read also takes the token from the dashboard's cookie, which writes never
    do: a cookie goes with requests other sites make, a header does not."""
    client = client_of(request)
    cookie = unquote(request.cookies.get(TOKEN_COOKIE, ""))
    given = credentials.credentials if credentials else cookie
    if client.settings.api_guard_reads and not _token_matches(client.settings, given):
        raise _refused(credentials)
    return client


Writer = Annotated[Client, Depends(writer)]
Reader = Annotated[Client, Depends(reader)]


def _validation_detail(exc: RequestValidationError) -> str:
    parts = []
    for error in exc.errors():
        where = " ".join(str(part) for part in error["loc"])  # e.g. "query limit"
        parts.append(f"{where}: {error['msg']}")
    return "; ".join(parts)


def _install_problem_handlers(app: FastAPI) -> None:
    @app.exception_handler(StarletteHTTPException)
    async def http_error(_: Request, exc: StarletteHTTPException) -> JSONResponse:
        return problem(exc.status_code, str(exc.detail), headers=getattr(exc, "headers", None))

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        return problem(422, _validation_detail(exc))

    @app.exception_handler(ServiceUnavailable)
    async def away(_: Request, exc: ServiceUnavailable) -> JSONResponse:
        return problem(503, mask_secrets(str(exc)), headers={"Retry-After": "10"})

    @app.exception_handler(ConfigurationError)
    async def misconfigured(_: Request, exc: ConfigurationError) -> JSONResponse:
        return problem(503, mask_secrets(str(exc)))

    @app.exception_handler(NotFound)
    async def not_found(_: Request, exc: NotFound) -> JSONResponse:
        return problem(404, str(exc))

    @app.exception_handler(NewsflowError)
    async def refused(_: Request, exc: NewsflowError) -> JSONResponse:
        return problem(400, mask_secrets(str(exc)))

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
    from producer.web import api, pages

    app = FastAPI(
        title="newsflow",
        version=__version__,
        summary="Submit news articles, follow their processing, read the annotated records.",
        docs_url="/docs",
    )
    app.state.client = Client(settings or get_settings())
    _install_problem_handlers(app)
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
