"""The `PointsExchange` contract: its reads, and its transactions signed here so the outbox can
store them before they are broadcast (as `chain/token.py` does for the token)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cache
from importlib import resources
from typing import Any

from eth_abi.abi import encode as abi_encode
from eth_account.signers.local import LocalAccount
from eth_typing import HexStr
from eth_utils.crypto import keccak
from web3.types import TxParams

from loyalty.chain.client import ChainClient, SignedTx, checksum
from loyalty.domain.consent import typed_data_digest
from loyalty.domain.exchange import Agreement, agreement_typed_data
from loyalty.errors import ChainRevertError, TxRefusedError

REGISTER_GAS = 1_500_000  # registration checks up to MAX_ROUTES (64) reverse agreements' round trips: a cap, not a cost
REVOKE_GAS = 80_000
OPERATOR_CALL_GAS = 120_000
ERC20_CALL_GAS = 100_000
GAS_MARGIN = (5, 4)  # an exchange batch gets 5/4 of its estimate: lots and first holders vary its cost
MAX_UINT256 = 2**256 - 1


@dataclass(frozen=True)
class Order:
    """One member's exchange in a batch (`IPointsExchange.Order`)."""

    member: str
    amount_in: int
    ref: int
    deadline: int
    consent: bytes

    def as_tuple(self) -> tuple[str, int, int, int, bytes]:
        return (checksum(self.member), self.amount_in, self.ref, self.deadline, self.consent)


@dataclass(frozen=True)
class Standing:
    """What an exchange under one agreement would meet: the period, the payer's debt to the
    payee in it, and the payer's oldest unpaid payment's due date (0: none)."""

    period: int
    debt: int
    overdue_since: int


@cache
def exchange_abi() -> list[dict[str, Any]]:
    """The exchange's ABI, shipped in the package (`make compile` refreshes it)."""
    text = resources.files("loyalty.chain").joinpath("abi/PointsExchange.json").read_text()
    abi: list[dict[str, Any]] = json.loads(text)
    return abi


class PointsExchange:
    """One `PointsExchange` deployment on the client's chain."""

    def __init__(self, client: ChainClient, address: str) -> None:
        self.client = client
        self.address = checksum(address)
        self.contract = client.w3.eth.contract(address=self.address, abi=exchange_abi())
        client.know_errors(exchange_abi())
        # Reads shared by the requests of one block ((what, key) -> (block, value)): see
        # `services.exchanges.ChainView`.
        self.reads: dict[tuple[str, str], tuple[int, Any]] = {}

    def typed_data(self, agreement: Agreement) -> dict[str, Any]:
        """What both brands' agreement signers sign."""
        return agreement_typed_data(agreement, chain_id=self.client.chain_id, exchange_address=self.address)

    def agreement_id(self, agreement: Agreement) -> str:
        """The agreement's id on this deployment: its EIP-712 digest, 0x hex."""
        return "0x" + typed_data_digest(self.typed_data(agreement)).hex()

    def status(self, agreement_id: str) -> tuple[bool, bool]:
        """(registered, revoked)."""
        registered, revoked = self.contract.functions.agreementStatus(bytes.fromhex(agreement_id[2:])).call()
        return bool(registered), bool(revoked)

    def is_program_brand(self, token: str, brand: str) -> bool:
        """Whether `token`'s admin allowed `brand` to be paid for points exchanged into it."""
        return bool(self.contract.functions.isProgramBrand(checksum(token), checksum(brand)).call())

    def sign_allow_brand(self, nonce: int, base_fee: int, token: str, brand: str) -> SignedTx:
        """The operator (the program's admin) allows `brand` to be paid for points exchanged into `token`."""
        call = self.contract.functions.setProgramBrand(checksum(token), checksum(brand), True)
        return self.client.sign(self.client.operator, self._call_tx(call, OPERATOR_CALL_GAS), nonce, base_fee)

    def sign_register(
        self, nonce: int, base_fee: int, agreement: Agreement, payer_signature: bytes, payee_signature: bytes
    ) -> SignedTx:
        call = self.contract.functions.registerAgreement(agreement.as_tuple(), payer_signature, payee_signature)
        return self.client.sign(self.client.operator, self._call_tx(call, REGISTER_GAS), nonce, base_fee)

    def sign_revoke(self, brand: LocalAccount, nonce: int, base_fee: int, agreement: Agreement) -> SignedTx:
        call = self.contract.functions.revokeAgreement(agreement.as_tuple())
        return self.client.sign(brand, self._call_tx(call, REVOKE_GAS), nonce, base_fee)

    def signer_of(self, brand: str) -> str:
        """The address whose signatures the exchange takes for `brand`'s agreements."""
        return checksum(self.contract.functions.signerOf(checksum(brand)).call())

    def sign_set_signer(self, brand: LocalAccount, nonce: int, base_fee: int, signer: str | None) -> SignedTx:
        """The brand signs its agreements with `signer` from now on (`None`: with its own key)."""
        call = self.contract.functions.setAgreementSigner(checksum(signer) if signer else ZERO_ADDRESS)
        return self.client.sign(brand, self._call_tx(call, SET_SIGNER_GAS), nonce, base_fee)

    # ------------------------------------------------------------------------ exchanging
    def standing(self, agreement: Agreement, block: int) -> Standing:
        """The agreement's limits as they stand at `block` (see `Standing`)."""
        functions = self.contract.functions
        period = int(functions.currentPeriod().call(block_identifier=block))
        payer, payee = checksum(agreement.payer), checksum(agreement.payee)
        debt = int(functions.debtOf(period, payer, payee).call(block_identifier=block))
        any_unpaid, _, _, due = functions.oldestUnpaid(payer).call(block_identifier=block)
        return Standing(period, debt, int(due) if any_unpaid else 0)

    def member_used(self, agreement: Agreement, member: str, block: int) -> int:
        """What `member` exchanged under the agreement in the current period, at `block`."""
        agreement_id = bytes.fromhex(self.agreement_id(agreement)[2:])
        return int(self.contract.functions.memberExchanged(agreement_id, checksum(member)).call(block_identifier=block))

    def batch_gas(self, agreement: Agreement, orders: list[Order]) -> int | ChainRevertError:
        """The gas `exchangeBatch` of `orders` needs now, with a margin, or why it would revert."""
        tx = {"from": self.client.operator.address, "to": self.address, "data": _batch_calldata(agreement, orders)}
        try:
            estimate = int(self.client.rpc("eth_estimateGas", [tx]), 16)
        except TxRefusedError as exc:
            return (
                self.client.decode_revert(exc.data) if exc.data else ChainRevertError("Unknown", {"reason": exc.reason})
            )
        return estimate * GAS_MARGIN[0] // GAS_MARGIN[1]

    def sign_exchange_batch(
        self, nonce: int, base_fee: int, agreement: Agreement, orders: list[Order], gas: int
    ) -> SignedTx:
        """The operator (the exchange's relayer) sends the members' exchanges in one transaction."""
        tx: TxParams = {"to": self.address, "data": HexStr(_batch_calldata(agreement, orders)), "gas": gas}
        return self.client.sign(self.client.operator, tx, nonce, base_fee)

    def exchanged_logged(self, agreement_id: str, ref: int, from_block: int, to_block: int) -> bool:
        """Whether an `Exchanged` event of the agreement with `ref` is on the chain."""
        for log in self.client.logs(self.address, [_EXCHANGED_TOPIC, agreement_id], from_block, to_block):
            data = bytes.fromhex(str(log["data"]).removeprefix("0x"))
            if int.from_bytes(data[64:96], "big") == ref:
                return True
        return False

    # ------------------------------------------------------------------------ settlement
    def period_facts(self, period: int) -> tuple[int, int, bool]:
        """(end, due date, closed) of `period`."""
        functions = self.contract.functions
        end, due = int(functions.periodEnd(period).call()), int(functions.dueDate(period).call())
        return end, due, period < int(functions.nextPeriodToClose().call())

    def next_period_to_close(self) -> int:
        return int(self.contract.functions.nextPeriodToClose().call())

    def current_period(self) -> int:
        return int(self.contract.functions.currentPeriod().call())

    def debt_of(self, period: int, payer: str, payee: str) -> int:
        return int(self.contract.functions.debtOf(period, checksum(payer), checksum(payee)).call())

    def payments_of(self, period: int) -> list[tuple[str, bool, str, int]]:
        """(debtor, settled, creditor, amount) of each payment a closed period asks for, in order."""
        return [(str(d), bool(s), str(c), int(a)) for d, s, c, a in self.contract.functions.paymentsOf(period).call()]

    def settlement_token(self) -> str:
        return str(self.contract.functions.settlementToken().call())

    def allowance(self, owner: str) -> int:
        """What `owner` lets the exchange take of its settlement tokens."""
        data = _ALLOWANCE + _word(owner) + _word(self.address)
        return int.from_bytes(self.client.call(self.settlement_token(), data), "big")

    def sign_close(self, nonce: int, base_fee: int, period: int) -> SignedTx:
        call = self.contract.functions.closePeriod(period)
        return self.client.sign(self.client.operator, self._call_tx(call, CLOSE_GAS), nonce, base_fee)

    def sign_approve(self, brand: LocalAccount, nonce: int, base_fee: int) -> SignedTx:
        """The brand lets the exchange take its settlement payments from it (once, for all)."""
        data = "0x" + _APPROVE + _word(self.address) + MAX_UINT256.to_bytes(32, "big").hex()
        tx: TxParams = {"to": checksum(self.settlement_token()), "data": data, "gas": ERC20_CALL_GAS}  # type: ignore[typeddict-item]
        return self.client.sign(brand, tx, nonce, base_fee)

    def sign_settle(self, brand: LocalAccount, nonce: int, base_fee: int, period: int, index: int) -> SignedTx:
        call = self.contract.functions.settle(period, index)
        return self.client.sign(brand, self._call_tx(call, SETTLE_GAS), nonce, base_fee)

    def sign_confirm(self, brand: LocalAccount, nonce: int, base_fee: int, period: int, index: int) -> SignedTx:
        call = self.contract.functions.confirmReceipt(period, index)
        return self.client.sign(brand, self._call_tx(call, SETTLE_GAS), nonce, base_fee)

    def _call_tx(self, call: Any, gas: int) -> TxParams:
        return {"to": self.address, "data": call._encode_transaction_data(), "gas": gas}


CLOSE_GAS = 12_000_000  # the fullest period (MAX_PAIRS_PER_PERIOD pairs) closes under this: a cap, not a cost
SETTLE_GAS = 150_000
SET_SIGNER_GAS = 60_000
ZERO_ADDRESS = "0x" + "00" * 20
_APPROVE = "095ea7b3"  # approve(address,uint256)
_ALLOWANCE = "dd62ed3e"  # allowance(address,address)
_EXCHANGED_TOPIC = (
    "0x" + keccak(text="Exchanged(bytes32,address,uint256,uint256,uint256,uint256,uint256,uint256)").hex()
)


def _word(address: str) -> str:
    return "0" * 24 + checksum(address)[2:].lower()


_AGREEMENT = "(address,address,address,address,uint32,uint32,uint64,uint64,uint64,uint64,uint64,uint64,uint128,uint128,uint64,uint64,uint256)"
_BATCH_SELECTOR = keccak(text=f"exchangeBatch({_AGREEMENT},(address,uint256,uint256,uint256,bytes)[])")[:4]


def _batch_calldata(agreement: Agreement, orders: list[Order]) -> str:
    """`exchangeBatch`'s calldata, encoded by eth-abi directly (web3's contract encoder costs
    more than a millisecond per order)."""
    encoded = abi_encode(
        [_AGREEMENT, "(address,uint256,uint256,uint256,bytes)[]"],
        [agreement.as_tuple(), [o.as_tuple() for o in orders]],
    )
    return "0x" + (_BATCH_SELECTOR + encoded).hex()
