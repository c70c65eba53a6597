"""The `PointsExchange` contract: its reads, and its transactions signed here so the outbox can
store them before they are broadcast (as `chain/token.py` does for the token)."""

from __future__ import annotations

import json
from functools import cache
from importlib import resources
from typing import Any

from eth_account.signers.local import LocalAccount
from web3.types import TxParams

from loyalty.chain.client import ChainClient, SignedTx, checksum
from loyalty.domain.consent import typed_data_digest
from loyalty.domain.exchange import Agreement, agreement_typed_data

REGISTER_GAS = 1_500_000  # registration checks up to MAX_ROUTES (64) reverse agreements' round trips: a cap, not a cost
REVOKE_GAS = 80_000
OPERATOR_CALL_GAS = 120_000


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

    def _call_tx(self, call: Any, gas: int) -> TxParams:
        return {"to": self.address, "data": call._encode_transaction_data(), "gas": gas}
