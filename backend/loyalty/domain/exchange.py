"""Exchange agreements between programs: the EIP-712 struct both brands sign, the rate math
`PointsExchange` applies, and the netting that turns a period's debts into payments.

The contract and this module must agree exactly (an auditor re-derives every exchange with
these functions), so each mirrors one function of `contracts/PointsExchange.sol` or
`contracts/libraries/ExchangeRate.sol`, integers only.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import astuple, dataclass, fields
from typing import Any

from loyalty.domain.consent import DOMAIN_TYPE

EXCHANGE_NAME, EXCHANGE_VERSION = "PointsExchange", "1"
MAX_AMOUNT = 2**96 - 1  # a token's lot; the contract refuses more in or out

AGREEMENT_TYPE = [
    {"name": "source", "type": "address"},
    {"name": "target", "type": "address"},
    {"name": "payer", "type": "address"},
    {"name": "payee", "type": "address"},
    {"name": "rateNumerator", "type": "uint32"},
    {"name": "rateDenominator", "type": "uint32"},
    {"name": "minimumIn", "type": "uint64"},
    {"name": "stepIn", "type": "uint64"},
    {"name": "maxInPerExchange", "type": "uint64"},
    {"name": "maxInPerMemberPeriod", "type": "uint64"},
    {"name": "bonusEvery", "type": "uint64"},
    {"name": "bonusOut", "type": "uint64"},
    {"name": "pricePerPoint", "type": "uint128"},
    {"name": "creditLimit", "type": "uint128"},
    {"name": "validFrom", "type": "uint64"},
    {"name": "validUntil", "type": "uint64"},
    {"name": "salt", "type": "uint256"},
]


@dataclass(frozen=True)
class Agreement:
    """A rate agreement, field for field as `IPointsExchange.Agreement` (caps and the credit
    limit 0 for none; `price_per_point` in the settlement token's smallest units)."""

    source: str
    target: str
    payer: str
    payee: str
    rate_numerator: int
    rate_denominator: int
    minimum_in: int
    step_in: int
    max_in_per_exchange: int
    max_in_per_member_period: int
    bonus_every: int
    bonus_out: int
    price_per_point: int
    credit_limit: int
    valid_from: int
    valid_until: int
    salt: int

    def as_tuple(self) -> tuple[Any, ...]:
        """The struct as the contract's ABI takes it."""
        return astuple(self)

    @classmethod
    def from_tuple(cls, values: Iterable[Any]) -> Agreement:
        """From the struct as an event or a call decodes it."""
        return cls(*values)


def agreement_typed_data(agreement: Agreement, *, chain_id: int, exchange_address: str) -> dict[str, Any]:
    """The EIP-712 typed data a brand's agreement signer signs (its digest is the agreement's id)."""
    names = [entry["name"] for entry in AGREEMENT_TYPE]
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "Agreement": AGREEMENT_TYPE},
        "primaryType": "Agreement",
        "domain": {
            "name": EXCHANGE_NAME,
            "version": EXCHANGE_VERSION,
            "chainId": chain_id,
            "verifyingContract": exchange_address,
        },
        "message": dict(zip(names, (getattr(agreement, f.name) for f in fields(agreement)), strict=True)),
    }


class QuoteRefused(ValueError):
    """An amount the agreement does not take; `reason` names the contract's error."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def check_terms(agreement: Agreement, now: int) -> None:
    """Refuse terms the contract's `registerAgreement` would (`QuoteRefused` naming its error)."""
    a = agreement
    if a.source.lower() == a.target.lower():
        raise QuoteRefused("ExchangeInvalidPrograms", "the source and target programs must differ")
    if a.payer.lower() == a.payee.lower():
        raise QuoteRefused("ExchangeInvalidBrands", "the payer and the payee must be different brands")
    if not (0 < a.rate_numerator < 2**32 and 0 < a.rate_denominator < 2**32):
        raise QuoteRefused("ExchangeInvalidRate", "the rate's numerator and denominator must be 1 to 2^32 - 1")
    if not a.step_in or any(cap and cap < a.minimum_in for cap in (a.max_in_per_exchange, a.max_in_per_member_period)):
        raise QuoteRefused("ExchangeInvalidAmounts", "the step must be positive and each cap at least the minimum")
    if bool(a.bonus_every) != bool(a.bonus_out):
        raise QuoteRefused("ExchangeInvalidBonus", "a bonus needs both bonus_every and bonus_out")
    if a.valid_until <= a.valid_from or a.valid_until <= now:
        raise QuoteRefused("ExchangeInvalidValidity", "the agreement must end after it starts, and after now")


def amount_out(agreement: Agreement, amount_in: int) -> int:
    """`amountIn * num / den` rounded down, plus the bonus for every whole `bonus_every` in."""
    out = amount_in * agreement.rate_numerator // agreement.rate_denominator
    if agreement.bonus_every:
        out += amount_in // agreement.bonus_every * agreement.bonus_out
    return out


def quote(agreement: Agreement, amount_in: int) -> tuple[int, int]:
    """(points out, settlement units owed) for `amount_in`, refused as the contract refuses."""
    a = agreement
    if amount_in > MAX_AMOUNT:
        raise QuoteRefused("ExchangeInvalidAmount", f"{amount_in} points is more than a token holds")
    if amount_in < a.minimum_in:
        raise QuoteRefused("ExchangeBelowMinimum", f"{amount_in} points is below the minimum {a.minimum_in}")
    if amount_in % a.step_in:
        raise QuoteRefused("ExchangeOffStep", f"{amount_in} points is not a multiple of {a.step_in}")
    if a.max_in_per_exchange and amount_in > a.max_in_per_exchange:
        raise QuoteRefused("ExchangeCapExceeded", f"{amount_in} points is over the cap {a.max_in_per_exchange}")
    out = amount_out(a, amount_in)
    if not 0 < out <= MAX_AMOUNT:
        raise QuoteRefused("ExchangeInvalidAmount", f"{amount_in} points would give {out} points")
    return out, out * a.price_per_point


def best_rate(agreement: Agreement) -> tuple[int, int]:
    """The most out per point in, as (numerator, denominator): the rate plus the bonus's rate."""
    a = agreement
    if not a.bonus_every:
        return a.rate_numerator, a.rate_denominator
    return a.rate_numerator * a.bonus_every + a.bonus_out * a.rate_denominator, a.rate_denominator * a.bonus_every


def round_trip_gains(there: Agreement, back: Agreement) -> bool:
    """Whether going `there` then `back` could return as many points as went in, or more."""
    (an, ad), (bn, bd) = best_rate(there), best_rate(back)
    return an * bn >= ad * bd


Payment = tuple[str, str, int]  # (debtor, creditor, amount)


def net_positions(debts: Mapping[tuple[str, str], int]) -> dict[str, int]:
    """Each brand's credit less its debt over `debts` ((payer, payee) -> owed); they sum to zero."""
    net: dict[str, int] = {}
    for (payer, payee), owed in debts.items():
        net[payer] = net.get(payer, 0) - owed
        net[payee] = net.get(payee, 0) + owed
    return net


def payments(debts: Mapping[tuple[str, str], int]) -> list[Payment]:
    """The payments `closePeriod` asks for: brands by ascending address (as 160-bit numbers),
    each debtor paying the creditors in that order until it owes nothing; at most n - 1 for n
    brands."""
    net = net_positions(debts)
    order = sorted(net, key=lambda brand: int(brand, 16))
    creditors = [brand for brand in order if net[brand] > 0]
    credit = [net[brand] for brand in creditors]
    due: list[Payment] = []
    at = 0
    for debtor in (brand for brand in order if net[brand] < 0):
        owes = -net[debtor]
        while owes:
            while credit[at] == 0:
                at += 1
            amount = min(owes, credit[at])
            owes -= amount
            credit[at] -= amount
            due.append((debtor, creditors[at], amount))
    return due
