"""Secrets a caller proves itself with: API keys, member session tokens, one-time links and
redemption codes (random, shown once, kept only as a SHA-256 hash), and member passphrases
(argon2id: memory-hard, because people choose them)."""

from __future__ import annotations

import hashlib
import secrets
import threading
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

MIN_PASSPHRASE_CHARS = 10
FREE_SIGN_IN_FAILURES = 5  # wrong passphrases before sign-in slows down
MAX_SIGN_IN_BLOCK = timedelta(hours=1)
# Redemption codes: 8 characters without look-alikes (no 0/O, 1/I): 32^8 = 2^40 codes, each
# valid for minutes and once.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_CHARS = 8

# argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes).
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not anyone's passphrase")
# Each hash takes ~0.1 s of a core and 64 MiB: at most two at a time per process, so a flood of
# sign-ins waits its turn instead of starving every other request of CPU and memory.
_HASHING = threading.BoundedSemaphore(2)


def new_secret(prefix: str) -> str:
    """A fresh key or token, prefixed with what it is for (`ptn_`, `aud_`, `mbr_`, ...) so a
    leaked one is recognisable."""
    return prefix + secrets.token_hex(24)


def hash_secret(secret: str) -> str:
    """What the database keeps of a random secret: 192 random bits need no KDF, a SHA-256 does."""
    return hashlib.sha256(secret.encode()).hexdigest()


def new_redemption_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_CHARS))


def normal_code(code: str) -> str:
    """A code as a person may type it: any case, with spaces or dashes."""
    return code.upper().replace("-", "").replace(" ", "")


def hash_passphrase(passphrase: str) -> str:
    with _HASHING:
        return _hasher.hash(passphrase)


def verify_passphrase(passphrase_hash: str | None, passphrase: str) -> bool:
    """Whether `passphrase` matches; with no hash, as slow as a real check (no timing tells
    whether a member exists or has a passphrase)."""
    try:
        with _HASHING:
            return _hasher.verify(passphrase_hash or _DUMMY_HASH, passphrase) and passphrase_hash is not None
    except (VerificationError, InvalidHashError):
        return False


def sign_in_block(failures: int) -> timedelta:
    """How long sign-in stays closed after `failures` wrong passphrases in a row: free for the
    first few, then 30 s doubling with each failure, up to an hour."""
    if failures < FREE_SIGN_IN_FAILURES:
        return timedelta(0)
    return min(MAX_SIGN_IN_BLOCK, timedelta(seconds=30 * 2 ** (failures - FREE_SIGN_IN_FAILURES)))
