"""Leaderboards from a token's events alone: the points each member earned in a window of time,
from some issuers (a brand's accounts) or all, ranked by a rule anyone can apply to the same
logs (`loyalty audit leaderboard`):

1. more points earned in the window first;
2. on a tie, the member who reached its total first: the earlier (block, log index) of its last
   earn in the window;
3. then the lower address.

A `Tally` reads the window's blocks once and then only the blocks mined since (the API keeps one
per leaderboard period), so asking again costs a dictionary lookup.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Collection, Hashable
from dataclasses import dataclass, field
from typing import Any

from loyalty.audit.events import BATCH_EARNED, EARNED, TRANSFER, ZERO, address, words
from loyalty.audit.rpc import Rpc
from loyalty.audit.statements import first_block_at


@dataclass(frozen=True, slots=True)
class Standing:
    rank: int
    member: str  # its wallet address
    points: int
    reached_block: int  # where its last earn in the window is
    reached_log: int


@dataclass
class Tally:
    """Points earned per member on `token` in blocks timed in [since, until), by `issuers`
    (None: every issuer)."""

    token: str
    since: int
    until: int
    issuers: frozenset[str] | None = None
    from_block: int = 0
    points: dict[str, list[int]] = field(default_factory=dict)  # member -> [points, block, log index]
    start: int | None = None  # the window's first block, once found
    end: int | None = None  # its last, once the window is over and mined past
    last_block: int = -1  # read through here
    version: int = 0  # counts the changes to `points`: what was worked out from a ranking is as old
    views: dict[Hashable, tuple[int, Any]] = field(default_factory=dict)  # worked out by callers, with the version
    _ranking: list[Standing] | None = None
    _ranks: dict[str, int] = field(default_factory=dict)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def sync(self, rpc: Rpc, head: int) -> None:
        """Read the window's blocks up to `head` not read yet."""
        with self._lock:
            if (self.end is not None and self.last_block >= self.end) or head <= self.last_block:
                return  # over and read, or nothing mined since
            head_time = rpc.timestamps([head])[head]
            if self.start is None:
                if head_time < self.since:
                    return  # the window has not begun: its first block is not mined yet
                self.start = first_block_at(rpc, self.since, self.from_block, head)
                self.last_block = self.start - 1
            if self.end is None and head_time >= self.until:
                self.end = first_block_at(rpc, self.until, self.start, head) - 1
            upto = head if self.end is None else min(head, self.end)
            if upto <= self.last_block:
                return
            keep = None if self.issuers is None else {i.lower() for i in self.issuers}
            minted: list[tuple[str, int]] = []  # Transfer(0, member) of the transaction so far
            tx = None
            for batch in rpc.logs(self.token, self.last_block + 1, upto):
                for raw in batch:
                    if raw["transactionHash"] != tx:
                        tx, minted = raw["transactionHash"], []
                    topics = raw["topics"]
                    kind = topics[0] if topics else None
                    if kind == TRANSFER and address(topics[1]) == address(ZERO):
                        minted.append((address(topics[2]), int(raw["data"], 16)))
                    elif kind in (EARNED, BATCH_EARNED):
                        issuer = address(topics[2] if kind == EARNED else topics[1])
                        credits = [(address(topics[1]), words(raw["data"])[0])] if kind == EARNED else minted
                        minted = []
                        if keep is None or issuer.lower() in keep:
                            where = (int(raw["blockNumber"], 16), int(raw["logIndex"], 16))
                            for member, amount in credits:
                                row = self.points.setdefault(member, [0, 0, 0])
                                row[0] += amount
                                row[1], row[2] = where
                                self._ranking = None
                                self.version += 1
            self.last_block = upto

    def ranking(self) -> list[Standing]:
        """Every member with points in the window, ranked (the module's rule)."""
        with self._lock:
            return self._ranked()

    def rank_of(self, member: str) -> Standing | None:
        with self._lock:
            ranking = self._ranked()
            rank = self._ranks.get(member)
            return None if rank is None else ranking[rank - 1]

    def _ranked(self) -> list[Standing]:
        if self._ranking is None:
            ordered = sorted(self.points.items(), key=lambda item: (-item[1][0], item[1][1], item[1][2], item[0]))
            self._ranking = [Standing(i + 1, m, p, b, n) for i, (m, (p, b, n)) in enumerate(ordered)]
            self._ranks = {s.member: s.rank for s in self._ranking}
        return self._ranking


def standings(
    rpc: Rpc, token: str, *, since: int, until: int, issuers: Collection[str] | None = None, from_block: int = 0
) -> list[Standing]:
    """The ranking of the window from the chain alone, as of the latest block."""
    tally = Tally(token, since, until, None if issuers is None else frozenset(issuers), from_block)
    tally.sync(rpc, rpc.block_number())
    return tally.ranking()


class Tallies:
    """The tallies a process keeps, one per token, window and issuers, made on first use; a
    window long over is dropped once another is asked for (its prizes were paid from it)."""

    def __init__(self, rpc_url: str, keep: int = 64, head_every_s: float = 0.5) -> None:
        self.rpc = Rpc(rpc_url)
        self.keep = keep
        self.head_every_s = head_every_s
        self._tallies: dict[tuple[str, int, int, frozenset[str] | None], Tally] = {}
        self._lock = threading.Lock()
        self._head: tuple[float, int] | None = None  # (monotonic time read, block)
        self._head_lock = threading.Lock()  # held by the one caller reading the head

    def head(self) -> int:
        """The latest block, read at most every `head_every_s` (a ranking is that fresh): one
        caller reads it while the others go on with the last one read."""
        kept = self._head
        if kept is not None and time.monotonic() - kept[0] < self.head_every_s:
            return kept[1]
        if not self._head_lock.acquire(blocking=kept is None):
            return kept[1] if kept is not None else self.rpc.block_number()
        try:
            block = self.rpc.block_number()
            self._head = (time.monotonic(), block)
            return block
        finally:
            self._head_lock.release()

    def of(self, token: str, since: int, until: int, issuers: frozenset[str] | None, from_block: int = 0) -> Tally:
        key = (token.lower(), since, until, issuers)
        with self._lock:
            found = self._tallies.get(key)
            if found is None:
                while len(self._tallies) >= self.keep:
                    self._tallies.pop(min(self._tallies, key=lambda k: k[2]))  # the window that ended first
                found = self._tallies[key] = Tally(token, since, until, issuers, from_block)
            return found

    def close(self) -> None:
        self.rpc.close()
