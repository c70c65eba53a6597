"""Two programs, two brands and an exchange between them, for the contract tests and the gas
benchmark: deployments, agreements signed by the brands' keys, and members' consents."""

from __future__ import annotations

import dataclasses
import time
from typing import Any

from brownie import LoyaltyPoints, PointsExchange, TestDollar, accounts, chain
from eth_account import Account
from eth_account.signers.local import LocalAccount

from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.domain.exchange import Agreement, agreement_typed_data

EPOCH_S = 86_400
VALIDITY_EPOCHS = 12
PERIOD_S = 7 * 86_400
PAYMENT_WINDOW_S = 3 * 86_400
INCOMING_BUDGET = 10**15
SOURCE_NAME, TARGET_NAME = "Hotel Points", "Air Miles"
FAR = 10 * 365 * 86_400


class World:
    """Source and target programs (each a LoyaltyPoints), their issuers, the exchange (with the
    relayer and both tokens' roles) and a settlement dollar; brands are keys that sign."""

    def __init__(self, epoch_s: int = EPOCH_S) -> None:
        self.admin, self.issuer, self.relayer = accounts[0], accounts[1], accounts[2]
        self.epoch_s = epoch_s
        self.source = self.program(SOURCE_NAME, "HOTEL")
        self.target = self.program(TARGET_NAME, "MILES")
        self.dollar = TestDollar.deploy({"from": self.admin})
        self.exchange = PointsExchange.deploy(self.admin, self.dollar, PERIOD_S, PAYMENT_WINDOW_S, {"from": self.admin})
        self.exchange.grantRole(self.exchange.RELAYER_ROLE(), self.relayer, {"from": self.admin})
        self.connect(self.source)
        self.connect(self.target)
        self.hotel, self.airline = self.brand(), self.brand()
        self._refs = iter(range(1, 2**32))
        self._ids: dict[Agreement, bytes] = {}

    def program(self, name: str, symbol: str) -> Any:
        token = LoyaltyPoints.deploy(name, symbol, self.admin, self.epoch_s, VALIDITY_EPOCHS, {"from": self.admin})
        token.grantRole(token.ISSUER_ROLE(), self.issuer, {"from": self.admin})
        token.setIssueBudget(self.issuer, 10**18, {"from": self.admin})
        return token

    def connect(self, token: Any, budget: int = INCOMING_BUDGET) -> None:
        """What a program's admin does to take part: the exchange may burn (with consent) and
        mint up to `budget` incoming points."""
        token.grantRole(token.ISSUER_ROLE(), self.exchange, {"from": self.admin})
        token.setIssueBudget(self.exchange, budget, {"from": self.admin})

    def brand(self, *, allowed: bool = True) -> Any:
        """A brand's key, usable by brownie to send transactions (funded with ether); both
        programs' admin allows it to be paid for points exchanged into them, unless not `allowed`."""
        key = Account.create().key
        brand = accounts.add(key.hex())
        self.admin.transfer(brand, 10**18)
        if allowed:
            for token in (self.source, self.target):
                self.exchange.setProgramBrand(token, brand, True, {"from": self.admin})
        return brand

    def terms(self, **changes: Any) -> Agreement:
        """Hotel points to air miles, 3 : 1, the hotel paying the airline 2 cents a mile."""
        now = chain.time()
        base = Agreement(
            source=self.source.address, target=self.target.address, payer=self.hotel.address,
            payee=self.airline.address, rate_numerator=1, rate_denominator=3, minimum_in=300, step_in=3,
            max_in_per_exchange=0, max_in_per_member_period=0, bonus_every=0, bonus_out=0,
            price_per_point=20_000, credit_limit=0, valid_from=now - 60, valid_until=now + FAR, salt=1,
        )  # fmt: skip
        return dataclasses.replace(base, **changes)

    def sign(self, agreement: Agreement, signer: Any) -> bytes:
        data = agreement_typed_data(agreement, chain_id=chain.id, exchange_address=self.exchange.address)
        return sign_typed_data(data, signer.private_key)

    def register(self, agreement: Agreement, payer_signer: Any = None, payee_signer: Any = None) -> Any:
        """Register `agreement` signed by its brands (or the signers given); returns the tx."""
        payer = payer_signer or self._account(agreement.payer)
        payee = payee_signer or self._account(agreement.payee)
        return self.exchange.registerAgreement(
            agreement.as_tuple(), self.sign(agreement, payer), self.sign(agreement, payee), {"from": self.admin}
        )

    def agreement_id(self, agreement: Agreement) -> bytes:
        if agreement not in self._ids:
            self._ids[agreement] = bytes(self.exchange.agreementId(agreement.as_tuple()))
        return self._ids[agreement]

    def member(self, points: int = 0, token: Any = None) -> LocalAccount:
        """A new member holding `points` on the source (or on `token`)."""
        member = Account.create()
        if points:
            (token or self.source).earn(member.address, points, self.ref(), {"from": self.issuer})
        return member

    def ref(self) -> int:
        return next(self._refs)

    def consent(
        self, agreement: Agreement, member: LocalAccount, amount_in: int, ref: int, *, deadline: int | None = None
    ) -> bytes:
        """The member's consent to give `amount_in` on the source for `agreement`."""
        token = self._token(agreement.source)
        consent = RedeemConsent(
            member=member.address, issuer=self.exchange.address, amount_points=amount_in,
            reward_id=int.from_bytes(self.agreement_id(agreement), "big"), ref=ref,
            nonce=token.nonces(member.address), deadline=deadline or int(time.time()) + FAR,
        )  # fmt: skip
        data = redeem_typed_data(
            consent,
            chain_id=chain.id,
            token_address=token.address,
            token_name=SOURCE_NAME if token == self.source else token.name(),
        )
        return sign_typed_data(data, member.key)

    def exchange_points(self, agreement: Agreement, member: LocalAccount, amount_in: int, **tx: Any) -> Any:
        """Relay the member's exchange of `amount_in` (consent signed here); returns the tx."""
        ref = self.ref()
        deadline = int(time.time()) + FAR
        signature = self.consent(agreement, member, amount_in, ref, deadline=deadline)
        return self.exchange.exchange(
            agreement.as_tuple(), member.address, amount_in, ref, deadline, signature, {"from": self.relayer, **tx}
        )

    def order(self, agreement: Agreement, member: LocalAccount, amount_in: int) -> tuple[Any, ...]:
        ref = self.ref()
        deadline = int(time.time()) + FAR
        return (
            member.address,
            amount_in,
            ref,
            deadline,
            self.consent(agreement, member, amount_in, ref, deadline=deadline),
        )

    def _token(self, address: str) -> Any:
        return (
            self.source
            if address == self.source.address
            else self.target
            if address == self.target.address
            else LoyaltyPoints.at(address)
        )

    def _account(self, address: str) -> Any:
        return next(a for a in accounts if a.address == address)
