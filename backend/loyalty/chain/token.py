"""The `LoyaltyPoints` token: its reads, and its transactions signed here so the outbox can store
them before they are broadcast."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

import rlp
from eth_abi.abi import decode as abi_decode
from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils.abi import function_signature_to_4byte_selector
from web3 import Web3
from web3.exceptions import BadFunctionCallOutput, ContractLogicError
from web3.types import TxParams

from loyalty.chain.artifacts import load_artifact
from loyalty.chain.client import (
    PRIORITY_FEE_WEI,
    TRANSFER_GAS,
    ChainClient,
    SignedTx,
    address_topic,
    checksum,
    redacted,
)
from loyalty.errors import ChainMismatchError

# Gas limits cover the worst case of each write, as measured in tests/backend/workers/test_gas_limits.py
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
DEPLOY_GAS = 6_000_000  # a LoyaltyPoints deployment (about 3.6M): a cap, only gas used is paid
TOKEN_CONTRACT = "LoyaltyPoints"
# LoyaltyPoints.CONSENT_WALLET_GAS: the most a contract wallet may spend answering ERC-1271. A
# redemption of its points also pays for the call (a call gets at most 63/64 of the gas left)
# and for the signature's calldata (16 gas a byte) and copies.
CONSENT_WALLET_GAS = 500_000
CONSENT_WALLET_CALL_GAS = CONSENT_WALLET_GAS * 64 // 63 + 10_000
SIGNATURE_GAS_PER_BYTE = 20
# Leave a tenth of a block for other transactions.
BLOCK_GAS_SHARE = 0.9
ISSUER_GAS_TOPUP_WEI = 10**18
MAX_BATCH_SIZE = 1_000
ISSUER_ROLE = bytes(Web3.keccak(text="ISSUER_ROLE"))
EARN_BATCH_SELECTOR = bytes(function_signature_to_4byte_selector("earnBatch(address[],uint256[],uint256)"))
EXPIRE_SELECTOR = bytes(function_signature_to_4byte_selector("expire(address[])"))
_BATCH_EARNED = "0x" + Web3.keccak(text="BatchEarned(address,uint256,uint256,uint256,uint256)").hex().removeprefix("0x")
_REDEEMED = "0x" + Web3.keccak(text="Redeemed(address,address,uint256,uint256,uint256)").hex().removeprefix("0x")
__all__ = ["ISSUER_GAS_TOPUP_WEI", "PRIORITY_FEE_WEI", "LoyaltyToken", "token_abi"]


@cache
def token_abi() -> list[dict[str, Any]]:
    """The token's ABI, shipped in the package (`make compile` refreshes it; a test checks it
    matches the compiled contract), so the service runs without brownie's build folder."""
    text = resources.files("loyalty.chain").joinpath("abi/LoyaltyPoints.json").read_text()
    abi: list[dict[str, Any]] = json.loads(text)
    return abi


class LoyaltyToken:
    """One `LoyaltyPoints` deployment on the client's chain.

    Attributes:
        client: the chain it lives on.
        address: its address, checksummed.
        contract: the web3.py binding, for calls not worth a method here.
    """

    def __init__(self, client: ChainClient, address: str, *, check: bool = True) -> None:
        """`check`: refuse a chain without the token's code when the client first connects
        (the database's own token; another program's is checked when registered)."""
        self.client = client
        self.address = checksum(address)
        self.contract = client.w3.eth.contract(address=self.address, abi=token_abi())
        self._name: str | None = None
        client.know_errors(token_abi())
        if check:
            client.checks.append(self._check_code)

    def _check_code(self, client: ChainClient, chain_id: int) -> None:
        if client.w3.eth.get_code(self.address) in (b"", None):
            raise ChainMismatchError(
                f"chain {chain_id} at {redacted(client.rpc_url)} has no contract at {self.address}"
            )

    @property
    def name(self) -> str:
        """The EIP-712 domain's name (the token's name)."""
        if self._name is None:
            self.client.chain_id  # noqa: B018 - the chain checked first
            self._name = str(self.contract.functions.name().call())
        return self._name

    # ------------------------------------------------------------------------------- reads
    def expired_events(self, member: str) -> list[dict[str, int | str]]:
        """The member's `Expired` events: epoch, amount, tx hash, block. One raw `eth_getLogs`
        filtered by the indexed member (web3's event filter costs several times the call)."""
        self.client.chain_id  # noqa: B018 - the chain checked first
        topics = [EXPIRED_TOPIC, "0x" + "00" * 12 + checksum(member)[2:].lower()]
        logs = self.client.rpc(
            "eth_getLogs", [{"address": self.address, "fromBlock": "0x0", "toBlock": "latest", "topics": topics}]
        )
        return [
            {
                "epoch": int(log["topics"][2], 16),
                "amount_points": int(log["data"], 16),
                "tx_hash": str(log["transactionHash"]).lower(),
                "block_number": int(log["blockNumber"], 16),
            }
            for log in logs
        ]

    def balance_of(self, member: str) -> int:
        return self._uint("balanceOf(address)", member)

    def nonce_of(self, member: str) -> int:
        return self._uint("nonces(address)", member)

    def issue_budget(self, issuer: str) -> int:
        return self._uint("issueBudget(address)", issuer)

    def is_issuer(self, account: str) -> bool:
        return bool(self.contract.functions.hasRole(ISSUER_ROLE, checksum(account)).call())

    def lots_of(self, member: str) -> list[tuple[int, int]]:
        """(expires_at, amount_points) of the member's unexpired points, oldest first. One raw
        `eth_call` (web3's contract call costs several times the call itself)."""
        answer = self.client.call(self.address, _selector("lotsOf(address)") + _address_arg(member))
        [lots] = abi_decode(["(uint256,uint256)[]"], answer)
        return [(int(e), int(a)) for e, a in lots]

    def lots_of_many(self, members: Sequence[str]) -> dict[str, list[tuple[int, int]]]:
        """`lots_of` for many members, in one batch."""
        answers = self.client.raw_calls(
            [(self.address, _selector("lotsOf(address)") + _address_arg(m)) for m in members]
        )
        return {
            m: [(int(e), int(a)) for e, a in abi_decode(["(uint256,uint256)[]"], answer)[0]]
            for m, answer in zip(members, answers, strict=True)
        }

    def members_state(self, members: list[str], block: int | str = "latest") -> dict[str, tuple[int, int]]:
        """(balance, consent nonce) of each member as of one block, in one batch."""
        calls = []
        for member in members:
            arg = _address_arg(member)
            calls += [
                (self.address, _selector("balanceOf(address)") + arg),
                (self.address, _selector("nonces(address)") + arg),
            ]
        values = self.client.calls(calls, block)
        return {m: (values[2 * i], values[2 * i + 1]) for i, m in enumerate(members)}

    def expired_balances(self, members: list[str]) -> dict[str, int]:
        """Each member's expired points not yet swept, in one batch."""
        calls = [(self.address, _selector("expiredBalanceOf(address)") + _address_arg(m)) for m in members]
        return dict(zip(members, self.client.calls(calls), strict=True))

    def paused(self) -> bool:
        return bool(self.client.calls([(self.address, _selector("paused()"))])[0])

    def params(self) -> tuple[int, int, int]:
        """startTime, epochLength and validityEpochs: when points expire."""
        selectors = ("startTime()", "epochLength()", "validityEpochs()")
        start, length, validity = self.client.calls([(self.address, _selector(s)) for s in selectors])
        return start, length, validity

    def batch_logged(self, issuer: str, batch_ref: int, from_block: int, to_block: int) -> bool:
        """Whether a `BatchEarned` of `issuer` under `batch_ref` is on the chain in these blocks."""
        topics = [_BATCH_EARNED, address_topic(issuer), "0x" + batch_ref.to_bytes(32, "big").hex()]
        return bool(self.client.logs(self.address, topics, from_block, to_block))

    def redeem_logged(self, member: str, issuer: str, reward_id: int, ref: int, from_block: int, to_block: int) -> bool:
        """Whether a `Redeemed` of `member` at `issuer` for `reward_id` under `ref` is on the chain."""
        topics = [_REDEEMED, address_topic(member), address_topic(issuer), "0x" + reward_id.to_bytes(32, "big").hex()]
        logs = self.client.logs(self.address, topics, from_block, to_block)
        return any(int(log["data"][66:130], 16) == ref for log in logs)

    def _uint(self, signature: str, address: str) -> int:
        return self.client.calls([(self.address, _selector(signature) + _address_arg(address))])[0]

    # --------------------------------------------------------------------- gas limits
    @staticmethod
    def earn_batch_gas(members: int) -> int:
        return EARN_BATCH_GAS_BASE + EARN_BATCH_GAS_PER_MEMBER * members

    @staticmethod
    def max_batch_size(block_gas_limit: int) -> int:
        """The most members an `earnBatch` may carry so that its worst case fits in a block."""
        fitting = (int(block_gas_limit * BLOCK_GAS_SHARE) - EARN_BATCH_GAS_BASE) // EARN_BATCH_GAS_PER_MEMBER
        return max(1, min(MAX_BATCH_SIZE, fitting))

    @staticmethod
    def redeem_gas(validity_epochs: int, contract_wallet: bool = False, signature_bytes: int = 65) -> int:
        """A redemption's gas limit; a contract wallet's adds its ERC-1271 answer and signature."""
        gas = REDEEM_GAS_BASE + REDEEM_GAS_PER_LOT * validity_epochs
        return gas + CONSENT_WALLET_CALL_GAS + SIGNATURE_GAS_PER_BYTE * signature_bytes if contract_wallet else gas

    def wallet_accepts(self, wallet: str, digest: bytes, signature: bytes) -> bool:
        """Whether contract wallet `wallet` accepts `signature` over `digest` now (ERC-1271),
        asked as the token asks it, with at most CONSENT_WALLET_GAS."""
        return self.client.accepts_signature(wallet, digest, signature, gas=CONSENT_WALLET_GAS)

    @staticmethod
    def expire_gas(members: int, validity_epochs: int) -> int:
        return EXPIRE_GAS_BASE + EXPIRE_GAS_PER_LOT * validity_epochs * members

    @staticmethod
    def max_expire_size(block_gas_limit: int, validity_epochs: int) -> int:
        """The most members one `expire` may sweep so that its worst case fits in a block."""
        fitting = (int(block_gas_limit * BLOCK_GAS_SHARE) - EXPIRE_GAS_BASE) // (EXPIRE_GAS_PER_LOT * validity_epochs)
        return max(1, fitting)

    # ------------------------------------------------------------------- signing writes
    def sign_earn_batch(
        self, issuer: LocalAccount, nonce: int, members: list[str], amounts: list[int], ref: int, base_fee: int
    ) -> SignedTx:
        # Encoded with eth_abi directly: web3's contract-call encoder validates and checksums each
        # of up to 1,000 addresses again, which took longer than everything else in a batch.
        data = EARN_BATCH_SELECTOR + abi_encode(
            ["address[]", "uint256[]", "uint256"], [[bytes.fromhex(m[2:]) for m in members], amounts, ref]
        )
        tx: TxParams = {"to": self.address, "data": HexStr("0x" + data.hex()), "gas": self.earn_batch_gas(len(members))}
        return self.client.sign(issuer, tx, nonce, base_fee)

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
        contract_wallet: bool = False,
    ) -> SignedTx:
        call = self.contract.functions.redeem(member, amount_points, reward_id, ref, deadline, signature)
        gas = self.redeem_gas(validity_epochs, contract_wallet, len(signature))
        return self.client.sign(issuer, self._call_tx(call, gas), nonce, base_fee)

    def sign_expire(self, nonce: int, members: list[str], validity_epochs: int, base_fee: int) -> SignedTx:
        data = EXPIRE_SELECTOR + abi_encode(["address[]"], [[bytes.fromhex(m[2:]) for m in members]])
        gas = self.expire_gas(len(members), validity_epochs)
        tx: TxParams = {"to": self.address, "data": HexStr("0x" + data.hex()), "gas": gas}
        return self.client.sign(self.client.operator, tx, nonce, base_fee)

    def sign_grant_issuer(self, nonce: int, issuer: str, base_fee: int) -> SignedTx:
        call = self.contract.functions.grantRole(ISSUER_ROLE, checksum(issuer))
        return self.client.sign(self.client.operator, self._call_tx(call, OPERATOR_CALL_GAS), nonce, base_fee)

    def sign_set_budget(self, nonce: int, issuer: str, budget_points: int, base_fee: int) -> SignedTx:
        call = self.contract.functions.setIssueBudget(checksum(issuer), budget_points)
        return self.client.sign(self.client.operator, self._call_tx(call, OPERATOR_CALL_GAS), nonce, base_fee)

    def sign_topup(self, nonce: int, issuer: str, base_fee: int) -> SignedTx:
        """Gas money for an issuer account, from the operator."""
        tx: TxParams = {"to": checksum(issuer), "value": ISSUER_GAS_TOPUP_WEI, "gas": TRANSFER_GAS}  # type: ignore[typeddict-item]
        return self.client.sign(self.client.operator, tx, nonce, base_fee)

    def facts(self) -> TokenFacts:
        """What a program records of its token, read from the contract; an address without a
        LoyaltyPoints there is `ChainMismatchError`."""
        if not self.client.has_code(self.address):
            raise ChainMismatchError(f"there is no contract at {self.address}")
        f = self.contract.functions
        try:
            name, symbol = str(f.name().call()), str(f.symbol().call())
            epoch_length, validity = int(f.epochLength().call()), int(f.validityEpochs().call())
            administered = bool(f.hasRole(b"\0" * 32, self.client.operator.address).call())
        except (ContractLogicError, BadFunctionCallOutput, ValueError) as exc:  # not our token's interface
            raise ChainMismatchError(f"{self.address} is not a LoyaltyPoints token ({type(exc).__name__})") from exc
        return TokenFacts(name, symbol, epoch_length, validity, administered)

    def _call_tx(self, call: Any, gas: int) -> TxParams:
        return {"to": self.address, "data": call._encode_transaction_data(), "gas": gas}


@dataclass(frozen=True)
class TokenFacts:
    """A deployed token's name and expiry settings, and whether the operator administers it
    (it must, to make partners its issuers)."""

    name: str
    symbol: str
    epoch_length_s: int
    validity_epochs: int
    administered: bool


def create_address(sender: str, nonce: int) -> str:
    """The address a contract deployed by `sender` with `nonce` gets: known before it is sent."""
    return checksum("0x" + bytes(Web3.keccak(rlp.encode([bytes.fromhex(sender[2:]), nonce])))[12:].hex())


def sign_deploy_token(
    client: ChainClient,
    nonce: int,
    base_fee: int,
    *,
    name: str,
    symbol: str,
    epoch_length_s: int,
    validity_epochs: int,
) -> tuple[SignedTx, str]:
    """The operator's transaction deploying a LoyaltyPoints it administers, and the address the
    token will have."""
    arguments = abi_encode(
        ["string", "string", "address", "uint256", "uint256"],
        [name, symbol, client.operator.address, epoch_length_s, validity_epochs],
    )
    tx: TxParams = {"data": HexStr(load_artifact(TOKEN_CONTRACT).bytecode + arguments.hex()), "gas": DEPLOY_GAS}
    return client.sign(client.operator, tx, nonce, base_fee), create_address(client.operator.address, nonce)


EXPIRED_TOPIC = "0x" + Web3.keccak(text="Expired(address,uint256,uint256)").hex().removeprefix("0x")


def _selector(signature: str) -> str:
    return bytes(function_signature_to_4byte_selector(signature)).hex()


def _address_arg(address: str) -> str:
    return abi_encode(["address"], [checksum(address)]).hex()
