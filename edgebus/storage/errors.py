"""Storage failures, each reported as one line that names the database and the cause."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:  # the CLI imports these classes to report them; SQLAlchemy loads slowly
    from sqlalchemy.exc import SQLAlchemyError


class StorageError(RuntimeError):
    """A store that cannot be used as asked; the message is one line."""


class StoreFull(StorageError):
    """SQLite said "database or disk is full": nothing new is written, nothing old is lost."""


class StoreLocked(StorageError):
    """Another process holds the database's write lock longer than the busy timeout."""


class StoreCorrupt(StorageError):
    """The file is not a database this build can read."""


class SchemaMismatch(StorageError):
    """The database was created by a build with another schema version."""


class GlobalStoreError(StorageError):
    """A bad or unreachable global-store URL."""


class QueryInputError(ValueError):
    """A query option (--since, --format, table) that cannot be used; one line."""


def first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def classify(exc: SQLAlchemyError, where: str) -> StorageError:
    """Map a driver error to the one-line error a user can act on."""
    from sqlalchemy.exc import DatabaseError, OperationalError

    reason = first_line(exc)
    lowered = reason.lower()
    if "disk is full" in lowered or "disk i/o error" in lowered:
        return StoreFull(f"{where}: database or disk is full ({reason}); new rows wait in memory")
    if "locked" in lowered or "busy" in lowered:
        return StoreLocked(f"{where}: database is locked by another process ({reason})")
    if "not a database" in lowered or "malformed" in lowered:
        return StoreCorrupt(f"{where}: not a usable SQLite database ({reason})")
    if isinstance(exc, OperationalError | DatabaseError):
        return StorageError(f"{where}: {reason}")
    return StorageError(f"{where}: {type(exc).__name__}: {reason}")
