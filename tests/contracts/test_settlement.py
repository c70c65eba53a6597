"""Settlement: a period closes after its end, nets every brand's debts and credits into at
most n - 1 payments, and a debtor past the due date cannot start exchanges as payer."""

from itertools import pairwise

import brownie
from support.contracts import custom_error
from support.exchange import PAYMENT_WINDOW_S, PERIOD_S

from loyalty.domain.exchange import payments


def _next_period():
    brownie.chain.sleep(PERIOD_S)
    brownie.chain.mine()


def _owe(world, payer, payee, miles, salt=1):
    """`payer` owes `payee` for `miles` exchanged this period (20,000 units a mile)."""
    terms = world.terms(payer=payer.address, payee=payee.address, salt=salt)
    if not world.exchange.agreementStatus(world.agreement_id(terms))[0]:
        world.register(terms)
    world.exchange_points(terms, world.member(miles * 3), miles * 3)
    return terms


def _payments(world, period):
    return [(p[0], p[2], int(p[3]), p[1]) for p in world.exchange.paymentsOf(period)]


def test_closePeriod_netsDebtsIntoFewerPayments(world):
    a, b, c = world.hotel, world.airline, world.brand()
    _owe(world, a, b, 1_000)
    _owe(world, b, c, 700)
    _owe(world, a, c, 300)
    _owe(world, c, a, 100)
    _next_period()

    tx = world.exchange.closePeriod(0, {"from": world.relayer})

    debts = {(x.address, y.address): world.exchange.debtOf(0, x, y) for x, y in [(a, b), (b, c), (a, c), (c, a)]}
    expected = payments(debts)
    assert [(d, c_, amount) for d, c_, amount, _ in _payments(world, 0)] == expected
    assert len(expected) <= 2  # n - 1 for 3 brands, not one per pair
    net = {a.address: -1_200, b.address: 300, c.address: 900}
    for brand, miles in net.items():  # what each pays less what it is paid is its net position
        paid = sum(p[2] for p in expected if p[0] == brand) - sum(p[2] for p in expected if p[1] == brand)
        assert paid == -miles * 20_000
    assert tx.events["PeriodClosed"]["payments"] == len(expected)
    assert tx.events["PeriodClosed"]["brands"] == 3
    due = [(e["debtor"], e["creditor"], e["amount"], e["due"]) for e in tx.events["PaymentDue"]]
    assert due == [(*p, world.exchange.dueDate(0)) for p in expected]


def test_closePeriod_failsBeforeTheEndOrOutOfOrder(world):
    end = world.exchange.periodEnd(0)
    with brownie.reverts(revert_pattern=rf"ExchangePeriodNotEnded: 0, {end}, \d+"):
        world.exchange.closePeriod(0, {"from": world.relayer})
    _next_period()
    _next_period()
    with brownie.reverts(custom_error("ExchangePeriodNotNext", 1, 0)):
        world.exchange.closePeriod(1, {"from": world.relayer})
    tx = world.exchange.closePeriod(0, {"from": world.relayer})  # empty: nothing to pay
    assert tx.events["PeriodClosed"]["payments"] == 0
    world.exchange.closePeriod(1, {"from": world.relayer})
    assert world.exchange.nextPeriodToClose() == 2


def test_settle_paysTheCreditorInTheSettlementToken(world):
    _owe(world, world.hotel, world.airline, 100)
    _next_period()
    world.exchange.closePeriod(0, {"from": world.relayer})
    world.dollar.mint(world.hotel, 5_000_000, {"from": world.admin})
    world.dollar.approve(world.exchange, 2_000_000, {"from": world.hotel})

    with brownie.reverts(custom_error("ExchangeNotYourPayment", world.airline, world.hotel)):
        world.exchange.settle(0, 0, {"from": world.airline})
    tx = world.exchange.settle(0, 0, {"from": world.hotel})

    assert world.dollar.balanceOf(world.airline) == 2_000_000
    assert world.dollar.balanceOf(world.hotel) == 3_000_000
    settled = tx.events["PaymentSettled"]
    assert (settled["debtor"], settled["creditor"], settled["amount"], settled["offChain"]) == (
        world.hotel.address,
        world.airline.address,
        2_000_000,
        False,
    )
    assert _payments(world, 0)[0][3] is True
    assert world.exchange.oldestUnpaid(world.hotel)[0] is False
    with brownie.reverts(custom_error("ExchangePaymentSettled", 0, 0)):
        world.exchange.settle(0, 0, {"from": world.hotel})
    with brownie.reverts(custom_error("ExchangeUnknownPayment", 0, 1)):
        world.exchange.settle(0, 1, {"from": world.hotel})


def test_confirmReceipt_settlesAPaymentMadeOffChain(world):
    _owe(world, world.hotel, world.airline, 100)
    _next_period()
    world.exchange.closePeriod(0, {"from": world.relayer})
    with brownie.reverts(custom_error("ExchangeNotYourPayment", world.hotel, world.airline)):
        world.exchange.confirmReceipt(0, 0, {"from": world.hotel})
    tx = world.exchange.confirmReceipt(0, 0, {"from": world.airline})
    assert tx.events["PaymentSettled"]["offChain"] is True
    assert world.dollar.balanceOf(world.airline) == 0
    assert world.exchange.oldestUnpaid(world.hotel)[0] is False


def test_exchange_failsWhileThePayerIsOverdue(world):
    terms = _owe(world, world.hotel, world.airline, 100)
    _next_period()
    world.exchange.closePeriod(0, {"from": world.relayer})
    due = world.exchange.dueDate(0)
    world.exchange_points(terms, world.member(300), 300)  # within the payment window: allowed

    brownie.chain.sleep(PAYMENT_WINDOW_S + 1)
    brownie.chain.mine()
    member = world.member(300)
    with brownie.reverts(revert_pattern=rf"ExchangePayerOverdue: {world.hotel.address.lower()}, 0, 0, {due}, \d+"):
        world.exchange_points(terms, member, 300)
    reverse_payer = world.terms(payer=world.airline.address, payee=world.hotel.address, salt=5)
    world.register(reverse_payer)
    world.exchange_points(reverse_payer, member, 300)  # the creditor still exchanges as payer

    world.exchange.confirmReceipt(0, 0, {"from": world.airline})
    world.exchange_points(terms, world.member(300), 300)


def test_oldestUnpaid_staysOnTheOldestWhenLaterOnesArePaidFirst(world):
    a, b, c = world.hotel, world.airline, world.brand()
    _owe(world, a, b, 100)
    _owe(world, a, c, 100)
    _next_period()
    world.exchange.closePeriod(0, {"from": world.relayer})
    [(first_creditor, _), (second_creditor, _)] = [(p[1], p[2]) for p in _payments(world, 0)]
    second = next(x for x in (b, c) if x.address == second_creditor)
    first = next(x for x in (b, c) if x.address == first_creditor)

    world.exchange.confirmReceipt(0, 1, {"from": second})
    assert tuple(world.exchange.oldestUnpaid(a))[:3] == (True, 0, 0)
    world.exchange.confirmReceipt(0, 0, {"from": first})
    assert world.exchange.oldestUnpaid(a)[0] is False


def test_closePeriod_atTheMostPairs_fitsInABlock(world):
    """64 pairs of brands (the most a period holds), each owing: the close nets them into at
    most 128 - 1 payments within a block of this chain (12M gas)."""
    brands = [world.brand() for _ in range(world.exchange.MAX_PAIRS_PER_PERIOD() + 1)]
    for i, (payer, payee) in enumerate(pairwise(brands)):
        _owe(world, payer, payee, 100 + i)
    back = world.terms(source=world.target.address, target=world.source.address, payer=brands[0].address,
                       payee=brands[2].address, minimum_in=1, step_in=1, salt=7)  # fmt: skip
    world.register(back)
    with brownie.reverts(custom_error("ExchangeTooManyPairs", 0, 64)):
        world.exchange_points(back, world.member(300, token=world.target), 300)
    _next_period()
    tx = world.exchange.closePeriod(0, {"from": world.relayer})
    assert tx.events["PeriodClosed"]["brands"] == len(brands)
    assert tx.gas_used < 12_000_000
