"""Helpers and constants for the contract tests."""

from __future__ import annotations

from typing import Any

from brownie import chain

TOKEN_NAME = "Loyalty Points"
EPOCH_S = 86_400
VALIDITY_EPOCHS = 3
ISSUER_BUDGET = 10**12


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


def sleep_epochs(epochs: int) -> None:
    """Move the chain `epochs` whole epochs ahead and mine, so views see the new time."""
    chain.sleep(epochs * EPOCH_S)
    chain.mine()


def lots(token: Any, member: str) -> list[tuple[int, int]]:
    """`token.lotsOf(member)` as plain (expiresAt, amount) tuples."""
    return [(int(expires_at), int(amount)) for expires_at, amount in token.lotsOf(member)]
