"""Expiry by epoch: balances exclude expired points, spending takes the oldest first."""

import brownie
from support.contracts import EPOCH_S, VALIDITY_EPOCHS, custom_error, lots, sleep_epochs

ZERO = "0x0000000000000000000000000000000000000000"


def test_expiry_pointsStopCountingAfterValidity(token, issuer, member):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(VALIDITY_EPOCHS - 1)
    assert token.balanceOf(member.address) == 100
    sleep_epochs(1)
    assert token.balanceOf(member.address) == 0
    assert token.totalSupply() == 0
    assert token.expiredBalanceOf(member.address) == 100


def test_expiry_lotsShowPointsByExpiryOldestFirst(token, issuer, member):
    start = token.startTime()
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(1)
    token.earn(member.address, 50, 2, {"from": issuer})
    token.earn(member.address, 5, 3, {"from": issuer})
    assert lots(token, member.address) == [
        (start + VALIDITY_EPOCHS * EPOCH_S, 100),
        (start + (VALIDITY_EPOCHS + 1) * EPOCH_S, 55),
    ]


def test_expiry_spendingTakesOldestFirst(token, issuer, member, sign_redeem):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(1)
    token.earn(member.address, 50, 2, {"from": issuer})
    token.redeem(member.address, 120, 1, 3, 2**40, sign_redeem(member, 120, ref=3, deadline=2**40), {"from": issuer})
    assert [amount for _, amount in lots(token, member.address)] == [30]
    sleep_epochs(VALIDITY_EPOCHS - 1)  # the first epoch's lot would have expired by now
    assert token.balanceOf(member.address) == 30


def test_expiry_redeemCannotSpendExpiredPoints(token, issuer, member, sign_redeem):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(VALIDITY_EPOCHS)
    token.earn(member.address, 10, 2, {"from": issuer})
    signature = sign_redeem(member, 50, ref=3, deadline=2**40)
    with brownie.reverts(custom_error("LoyaltyInsufficientBalance", member.address, 10, 50)):
        token.redeem(member.address, 50, 1, 3, 2**40, signature, {"from": issuer})


def test_expire_sweepBurnsExpiredWithTransferToZero(token, issuer, outsider, member, member2):
    token.earn(member.address, 100, 1, {"from": issuer})
    token.earn(member2.address, 7, 2, {"from": issuer})
    sleep_epochs(1)
    token.earn(member.address, 20, 3, {"from": issuer})
    sleep_epochs(VALIDITY_EPOCHS - 1)  # the first lots expired, the 20 have not

    tx = token.expire([member.address, member2.address], {"from": outsider})

    assert tx.return_value == 107
    assert [(e["from"], e["to"], e["value"]) for e in tx.events["Transfer"]] == [
        (member.address, ZERO, 100),
        (member2.address, ZERO, 7),
    ]
    assert [(e["member"], e["epoch"], e["amount"]) for e in tx.events["Expired"]] == [
        (member.address, 0, 100),
        (member2.address, 0, 7),
    ]
    assert token.expiredBalanceOf(member.address) == 0
    assert token.balanceOf(member.address) == 20


def test_expire_sweepTwiceBurnsNothingMore(token, issuer, member):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(VALIDITY_EPOCHS)
    token.expire([member.address], {"from": issuer})
    tx = token.expire([member.address], {"from": issuer})
    assert tx.return_value == 0
    assert "Transfer" not in tx.events


def test_expiry_earnAfterExpiryBurnsTheExpiredLot(token, issuer, member):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(VALIDITY_EPOCHS)
    tx = token.earn(member.address, 5, 2, {"from": issuer})
    assert [(e["from"], e["to"], e["value"]) for e in tx.events["Transfer"]] == [
        (member.address, ZERO, 100),
        (ZERO, member.address, 5),
    ]
    assert token.balanceOf(member.address) == 5
    assert token.expiredBalanceOf(member.address) == 0


def test_expiry_ringSlotReuseBurnsStaleLot(token, issuer, member):
    token.earn(member.address, 100, 1, {"from": issuer})  # epoch 0
    sleep_epochs(1)
    token.earn(member.address, 10, 2, {"from": issuer})  # epoch 1: epoch 0 moves to the ring
    sleep_epochs(VALIDITY_EPOCHS)
    # epoch 4: the head (epoch 1) has expired and is burned; the ring still holds epoch 0's lot
    tx = token.earn(member.address, 1, 3, {"from": issuer})
    assert [(e["epoch"], e["amount"]) for e in tx.events["Expired"]] == [(1, 10)]
    assert token.expiredBalanceOf(member.address) == 100
    assert token.balanceOf(member.address) == 1


def test_expiry_totalSupplyEqualsSumOfBalancesAcrossEpochs(token, issuer, member, member2):
    token.earn(member.address, 100, 1, {"from": issuer})
    sleep_epochs(1)
    token.earn(member2.address, 30, 2, {"from": issuer})
    token.earn(member.address, 3, 3, {"from": issuer})
    for _ in range(VALIDITY_EPOCHS):
        assert token.totalSupply() == token.balanceOf(member.address) + token.balanceOf(member2.address)
        sleep_epochs(1)
    assert token.totalSupply() == 0


def test_deploy_failsForBadExpiryConfig(admin):
    from brownie import LoyaltyPoints

    with brownie.reverts(custom_error("LoyaltyInvalidExpiryConfig", 0, 12)):
        LoyaltyPoints.deploy("P", "P", admin, 0, 12, {"from": admin})
    with brownie.reverts(custom_error("LoyaltyInvalidExpiryConfig", 86_400, 65)):
        LoyaltyPoints.deploy("P", "P", admin, 86_400, 65, {"from": admin})
    with brownie.reverts(custom_error("LoyaltyInvalidAdmin", ZERO)):
        LoyaltyPoints.deploy("P", "P", ZERO, 86_400, 12, {"from": admin})
