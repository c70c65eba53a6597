"""Engine and sessions; the schema is brought up to date with Alembic on start."""

from __future__ import annotations

import fcntl
import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from sqlalchemy import (
    URL,
    ColumnElement,
    Engine,
    Table,
    and_,
    create_engine,
    event,
    false,
    func,
    make_url,
    or_,
    select,
    text,
)
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import InstrumentedAttribute, Session, sessionmaker

MIGRATIONS = Path(__file__).resolve().parent / "migrations"


def make_engine(url: str) -> Engine:
    if url.startswith("sqlite"):
        path = url.split("///", 1)[-1]
        on_disk = bool(path) and path != ":memory:"
        if on_disk:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        # A pool as large as the API's thread pool: a connection made per request (past the
        # default 5) costs its pragmas and SQLite's reading of the schema on first use.
        pool = {"pool_size": 40, "max_overflow": 20} if on_disk else {}
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30}, **pool)

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(connection, _record) -> None:  # type: ignore[no-untyped-def]
            # WAL lets the API read while the outbox writer writes; foreign keys are off by default.
            cursor = connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    return create_engine(url, pool_size=10, max_overflow=20, pool_pre_ping=True)


def upgrade(url: str) -> None:
    """Apply every Alembic migration to the database at `url`."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    # The API and the worker may start together on a new database: one migrates, the other then
    # finds it done (PostgreSQL takes an advisory lock in migrations/env.py instead).
    with _sqlite_file_lock(make_url(url)):
        command.upgrade(config, "head")


def make_sessionmaker(engine: Engine) -> sessionmaker[Session]:
    return sessionmaker(engine, expire_on_commit=False)


@contextmanager
def write_lock(session: Session) -> Iterator[None]:
    """Hold the database's write lock across processes while writing and committing.

    On SQLite this is an advisory file lock beside the database. SQLite's own lock makes a
    blocked writer sleep and retry with growing pauses, so under a steady stream of commits from
    one process (the API's accepts) another (the outbox writer) could wait seconds for a gap;
    waiters on a file lock are woken the moment it is released. PostgreSQL queues lock waiters
    itself, so there this does nothing.
    """
    with _sqlite_file_lock(session.get_bind().engine.url):
        yield


@contextmanager
def _sqlite_file_lock(url: URL) -> Iterator[None]:
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:"):
        yield
        return
    fd = os.open(f"{url.database}.lock", os.O_CREAT | os.O_RDWR, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)  # closing releases the lock


def dialect_insert(session: Session) -> Callable[..., Any]:
    """The session's database's own `insert`, which has `on_conflict_do_update` (an upsert that
    two processes may race: SQLite and PostgreSQL both take it)."""
    if session.get_bind().dialect.name == "postgresql":
        return postgresql.insert
    return sqlite.insert


_Column = ColumnElement[Any] | InstrumentedAttribute[Any]


def allocate_ids(session: Session, table: Table, count: int) -> list[int]:
    """`count` new ids for `table`'s integer key, in order, so rows can be inserted with theirs
    by one executemany (an INSERT ... RETURNING of many rows in a known order runs row by row on
    SQLite). PostgreSQL hands them out from the table's sequence; SQLite's next ids follow the
    largest, and the caller holds the write lock (`write_lock`), so no one else takes them."""
    if count <= 0:
        return []
    if session.get_bind().dialect.name == "postgresql":
        sequence = text("SELECT nextval(pg_get_serial_sequence(:table, 'id')) FROM generate_series(1, :n)")
        return [int(i) for i in session.scalars(sequence, {"table": table.name, "n": count})]
    first = int(session.scalar(select(func.coalesce(func.max(table.c.id), 0))) or 0) + 1
    return list(range(first, first + count))


def insert_rows(session: Session, table: Table, rows: Sequence[Mapping[str, Any]]) -> None:
    """Insert many rows (each with the same columns) by one executemany handed straight to the
    driver: SQLAlchemy's own executemany spends ~25 microseconds a row building parameters,
    more than the database spends storing it. Values go through their columns' own bind
    processors (a `UtcDateTime` is stored as SQLAlchemy would store it)."""
    if not rows:
        return
    connection = session.connection()
    dialect = connection.dialect
    columns = list(rows[0])
    processors = [table.c[column].type.bind_processor(dialect) for column in columns]
    mark = "?" if dialect.paramstyle == "qmark" else "%s"
    statement = f"INSERT INTO {table.name} ({', '.join(columns)}) VALUES ({', '.join([mark] * len(columns))})"
    values = [list(row.values()) for row in rows]
    for index, process in enumerate(processors):
        if process is not None:
            done: dict[Any, Any] = {}  # a group's rows share their times: convert each once
            for row in values:
                value = row[index]
                try:
                    row[index] = done[value]
                except KeyError:
                    row[index] = done[value] = process(value)
                except TypeError:  # unhashable (a JSON column's list or dict)
                    row[index] = process(value)
    connection.exec_driver_sql(statement, [tuple(row) for row in values])


def pairs_in(first: _Column, second: _Column, pairs: Iterable[tuple[Any, Any]]) -> ColumnElement[bool]:
    """`(first, second) IN pairs`, written so an index on (first, second) serves it: SQLite
    scans the whole table for a row-value IN, but searches the index for `first = a AND second
    IN (...)`, one per distinct `a`."""
    by_first: dict[Any, set[Any]] = {}
    for a, b in pairs:
        by_first.setdefault(a, set()).add(b)
    return or_(false(), *(and_(first == a, second.in_(sorted(bs))) for a, bs in by_first.items()))


def begin_writing(session: Session) -> None:
    """Open the session's transaction for writing now. On SQLite the driver begins one only
    before an INSERT, UPDATE or DELETE, so a transaction whose first write is inside a savepoint
    would have that savepoint's RELEASE commit it on its own; `BEGIN IMMEDIATE` makes the
    savepoints nested in it (and takes SQLite's write lock at once)."""
    if session.get_bind().dialect.name == "sqlite":
        session.connection().exec_driver_sql("BEGIN IMMEDIATE")
