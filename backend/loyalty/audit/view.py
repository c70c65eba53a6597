"""The auditor's replay kept up to date inside the API: each request replays only the blocks
mined since the last one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Literal

from loyalty.audit.ledger import Ledger
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import balances_at, budgets_at, read_params, sync, total_supply_at


@dataclass(frozen=True)
class Progress:
    """Where a view's replay is: `not_started` (nobody asked yet), `replaying` (blocks done of
    blocks to go), or `ready` (replayed up to `last_block`; later blocks are replayed per request)."""

    state: Literal["not_started", "replaying", "ready"]
    blocks_done: int
    blocks_total: int
    last_block: int | None


@dataclass(frozen=True)
class Snapshot:
    """The ledger as of `block_number` (at `epoch`), and reads of the contract at that block."""

    ledger: Ledger
    block_number: int
    epoch: int
    rpc: Rpc

    def balance_of(self, member: str) -> int:
        return balances_at(self.rpc, self.ledger.params.token, [member], self.block_number)[member]

    def total_supply(self) -> int:
        return total_supply_at(self.rpc, self.ledger.params.token, self.block_number)

    def budgets(self, issuers: list[str]) -> dict[str, int]:
        return budgets_at(self.rpc, self.ledger.params.token, issuers, self.block_number)


class AuditView:
    """One ledger per API process, replayed from `from_block` (the token's deployment) on first
    use, then incrementally."""

    def __init__(self, rpc_url: str, token: str, from_block: int = 0) -> None:
        self.rpc, self.token, self.from_block = Rpc(rpc_url), token, from_block
        self._ledger: Ledger | None = None
        self._lock = threading.Lock()
        self._replaying: list[int] | None = None  # [blocks done, blocks to go] while a replay runs

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The ledger replayed up to the latest block, held for the caller alone until it is done."""
        with self._lock:
            block = self.rpc.block_number()
            if self._ledger is None:
                self._ledger = Ledger(read_params(self.rpc, self.token, block))
                self._ledger.last_block = self.from_block - 1
            self._replaying = [0, max(0, block - self._ledger.last_block)]
            try:
                sync(self.rpc, self._ledger, block, progress=self._advance)
            finally:
                self._replaying = None
            timestamp = self.rpc.timestamps([block])[block]
            yield Snapshot(self._ledger, block, self._ledger.params.epoch_at(timestamp), self.rpc)

    def _advance(self, blocks: int) -> None:
        if (replaying := self._replaying) is not None:
            replaying[0] += blocks

    def progress(self) -> Progress:
        """Read without the lock: a page asks while the replay runs."""
        ledger, replaying = self._ledger, self._replaying
        if replaying is not None:
            return Progress("replaying", replaying[0], replaying[1], ledger.last_block if ledger else None)
        if ledger is None:
            return Progress("not_started", 0, 0, None)
        return Progress("ready", 0, 0, ledger.last_block)

    def close(self) -> None:
        self.rpc.close()


class AuditViews:
    """The auditor's replays inside the API: one `AuditView` per program's token, made on first
    use (a program nobody audits costs nothing)."""

    def __init__(self, rpc_url: str) -> None:
        self.rpc_url = rpc_url
        self._views: dict[str, AuditView] = {}
        self._lock = threading.Lock()

    def of(self, token: str, from_block: int) -> AuditView:
        with self._lock:
            found = self._views.get(token.lower())
            if found is None:
                found = self._views[token.lower()] = AuditView(self.rpc_url, token, from_block)
            return found

    def close(self) -> None:
        for view in self._views.values():
            view.close()
