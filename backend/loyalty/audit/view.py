"""The auditor's replay kept up to date inside the API: each request replays only the blocks
mined since the last one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from loyalty.audit.ledger import Ledger
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import balances_at, budgets_at, read_params, sync, total_supply_at


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

    @contextmanager
    def snapshot(self) -> Iterator[Snapshot]:
        """The ledger replayed up to the latest block, held for the caller alone until it is done."""
        with self._lock:
            block = self.rpc.block_number()
            if self._ledger is None:
                self._ledger = Ledger(read_params(self.rpc, self.token, block))
                self._ledger.last_block = self.from_block - 1
            sync(self.rpc, self._ledger, block)
            timestamp = self.rpc.timestamps([block])[block]
            yield Snapshot(self._ledger, block, self._ledger.params.epoch_at(timestamp), self.rpc)

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
