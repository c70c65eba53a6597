"""The service's chain client: operator transactions when another process sends as the operator too."""

from __future__ import annotations

from typing import Any

import pytest
from conftest import chain_of
from eth_account import Account


def test_addIssuer_whenAnotherProcessTookTheNonce_resignsAndSucceeds(
    client: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The worker tops up gas as the operator while the API adds an issuer: between the API's
    nonce read and its send, the worker's transaction takes that nonce."""
    chain = chain_of(client)
    operator = chain.operator.address
    read = chain.account_nonce

    def stale_then_real(address: str) -> int:
        nonce = read(address)
        if address == operator and not reads:
            # The other process sends with this very nonce right after we read it.
            other = chain._sign(chain.operator, {"to": Account.create().address, "value": 1, "gas": 21_000}, nonce)
            chain.wait(chain.broadcast(other))
        reads.append(nonce)
        return nonce

    reads: list[int] = []
    monkeypatch.setattr(chain, "account_nonce", stale_then_real)
    issuer = Account.create().address
    chain.add_issuer(issuer, 1_234)

    assert len(reads) == 2 and reads[1] == reads[0] + 1  # read again after the conflict
    assert chain.issue_budget(issuer) == 1_234
    assert chain.token.functions.hasRole(chain.issuer_role, issuer).call()
