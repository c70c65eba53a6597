"""Redeeming points: only with the member's EIP-712 consent, relayed by an issuer."""

import time

import brownie
from eth_account import Account
from support.contracts import custom_error

ZERO = "0x0000000000000000000000000000000000000000"


def _fund(token, issuer, member, amount=1000):
    token.earn(member.address, amount, 0, {"from": issuer})


def test_redeem_burnsWithConsent(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    signature = sign_redeem(member, 300, reward_id=9, ref=1)
    deadline = int(time.time()) + 10 * 365 * 86_400
    tx = token.redeem(member.address, 300, 9, 1, deadline, signature, {"from": issuer})

    assert token.balanceOf(member.address) == 700
    assert token.totalSupply() == 700
    assert token.nonces(member.address) == 1
    assert tx.events["Transfer"]["to"] == ZERO
    redeemed = tx.events["Redeemed"]
    assert (
        redeemed["member"],
        redeemed["issuer"],
        redeemed["amount"],
        redeemed["rewardId"],
        redeemed["ref"],
    ) == (member.address, issuer.address, 300, 9, 1)


def test_redeem_failsIfSignatureExpired(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    deadline = brownie.chain.time() - 10
    signature = sign_redeem(member, 1, ref=1, deadline=deadline)
    with brownie.reverts(revert_pattern=rf"LoyaltyExpiredSignature: {deadline}, \d+"):
        token.redeem(member.address, 1, 1, 1, deadline, signature, {"from": issuer})


def test_redeem_failsIfSignedBySomeoneElse(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    thief = Account.create()
    signature = sign_redeem(member, 100, ref=1, signer=thief)
    deadline = int(time.time()) + 10 * 365 * 86_400
    with brownie.reverts(custom_error("LoyaltyInvalidSigner", thief.address, member.address)):
        token.redeem(member.address, 100, 1, 1, deadline, signature, {"from": issuer})


def test_redeem_failsIfFieldsChanged(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    signature = sign_redeem(member, 100, ref=1)
    deadline = int(time.time()) + 10 * 365 * 86_400
    with brownie.reverts(revert_pattern=r"LoyaltyInvalidSigner: 0x[0-9a-f]{40}, 0x[0-9a-f]{40}"):
        token.redeem(member.address, 999, 1, 1, deadline, signature, {"from": issuer})
    assert token.balanceOf(member.address) == 1000


def test_redeem_failsIfRelayedByAnotherIssuer(token, issuer, other_issuer, member, sign_redeem):
    _fund(token, issuer, member)
    signature = sign_redeem(member, 100, ref=1)  # consent names `issuer`
    deadline = int(time.time()) + 10 * 365 * 86_400
    with brownie.reverts(revert_pattern=r"LoyaltyInvalidSigner: 0x[0-9a-f]{40}, 0x[0-9a-f]{40}"):
        token.redeem(member.address, 100, 1, 1, deadline, signature, {"from": other_issuer})


def test_redeem_failsOnReusedNonce(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    deadline = int(time.time()) + 10 * 365 * 86_400
    first = sign_redeem(member, 100, ref=1, deadline=deadline)
    second = sign_redeem(member, 100, ref=2, deadline=deadline)  # also signed for nonce 0
    token.redeem(member.address, 100, 1, 1, deadline, first, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyNonceUsed", member.address, 0)):
        token.redeem(member.address, 100, 1, 2, deadline, second, {"from": issuer})


def test_redeem_failsOnReplayedConsent(token, issuer, member, sign_redeem):
    _fund(token, issuer, member)
    deadline = int(time.time()) + 10 * 365 * 86_400
    signature = sign_redeem(member, 100, ref=1, deadline=deadline)
    token.redeem(member.address, 100, 1, 1, deadline, signature, {"from": issuer})
    with brownie.reverts(custom_error("LoyaltyNonceUsed", member.address, 0)):
        token.redeem(member.address, 100, 1, 1, deadline, signature, {"from": issuer})


def test_redeem_consentStaysValidAfterTheIssuerMovesItsRefWindowOn(token, issuer, member, sign_redeem):
    """A consent names a ref; the issuer's earns meanwhile move its ref window far past it."""
    _fund(token, issuer, member)
    deadline = int(time.time()) + 10 * 365 * 86_400
    signature = sign_redeem(member, 100, ref=2, deadline=deadline)
    token.earn(member.address, 1, 2 + 10 * token.REF_WINDOW(), {"from": issuer})
    assert token.isRefUsed(issuer.address, 2)  # behind the window: no earn may use it any more
    token.redeem(member.address, 100, 1, 2, deadline, signature, {"from": issuer})
    assert token.balanceOf(member.address) == 1_000 - 100 + 1


def test_redeem_failsOnInsufficientPoints(token, issuer, member, sign_redeem):
    _fund(token, issuer, member, 50)
    signature = sign_redeem(member, 60, ref=1)
    deadline = int(time.time()) + 10 * 365 * 86_400
    with brownie.reverts(custom_error("LoyaltyInsufficientBalance", member.address, 50, 60)):
        token.redeem(member.address, 60, 1, 1, deadline, signature, {"from": issuer})


def test_redeem_failsWithoutIssuerRole(token, issuer, outsider, member, sign_redeem):
    _fund(token, issuer, member)
    signature = sign_redeem(member, 1, ref=1, relayer=outsider)
    with brownie.reverts(custom_error("LoyaltyMissingRole", outsider.address, token.ISSUER_ROLE())):
        token.redeem(member.address, 1, 1, 1, 2**40, signature, {"from": outsider})


def test_redeem_failsForZeroAmount(token, issuer, member, sign_redeem):
    signature = sign_redeem(member, 0, ref=1)
    with brownie.reverts(custom_error("LoyaltyInvalidAmount", member.address, 0)):
        token.redeem(member.address, 0, 1, 1, 2**40, signature, {"from": issuer})


def test_redeem_failsForZeroMember(token, issuer):
    with brownie.reverts(custom_error("LoyaltyInvalidMember", ZERO)):
        token.redeem(ZERO, 1, 1, 1, 2**40, b"\x00" * 65, {"from": issuer})


def test_redeem_failsForMalformedSignature(token, issuer, member):
    """Only 65-byte and 64-byte (EIP-2098) signatures recover a signer."""
    _fund(token, issuer, member)
    for length in (0, 63, 66):
        with brownie.reverts(custom_error("LoyaltyInvalidSigner", ZERO, member.address)):
            token.redeem(member.address, 1, 1, 1, 2**40, b"\x01" * length, {"from": issuer})


def test_adminCannotMovePointsWithoutConsent(token, admin, issuer, member):
    _fund(token, issuer, member)
    token.grantRole(token.ISSUER_ROLE(), admin, {"from": admin})
    with brownie.reverts(revert_pattern=r"LoyaltyInvalidSigner: 0x[0-9a-f]{40}, 0x[0-9a-f]{40}"):
        token.redeem(member.address, 1, 1, 1, 2**40, b"\x01" * 65, {"from": admin})
    token.setTransfersEnabled(True, {"from": admin})  # even with transfers on, no allowance
    with brownie.reverts(custom_error("ERC20InsufficientAllowance", admin.address, 0, 1)):
        token.transferFrom(member.address, admin, 1, {"from": admin})
    assert token.balanceOf(member.address) == 1000
