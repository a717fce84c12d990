"""The database behind both stores: SQLite by default, PostgreSQL by a URL; the schema by Alembic.

`prepare(url)` runs at server start (create_app): it brings the schema to the head revision
(or, with migrate=False, only checks that it is there) and fails closed with one line when the
database is unreachable, behind, or ahead of this server. A PostgreSQL upgrade holds an
advisory lock, so replicas starting together migrate once.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import create_engine, event, make_url, text
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.exc import ArgumentError, DisconnectionError, SQLAlchemyError

if TYPE_CHECKING:
    from sqlalchemy import Engine, Table
    from sqlalchemy.sql.dml import Insert

MIGRATIONS = Path(__file__).parent / "migrations"
_MIGRATION_LOCK = 0x5EC10700  # pg_advisory_xact_lock key: one schema upgrade at a time across replicas
_engines: dict[str, Engine] = {}
_engines_lock = threading.Lock()


class StorageError(Exception):
    """The database cannot serve this server (unreachable, schema behind or ahead); one line to act on."""


def database_url(location: str | Path) -> str:
    """A URL as given (``postgresql+psycopg://…``, ``sqlite:///…``), or a file path for SQLite."""
    if isinstance(location, str) and "://" in location:
        return location
    return f"sqlite:///{Path(location)}"


def shown(url: str) -> str:
    """The URL without its password, for messages."""
    return make_url(url).render_as_string(hide_password=True)


def engine_for(location: str | Path) -> Engine:
    """One engine per URL, each with a small pool: PostgreSQL's connections are checked before
    each use; SQLite's stay open so its write-ahead log does too (closing the last connection
    checkpoints and deletes it, which made every write cost ~45 ms instead of ~10)."""
    url = database_url(location)
    with _engines_lock:
        engine = _engines.get(url)
        if engine is None:
            if make_url(url).get_backend_name() == "sqlite":
                engine = create_engine(url, pool_size=5, max_overflow=10, connect_args={"timeout": 5.0})
                _sqlite_transactions(engine)
            else:
                engine = create_engine(url, pool_size=5, max_overflow=10, pool_pre_ping=True, pool_timeout=5)
            _engines[url] = engine
    return engine


def _sqlite_transactions(engine: Engine) -> None:
    """Real transactions on SQLite: the driver's own BEGIN handling (off) would commit each DDL
    statement alone; here every engine.begin() is one BEGIN … COMMIT, so a migration is atomic
    and costs one sync, not one per table. The file is in WAL mode: a commit is one fsync of the
    log (synchronous=FULL, still durable) instead of three with a rollback journal, and readers
    do not wait for a writer."""

    @event.listens_for(engine, "connect")
    def _no_driver_transactions(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None
        dbapi_connection.execute("PRAGMA journal_mode=WAL")
        dbapi_connection.execute("PRAGMA synchronous=FULL")

    path = sqlite_file(engine)

    @event.listens_for(engine, "checkout")
    def _file_still_there(_dbapi_connection: Any, _record: Any, _proxy: Any) -> None:
        # A pooled connection would go on answering from a file removed under the server; this
        # one is dropped and the pool reconnects, which fails (or finds no tables): a 503.
        if path is not None and not path.is_file():
            raise DisconnectionError(f"{path}: the database file is gone")

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        conn.exec_driver_sql("BEGIN")


def dispose_engines() -> None:
    """Close every pooled connection and forget the engines (tests, before their database stops)."""
    with _engines_lock:
        for engine in _engines.values():
            engine.dispose()
        _engines.clear()


def sqlite_file(engine: Engine) -> Path | None:
    """The file of a SQLite database (None for PostgreSQL or an in-memory database)."""
    name = engine.url.database if engine.dialect.name == "sqlite" else None
    return Path(name) if name and name != ":memory:" else None


def insert(engine: Engine, table: Table) -> Any:
    """The dialect's INSERT, which has ON CONFLICT (both SQLite and PostgreSQL speak it)."""
    maker: Any = postgresql.insert if engine.dialect.name == "postgresql" else sqlite.insert
    statement: Insert = maker(table)
    return statement


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def head_revision() -> str:
    head = ScriptDirectory.from_config(alembic_config("sqlite://")).get_current_head()
    if head is None:
        raise StorageError(f"{MIGRATIONS}: no migration found (a broken install)")
    return head


def _one_line(exc: BaseException) -> str:
    cause = getattr(exc, "orig", None) or exc
    return (str(cause).strip().splitlines() or [type(cause).__name__])[0]


def prepare(location: str | Path, *, migrate: bool = True) -> str:
    """Bring the schema to head (or check it is there); the revision, or StorageError."""
    url = database_url(location)
    try:
        engine = engine_for(url)
    except (ArgumentError, ImportError) as exc:  # not a URL, or a database this server has no driver for
        raise StorageError(
            f"SECURE_IOT_DB_URL: {_one_line(exc)} (expected postgresql+psycopg://… or sqlite:///…)"
        ) from None
    config = alembic_config(url)
    script = ScriptDirectory.from_config(config)
    head = head_revision()
    try:
        with engine.begin() as conn:
            if engine.dialect.name == "postgresql":
                conn.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK})
            current = MigrationContext.configure(conn).get_current_revision()
            if current is not None and current != head and not _known(script, current):
                raise StorageError(
                    f"database {shown(url)} is at schema {current}, newer than this server knows ({head}); "
                    "run the server version that migrated it"
                )
            if current != head and migrate:
                config.attributes["connection"] = conn
                command.upgrade(config, "head")
                current = head
    except SQLAlchemyError as exc:
        raise StorageError(f"database {shown(url)} unreachable: {_one_line(exc)}") from None
    if current != head:
        raise StorageError(
            f"database {shown(url)} is at schema {current or 'none'}, the server needs {head}: "
            "run `alembic upgrade head` (or start with SECURE_IOT_DB_MIGRATE=1)"
        )
    return head


def _known(script: ScriptDirectory, revision: str) -> bool:
    try:
        return script.get_revision(revision) is not None
    except Exception:  # alembic raises its own ResolutionError/CommandError family
        return False
