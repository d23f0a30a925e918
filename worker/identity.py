"""Whether a message is for this worker's database: the identity the producer put in it
(newsflow.models.DatabaseIdentity) against the one of the database the worker opened.

A worker started with another NEWSFLOW_DATABASE_URL than the producer's, or whose SQLite
file was deleted or replaced while it ran, would otherwise find none of a message's ids
(or worse, other articles under the same ids) and acknowledge it, losing the work.
"""

from __future__ import annotations

from newsflow import db
from newsflow.config import mask_url

_known: dict[str, str | None] = {}  # per database URL, in this process


def mine(url: str, *, fresh: bool = False) -> str | None:
    """The identity of the database at `url`, read once; `fresh` closes the pooled
    connections first and reads it again (a SQLite file replaced is opened anew)."""
    if fresh or url not in _known:
        if fresh:
            db.get_engine(url).dispose()
        _known[url] = db.identity(url)
    return _known[url]


def mismatch(url: str, database: str | None) -> str | None:
    """None when a message naming `database` is for the database at `url` (or names none:
    sent by a producer from before identities), else the reason it is not."""
    if database is None or mine(url) == database or mine(url, fresh=True) == database:
        return None
    found = _known[url]
    have = "has no newsflow schema" if found is None else f"is database {found}"
    return (
        f"the message is for database {database}, but this worker's {mask_url(url)} {have}: "
        "the worker and the producer use different databases (NEWSFLOW_DATABASE_URL), or "
        "the SQLite file was replaced; point the worker at the producer's database and "
        "restart it"
    )
