"""Fixtures for the contract tests: a fresh LoyaltyPoints per module, rewound after each test."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import pytest
from brownie import LoyaltyPoints, accounts, chain
from eth_account import Account
from eth_account.signers.local import LocalAccount
from support.contracts import EPOCH_S, ISSUER_BUDGET, TOKEN_NAME, VALIDITY_EPOCHS

from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data


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
        data = redeem_typed_data(consent, chain_id=chain.id, token_address=token.address, token_name=TOKEN_NAME)
        return sign_typed_data(data, (signer or member).key)

    return sign


@pytest.fixture(scope="module")
def world() -> Any:
    """Two programs, two brands and an exchange between them (tests/support/exchange.py)."""
    from support.exchange import World

    return World()
