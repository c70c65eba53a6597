"""API keys: random, shown once, kept only as a hash."""

from __future__ import annotations

import hashlib
import secrets


def new_api_key(prefix: str) -> str:
    """A fresh key, prefixed with what it is for (`ptn_`, `aud_`) so a leaked one is recognisable."""
    return prefix + secrets.token_hex(24)


def hash_api_key(api_key: str) -> str:
    """What the database keeps: keys carry 192 random bits, so a plain SHA-256 is enough (no KDF)."""
    return hashlib.sha256(api_key.encode()).hexdigest()
