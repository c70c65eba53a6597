"""Plumbing for any contract on one EVM chain: the connection, fees, signing, broadcasting,
receipts and revert decoding. Contract bindings (`token.py`) build on it.

Nothing above this package sees raw RPC failures: a node that cannot be reached is
`ChainUnavailableError`, a node that refuses a transaction is `TxRefusedError`, and reverts come
back as `ChainRevertError` named after the contract's custom error. The client connects lazily,
so the API and the worker start (and accept earns) while the chain is down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse, TxParams

from loyalty.errors import ChainRevertError, ChainUnavailableError, TxRefusedError

TRANSFER_GAS = 21_000
PRIORITY_FEE_WEI = 10**9
LOCAL_CHAIN_IDS = frozenset({31337, 1337})  # Anvil, Ganache
_ZERO_ADDRESS = "0x" + "00" * 20
ERC1271_SELECTOR = bytes(function_signature_to_4byte_selector("isValidSignature(bytes32,bytes)"))
ERC1271_ACCEPTED = ERC1271_SELECTOR.ljust(32, b"\0")  # bytes32(selector), as OpenZeppelin compares it

ConnectCheck = Callable[["ChainClient", int], None]


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction, ready to broadcast (again, after a crash).

    Attributes:
        tx_hash: its hash, 0x-prefixed.
        raw: the signed bytes.
    """

    tx_hash: str
    raw: bytes


class Block(NamedTuple):
    number: int
    hash: str
    timestamp: int
    gas_limit: int
    base_fee: int


class Receipt(NamedTuple):
    """What a mined transaction did."""

    succeeded: bool
    block_number: int
    block_hash: str
    gas_used: int


class _Provider(HTTPProvider):
    """An HTTP provider whose connection failures are `ChainUnavailableError` (and reported to
    `on_failure`: a node that comes back may be another chain, so it is checked again)."""

    on_failure: Callable[[], None] | None = None

    def make_request(self, method: RPCEndpoint, params: Any) -> RPCResponse:
        try:
            return super().make_request(method, params)
        except (requests.RequestException, OSError) as exc:
            raise self._unreachable(exc) from exc

    def make_batch_request(self, batch_requests: list[tuple[RPCEndpoint, Any]]) -> Any:
        try:
            return super().make_batch_request(batch_requests)
        except (requests.RequestException, OSError) as exc:
            raise self._unreachable(exc) from exc

    def _unreachable(self, exc: Exception) -> ChainUnavailableError:
        if self.on_failure is not None:
            self.on_failure()
        return ChainUnavailableError(
            f"the chain at {redacted(str(self.endpoint_uri))} is unreachable ({type(exc).__name__})"
        )


class ChainClient:
    """One chain, seen through web3.py, for any contract on it.

    `checks` run on first contact (and again after the node was unreachable: what comes back may
    be another chain), in order, each `check(client, chain_id)` raising `ChainMismatchError`
    when the node is not the one expected: the database's binding first (it tells best what is
    wrong), then each contract's own (its code is there).
    """

    def __init__(self, rpc_url: str, operator: LocalAccount) -> None:
        self.rpc_url = rpc_url
        provider = _Provider(rpc_url, request_kwargs={"timeout": 30})
        provider.on_failure = self._forget
        self.w3 = Web3(provider)
        self.operator = operator
        self.checks: list[ConnectCheck] = []
        self._errors: dict[bytes, tuple[str, list[str], list[str]]] = {}
        self._chain_id: int | None = None
        self._connect_lock = threading.Lock()

    def know_errors(self, abi: list[dict[str, Any]]) -> None:
        """Decode reverts with the custom errors in `abi` (a binding registers its contract's)."""
        self._errors.update(_error_decoders(abi))

    # ------------------------------------------------------------------------- connection
    def _connection(self) -> int:
        """The chain id, read (and the chain checked) on first contact."""
        if self._chain_id is None:
            with self._connect_lock:
                if self._chain_id is None:
                    chain_id = int(self.w3.eth.chain_id)
                    for check in self.checks:
                        check(self, chain_id)
                    self._chain_id = chain_id
        return self._chain_id

    def _forget(self) -> None:
        self._chain_id = None

    @property
    def chain_id(self) -> int:
        return self._connection()

    # ------------------------------------------------------------------------------- reads
    def block_number(self) -> int:
        self._connection()
        return int(self.w3.eth.block_number)

    def head(self) -> Block:
        self._connection()
        return _block(self.w3.eth.get_block("latest"))

    def blocks(self, numbers: list[int]) -> dict[int, Block | None]:
        """Blocks by number in one batch; None for a number past the head."""
        if not numbers:
            return {}
        responses = self._batch([("eth_getBlockByNumber", [hex(n), False]) for n in numbers])
        return {n: None if r is None else _block_raw(r) for n, r in zip(numbers, responses, strict=True)}

    def has_code(self, address: str) -> bool:
        self._connection()
        return len(self.w3.eth.get_code(checksum(address))) > 0

    def account_nonce(self, address: str, block: int | str = "latest") -> int:
        self._connection()
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), cast(Any, block)))

    def eth_balance(self, address: str) -> int:
        self._connection()
        return int(self.w3.eth.get_balance(Web3.to_checksum_address(address)))

    def receipts(self, tx_hashes: list[str]) -> dict[str, Receipt | None]:
        """Each transaction's receipt, None while it is not mined: one JSON-RPC batch, read raw
        (web3's receipt formatting of 1,000 logs per batch costs more than the call)."""
        if not tx_hashes:
            return {}
        found: dict[str, Receipt | None] = {}
        for tx_hash, receipt in zip(
            tx_hashes, self._batch([("eth_getTransactionReceipt", [h]) for h in tx_hashes]), strict=True
        ):
            found[tx_hash] = (
                None
                if receipt is None or receipt.get("blockHash") is None
                else Receipt(
                    int(receipt["status"], 16) == 1,
                    int(receipt["blockNumber"], 16),
                    str(receipt["blockHash"]),
                    int(receipt["gasUsed"], 16),
                )
            )
        return found

    def logs(self, address: str, topics: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        """Raw logs of one contract; a provider that will not search that far is `ChainUnavailableError`."""
        query = {
            "address": address,
            "topics": topics,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        try:
            logs: list[dict[str, Any]] = self.rpc("eth_getLogs", [query])
        except TxRefusedError as exc:  # a provider that will not search so far back: we cannot tell
            raise ChainUnavailableError(f"eth_getLogs refused: {exc.reason}") from exc
        return logs

    def known(self, tx_hashes: list[str]) -> set[str]:
        """Which of these transactions the node has (pending or mined)."""
        if not tx_hashes:
            return set()
        responses = self._batch([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        return {h for h, r in zip(tx_hashes, responses, strict=True) if r is not None}

    def sign_cancel(self, account: LocalAccount, nonce: int, base_fee: int) -> SignedTx:
        """A transfer of nothing to itself: takes `nonce` from whatever else holds it (at twice
        the tip, so it replaces a transaction still pending with that nonce)."""
        tx: TxParams = {"to": account.address, "value": 0, "gas": TRANSFER_GAS}  # type: ignore[typeddict-item]
        return self.sign(account, tx, nonce, base_fee, tip=2 * PRIORITY_FEE_WEI)

    def sign(
        self, account: LocalAccount, tx: TxParams, nonce: int, base_fee: int, tip: int = PRIORITY_FEE_WEI
    ) -> SignedTx:
        # EIP-1559 fees from the base fee, not eth_gasPrice: that one folds in recent tips (ours
        # included), and doubling it fed back on itself. We pay base fee + tip; the cap leaves
        # room for the base fee to double before the transaction is mined.
        full = {
            **tx,
            "nonce": nonce,
            "chainId": self.chain_id,
            "maxPriorityFeePerGas": tip,
            "maxFeePerGas": 2 * base_fee + tip,
            "value": tx.get("value", 0),
        }
        signed = account.sign_transaction(cast(Any, full))
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction))

    def broadcast(self, signed: SignedTx) -> None:
        """Send a signed transaction. One the node already has, or whose nonce is already taken
        (mined, or pending), is not an error here: the outbox settles it by receipt. Any other
        refusal is `TxRefusedError`."""
        try:
            self.rpc("eth_sendRawTransaction", ["0x" + signed.raw.hex()])
        except TxRefusedError as exc:
            if not _nonce_taken(exc.reason):
                raise

    # --------------------------------------------------------------------------- reverts
    def revert_of(self, tx_hash: str, gas_used: int) -> ChainRevertError:
        """Why a mined transaction reverted: out of gas when it used all it was given, else the
        custom error from replaying it as a call at its block. Never raises for an undecodable
        reason (`Unknown`), only when the chain cannot be reached."""
        tx = self.rpc("eth_getTransactionByHash", [tx_hash])
        if tx is None:
            return ChainRevertError("Unknown", {"tx_hash": tx_hash})
        gas = int(tx["gas"], 16)
        if gas_used >= gas:
            return ChainRevertError("OutOfGas", {"gas": gas, "gas_used": gas_used})
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.rpc("eth_call", [call, tx["blockNumber"]])
        except TxRefusedError as exc:
            return self.decode_revert(exc.data) if exc.data else ChainRevertError("Unknown", {"reason": exc.reason})
        return ChainRevertError("Unknown", {"tx_hash": tx_hash})

    def decode_revert(self, data: Any) -> ChainRevertError:
        try:
            raw = data if isinstance(data, bytes) else bytes.fromhex(str(data or "").removeprefix("0x"))
            decoder = self._errors.get(raw[:4])
            if decoder is None:
                return ChainRevertError("Unknown", {"data": "0x" + raw.hex()})
            name, names, types = decoder
            values = abi_decode(types, raw[4:])
        except Exception:  # malformed revert data: say so rather than fail the caller
            return ChainRevertError("Unknown", {"data": str(data)})
        return ChainRevertError(name, dict(zip(names, values, strict=True)))

    # ---------------------------------------------------------------------------- private
    def rpc(self, method: str, params: list[Any]) -> Any:
        """One raw JSON-RPC call; an error answer is `TxRefusedError` with its message and data."""
        self._connection()
        response = self.w3.provider.make_request(RPCEndpoint(method), params)
        if "error" in response:
            raise _refused(dict(response["error"]))
        return response.get("result")

    def _batch(self, calls: list[tuple[str, list[Any]]]) -> list[Any]:
        """Raw JSON-RPC calls in one batch, results in order; any error answer fails the batch."""
        self._connection()
        responses = self.w3.provider.make_batch_request([(RPCEndpoint(m), p) for m, p in calls])  # type: ignore[attr-defined]
        if not isinstance(responses, list):
            raise ChainUnavailableError(f"a JSON-RPC batch failed: {responses.get('error')}")
        results = []
        for response in sorted(responses, key=lambda r: int(r["id"])):
            if "error" in response:
                raise ChainUnavailableError(f"a JSON-RPC call failed: {response['error']}")
            results.append(response.get("result"))
        return results

    def call(self, to: str, data_hex: str, block: int | str = "latest") -> bytes:
        """One `eth_call` of calldata `data_hex` (no 0x) on `to`; the raw answer."""
        tag = hex(block) if isinstance(block, int) else block
        return bytes.fromhex(str(self.rpc("eth_call", [{"to": to, "data": "0x" + data_hex}, tag])).removeprefix("0x"))

    def accepts_signature(self, wallet: str, digest: bytes, signature: bytes, gas: int) -> bool:
        """Whether contract wallet `wallet` accepts `signature` over `digest` now (ERC-1271):
        answers the 32-byte magic value with at most `gas`. A revert, or anything else, is a no."""
        data = ERC1271_SELECTOR + abi_encode(["bytes32", "bytes"], [digest, signature])
        try:
            answer = self.rpc(
                "eth_call", [{"to": checksum(wallet), "data": "0x" + data.hex(), "gas": hex(gas)}, "latest"]
            )
        except TxRefusedError:
            return False
        return bytes.fromhex(str(answer).removeprefix("0x"))[:32] == ERC1271_ACCEPTED

    def calls(self, calls: Sequence[tuple[str, str]], block: int | str = "latest") -> list[int]:
        """`eth_call`s of (contract address, calldata hex) as of one block, in one batch, each
        answer read as one uint."""
        return [int(str(r), 16) for r in self._batch(_eth_calls(calls, block))]

    def raw_calls(self, calls: Sequence[tuple[str, str]], block: int | str = "latest") -> list[bytes]:
        """`eth_call`s as `calls` makes them, each answer as its bytes (to decode as the caller needs)."""
        return [bytes.fromhex(str(r).removeprefix("0x")) for r in self._batch(_eth_calls(calls, block))]


def _eth_calls(calls: Sequence[tuple[str, str]], block: int | str) -> list[tuple[str, list[Any]]]:
    tag = hex(block) if isinstance(block, int) else block
    return [("eth_call", [{"to": to, "data": "0x" + data_hex}, tag]) for to, data_hex in calls]


def _block(block: Any) -> Block:
    return Block(
        int(block["number"]),
        "0x" + bytes(block["hash"]).hex(),
        int(block["timestamp"]),
        int(block["gasLimit"]),
        int(block.get("baseFeePerGas", 0)),
    )


def _block_raw(block: dict[str, Any]) -> Block:
    return Block(
        int(block["number"], 16),
        str(block["hash"]),
        int(block["timestamp"], 16),
        int(block["gasLimit"], 16),
        int(block.get("baseFeePerGas", "0x0"), 16),
    )


def _refused(error: dict[str, Any]) -> TxRefusedError:
    """An error answer; revert data comes as `data` (a hex string, or an object holding one)."""
    data = error.get("data")
    if isinstance(data, dict):
        data = data.get("data")
    return TxRefusedError(str(error.get("message", error)), data if isinstance(data, str) else None)


def _error_decoders(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    decoders = {}
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            decoders[bytes(selector)] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return decoders


def _nonce_taken(reason: str) -> bool:
    """Whether a send failed because its nonce is already used or pending."""
    return any(r in reason for r in ("nonce too low", "already known", "replacement transaction underpriced"))


def address_topic(address: str) -> str:
    return "0x" + "00" * 12 + address.lower().removeprefix("0x")


def redacted(url: str) -> str:
    """A provider URL often holds an API key (in its path, query or user part): scheme, host
    and port only, for messages and /v1/health."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.hostname}" + (f":{parts.port}" if parts.port else "")


def checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)


def is_zero(address: str) -> bool:
    return address.lower() == _ZERO_ADDRESS
