"""Pausing stops every balance change."""

import brownie
from support.contracts import custom_error


def test_pause_stopsEarnAndBatch(token, admin, issuer, member):
    tx = token.pause({"from": admin})
    assert tx.events["Paused"]["account"] == admin
    assert token.paused()
    with brownie.reverts(custom_error("LoyaltyPaused")):
        token.earn(member.address, 1, 1, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyPaused")):
        token.earnBatch([member.address], [1], 2, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyPaused")):
        token.expire([member.address], {"from": issuer})


def test_pause_stopsRedeem(token, admin, issuer, member, sign_redeem):
    token.earn(member.address, 10, 1, {"from": issuer})
    token.pause({"from": admin})
    signature = sign_redeem(member, 5, ref=2, deadline=2**40)
    with brownie.reverts(custom_error("LoyaltyPaused")):
        token.redeem(member.address, 5, 1, 2, 2**40, signature, {"from": issuer})


def test_unpause_resumes(token, admin, issuer, member):
    token.pause({"from": admin})
    token.unpause({"from": admin})
    token.earn(member.address, 1, 1, {"from": issuer})
    assert token.balanceOf(member.address) == 1


def test_pause_failsWithoutPauserRole(token, issuer):
    with brownie.reverts(custom_error("LoyaltyMissingRole", issuer.address, token.PAUSER_ROLE())):
        token.pause({"from": issuer})


def test_pause_failsWhenAlreadyPaused(token, admin):
    token.pause({"from": admin})
    with brownie.reverts(custom_error("LoyaltyPauseUnchanged", True)):
        token.pause({"from": admin})
