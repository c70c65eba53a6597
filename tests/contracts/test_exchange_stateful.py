"""Any sequence of exchanges, time passing, period closes and payments keeps the exchange equal
to a small Python model: net positions sum to zero and the payments asked for net them; the
tokens' supplies move by exactly what was exchanged; no debt passes its credit limit; a payer
overdue is refused.

Hypothesis drives the machine directly, as in test_stateful.py (brownie's wrapper rejects
generated machine classes), rewinding the chain before each example.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import brownie
import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)
from support.exchange import PAYMENT_WINDOW_S, PERIOD_S, World

from loyalty.domain.exchange import Agreement, net_positions, payments, quote

MEMBERS, START_POINTS = 3, 30_000
YEAR = 365 * 86_400


@pytest.fixture(scope="module")
def long_world() -> World:
    """Points that do not expire while the machine runs (a year per epoch): supplies move only
    by exchanges."""
    return World(epoch_s=YEAR)


class ExchangeMachine(RuleBasedStateMachine):
    world: ClassVar[World]
    agreements: ClassVar[list[Agreement]]
    members: ClassVar[list[Any]]
    brands: ClassVar[list[Any]]

    def __init__(self) -> None:
        super().__init__()
        brownie.chain.revert()
        w = self.world
        self.source_supply, self.target_supply = int(w.source.totalSupply()), int(w.target.totalSupply())
        self.balances = {m.address: START_POINTS for m in self.members}
        self.exchanged_in = self.exchanged_out = 0
        self.debts: dict[int, dict[tuple[str, str], int]] = defaultdict(lambda: defaultdict(int))
        self.used: dict[tuple[int, str, int], int] = defaultdict(int)  # (agreement, member, period) -> in
        self.closed = 0
        self.unpaid: list[tuple[int, int, str, str, int]] = []  # (period, index, debtor, creditor, amount)
        self.dollars = {b.address: 0 for b in self.brands}

    def _period(self) -> int:
        return int(self.world.exchange.currentPeriod())

    def _overdue(self, payer: str) -> bool:
        now = brownie.chain.time()
        return any(d == payer and now > int(self.world.exchange.dueDate(p)) for p, _, d, _, _ in self.unpaid)

    @initialize()
    def exchange_under_each_agreement(self) -> None:
        """Every example starts with debts between every pair, so closes have payments to ask."""
        for which in range(len(self.agreements)):
            self.exchange(which, which % MEMBERS, 200)

    @rule(which=st.integers(0, 2), member=st.integers(0, MEMBERS - 1), steps=st.integers(90, 700))
    def exchange(self, which: int, member: int, steps: int) -> None:
        w, terms, holder = self.world, self.agreements[which], self.members[member]
        amount_in = 3 * steps
        period = self._period()
        try:
            amount_out, owed = quote(terms, amount_in)
        except ValueError:
            with brownie.reverts():
                w.exchange_points(terms, holder, amount_in)
            return
        debt = self.debts[period][(terms.payer, terms.payee)] + owed
        refused = (
            self._overdue(terms.payer)
            or (terms.max_in_per_member_period and self.used[(which, holder.address, period)] + amount_in > terms.max_in_per_member_period)
            or (terms.credit_limit and debt > terms.credit_limit)
            or self.balances[holder.address] < amount_in
        )  # fmt: skip
        if refused:
            with brownie.reverts():
                w.exchange_points(terms, holder, amount_in)
            return
        tx = w.exchange_points(terms, holder, amount_in)
        assert (tx.events["Exchanged"]["amountOut"], tx.events["Exchanged"]["debt"]) == (amount_out, debt)
        self.balances[holder.address] -= amount_in
        self.exchanged_in += amount_in
        self.exchanged_out += amount_out
        self.used[(which, holder.address, period)] += amount_in
        self.debts[period][(terms.payer, terms.payee)] = debt

    @rule(days=st.integers(2, 9))
    def time_passes(self, days: int) -> None:
        brownie.chain.sleep(days * 86_400 + 1)
        brownie.chain.mine()

    @precondition(lambda self: brownie.chain.time() >= int(self.world.exchange.periodEnd(self.closed)))
    @rule()
    def close_period(self) -> None:
        period = self.closed
        self.world.exchange.closePeriod(period, {"from": self.world.relayer})
        asked = [(p[0], p[2], int(p[3])) for p in self.world.exchange.paymentsOf(period)]
        owed = {pair: amount for pair, amount in self.debts[period].items() if amount}
        assert asked == payments(owed)
        net = net_positions(owed)
        assert sum(net.values()) == 0 and len(asked) <= max(len(net) - 1, 0)
        for brand, position in net.items():  # what a brand is paid less what it pays
            assert sum(a for _, c, a in asked if c == brand) - sum(a for d, _, a in asked if d == brand) == position
        self.unpaid += [(period, i, d, c, amount) for i, (d, c, amount) in enumerate(asked)]
        self.closed += 1

    @precondition(lambda self: self.unpaid)
    @rule(pick=st.integers(0, 100), off_chain=st.booleans())
    def pay(self, pick: int, off_chain: bool) -> None:
        w = self.world
        period, index, debtor, creditor, amount = self.unpaid.pop(pick % len(self.unpaid))
        if off_chain:
            w.exchange.confirmReceipt(period, index, {"from": creditor})
            return
        w.dollar.mint(debtor, amount, {"from": w.admin})
        w.dollar.approve(w.exchange, amount, {"from": debtor})
        w.exchange.settle(period, index, {"from": debtor})
        self.dollars[creditor] += amount

    @invariant()
    def supplies_move_by_what_was_exchanged(self) -> None:
        assert self.world.source.totalSupply() == self.source_supply - self.exchanged_in
        assert self.world.target.totalSupply() == self.target_supply + self.exchanged_out

    @invariant()
    def debts_match_and_stay_within_limits(self) -> None:
        w = self.world
        period = self._period()
        for terms in self.agreements:
            debt = int(w.exchange.debtOf(period, terms.payer, terms.payee))
            assert debt == self.debts[period][(terms.payer, terms.payee)]
            assert not terms.credit_limit or debt <= terms.credit_limit

    @invariant()
    def settled_payments_reached_their_creditors(self) -> None:
        for brand, received in self.dollars.items():
            assert self.world.dollar.balanceOf(brand) == received


def test_exchange_matchesModel(long_world):
    w = long_world
    third = w.brand()
    ExchangeMachine.brands = [w.hotel, w.airline, third]
    ExchangeMachine.agreements = [
        w.terms(payer=w.hotel.address, payee=w.airline.address, credit_limit=15_000_000, max_in_per_member_period=3_000),
        w.terms(payer=w.airline.address, payee=third.address, rate_numerator=2, rate_denominator=9, price_per_point=7,
                bonus_every=900, bonus_out=10, salt=2),
        w.terms(payer=third.address, payee=w.hotel.address, rate_numerator=1, rate_denominator=6, price_per_point=50_000,
                credit_limit=30_000_000, max_in_per_exchange=1_800, salt=3),
    ]  # fmt: skip
    for terms in ExchangeMachine.agreements:
        w.register(terms)
    ExchangeMachine.members = [w.member(START_POINTS) for _ in range(MEMBERS)]
    assert PAYMENT_WINDOW_S < PERIOD_S  # time_passes can take a payer past its due date
    brownie.chain.snapshot()
    ExchangeMachine.world = w
    run_state_machine_as_test(
        ExchangeMachine, settings=settings(max_examples=22, stateful_step_count=25, deadline=None, derandomize=True)
    )
