"""Things compiled from rows (a partner's rule set, its running campaigns), kept per process
while the rows' fingerprint stays the same: reading and compiling definitions costs more than
the rest of pricing a purchase."""

from __future__ import annotations

import threading
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

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
