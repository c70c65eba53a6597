"""Exchanging: the member's consented burn on the source and the mint on the target in one
transaction, at the agreement's rate, within its amounts, caps and credit limit."""

import time

import brownie
from support.contracts import custom_error
from support.exchange import FAR, PERIOD_S

ZERO = "0x0000000000000000000000000000000000000000"


def test_exchange_burnsOnTheSourceAndMintsOnTheTargetAtTheRate(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    id_ = world.agreement_id(terms)

    tx = world.exchange_points(terms, member, 900)

    assert world.source.balanceOf(member.address) == 2_100
    assert world.target.balanceOf(member.address) == 300
    assert world.target.issueBudget(world.exchange) == 10**15 - 300
    exchanged = tx.events["Exchanged"]
    ref = exchanged["ref"]
    assert (bytes(exchanged["id"]), exchanged["member"], exchanged["amountIn"], exchanged["amountOut"]) == (
        id_,
        member.address,
        900,
        300,
    )
    assert (exchanged["period"], exchanged["owed"], exchanged["debt"]) == (0, 300 * 20_000, 300 * 20_000)
    redeemed = tx.events["Redeemed"]
    assert (redeemed["issuer"], redeemed["rewardId"], redeemed["ref"]) == (
        world.exchange.address,
        int.from_bytes(id_, "big"),
        ref,
    )
    earned = tx.events["Earned"]
    assert (earned["issuer"], earned["member"], earned["amount"], earned["ref"]) == (
        world.exchange.address,
        member.address,
        300,
        ref,
    )
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 6_000_000


def test_exchange_addsTheBonusForEveryWholeBlockIn(world):
    terms = world.terms(bonus_every=60_000, bonus_out=5_000)
    world.register(terms)
    member = world.member(200_000)
    tx = world.exchange_points(terms, member, 120_003)
    assert tx.events["Exchanged"]["amountOut"] == 40_001 + 2 * 5_000
    assert [int(v) for v in world.exchange.quote(terms.as_tuple(), 120_003)] == [50_001, 50_001 * 20_000]


def test_exchange_failsOutsideTheAmountsAgreed(world):
    terms = world.terms(max_in_per_exchange=3_000)
    world.register(terms)
    member = world.member(10_000)
    for amount, error in [
        (297, custom_error("ExchangeBelowMinimum", 297, 300)),
        (301, custom_error("ExchangeOffStep", 301, 3)),
        (3_003, custom_error("ExchangeCapExceeded", 3_003, 3_000)),
        (2**96, custom_error("ExchangeInvalidAmount", member.address, 2**96)),
    ]:
        with brownie.reverts(error):
            world.exchange_points(terms, member, amount)
    assert world.source.balanceOf(member.address) == 10_000


def test_exchange_failsIfNoPointComesOut(world):
    terms = world.terms(rate_numerator=1, rate_denominator=1_000, minimum_in=1, step_in=1)
    world.register(terms)
    member = world.member(1_000)
    with brownie.reverts(custom_error("ExchangeInvalidAmount", member.address, 999)):
        world.exchange_points(terms, member, 999)


def test_exchange_capsWhatAMemberExchangesPerPeriod(world):
    terms = world.terms(max_in_per_member_period=1_500)
    world.register(terms)
    id_ = world.agreement_id(terms)
    member, other = world.member(10_000), world.member(10_000)
    world.exchange_points(terms, member, 900)
    with brownie.reverts(custom_error("ExchangeMemberCapExceeded", member.address, 900, 900, 1_500)):
        world.exchange_points(terms, member, 900)
    world.exchange_points(terms, member, 600)
    world.exchange_points(terms, other, 900)  # the cap is each member's
    assert world.exchange.memberExchanged(id_, member.address) == 1_500

    brownie.chain.sleep(PERIOD_S)
    brownie.chain.mine()
    assert world.exchange.memberExchanged(id_, member.address) == 0
    world.exchange_points(terms, member, 1_500)


def test_exchange_failsPastTheCreditLimit(world):
    terms = world.terms(credit_limit=10_000_000)  # 500 miles at 2 cents
    world.register(terms)
    member = world.member(10_000)
    world.exchange_points(terms, member, 1_200)  # 400 miles: 8,000,000
    with brownie.reverts(
        custom_error("ExchangeCreditLimitExceeded", world.hotel, world.airline, 14_000_000, 10_000_000)
    ):
        world.exchange_points(terms, member, 900)
    world.exchange_points(terms, member, 300)  # exactly at the limit
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 10_000_000


def test_exchange_failsOutsideTheAgreementsDates(world):
    now = brownie.chain.time()
    early = world.terms(valid_from=now + 3_600, valid_until=now + 7_200)
    world.register(early)
    member = world.member(3_000)
    with brownie.reverts(revert_pattern=rf"ExchangeAgreementNotInForce: .*, {now + 3_600}, {now + 7_200}, \d+"):
        world.exchange_points(early, member, 300)
    brownie.chain.sleep(7_300)
    brownie.chain.mine()
    with brownie.reverts(revert_pattern=rf"ExchangeAgreementNotInForce: .*, {now + 3_600}, {now + 7_200}, \d+"):
        world.exchange_points(early, member, 300)


def test_exchange_failsForAnUnknownAgreement(world):
    terms = world.terms(salt=77)
    member = world.member(3_000)
    with brownie.reverts(custom_error("ExchangeUnknownAgreement", world.agreement_id(terms))):
        world.exchange_points(terms, member, 300)


def test_exchange_failsWithoutTheMembersConsent(world):
    terms = world.terms()
    world.register(terms)
    member, thief = world.member(3_000), world.member()
    ref, deadline = world.ref(), int(time.time()) + FAR
    forged = world.consent(terms, thief, 300, ref, deadline=deadline)
    with brownie.reverts(revert_pattern=r"LoyaltyInvalidSigner: 0x[0-9a-f]{40}, " + member.address.lower()):
        world.exchange.exchange(terms.as_tuple(), member.address, 300, ref, deadline, forged, {"from": world.relayer})
    # A consent for another agreement (its id is the consent's rewardId) does not do either.
    other = world.terms(salt=2)
    world.register(other)
    for_other = world.consent(other, member, 300, ref, deadline=deadline)
    with brownie.reverts(revert_pattern=r"LoyaltyInvalidSigner: 0x[0-9a-f]{40}, " + member.address.lower()):
        world.exchange.exchange(
            terms.as_tuple(), member.address, 300, ref, deadline, for_other, {"from": world.relayer}
        )
    assert (world.source.balanceOf(member.address), world.target.balanceOf(member.address)) == (3_000, 0)


def test_exchange_happensOnceForAConsent(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    ref, deadline = world.ref(), int(time.time()) + FAR
    consent = world.consent(terms, member, 300, ref, deadline=deadline)
    world.exchange.exchange(terms.as_tuple(), member.address, 300, ref, deadline, consent, {"from": world.relayer})
    with brownie.reverts(custom_error("LoyaltyNonceUsed", member.address, 0)):
        world.exchange.exchange(terms.as_tuple(), member.address, 300, ref, deadline, consent, {"from": world.relayer})
    assert world.target.balanceOf(member.address) == 100


def test_exchange_failsIfTheMintFailsAndKeepsTheBurnUndone(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    world.target.setIssueBudget(world.exchange, 99, {"from": world.admin})
    with brownie.reverts(custom_error("LoyaltyBudgetExceeded", world.exchange, 99, 100)):
        world.exchange_points(terms, member, 300)
    world.target.pause({"from": world.admin})
    world.target.setIssueBudget(world.exchange, 10**6, {"from": world.admin})
    with brownie.reverts(custom_error("LoyaltyPaused")):
        world.exchange_points(terms, member, 300)
    assert world.source.balanceOf(member.address) == 3_000
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 0


def test_exchange_failsIfTheSourceIsPausedOrTheExchangeNotItsIssuer(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    world.source.pause({"from": world.admin})
    with brownie.reverts(custom_error("LoyaltyPaused")):
        world.exchange_points(terms, member, 300)
    world.source.unpause({"from": world.admin})
    role = world.source.ISSUER_ROLE()
    world.source.revokeRole(role, world.exchange, {"from": world.admin})
    with brownie.reverts(custom_error("LoyaltyMissingRole", world.exchange, role)):
        world.exchange_points(terms, member, 300)


def test_exchange_isForRelayersOnly(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    role = world.exchange.RELAYER_ROLE()
    with brownie.reverts(custom_error("ExchangeMissingRole", world.issuer, role)):
        world.exchange_points(terms, member, 300, **{"from": world.issuer})


def test_exchangeBatch_exchangesEveryOrderAndAddsTheDebtOnce(world):
    terms = world.terms()
    world.register(terms)
    members = [world.member(3_000) for _ in range(5)]
    orders = [world.order(terms, member, 300 * (i + 1)) for i, member in enumerate(members)]

    tx = world.exchange.exchangeBatch(terms.as_tuple(), orders, {"from": world.relayer})

    assert [world.target.balanceOf(m.address) for m in members] == [100, 200, 300, 400, 500]
    assert [world.source.balanceOf(m.address) for m in members] == [2_700, 2_400, 2_100, 1_800, 1_500]
    debts = [event["debt"] for event in tx.events["Exchanged"]]
    assert debts == [2_000_000, 6_000_000, 12_000_000, 20_000_000, 30_000_000]
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 30_000_000


def test_exchangeBatch_isAllOrNothing(world):
    terms = world.terms(credit_limit=6_000_000)
    world.register(terms)
    members = [world.member(3_000) for _ in range(4)]
    orders = [world.order(terms, member, 300) for member in members]  # 2,000,000 owed each
    poor = world.member(100)
    with brownie.reverts(custom_error("LoyaltyInsufficientBalance", poor.address, 100, 300)):
        world.exchange.exchangeBatch(
            terms.as_tuple(), [*orders[:2], world.order(terms, poor, 300)], {"from": world.relayer}
        )
    with brownie.reverts(custom_error("ExchangeCreditLimitExceeded", world.hotel, world.airline, 8_000_000, 6_000_000)):
        world.exchange.exchangeBatch(terms.as_tuple(), orders, {"from": world.relayer})
    assert [world.source.balanceOf(m.address) for m in members] == [3_000] * 4
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 0
    with brownie.reverts(custom_error("ExchangeInvalidBatchSize", 0, 200)):
        world.exchange.exchangeBatch(terms.as_tuple(), [], {"from": world.relayer})
    world.exchange.exchangeBatch(terms.as_tuple(), orders[:3], {"from": world.relayer})
    assert world.exchange.debtOf(0, world.hotel, world.airline) == 6_000_000
