"""Engines for local and global stores: SQLite pragmas, the schema check, the upsert."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, select
from sqlalchemy.dialects import sqlite
from sqlalchemy.engine import make_url
from sqlalchemy.exc import (
    ArgumentError,
    IntegrityError,
    NoSuchModuleError,
    OperationalError,
    ProgrammingError,
    SQLAlchemyError,
)
from sqlalchemy.sql.dml import Insert

from edgebus.storage.errors import GlobalStoreError, SchemaMismatch, classify
from edgebus.storage.models import SCHEMA_VERSION, Base, SchemaInfo, table_of

SUPPORTED = ("sqlite", "postgresql")


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    # WAL lets the sync agent read while the writer appends; NORMAL is durable against a
    # killed process (only a power cut can drop the last transactions).
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def safe_url(url: str) -> str:
    try:
        return make_url(url).render_as_string(hide_password=True)
    except ArgumentError:
        return url


def make_engine(url: str, busy_timeout_s: float = 5.0) -> Engine:
    """An engine for a sqlite:// or postgresql[+psycopg]:// URL; bad URLs raise GlobalStoreError."""
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise GlobalStoreError(
            f"store URL {url!r} is not a SQLAlchemy URL; expected sqlite:///path "
            "or postgresql+psycopg://user@host:port/db"
        ) from None
    if parsed.get_backend_name() not in SUPPORTED:
        raise GlobalStoreError(
            f"store URL {safe_url(url)!r}: unsupported database "
            f"{parsed.get_backend_name()!r}; expected sqlite or postgresql"
        )
    if parsed.get_backend_name() == "postgresql" and parsed.get_driver_name() != "psycopg":
        parsed = parsed.set(drivername="postgresql+psycopg")
    try:
        if parsed.get_backend_name() == "sqlite":
            if parsed.database and parsed.database != ":memory:":
                Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
            engine = create_engine(
                parsed, connect_args={"timeout": busy_timeout_s, "check_same_thread": False}
            )
            event.listen(engine, "connect", _sqlite_pragmas)
        else:
            engine = create_engine(parsed, pool_pre_ping=True, pool_size=2, max_overflow=2)
    except (NoSuchModuleError, ImportError) as exc:
        raise GlobalStoreError(
            f"store URL {safe_url(url)!r}: driver not installed ({exc}); "
            "for PostgreSQL install edgebus[postgres]"
        ) from None
    except OSError as exc:
        raise GlobalStoreError(f"store URL {safe_url(url)!r}: {exc}") from None
    return engine


def _create_tables(engine: Engine, attempts: int = 10) -> None:
    # create_all checks, then creates: two processes opening a new store at once can both
    # see no table. The loser's CREATE fails with "already exists"; a retry then sees it.
    for attempt in range(attempts):
        try:
            Base.metadata.create_all(engine)
            return
        except (OperationalError, ProgrammingError, IntegrityError) as exc:
            # PostgreSQL may report the race on its catalogue instead (pg_type).
            raced = "already exists" in str(exc) or "duplicate key" in str(exc)
            if not raced or attempt == attempts - 1:
                raise
            time.sleep(0.02 * (attempt + 1))  # let the other process finish its tables


def ensure_schema(engine: Engine, where: str) -> None:
    """Create the tables on first use; refuse a store written by another schema version."""
    try:
        _create_tables(engine)
        with engine.begin() as connection:
            versions = connection.scalars(select(SchemaInfo.version)).all()
            if not versions:
                # Another process may stamp a new store at the same moment.
                stamp = upsert_ignore(engine, table_of(SchemaInfo), ("version",))
                connection.execute(stamp.values(version=SCHEMA_VERSION))
                versions = connection.scalars(select(SchemaInfo.version)).all()
            if versions != [SCHEMA_VERSION]:
                raise SchemaMismatch(
                    f"{where}: schema version {max(versions)} found, this build uses "
                    f"{SCHEMA_VERSION}; move the old store aside or migrate it"
                )
    except SQLAlchemyError as exc:
        raise classify(exc, where) from None


def upsert_ignore(
    engine: Engine, table: Any, keys: tuple[str, ...] = ("node", "store", "seq")
) -> Insert:
    """INSERT … ON CONFLICT (keys) DO NOTHING in the engine's dialect."""
    if engine.dialect.name == "postgresql":
        # Imported here, not at the top: a camera or edge only ever writes SQLite, and the
        # PostgreSQL dialect's modules cost each of them about 2 MB of RSS.
        from sqlalchemy.dialects import postgresql

        return postgresql.insert(table).on_conflict_do_nothing(index_elements=list(keys))
    return sqlite.insert(table).on_conflict_do_nothing(index_elements=list(keys))
