"""Earning points one member at a time: budgets, refs and events."""

import brownie
from support.contracts import ISSUER_BUDGET, custom_error

ZERO = "0x0000000000000000000000000000000000000000"


def test_earn_mintsToMemberAndEmitsEvents(token, issuer, member):
    tx = token.earn(member.address, 150, 7, {"from": issuer})

    assert token.balanceOf(member.address) == 150
    assert token.totalSupply() == 150
    assert tx.events["Transfer"]["from"] == ZERO
    assert tx.events["Transfer"]["to"] == member.address
    assert tx.events["Transfer"]["value"] == 150
    earned = tx.events["Earned"]
    assert (earned["member"], earned["issuer"], earned["amount"], earned["ref"]) == (
        member.address,
        issuer.address,
        150,
        7,
    )
    assert earned["expiresAt"] == token.expiryOf(token.currentEpoch())


def test_earn_spendsIssuerBudget(token, issuer, member):
    token.earn(member.address, 400, 1, {"from": issuer})
    assert token.issueBudget(issuer) == ISSUER_BUDGET - 400


def test_earn_failsPastBudget(token, admin, issuer, member):
    token.setIssueBudget(issuer, 100, {"from": admin})
    with brownie.reverts(custom_error("LoyaltyBudgetExceeded", issuer.address, 100, 101)):
        token.earn(member.address, 101, 1, {"from": issuer})


def test_earn_failsWithoutIssuerRole(token, outsider, member):
    with brownie.reverts(custom_error("LoyaltyMissingRole", outsider.address, token.ISSUER_ROLE())):
        token.earn(member.address, 1, 1, {"from": outsider})


def test_earn_failsForZeroAddress(token, issuer):
    with brownie.reverts(custom_error("LoyaltyInvalidMember", ZERO)):
        token.earn(ZERO, 1, 1, {"from": issuer})


def test_earn_failsForZeroAmount(token, issuer, member):
    with brownie.reverts(custom_error("LoyaltyInvalidAmount", member.address, 0)):
        token.earn(member.address, 0, 1, {"from": issuer})


def test_earn_failsForAmountBeyondLot(token, issuer, member):
    with brownie.reverts(custom_error("LoyaltyInvalidAmount", member.address, 2**96)):
        token.earn(member.address, 2**96, 1, {"from": issuer})


def test_earn_failsWhenRefReused(token, issuer, member):
    token.earn(member.address, 5, 42, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyRefUsed", issuer.address, 42)):
        token.earn(member.address, 5, 42, {"from": issuer})
    assert token.balanceOf(member.address) == 5


def test_earn_refsArePerIssuer(token, issuer, other_issuer, member):
    token.earn(member.address, 5, 42, {"from": issuer})
    token.earn(member.address, 5, 42, {"from": other_issuer})
    assert token.balanceOf(member.address) == 10


def test_earn_refsWorkOutOfOrderWithinWindow(token, issuer, member):
    for ref in (10, 3, 70, 9):
        token.earn(member.address, 1, ref, {"from": issuer})
    assert all(token.isRefUsed(issuer, ref) for ref in (3, 9, 10, 70))
    assert not token.isRefUsed(issuer, 8)


def test_earn_failsForRefLeftBehindWindow(token, issuer, member):
    token.earn(member.address, 1, 1000, {"from": issuer})
    window = token.REF_WINDOW()
    assert not token.isRefUsed(issuer, 1000 - window + 1)
    with brownie.reverts(custom_error("LoyaltyRefUsed", issuer.address, 1000 - window)):
        token.earn(member.address, 1, 1000 - window, {"from": issuer})


def test_earn_failsForRefOutOfRange(token, issuer, member):
    with brownie.reverts(custom_error("LoyaltyRefOutOfRange", 2**64)):
        token.earn(member.address, 1, 2**64, {"from": issuer})


def test_setIssueBudget_failsForNonIssuer(token, admin, outsider):
    with brownie.reverts(custom_error("LoyaltyMissingRole", outsider.address, token.ISSUER_ROLE())):
        token.setIssueBudget(outsider, 10, {"from": admin})


def test_setIssueBudget_failsForNonAdmin(token, issuer):
    with brownie.reverts(custom_error("LoyaltyMissingRole", issuer.address, token.DEFAULT_ADMIN_ROLE())):
        token.setIssueBudget(issuer, 10, {"from": issuer})


def test_revokeIssuer_clearsBudgetAndStopsEarning(token, admin, issuer, member):
    tx = token.revokeRole(token.ISSUER_ROLE(), issuer, {"from": admin})
    assert tx.events["IssueBudgetSet"]["budget"] == 0
    assert token.issueBudget(issuer) == 0
    with brownie.reverts(custom_error("LoyaltyMissingRole", issuer.address, token.ISSUER_ROLE())):
        token.earn(member.address, 1, 1, {"from": issuer})
