"""Fixtures for the contract tests: a fresh LoyaltyPoints per module, rewound after each test."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import Any

import brownie
import pytest
from brownie import LoyaltyPoints, accounts, chain
from eth_account import Account
from eth_account.signers.local import LocalAccount
from loyalty.consent import RedeemConsent, redeem_typed_data, sign_typed_data

# brownie's test chain gets its own port, so `make test` never attaches to the chain `make up`
# runs on 8545 (brownie-config.yaml cannot carry `cmd_settings`: brownie 1.22 crashes on it).
# Reached through `brownie._config` rather than imported: brownie hashes this file's imports'
# sources, and that module is compiled.
brownie._config.CONFIG.networks["development"]["cmd_settings"]["port"] = int(
    os.environ.get("TEST_CHAIN_PORT", "8555")
)

TOKEN_NAME = "Loyalty Points"
EPOCH_S = 86_400
VALIDITY_EPOCHS = 3
ISSUER_BUDGET = 10**12


@pytest.hookimpl(trylast=True)
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Stop brownie's node before pytest prints its summary, so the summary is the last line."""
    if brownie.network.is_connected():
        brownie.network.disconnect()


def custom_error(name: str, *args: Any) -> str:
    """A revert message as brownie decodes a custom error: `Name: arg1, arg2`, with addresses in
    lower case and bytes32 values as Python bytes."""

    def shown(arg: Any) -> str:
        arg = getattr(arg, "address", arg)
        if isinstance(arg, bytes):
            return str(bytes(arg))
        if isinstance(arg, str) and arg.startswith("0x") and len(arg) == 42:
            return arg.lower()
        return str(arg)

    return f"{name}: {', '.join(shown(a) for a in args)}"


@pytest.fixture(autouse=True)
def isolation(fn_isolation: None) -> None:
    """Rewind the chain after every test."""


@pytest.fixture(scope="module")
def admin() -> Any:
    return accounts[0]


@pytest.fixture(scope="module")
def issuer() -> Any:
    return accounts[1]


@pytest.fixture(scope="module")
def other_issuer() -> Any:
    return accounts[2]


@pytest.fixture(scope="module")
def outsider() -> Any:
    return accounts[3]


@pytest.fixture(scope="module")
def token(admin: Any, issuer: Any, other_issuer: Any) -> Any:
    token = LoyaltyPoints.deploy(TOKEN_NAME, "LOYAL", admin, EPOCH_S, VALIDITY_EPOCHS, {"from": admin})
    for account in (issuer, other_issuer):
        token.grantRole(token.ISSUER_ROLE(), account, {"from": admin})
        token.setIssueBudget(account, ISSUER_BUDGET, {"from": admin})
    return token


@pytest.fixture
def member() -> LocalAccount:
    return Account.create()


@pytest.fixture
def member2() -> LocalAccount:
    return Account.create()


SignFn = Callable[..., bytes]


@pytest.fixture(scope="module")
def sign_redeem(token: Any, issuer: Any) -> SignFn:
    """Sign a member's consent; by default for the member's current nonce and `issuer`."""

    def sign(
        member: LocalAccount,
        amount: int,
        *,
        reward_id: int = 1,
        ref: int,
        deadline: int | None = None,
        nonce: int | None = None,
        relayer: Any = None,
        signer: LocalAccount | None = None,
    ) -> bytes:
        consent = RedeemConsent(
            member=member.address,
            issuer=(relayer or issuer).address,
            amount_points=amount,
            reward_id=reward_id,
            ref=ref,
            nonce=token.nonces(member.address) if nonce is None else nonce,
            deadline=deadline if deadline is not None else int(time.time()) + 10 * 365 * EPOCH_S,
        )
        data = redeem_typed_data(
            consent, chain_id=chain.id, token_address=token.address, token_name=TOKEN_NAME
        )
        return sign_typed_data(data, (signer or member).key)

    return sign


def sleep_epochs(epochs: int) -> None:
    """Move the chain `epochs` whole epochs ahead and mine, so views see the new time."""
    chain.sleep(epochs * EPOCH_S)
    chain.mine()


def lots(token: Any, member: str) -> list[tuple[int, int]]:
    """`token.lotsOf(member)` as plain (expiresAt, amount) tuples."""
    return [(int(expires_at), int(amount)) for expires_at, amount in token.lotsOf(member)]
