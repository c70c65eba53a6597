"""The outbox writer's lease: at most one writer per database, whatever runs beside it.

`loyalty serve` runs a writer, `loyalty worker` another, a rolling restart briefly runs two, and
a second `make up` may point at the same `var/`: each tries the lease and only its holder
writes; the others stand by and take over when the holder dies. The lock is the database's own
kind of lock, released by the operating system or the server when the holding process dies:
- SQLite: an exclusive `flock` on a file beside the database;
- PostgreSQL: a session advisory lock, held on a connection kept open for as long as the lease.
A row in `writer_leases` says who holds it and when it last worked (for `/v1/health`); the lock,
not the row, decides.
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import socket
from datetime import datetime

from sqlalchemy import Connection, Engine, text
from sqlalchemy.orm import Session

from loyalty.db.models import WriterLease, utcnow
from loyalty.db.session import write_lock

log = logging.getLogger("loyalty.workers.lease")
OUTBOX = "outbox"
_PG_LOCK_KEY = 7426112  # beside migrations' 7426111


def holder_name(role: str) -> str:
    return f"{role} pid {os.getpid()} on {socket.gethostname()}"


class Lease:
    """One named lease on the database behind `engine`."""

    def __init__(self, engine: Engine, holder: str, name: str = OUTBOX) -> None:
        self.engine, self.holder, self.name = engine, holder, name
        self._fd: int | None = None
        self._connection: Connection | None = None

    @property
    def held(self) -> bool:
        return self._fd is not None or self._connection is not None

    def acquire(self) -> bool:
        """Take the lease if it is free (never waits); True while this object holds it.

        On PostgreSQL the held connection is checked on every call, so a writer whose
        connection died (and with it the lock) stops writing."""
        if self._connection is not None:
            try:
                self._connection.execute(text("SELECT 1"))
                self._connection.commit()  # not left idle in a transaction
            except Exception:
                log.warning("lost the writer lease: its database connection failed")
                self._drop_connection()
        if self.held:
            return True
        url = self.engine.url
        if url.get_backend_name() == "sqlite":
            fd = os.open(f"{url.database}.writer.lock", os.O_CREAT | os.O_RDWR, 0o600)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(fd)
                return False
            self._fd = fd
        else:
            connection = self.engine.connect()
            taken = connection.execute(text("SELECT pg_try_advisory_lock(:key)"), {"key": _PG_LOCK_KEY}).scalar()
            connection.commit()
            if not taken:
                connection.close()
                return False
            self._connection = connection
        with Session(self.engine) as session, write_lock(session):
            now = utcnow()
            row = session.get(WriterLease, self.name)
            if row is None:
                session.add(WriterLease(name=self.name, holder=self.holder, acquired_at=now, heartbeat_at=now))
            else:
                row.holder, row.acquired_at, row.heartbeat_at = self.holder, now, now
            session.commit()
        log.info("writer lease taken by %s", self.holder)
        return True

    def release(self) -> None:
        if self._fd is not None:
            os.close(self._fd)  # closing releases the flock
            self._fd = None
        if self._connection is not None:
            with contextlib.suppress(Exception):  # if this fails, the lock goes with the connection anyway
                self._connection.execute(text("SELECT pg_advisory_unlock(:key)"), {"key": _PG_LOCK_KEY})
                self._connection.commit()
            self._drop_connection()

    def _drop_connection(self) -> None:
        if self._connection is not None:
            with contextlib.suppress(Exception):
                self._connection.close()
            self._connection = None


def heartbeat(session: Session, name: str, chain_head: int | None) -> None:
    """Record that the holder is alive and working (the caller commits)."""
    row = session.get(WriterLease, name)
    if row is not None:
        row.heartbeat_at, row.chain_head = utcnow(), chain_head


def current(session: Session, name: str = OUTBOX) -> tuple[str, datetime, datetime, int | None] | None:
    """Who holds the lease, since when, when it was last seen working, and the head it saw."""
    row = session.get(WriterLease, name)
    return None if row is None else (row.holder, row.acquired_at, row.heartbeat_at, row.chain_head)
