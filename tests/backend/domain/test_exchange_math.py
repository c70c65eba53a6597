"""The exchange's rate math and netting, as pure functions (the contract is tested to agree in
tests/contracts)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from loyalty.domain.exchange import (
    Agreement,
    QuoteRefused,
    amount_out,
    best_rate,
    net_positions,
    payments,
    quote,
    round_trip_gains,
)

TERMS = Agreement(
    source="0x" + "1" * 40, target="0x" + "2" * 40, payer="0x" + "3" * 40, payee="0x" + "4" * 40,
    rate_numerator=1, rate_denominator=3, minimum_in=300, step_in=3, max_in_per_exchange=90_000,
    max_in_per_member_period=0, bonus_every=60_000, bonus_out=5_000, price_per_point=20_000, credit_limit=0,
    valid_from=0, valid_until=2**40, salt=1,
)  # fmt: skip
BRANDS = [f"0x{i:040x}" for i in range(1, 7)]


def test_quote_roundsDownAndAddsABonusPerWholeBlock():
    assert quote(TERMS, 60_000) == (25_000, 25_000 * 20_000)
    assert quote(TERMS, 59_997) == (19_999, 19_999 * 20_000)
    assert amount_out(TERMS, 120_003) == 40_001 + 10_000


@pytest.mark.parametrize(
    ("amount_in", "reason"),
    [
        (297, "ExchangeBelowMinimum"),
        (301, "ExchangeOffStep"),
        (90_003, "ExchangeCapExceeded"),
        (2**96, "ExchangeInvalidAmount"),
    ],
)
def test_quote_refusesAsTheContractDoes(amount_in, reason):
    with pytest.raises(QuoteRefused) as refused:
        quote(TERMS, amount_in)
    assert refused.value.reason == reason


def test_roundTrip_countsTheBonusAtItsOwnRate():
    back = dataclasses.replace(TERMS, rate_numerator=12, rate_denominator=5, bonus_every=0, bonus_out=0)
    assert best_rate(TERMS) == (1 * 60_000 + 5_000 * 3, 3 * 60_000)  # 5/12
    assert round_trip_gains(TERMS, back)  # 5/12 * 12/5 = 1: as much back
    assert not round_trip_gains(TERMS, dataclasses.replace(back, rate_numerator=11))


debts = st.dictionaries(
    st.tuples(st.sampled_from(BRANDS), st.sampled_from(BRANDS)).filter(lambda pair: pair[0] != pair[1]),
    st.integers(min_value=1, max_value=10**12),
    max_size=20,
)


@given(debts)
def test_payments_settleEveryNetPositionInAtMostNMinusOne(owed):
    net = net_positions(owed)
    asked = payments(owed)
    assert sum(net.values()) == 0
    assert len(asked) <= max(len(net) - 1, 0)
    assert all(amount > 0 and debtor != creditor for debtor, creditor, amount in asked)
    for brand, position in net.items():
        paid_in = sum(a for _, c, a in asked if c == brand)
        paid_out = sum(a for d, _, a in asked if d == brand)
        assert paid_in - paid_out == position
        assert not (paid_in and paid_out)  # a brand only pays or only is paid
