"""Engines and sessions (built lazily, once per process), SQLite pragmas, migrations."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from functools import cache
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, Engine, any_, bindparam, create_engine, event, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import OperationalError, ProgrammingError, SQLAlchemyError
from sqlmodel import Session

from newsflow.config import mask_secrets, mask_url
from newsflow.errors import ConfigurationError, ServiceUnavailable

MIGRATIONS = Path(__file__).parent / "migrations"
READ_ONLY = "newsflow_read_only"


@cache
def _engine(url: str, pid: int) -> Engine:
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 60, "check_same_thread": False})
        _sqlite_setup(engine)
        return engine
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
    return create_engine(url, pool_pre_ping=True, pool_size=2, max_overflow=4)


def get_engine(url: str) -> Engine:
    """The engine for `url` in this process; a forked child builds its own pool."""
    try:
        return _engine(url, os.getpid())
    except (ImportError, SQLAlchemyError, ValueError) as exc:
        raise ConfigurationError(
            f"cannot use database URL {mask_url(url)}: {mask_secrets(str(exc))}; "
            "set NEWSFLOW_DATABASE_URL (or --db) to sqlite:///FILE or postgresql+psycopg://..."
        ) from exc


def _sqlite_setup(engine: Engine) -> None:
    """WAL for concurrent readers, a long busy timeout, foreign keys, and BEGIN IMMEDIATE
    for writing sessions.

    pysqlite's deferred BEGIN lets two writers both start reading and then fail to upgrade
    their lock with SQLITE_BUSY without waiting; taking the write lock up front makes them
    queue on busy_timeout instead. Read-only sessions (`read_scope`) take no lock at all.
    """

    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_conn: Any, _record: Any) -> None:
        dbapi_conn.isolation_level = None  # we issue BEGIN ourselves
        cursor = dbapi_conn.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.execute("PRAGMA busy_timeout=60000")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(conn: Any) -> None:
        # Readers never wait: WAL gives a deferred transaction a snapshot of its own.
        reading = conn.get_execution_options().get(READ_ONLY, False)
        conn.exec_driver_sql("BEGIN" if reading else "BEGIN IMMEDIATE")


@contextmanager
def session_scope(url: str) -> Iterator[Session]:
    """A session that commits on success and rolls back on error."""
    with Session(get_engine(url), expire_on_commit=False) as session:
        try:
            yield session
            session.commit()
        except BaseException:
            session.rollback()
            raise


@contextmanager
def read_scope(url: str) -> Iterator[Session]:
    """A session for reading only, on one snapshot (what a writer commits meanwhile is
    all in it or not at all): on SQLite it never waits for a writer, and it never creates
    a database file that is not there (a typo in --db is an error, not a new DB)."""
    if url.startswith("sqlite:///") and ":memory:" not in url:
        path = Path(url.removeprefix("sqlite:///").partition("?")[0])
        if not path.exists():
            raise ConfigurationError(
                f"no database at {path} (reading never creates one); check --db or "
                "NEWSFLOW_DATABASE_URL, or submit a batch first"
            )
    engine = get_engine(url).execution_options(**{READ_ONLY: True})
    if engine.dialect.name == "postgresql":  # one snapshot for every statement of a read:
        # a record is read in several, and a stage may commit its new output in between
        engine = engine.execution_options(
            isolation_level="REPEATABLE READ", postgresql_readonly=True
        )
    with Session(engine, expire_on_commit=False) as session:
        try:
            yield session
        finally:
            session.rollback()


def insert(session: Session, table: Any) -> Any:
    """The dialect's INSERT for `table` (a model or its table), which knows ON CONFLICT
    (both SQLite and PostgreSQL). Always the Core table's: rows given as parameters then
    skip the ORM's bulk path, which builds state per row that no statement here needs."""
    dialect = session.get_bind().dialect.name
    module = postgresql if dialect == "postgresql" else sqlite
    return module.insert(getattr(table, "__table__", table))


def among(session: Session, column: Any, ids: Iterable[int]) -> ColumnElement[bool]:
    """`column IN ids`. On PostgreSQL `column = ANY(:ids)`, one array parameter: a list of
    a parameter per id made a statement psycopg parses anew each time and PostgreSQL plans
    slowly (a 1,000-id page: 26 ms a statement; as an array, 6 ms)."""
    values = list(ids)
    if session.get_bind().dialect.name == "postgresql":
        return column == any_(bindparam(None, values, type_=postgresql.ARRAY(column.type)))
    return column.in_(values)  # type: ignore[no-any-return]


def error_reason(exc: BaseException) -> str:
    """The first line of a database error, from the driver when there is one, masked."""
    text = str(getattr(exc, "orig", None) or exc).strip() or type(exc).__name__
    return mask_secrets(text.splitlines()[0])


def check_connection(url: str) -> None:
    """Raise ServiceUnavailable, naming the URL (password masked), if the DB cannot be reached."""
    try:
        with get_engine(url).connect() as conn:
            conn.execute(text("SELECT 1"))
    except SQLAlchemyError as exc:
        raise ServiceUnavailable(
            f"cannot reach the database at {mask_url(url)}: {error_reason(exc)}; "
            "check that it is running, or set NEWSFLOW_DATABASE_URL (or --db)"
        ) from exc


NO_TABLE = re.compile(r"no such table|does not exist|UndefinedTable")


def identity(url: str) -> str | None:
    """The database's identity (models.DatabaseIdentity); None for one without the table
    (no newsflow schema, or one older than revision 0004); a database that cannot be
    reached raises, as any read does."""
    try:
        with get_engine(url).connect() as conn:
            found = conn.execute(text("SELECT id FROM database_identity")).scalar()
    except (OperationalError, ProgrammingError) as exc:
        if NO_TABLE.search(error_reason(exc)):
            return None
        raise
    return str(found) if found else None


def _alembic(url: str) -> Any:
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.attributes["url"] = url
    return config


def upgrade(url: str, revision: str = "head") -> None:
    """Apply the Alembic migrations up to `revision` (creates the tables on a new database)."""
    from alembic import command

    if url.startswith("sqlite:///"):
        Path(url.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)
    check_connection(url)
    command.upgrade(_alembic(url), revision)


def downgrade(url: str, revision: str) -> None:
    """Step the schema back to `revision` (an operator's way back from an upgrade)."""
    from alembic import command

    command.downgrade(_alembic(url), revision)


def ensure_schema(url: str) -> None:
    """Create the tables of a new database; refuse one at another schema revision than
    this code's, naming the fix. Migrating is `newsflow db upgrade`'s job, not a submit's:
    a migration locks tables and may take long, and wants an operator who chose it."""
    from alembic.runtime.migration import MigrationContext
    from alembic.script import ScriptDirectory

    if url.startswith("sqlite:///") and not Path(url.removeprefix("sqlite:///")).exists():
        upgrade(url)
        return
    check_connection(url)
    with get_engine(url).connect() as connection:
        current = MigrationContext.configure(connection).get_current_revision()
    if current is None:
        upgrade(url)  # a new database: nothing to migrate, only tables to create
        return
    scripts = ScriptDirectory.from_config(_alembic(url))
    head = scripts.get_current_head()
    if current == head:
        return
    known = {script.revision for script in scripts.walk_revisions()}
    where = f"the database at {mask_url(url)} is at schema revision {current}"
    if current in known:
        raise ConfigurationError(
            f"{where} and this newsflow needs {head}: run `newsflow db upgrade` "
            "(back the database up first if it holds results you want to keep)"
        )
    raise ConfigurationError(
        f"{where}, which this newsflow does not know (it needs {head}): "
        "the database was upgraded by a newer newsflow; upgrade this install"
    )
