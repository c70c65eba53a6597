"""Secrets a caller proves itself with: API keys, member session tokens, one-time links and
redemption codes (random, shown once, kept only as a SHA-256 hash), and member passphrases
(argon2id: memory-hard, because people choose them)."""

from __future__ import annotations

import hashlib
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

from loyalty.errors import BusyError

MIN_PASSPHRASE_CHARS = 10
# Wrong passphrases for one external id before sign-in slows down: from one client address, and
# from all together (ALL_SOURCES). Throttled per address, a stranger's guesses do not keep the
# member out; the cap over all addresses stops guessing spread over many.
FREE_SIGN_IN_FAILURES = 5
FREE_SIGN_IN_FAILURES_ALL_SOURCES = 50
ALL_SOURCES = "*"
MAX_SIGN_IN_BLOCK = timedelta(hours=1)
# Redemption codes: 8 characters without look-alikes (no 0/O, 1/I): 32^8 = 2^40 codes, each
# valid for minutes and once.
CODE_ALPHABET = "23456789ABCDEFGHJKLMNPQRSTUVWXYZ"
CODE_CHARS = 8

# argon2id with the library's defaults (RFC 9106's second recommendation: 64 MiB, 3 passes).
_hasher = PasswordHasher()
_DUMMY_HASH = _hasher.hash("not anyone's passphrase")
# Each hash takes ~0.1 s of a core and 64 MiB: at most two at a time per process, so a flood of
# sign-ins cannot starve every other request of CPU and memory. One that cannot start within
# HASH_WAIT_S is told to come back (BusyError) rather than hold a worker thread in a queue.
_HASHING = threading.BoundedSemaphore(2)
HASH_WAIT_S = 0.5


@contextmanager
def _hash_slot() -> Iterator[None]:
    if not _HASHING.acquire(timeout=HASH_WAIT_S):
        raise BusyError("too many sign-ins at once: try again in a moment")
    try:
        yield
    finally:
        _HASHING.release()


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
    with _hash_slot():
        return _hasher.hash(passphrase)


def verify_passphrase(passphrase_hash: str | None, passphrase: str) -> bool:
    """Whether `passphrase` matches; with no hash, as slow as a real check (no timing tells
    whether a member exists or has a passphrase)."""
    with _hash_slot():
        try:
            return _hasher.verify(passphrase_hash or _DUMMY_HASH, passphrase) and passphrase_hash is not None
        except (VerificationError, InvalidHashError):
            return False


def sign_in_block(failures: int, free: int = FREE_SIGN_IN_FAILURES) -> timedelta:
    """How long sign-in stays closed after `failures` wrong passphrases in a row: `free` of
    them cost nothing, then 30 s doubling with each failure, up to an hour."""
    if failures < free:
        return timedelta(0)
    return min(MAX_SIGN_IN_BLOCK, timedelta(seconds=30 * 2 ** min(failures - free, 10)))
