"""The auditor's replay kept up to date inside the API: each request replays only the blocks
mined since the last one."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from loyalty.audit.ledger import Ledger
from loyalty.audit.rpc import Rpc
from loyalty.audit.verify import balance_calls, budget_calls, read_params, sync, total_supply_call


@dataclass(frozen=True)
class Snapshot:
    """The ledger as of `block_number` (at `epoch`), and reads of the contract at that block."""

    ledger: Ledger
    block_number: int
    epoch: int
    rpc: Rpc

    def balance_of(self, member: str) -> int:
        [raw] = self.rpc.eth_calls(self.ledger.params.token, balance_calls([member]), self.block_number)
        return int.from_bytes(raw, "big")

    def total_supply(self) -> int:
        [raw] = self.rpc.eth_calls(self.ledger.params.token, [total_supply_call()], self.block_number)
        return int.from_bytes(raw, "big")

    def budgets(self, issuers: list[str]) -> dict[str, int]:
        raws = self.rpc.eth_calls(self.ledger.params.token, budget_calls(issuers), self.block_number)
        return {issuer: int.from_bytes(raw, "big") for issuer, raw in zip(issuers, raws, strict=True)}


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
