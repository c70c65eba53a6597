"""Member-to-member transfers: off by default; when on, points keep their expiry."""

import brownie
from support.contracts import VALIDITY_EPOCHS, custom_error, lots, sleep_epochs


def test_transfer_failsByDefault(token, issuer, member, member2):
    token.earn(member.address, 10, 1, {"from": issuer})
    assert not token.transfersEnabled()
    with brownie.reverts(custom_error("LoyaltyTransfersDisabled", issuer.address, member2.address)):
        token.transfer(member2.address, 1, {"from": issuer})


def test_transfer_onlyAdminSwitchesPolicy(token, issuer):
    with brownie.reverts(custom_error("LoyaltyMissingRole", issuer.address, token.DEFAULT_ADMIN_ROLE())):
        token.setTransfersEnabled(True, {"from": issuer})


def test_transfer_keepsExpiryOfMovedPoints(token, admin, issuer, member2):
    sender = brownie.accounts[4]
    token.setTransfersEnabled(True, {"from": admin})
    token.earn(sender, 100, 1, {"from": issuer})  # epoch 0
    sleep_epochs(1)
    token.earn(sender, 50, 2, {"from": issuer})  # epoch 1
    token.earn(member2.address, 7, 3, {"from": issuer})  # epoch 1

    token.transfer(member2.address, 120, {"from": sender})

    assert [a for _, a in lots(token, sender)] == [30]
    assert lots(token, member2.address) == [(token.expiryOf(0), 100), (token.expiryOf(1), 27)]
    sleep_epochs(VALIDITY_EPOCHS - 1)  # epoch 3: epoch 0's points expired, also the moved ones
    assert token.balanceOf(member2.address) == 27
    assert token.totalSupply() == 57


def test_transfer_failsBeyondBalance(token, admin, issuer, member2):
    sender = brownie.accounts[4]
    token.setTransfersEnabled(True, {"from": admin})
    token.earn(sender, 5, 1, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyInsufficientBalance", sender.address, 5, 6)):
        token.transfer(member2.address, 6, {"from": sender})


def test_transfer_toSelfChangesNothing(token, admin, issuer):
    sender = brownie.accounts[4]
    token.setTransfersEnabled(True, {"from": admin})
    token.earn(sender, 5, 1, {"from": issuer})
    token.transfer(sender, 5, {"from": sender})
    assert token.balanceOf(sender) == 5
