"""The service's view of the token: reads, the operator's admin writes, and issuer transactions
signed here so the outbox can store them before they are broadcast.

Nothing above this module sees raw RPC failures: reverts come back as `ChainRevertError` named
after the contract's custom error.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, cast

from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import ChecksumAddress, HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import HTTPProvider, Web3
from web3.exceptions import ContractCustomError, ContractLogicError, TransactionNotFound, Web3RPCError
from web3.types import RPCEndpoint, TxParams, TxReceipt, Wei

from loyalty.artifacts import load_artifact
from loyalty.errors import ChainRevertError, ChainUnavailableError

# Gas is set from measured figures (README, `make bench-gas`) instead of estimated per transaction.
EARN_BATCH_GAS_BASE = 60_000
EARN_BATCH_GAS_PER_MEMBER = 28_000
REDEEM_GAS = 150_000
ISSUER_GAS_TOPUP_WEI = 10**18
PRIORITY_FEE_WEI = 10**9
MAX_BATCH_SIZE = 1_000
OPERATOR_SEND_ATTEMPTS = 5
EARN_BATCH_SELECTOR = bytes(function_signature_to_4byte_selector("earnBatch(address[],uint256[],uint256)"))


@dataclass(frozen=True)
class SignedTx:
    """A signed transaction, ready to broadcast (again, after a crash).

    Attributes:
        tx_hash: its hash, 0x-prefixed.
        raw: the signed bytes.
    """

    tx_hash: str
    raw: bytes


class Chain:
    """The token on one chain, seen through web3.py."""

    def __init__(self, rpc_url: str, token_address: str, operator: LocalAccount) -> None:
        self.w3 = Web3(HTTPProvider(rpc_url, request_kwargs={"timeout": 30}))
        abi = load_artifact("LoyaltyPoints").abi
        self.token = self.w3.eth.contract(address=Web3.to_checksum_address(token_address), abi=abi)
        self.operator = operator
        self._errors = _error_decoders(abi)
        try:
            self.chain_id = self.w3.eth.chain_id
            self.token_name: str = self.token.functions.name().call()
        except Exception as exc:
            raise ChainUnavailableError(f"cannot reach the token {token_address} at {rpc_url}: {exc}") from exc
        self.issuer_role: bytes = self.token.functions.ISSUER_ROLE().call()

    # ------------------------------------------------------------------------------- reads
    def block_number(self) -> int:
        return int(self.w3.eth.block_number)

    def expired_events(self, member: str) -> list[dict[str, int | str]]:
        """The member's `Expired` events: epoch, amount, tx hash, block."""
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
        return int(self.token.functions.balanceOf(member).call())

    def lots_of(self, member: str) -> list[tuple[int, int]]:
        """(expires_at, amount_points) of the member's unexpired points, oldest first."""
        return [(int(e), int(a)) for e, a in self.token.functions.lotsOf(member).call()]

    def nonce_of(self, member: str) -> int:
        return int(self.token.functions.nonces(member).call())

    def issue_budget(self, issuer: str) -> int:
        return int(self.token.functions.issueBudget(issuer).call())

    def account_nonce(self, address: str) -> int:
        return int(self.w3.eth.get_transaction_count(Web3.to_checksum_address(address), "pending"))

    # ------------------------------------------------------------------- operator writes
    def add_issuer(self, issuer: str, budget_points: int) -> None:
        """Give `issuer` gas money, ISSUER_ROLE and its budget (waits for all three)."""
        issuer = Web3.to_checksum_address(issuer)
        txs: list[TxParams] = [
            {"to": issuer, "value": Wei(ISSUER_GAS_TOPUP_WEI), "gas": 21_000},
            self._call_tx(self.token.functions.grantRole(self.issuer_role, issuer), 120_000),
            self._call_tx(self.token.functions.setIssueBudget(issuer, budget_points), 80_000),
        ]
        for tx_hash in self._send_as_operator(txs):
            self.wait(tx_hash)

    def ensure_gas(self, issuer: str) -> None:
        """Top up an issuer account running low on gas money (members and partners never pay gas)."""
        issuer = Web3.to_checksum_address(issuer)
        if self.w3.eth.get_balance(issuer) >= ISSUER_GAS_TOPUP_WEI // 2:
            return
        [tx_hash] = self._send_as_operator([{"to": issuer, "value": Wei(ISSUER_GAS_TOPUP_WEI), "gas": 21_000}])
        self.wait(tx_hash)

    # ------------------------------------------------------------------- issuer writes
    def sign_earn_batch(
        self, issuer: LocalAccount, nonce: int, members: list[str], amounts: list[int], ref: int
    ) -> SignedTx:
        # Encoded with eth_abi directly: web3's contract-call encoder validates and checksums each
        # of up to 1,000 addresses again, which took longer than everything else in a batch.
        data = EARN_BATCH_SELECTOR + abi_encode(
            ["address[]", "uint256[]", "uint256"], [[bytes.fromhex(m[2:]) for m in members], amounts, ref]
        )
        gas = EARN_BATCH_GAS_BASE + EARN_BATCH_GAS_PER_MEMBER * len(members)
        return self._sign(issuer, {"to": self.token.address, "data": HexStr("0x" + data.hex()), "gas": gas}, nonce)

    def sign_redeem(
        self,
        issuer: LocalAccount,
        nonce: int,
        *,
        member: str,
        amount_points: int,
        reward_id: int,
        ref: int,
        deadline: int,
        signature: bytes,
    ) -> SignedTx:
        call = self.token.functions.redeem(member, amount_points, reward_id, ref, deadline, signature)
        return self._sign(issuer, self._call_tx(call, REDEEM_GAS), nonce)

    def broadcast(self, signed: SignedTx) -> str:
        """Send a signed transaction of an account only the caller sends from; sending one the
        node already has, or has mined, is not an error."""
        try:
            self.w3.eth.send_raw_transaction(signed.raw)
        except (Web3RPCError, ValueError) as exc:
            if not _nonce_taken(exc):
                raise
        return signed.tx_hash

    def is_known(self, tx_hash: str) -> bool:
        """Whether the node has the transaction (pending or mined)."""
        try:
            self.w3.eth.get_transaction(HexStr(tx_hash))
        except TransactionNotFound:
            return False
        return True

    def outcomes(self, tx_hashes: list[str]) -> dict[str, tuple[bool, int] | None]:
        """(succeeded, block number) of each transaction, None while it is not mined: one JSON-RPC
        batch, read raw (web3's receipt formatting of 1,000 logs per batch costs more than the call)."""
        if not tx_hashes:
            return {}
        calls = [(RPCEndpoint("eth_getTransactionReceipt"), [h]) for h in tx_hashes]
        responses = self.w3.provider.make_batch_request(calls)  # type: ignore[attr-defined]
        if not isinstance(responses, list):
            raise ChainUnavailableError(f"eth_getTransactionReceipt failed: {responses.get('error')}")
        found: dict[str, tuple[bool, int] | None] = {}
        for tx_hash, response in zip(tx_hashes, sorted(responses, key=lambda r: int(r["id"])), strict=True):
            if "error" in response:
                raise ChainUnavailableError(f"eth_getTransactionReceipt({tx_hash}) failed: {response['error']}")
            receipt = response.get("result")
            found[tx_hash] = (
                None if receipt is None else (int(receipt["status"], 16) == 1, int(receipt["blockNumber"], 16))
            )
        return found

    def wait(self, tx_hash: str, timeout_s: float = 120) -> TxReceipt:
        receipt = self.w3.eth.wait_for_transaction_receipt(HexStr(tx_hash), timeout=timeout_s, poll_latency=0.05)
        if receipt["status"] != 1:
            raise self.revert_of(tx_hash)
        return receipt

    def revert_of(self, tx_hash: str) -> ChainRevertError:
        """Why a mined transaction reverted: replays it as a call at its block."""
        tx = self.w3.eth.get_transaction(HexStr(tx_hash))
        call: TxParams = {"from": tx["from"], "to": tx["to"], "data": tx["input"], "gas": tx["gas"]}
        try:
            self.w3.eth.call(call, tx["blockNumber"])
        except (ContractCustomError, ContractLogicError) as exc:
            return self.decode_revert(exc.data)
        return ChainRevertError("Unknown", {"tx_hash": tx_hash})

    def decode_revert(self, data: Any) -> ChainRevertError:
        raw = data if isinstance(data, bytes) else bytes.fromhex(str(data or "").removeprefix("0x"))
        decoder = self._errors.get(raw[:4])
        if decoder is None:
            return ChainRevertError("Unknown", {"data": "0x" + raw.hex()})
        name, names, types = decoder
        values = abi_decode(types, raw[4:])
        return ChainRevertError(name, dict(zip(names, values, strict=True)))

    # ---------------------------------------------------------------------------- private
    def _send_as_operator(self, txs: list[TxParams]) -> list[str]:
        """Sign and send the operator's transactions in order; returns their hashes.

        The API (adding issuers) and the worker (topping up gas) both send as the operator, from
        separate processes: when the other took the nonce just read, read it again and re-sign
        what is left."""
        hashes: list[str] = []
        for _ in range(OPERATOR_SEND_ATTEMPTS):
            nonce = self.account_nonce(self.operator.address)
            try:
                for tx in txs[len(hashes) :]:
                    signed = self._sign(self.operator, tx, nonce)
                    self.w3.eth.send_raw_transaction(signed.raw)
                    hashes.append(signed.tx_hash)
                    nonce += 1
                return hashes
            except (Web3RPCError, ValueError) as exc:
                if not _nonce_taken(exc):
                    raise
        raise ChainUnavailableError(f"the operator's nonce kept changing for {OPERATOR_SEND_ATTEMPTS} attempts")

    def _call_tx(self, call: Any, gas: int) -> TxParams:
        return {"to": self.token.address, "data": call._encode_transaction_data(), "gas": gas}

    def _sign(self, account: LocalAccount, tx: TxParams, nonce: int) -> SignedTx:
        # EIP-1559 fees from the base fee, not eth_gasPrice: that one folds in recent tips (ours
        # included), and doubling it fed back on itself. We pay base fee + tip; the cap leaves
        # room for the base fee to double before the transaction is mined.
        base_fee = int(self.w3.eth.get_block("latest").get("baseFeePerGas", 0))
        full = {
            **tx,
            "nonce": nonce,
            "chainId": self.chain_id,
            "maxPriorityFeePerGas": PRIORITY_FEE_WEI,
            "maxFeePerGas": 2 * base_fee + PRIORITY_FEE_WEI,
            "value": tx.get("value", 0),
        }
        signed = account.sign_transaction(cast(Any, full))
        return SignedTx(tx_hash="0x" + bytes(signed.hash).hex(), raw=bytes(signed.raw_transaction))


def _error_decoders(abi: list[dict[str, Any]]) -> dict[bytes, tuple[str, list[str], list[str]]]:
    decoders = {}
    for item in abi:
        if item.get("type") == "error":
            types = [i["type"] for i in item["inputs"]]
            selector = function_signature_to_4byte_selector(f"{item['name']}({','.join(types)})")
            decoders[bytes(selector)] = (item["name"], [i["name"] for i in item["inputs"]], types)
    return decoders


def _nonce_taken(exc: Exception) -> bool:
    """Whether a send failed because its nonce is already used or pending."""
    text = str(exc)
    return any(reason in text for reason in ("nonce too low", "already known", "replacement transaction underpriced"))


def checksum(address: str) -> ChecksumAddress:
    return Web3.to_checksum_address(address)
