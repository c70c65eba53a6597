"""Consents from every kind of wallet: EIP-2098 compact signatures, smart-contract wallets
through ERC-1271 (asked only when no ECDSA signer matches), and the interfaces the token reports."""

import time
from types import SimpleNamespace

import brownie
from brownie import ConsentWallet
from eth_account import Account
from support.contracts import custom_error

from loyalty.domain.consent import full_signature

DEADLINE = int(time.time()) + 10 * 365 * 86_400
HONEST, REFUSING, GREEDY, VERBOSE = range(4)  # ConsentWallet.Mode


def _compact(signature: bytes) -> bytes:
    """The EIP-2098 form of a 65-byte signature: r, then yParity folded into s's top bit."""
    r, s, v = signature[:32], int.from_bytes(signature[32:64], "big"), signature[64]
    return r + ((v - 27) << 255 | s).to_bytes(32, "big")


def test_redeem_acceptsACompactSignature(token, issuer, member, sign_redeem):
    token.earn(member.address, 500, 0, {"from": issuer})
    signature = sign_redeem(member, 200, ref=1, deadline=DEADLINE)
    assert full_signature(_compact(signature)) == signature  # the service expands the same way

    token.redeem(member.address, 200, 1, 1, DEADLINE, _compact(signature), {"from": issuer})

    assert token.balanceOf(member.address) == 300


def test_redeem_smartWallet_consentsThroughErc1271(token, issuer, admin, sign_redeem):
    owner = Account.create()
    wallet = ConsentWallet.deploy(owner.address, {"from": admin})
    token.earn(wallet.address, 500, 0, {"from": issuer})
    as_wallet = SimpleNamespace(address=wallet.address, key=owner.key)

    token.redeem(
        wallet.address, 200, 1, 1, DEADLINE, sign_redeem(as_wallet, 200, ref=1, deadline=DEADLINE), {"from": issuer}
    )

    assert token.balanceOf(wallet.address) == 300
    assert token.nonces(wallet.address) == 1


def test_redeem_smartWalletThatRefuses_failsWithTheSigner(token, issuer, admin, sign_redeem):
    owner, thief = Account.create(), Account.create()
    wallet = ConsentWallet.deploy(owner.address, {"from": admin})
    token.earn(wallet.address, 500, 0, {"from": issuer})
    forged = sign_redeem(SimpleNamespace(address=wallet.address, key=thief.key), 100, ref=1, deadline=DEADLINE)
    with brownie.reverts(custom_error("LoyaltyInvalidSigner", thief.address, wallet.address)):
        token.redeem(wallet.address, 100, 1, 1, DEADLINE, forged, {"from": issuer})
    wallet.setMode(REFUSING, {"from": admin})
    honest = sign_redeem(SimpleNamespace(address=wallet.address, key=owner.key), 100, ref=1, deadline=DEADLINE)
    with brownie.reverts(custom_error("LoyaltyInvalidSigner", owner.address, wallet.address)):
        token.redeem(wallet.address, 100, 1, 1, DEADLINE, honest, {"from": issuer})
    assert token.balanceOf(wallet.address) == 500


def test_redeem_greedyWallet_getsAtMostConsentWalletGas(token, issuer, admin, sign_redeem):
    """A wallet that burns every gas it is given cannot make the relayer pay for a whole block."""
    owner = Account.create()
    wallet = ConsentWallet.deploy(owner.address, {"from": admin})
    token.earn(wallet.address, 500, 0, {"from": issuer})
    wallet.setMode(GREEDY, {"from": admin})
    signature = sign_redeem(SimpleNamespace(address=wallet.address, key=owner.key), 100, ref=1, deadline=DEADLINE)

    with brownie.reverts(custom_error("LoyaltyInvalidSigner", owner.address, wallet.address)):
        token.redeem(wallet.address, 100, 1, 1, DEADLINE, signature, {"from": issuer, "gas_limit": 5_000_000})

    tx = brownie.history[-1]
    assert tx.gas_used < token.CONSENT_WALLET_GAS() + 100_000, tx.gas_used
    assert token.balanceOf(wallet.address) == 500


def test_redeem_verboseWallet_itsLongAnswerCostsTheTokenNothing(token, issuer, admin, sign_redeem):
    """A wallet answering 64 KiB pays for its own memory; the token copies only the first word."""
    owner = Account.create()
    wallets = [ConsentWallet.deploy(owner.address, {"from": admin}) for _ in range(2)]
    wallets[1].setMode(VERBOSE, {"from": admin})
    gas = []
    for ref, wallet in enumerate(wallets):
        token.earn(wallet.address, 500, ref, {"from": issuer})
        signature = sign_redeem(SimpleNamespace(address=wallet.address, key=owner.key), 100, ref=1, deadline=DEADLINE)
        gas.append(token.redeem(wallet.address, 100, 1, 1, DEADLINE, signature, {"from": issuer}).gas_used)

    words = 0x10000 // 32
    wallet_memory = 3 * words + words * words // 512  # the wallet's own memory expansion
    assert gas[1] - gas[0] <= wallet_memory + 1_000, gas
    assert [w.balance() for w in wallets] == [0, 0] and [token.balanceOf(w) for w in wallets] == [400, 400]


def test_redeem_ordinaryWallet_gasStaysWithinAThousandOfBefore(token, issuer, member, sign_redeem):
    """Before ERC-1271 and EIP-2098 support a first redemption used 48,025 gas (this fixture's token)."""
    token.earn(member.address, 500, 0, {"from": issuer})
    tx = token.redeem(
        member.address, 200, 1, 1, DEADLINE, sign_redeem(member, 200, ref=1, deadline=DEADLINE), {"from": issuer}
    )
    assert tx.gas_used <= 48_025 + 1_000, tx.gas_used


def test_supportsInterface_reportsErc20PermitAnd5267(token):
    erc165, erc20, erc2612, erc5267 = "0x01ffc9a7", "0x36372b07", "0x9d8ff7da", "0x84b0196e"
    assert all(token.supportsInterface(i) for i in (erc165, erc20, erc2612, erc5267))
    assert not token.supportsInterface("0xffffffff") and not token.supportsInterface("0x12345678")
