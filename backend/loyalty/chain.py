"""The service's view of the token: reads, and transactions signed here so the outbox can store
them before they are broadcast.

Nothing above this module sees raw RPC failures: a node that cannot be reached is
`ChainUnavailableError`, a node that refuses a transaction is `TxRefusedError`, and reverts come
back as `ChainRevertError` named after the contract's custom error. The client connects lazily,
so the API and the worker start (and accept earns) while the chain is down.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, NamedTuple, cast
from urllib.parse import urlsplit

import requests
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import HTTPProvider, Web3
from web3.types import RPCEndpoint, RPCResponse, TxParams

from loyalty.artifacts import load_artifact
from loyalty.errors import ChainMismatchError, ChainRevertError, ChainUnavailableError, TxRefusedError

# Gas limits cover the worst case of each write, as measured in tests/backend/test_gas_limits.py
# (solc 0.8.37, Shanghai; the gas a transaction needs before refunds), plus 10% or more: an earn
# at an epoch change into a member whose older lot moves into a fresh ring slot, in the first
# batch of the epoch (91,894 for one member, 31,090 per member more); a redemption spending one
# lot of every live epoch (56,360 with two lots, 8,172 per lot more); a sweep of a member with
# every lot expired (23,000, then 6,300 per lot). A limit is a cap, not a cost: only gas used is paid.
EARN_BATCH_GAS_BASE = 70_000
EARN_BATCH_GAS_PER_MEMBER = 34_000
REDEEM_GAS_BASE = 50_000
REDEEM_GAS_PER_LOT = 9_000
EXPIRE_GAS_BASE = 30_000
EXPIRE_GAS_PER_LOT = 7_000
OPERATOR_CALL_GAS = 120_000
TRANSFER_GAS = 21_000
# Leave a tenth of a block for other transactions.
BLOCK_GAS_SHARE = 0.9
ISSUER_GAS_TOPUP_WEI = 10**18
PRIORITY_FEE_WEI = 10**9
MAX_BATCH_SIZE = 1_000
ISSUER_ROLE = Web3.keccak(text="ISSUER_ROLE")
LOCAL_CHAIN_IDS = frozenset({31337, 1337})  # Anvil, Ganache
EARN_BATCH_SELECTOR = bytes(function_signature_to_4byte_selector("earnBatch(address[],uint256[],uint256)"))
EXPIRE_SELECTOR = bytes(function_signature_to_4byte_selector("expire(address[])"))
_ZERO_ADDRESS = "0x" + "00" * 20
_BATCH_EARNED = "0x" + Web3.keccak(text="BatchEarned(address,uint256,uint256,uint256,uint256)").hex().removeprefix("0x")
_REDEEMED = "0x" + Web3.keccak(text="Redeemed(address,address,uint256,uint256,uint256)").hex().removeprefix("0x")


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


class Chain:
    """The token on one chain, seen through web3.py.

    `on_connect(chain, chain_id)` runs on first contact and may raise `ChainMismatchError`: the
    caller's check that the node is the chain its database belongs to.
    """

    def __init__(
        self,
        rpc_url: str,
        token_address: str,
        operator: LocalAccount,
        *,
        on_connect: Any = None,
    ) -> None:
        self.rpc_url = rpc_url
        provider = _Provider(rpc_url, request_kwargs={"timeout": 30})
        provider.on_failure = self._forget
        self.w3 = Web3(provider)
        abi = load_artifact("LoyaltyPoints").abi
        self.token = self.w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)
        self.operator = operator
        self.issuer_role = bytes(ISSUER_ROLE)
        self._errors = _error_decoders(abi)
        self._on_connect = on_connect
        self._connected: tuple[int, str] | None = None
        self._connect_lock = threading.Lock()

    # ------------------------------------------------------------------------- connection
    def _connection(self) -> tuple[int, str]:
        """Chain id and token name, read (and the chain checked) on first contact."""
        if self._connected is None:
            with self._connect_lock:
                if self._connected is None:
                    chain_id = int(self.w3.eth.chain_id)
                    if self._on_connect is not None:  # first: it tells best what is wrong
                        self._on_connect(self, chain_id)
                    if self.w3.eth.get_code(self.token.address) in (b"", None):
                        raise ChainMismatchError(
                            f"chain {chain_id} at {redacted(self.rpc_url)} has no contract at {self.token.address}"
                        )
                    self._connected = (chain_id, str(self.token.functions.name().call()))
        return self._connected

    def _forget(self) -> None:
        self._connected = None

    @property
    def chain_id(self) -> int:
        return self._connection()[0]

    @property
    def token_name(self) -> str:
        return self._connection()[1]

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

    def expired_events(self, member: str) -> list[dict[str, int | str]]:
        """The member's `Expired` events: epoch, amount, tx hash, block."""
        self._connection()
        logs = self.token.events.Expired().get_logs(from_block=0, argument_filters={"member": checksum(member)})
        return [
            {
                "epoch": int(log["args"]["epoch"]),
                "amount_points": int(log["args"]["amount"]),
                "tx_hash": "0x" + bytes(log["transactionHash"]).hex(),
                "block_number": int(log["blockNumber"]),
            }
            for log in logs
        ]

    def balance_of(self, member: str) -> int:
        self._connection()
        return int(self.token.functions.balanceOf(member).call())

    def lots_of(self, member: str) -> list[tuple[int, int]]:
        """(expires_at, amount_points) of the member's unexpired points, oldest first."""
        self._connection()
        return [(int(e), int(a)) for e, a in self.token.functions.lotsOf(member).call()]

    def nonce_of(self, member: str) -> int:
        self._connection()
        return int(self.token.functions.nonces(member).call())

    def members_state(self, members: list[str], block: int | str = "latest") -> dict[str, tuple[int, int]]:
        """(balance, consent nonce) of each member as of one block, in one batch."""
        calls = []
        for member in members:
            arg = abi_encode(["address"], [checksum(member)]).hex()
            calls.append(self._call_request(_selector("balanceOf(address)") + arg, block))
            calls.append(self._call_request(_selector("nonces(address)") + arg, block))
        values = [int(str(r), 16) for r in self._batch(calls)]
        return {m: (values[2 * i], values[2 * i + 1]) for i, m in enumerate(members)}

    def expired_balances(self, members: list[str]) -> dict[str, int]:
        """Each member's expired points not yet swept, in one batch."""
        calls = [
            self._call_request(_selector("expiredBalanceOf(address)") + abi_encode(["address"], [checksum(m)]).hex())
            for m in members
        ]
        return {m: int(str(r), 16) for m, r in zip(members, self._batch(calls), strict=True)}

    def has_code(self, address: str) -> bool:
        self._connection()
        return len(self.w3.eth.get_code(checksum(address))) > 0

    def issue_budget(self, issuer: str) -> int:
        self._connection()
        return int(self.token.functions.issueBudget(issuer).call())

    def paused(self) -> bool:
        self._connection()
        return bool(self.token.functions.paused().call())

    def token_params(self) -> tuple[int, int, int]:
        """startTime, epochLength and validityEpochs: when points expire."""
        self._connection()
        functions = self.token.functions
        return (
            int(functions.startTime().call()),
            int(functions.epochLength().call()),
            int(functions.validityEpochs().call()),
        )

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

    def batch_logged(self, issuer: str, batch_ref: int, from_block: int, to_block: int) -> bool:
        """Whether a `BatchEarned` of `issuer` under `batch_ref` is on the chain in these blocks."""
        topics = [_BATCH_EARNED, _topic(issuer), "0x" + batch_ref.to_bytes(32, "big").hex()]
        return bool(self._logs(topics, from_block, to_block))

    def redeem_logged(self, member: str, issuer: str, reward_id: int, ref: int, from_block: int, to_block: int) -> bool:
        """Whether a `Redeemed` of `member` at `issuer` for `reward_id` under `ref` is on the chain."""
        topics = [_REDEEMED, _topic(member), _topic(issuer), "0x" + reward_id.to_bytes(32, "big").hex()]
        return any(int(log["data"][66:130], 16) == ref for log in self._logs(topics, from_block, to_block))

    def _logs(self, topics: list[str], from_block: int, to_block: int) -> list[dict[str, Any]]:
        query = {
            "address": self.token.address,
            "topics": topics,
            "fromBlock": hex(from_block),
            "toBlock": hex(to_block),
        }
        try:
            logs: list[dict[str, Any]] = self._rpc("eth_getLogs", [query])
        except TxRefusedError as exc:  # a provider that will not search so far back: we cannot tell
            raise ChainUnavailableError(f"eth_getLogs refused: {exc.reason}") from exc
        return logs

    def known(self, tx_hashes: list[str]) -> set[str]:
        """Which of these transactions the node has (pending or mined)."""
        if not tx_hashes:
            return set()
        responses = self._batch([("eth_getTransactionByHash", [h]) for h in tx_hashes])
        return {h for h, r in zip(tx_hashes, responses, strict=True) if r is not None}

    # ------------------------------------------------------------------- signing writes
    def earn_batch_gas(self, members: int) -> int:
        return EARN_BATCH_GAS_BASE + EARN_BATCH_GAS_PER_MEMBER * members

    def max_batch_size(self, block_gas_limit: int) -> int:
        """The most members an `earnBatch` may carry so that its worst case fits in a block."""
        fitting = (int(block_gas_limit * BLOCK_GAS_SHARE) - EARN_BATCH_GAS_BASE) // EARN_BATCH_GAS_PER_MEMBER
        return max(1, min(MAX_BATCH_SIZE, fitting))

    @staticmethod
    def redeem_gas(validity_epochs: int) -> int:
        return REDEEM_GAS_BASE + REDEEM_GAS_PER_LOT * validity_epochs

    @staticmethod
    def expire_gas(members: int, validity_epochs: int) -> int:
        return EXPIRE_GAS_BASE + EXPIRE_GAS_PER_LOT * validity_epochs * members

    def max_expire_size(self, block_gas_limit: int, validity_epochs: int) -> int:
        """The most members one `expire` may sweep so that its worst case fits in a block."""
        fitting = (int(block_gas_limit * BLOCK_GAS_SHARE) - EXPIRE_GAS_BASE) // (EXPIRE_GAS_PER_LOT * validity_epochs)
        return max(1, fitting)

    def sign_earn_batch(
        self, issuer: LocalAccount, nonce: int, members: list[str], amounts: list[int], ref: int, base_fee: int
    ) -> SignedTx:
        # Encoded with eth_abi directly: web3's contract-call encoder validates and checksums each
        # of up to 1,000 addresses again, which took longer than everything else in a batch.
        data = EARN_BATCH_SELECTOR + abi_encode(
            ["address[]", "uint256[]", "uint256"], [[bytes.fromhex(m[2:]) for m in members], amounts, ref]
        )
        tx: TxParams = {
            "to": self.token.address,
            "data": HexStr("0x" + data.hex()),
            "gas": self.earn_batch_gas(len(members)),
        }
        return self.sign(issuer, tx, nonce, base_fee)

    def sign_redeem(
        self,
        issuer: LocalAccount,
        nonce: int,
        base_fee: int,
        *,
        member: str,
        amount_points: int,
        reward_id: int,
        ref: int,
        deadline: int,
        signature: bytes,
        validity_epochs: int,
    ) -> SignedTx:
        call = self.token.functions.redeem(member, amount_points, reward_id, ref, deadline, signature)
        return self.sign(issuer, self._call_tx(call, self.redeem_gas(validity_epochs)), nonce, base_fee)

    def sign_expire(self, nonce: int, members: list[str], validity_epochs: int, base_fee: int) -> SignedTx:
        data = EXPIRE_SELECTOR + abi_encode(["address[]"], [[bytes.fromhex(m[2:]) for m in members]])
        gas = self.expire_gas(len(members), validity_epochs)
        tx: TxParams = {"to": self.token.address, "data": HexStr("0x" + data.hex()), "gas": gas}
        return self.sign(self.operator, tx, nonce, base_fee)

    def sign_grant_issuer(self, nonce: int, issuer: str, base_fee: int) -> SignedTx:
        call = self.token.functions.grantRole(self.issuer_role, checksum(issuer))
        return self.sign(self.operator, self._call_tx(call, OPERATOR_CALL_GAS), nonce, base_fee)

    def sign_set_budget(self, nonce: int, issuer: str, budget_points: int, base_fee: int) -> SignedTx:
        call = self.token.functions.setIssueBudget(checksum(issuer), budget_points)
        return self.sign(self.operator, self._call_tx(call, OPERATOR_CALL_GAS), nonce, base_fee)

    def sign_cancel(self, account: LocalAccount, nonce: int, base_fee: int) -> SignedTx:
        """A transfer of nothing to itself: takes `nonce` from whatever else holds it (at twice
        the tip, so it replaces a transaction still pending with that nonce)."""
        tx: TxParams = {"to": account.address, "value": 0, "gas": TRANSFER_GAS}  # type: ignore[typeddict-item]
        return self.sign(account, tx, nonce, base_fee, tip=2 * PRIORITY_FEE_WEI)

    def sign_topup(self, nonce: int, issuer: str, base_fee: int) -> SignedTx:
        tx: TxParams = {"to": checksum(issuer), "value": ISSUER_GAS_TOPUP_WEI, "gas": TRANSFER_GAS}  # type: ignore[typeddict-item]
        return self.sign(self.operator, tx, nonce, base_fee)

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
            self._rpc("eth_sendRawTransaction", ["0x" + signed.raw.hex()])
        except TxRefusedError as exc:
            if not _nonce_taken(exc.reason):
                raise

    # --------------------------------------------------------------------------- reverts
    def revert_of(self, tx_hash: str, gas_used: int) -> ChainRevertError:
        """Why a mined transaction reverted: out of gas when it used all it was given, else the
        custom error from replaying it as a call at its block. Never raises for an undecodable
        reason (`Unknown`), only when the chain cannot be reached."""
        tx = self._rpc("eth_getTransactionByHash", [tx_hash])
        if tx is None:
            return ChainRevertError("Unknown", {"tx_hash": tx_hash})
        gas = int(tx["gas"], 16)
        if gas_used >= gas:
            return ChainRevertError("OutOfGas", {"gas": gas, "gas_used": gas_used})
        call = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self._rpc("eth_call", [call, tx["blockNumber"]])
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
    def _rpc(self, method: str, params: list[Any]) -> Any:
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

    def _call_request(self, data_hex: str, block: int | str = "latest") -> tuple[str, list[Any]]:
        tag = hex(block) if isinstance(block, int) else block
        return ("eth_call", [{"to": self.token.address, "data": "0x" + data_hex}, tag])

    def _call_tx(self, call: Any, gas: int) -> TxParams:
        return {"to": self.token.address, "data": call._encode_transaction_data(), "gas": gas}


def _selector(signature: str) -> str:
    return bytes(function_signature_to_4byte_selector(signature)).hex()


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


def _topic(address: str) -> str:
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
