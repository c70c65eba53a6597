"""Things compiled from rows (a partner's rule set, its running campaigns), kept per process
while the rows' fingerprint stays the same: reading and compiling definitions costs more than
the rest of pricing a purchase; and what a transaction reads once (`memo`)."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Any, Generic, TypeVar, cast

from sqlalchemy import event
from sqlalchemy.orm import Session, SessionTransaction

T = TypeVar("T")


class Compiled(Generic[T]):
    """A cache by key, each entry valid for the fingerprint it was built at."""

    def __init__(self) -> None:
        self._entries: dict[Hashable, tuple[Hashable, T]] = {}
        self._lock = threading.Lock()

    def get(self, key: Hashable, fingerprint: Hashable, build: Callable[[], T]) -> T:
        cached = self._entries.get(key)
        if cached is not None and cached[0] == fingerprint:
            return cached[1]
        built = build()
        with self._lock:
            self._entries[key] = (fingerprint, built)
        return built


_MEMO = "loyalty.memo"


def memo(session: Session, key: Hashable, build: Callable[[], T]) -> T:
    """`build()` once per database transaction of `session`: a group of writes sharing one
    transaction reads the program, its ladder, a partner's rules and campaigns once. Forgotten
    when the transaction ends (and by `forget`, for a write that changes what it holds)."""
    store: dict[Hashable, Any] = session.info.setdefault(_MEMO, {})
    if key not in store:
        store[key] = build()
    return cast(T, store[key])


def forget(session: Session) -> None:
    session.info.pop(_MEMO, None)


@event.listens_for(Session, "after_transaction_end")
def _transaction_ended(session: Session, transaction: SessionTransaction) -> None:
    if transaction.parent is None:  # the outermost: savepoints keep what was read
        forget(session)
