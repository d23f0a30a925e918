"""Who may do what through `serve`: the bearer token for writes (and for reads when
NEWSFLOW_API_GUARD_READS is set), no writes from other sites' pages, and the problem
documents (RFC 9457) every refusal is answered with."""

from __future__ import annotations

import hmac
from http import HTTPStatus
from typing import Annotated
from urllib.parse import unquote, urlsplit

from fastapi import Depends, HTTPException, Request
from fastapi.responses import JSONResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from newsflow.config import Settings
from producer.client import Client

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
