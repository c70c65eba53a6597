"""Earning points to many members in one transaction."""

import brownie
from eth_account import Account
from support.contracts import ISSUER_BUDGET, custom_error

ZERO = "0x0000000000000000000000000000000000000000"


def test_earnBatch_mintsToEveryMember(token, issuer):
    members = [Account.create().address for _ in range(5)]
    amounts = [10, 20, 30, 40, 50]
    tx = token.earnBatch(members, amounts, 900, {"from": issuer})

    assert [token.balanceOf(m) for m in members] == amounts
    assert token.totalSupply() == 150
    assert token.issueBudget(issuer) == ISSUER_BUDGET - 150
    assert [(e["to"], e["value"]) for e in tx.events["Transfer"]] == list(zip(members, amounts, strict=True))
    batch = tx.events["BatchEarned"]
    assert (batch["issuer"], batch["batchRef"], batch["members"], batch["amount"]) == (issuer, 900, 5, 150)
    assert batch["expiresAt"] == token.expiryOf(token.currentEpoch())


def test_earnBatch_sameMemberTwiceAddsUp(token, issuer, member):
    token.earnBatch([member.address, member.address], [3, 4], 1, {"from": issuer})
    assert token.balanceOf(member.address) == 7


def test_earnBatch_failsWhenBatchRefReused(token, issuer, member):
    token.earnBatch([member.address], [1], 5, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyRefUsed", issuer.address, 5)):
        token.earnBatch([member.address], [1], 5, {"from": issuer})


def test_earnBatch_sharesRefsWithEarn(token, issuer, member):
    token.earn(member.address, 1, 5, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyRefUsed", issuer.address, 5)):
        token.earnBatch([member.address], [1], 5, {"from": issuer})


def test_earnBatch_failsOnLengthMismatch(token, issuer, member):
    with brownie.reverts(custom_error("LoyaltyArrayLengthMismatch", 1, 2)):
        token.earnBatch([member.address], [1, 2], 1, {"from": issuer})


def test_earnBatch_failsWhenEmpty(token, issuer):
    with brownie.reverts(custom_error("LoyaltyInvalidBatchSize", 0, 1000)):
        token.earnBatch([], [], 1, {"from": issuer})


def test_earnBatch_failsWhenOversized(token, issuer):
    members = [Account.create().address] * 1001
    with brownie.reverts(custom_error("LoyaltyInvalidBatchSize", 1001, 1000)):
        token.earnBatch(members, [1] * 1001, 1, {"from": issuer})


def test_earnBatch_failsOnZeroAmountAnywhere(token, issuer, member, member2):
    with brownie.reverts(custom_error("LoyaltyInvalidAmount", member2.address, 0)):
        token.earnBatch([member.address, member2.address], [1, 0], 1, {"from": issuer})
    assert token.balanceOf(member.address) == 0


def test_earnBatch_failsOnZeroAddress(token, issuer, member):
    with brownie.reverts(custom_error("LoyaltyInvalidMember", ZERO)):
        token.earnBatch([member.address, ZERO], [1, 1], 1, {"from": issuer})


def test_earnBatch_failsPastBudgetAndIssuesNothing(token, admin, issuer, member, member2):
    token.setIssueBudget(issuer, 10, {"from": admin})
    with brownie.reverts(custom_error("LoyaltyBudgetExceeded", issuer.address, 10, 11)):
        token.earnBatch([member.address, member2.address], [5, 6], 1, {"from": issuer})
    assert token.totalSupply() == 0


def test_earnBatch_failsWithoutIssuerRole(token, outsider, member):
    with brownie.reverts(custom_error("LoyaltyMissingRole", outsider.address, token.ISSUER_ROLE())):
        token.earnBatch([member.address], [1], 1, {"from": outsider})
