"""Referrals, as pure rules: the codes members share, and who may not refer whom."""

from __future__ import annotations

import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"  # Crockford's base 32: no I, L, O or U to misread
CODE_LENGTH = 8  # 32^8: about 10^12 codes
_READ_AS = str.maketrans({"I": "1", "L": "1", "O": "0", "-": None, " ": None})


def new_code() -> str:
    return "".join(secrets.choice(ALPHABET) for _ in range(CODE_LENGTH))


def normalized(code: str) -> str:
    """A code as typed, read the way Crockford's base 32 reads it: case, dashes, spaces and
    the look-alikes I, L (1) and O (0) do not matter."""
    return code.strip().upper().translate(_READ_AS)


def same_person(referrer: tuple[str, str], friend: tuple[str, str]) -> bool:
    """Whether two members, as (external id, wallet address), are one person by what the
    program can tell: the same wallet, or the same external id up to case and spaces."""
    (referrer_id, referrer_wallet), (friend_id, friend_wallet) = referrer, friend
    return (
        referrer_wallet.lower() == friend_wallet.lower()
        or referrer_id.strip().casefold() == friend_id.strip().casefold()
    )
