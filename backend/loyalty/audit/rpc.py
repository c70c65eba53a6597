"""Raw JSON-RPC for the auditor: logs in block ranges, and batches of calls, blocks and
transactions.

Raw rather than through web3.py's formatters: formatting 100,000 logs costs more than fetching
them, and the auditor needs only a few fields of each.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import httpx

from loyalty.errors import ChainUnavailableError, RpcError

BATCH = 500  # calls per JSON-RPC batch
TARGET_LOGS = 10_000  # logs per eth_getLogs range (many providers refuse more)
MAX_RANGE = 100_000  # blocks per eth_getLogs range


class Rpc:
    """One node, spoken to in JSON-RPC batches."""

    def __init__(self, url: str, timeout_s: float = 120) -> None:
        self.url = url
        self._client = httpx.Client(timeout=timeout_s)

    def close(self) -> None:
        self._client.close()

    def call(self, method: str, params: list[Any]) -> Any:
        [result] = self.batch([(method, params)])
        return result

    def batch(self, calls: Sequence[tuple[str, list[Any]]]) -> list[Any]:
        """Results in the order of `calls`, sent BATCH at a time; an error in any raises."""
        results: list[Any] = []
        for start in range(0, len(calls), BATCH):
            chunk = calls[start : start + BATCH]
            body = [{"jsonrpc": "2.0", "id": i, "method": m, "params": p} for i, (m, p) in enumerate(chunk)]
            try:
                response = self._client.post(self.url, json=body)
                response.raise_for_status()
            except httpx.HTTPError as exc:
                raise ChainUnavailableError(f"{self.url}: {exc}") from exc
            replies = response.json()
            if not isinstance(replies, list):
                raise ChainUnavailableError(f"{self.url}: {replies.get('error')}")
            by_id = {reply["id"]: reply for reply in replies}
            for i, (method, params) in enumerate(chunk):
                reply = by_id[i]
                if "error" in reply:
                    raise RpcError(method, params, reply["error"])
                results.append(reply.get("result"))
        return results

    def block_number(self) -> int:
        return int(self.call("eth_blockNumber", []), 16)

    def chain_id(self) -> int:
        return int(self.call("eth_chainId", []), 16)

    def timestamps(self, blocks: Sequence[int]) -> dict[int, int]:
        """Each block's timestamp."""
        headers = self.batch([("eth_getBlockByNumber", [hex(b), False]) for b in blocks])
        return {b: int(h["timestamp"], 16) for b, h in zip(blocks, headers, strict=True)}

    def transactions(self, tx_hashes: Sequence[str]) -> dict[str, dict[str, Any]]:
        return dict(zip(tx_hashes, self.batch([("eth_getTransactionByHash", [h]) for h in tx_hashes]), strict=True))

    def eth_calls(self, to: str, datas: Sequence[str], block: int) -> list[bytes]:
        results = self.batch([("eth_call", [{"to": to, "data": d}, hex(block)]) for d in datas])
        return [bytes.fromhex(r[2:]) for r in results]

    def logs(
        self,
        address: str,
        from_block: int,
        to_block: int,
        progress: Callable[[int], None] | None = None,
    ) -> Iterator[list[dict[str, Any]]]:
        """The address's logs in [from_block, to_block], one list per block range, in order.

        The next range is fetched in the background while the caller works on this one. Ranges
        adapt to aim at TARGET_LOGS logs each; a node that refuses a range (too many results)
        gets it again in halves.
        """
        ranges: queue.Queue[tuple[int, list[dict[str, Any]]] | BaseException | None] = queue.Queue(maxsize=2)

        def fetch() -> None:
            start, step = from_block, 64
            try:
                while start <= to_block:
                    end = min(to_block, start + step - 1)
                    params = [{"address": address, "fromBlock": hex(start), "toBlock": hex(end)}]
                    try:
                        found = self.call("eth_getLogs", params)
                    except RpcError:
                        if end == start:
                            raise
                        step = max(1, step // 2)
                        continue
                    ranges.put((end - start + 1, found))
                    start = end + 1
                    step = max(1, min(step * 4, MAX_RANGE, step * TARGET_LOGS // max(1, len(found))))
                ranges.put(None)
            except BaseException as exc:  # handed to the caller
                ranges.put(exc)

        threading.Thread(target=fetch, name="audit-logs", daemon=True).start()
        while (item := ranges.get()) is not None:
            if isinstance(item, BaseException):
                raise item
            blocks, found = item
            yield found
            if progress is not None:
                progress(blocks)
