"""Keys the service holds: members' custodial wallets and partners' issuer accounts.

Private keys are encrypted at rest with AES-256-GCM under the master key from the settings; the
address is bound in as associated data, so a key cannot be swapped onto another row unnoticed.
Keys never leave this module in any response or log.
"""

from __future__ import annotations

import os

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from eth_account import Account
from eth_account.signers.local import LocalAccount

from loyalty.errors import KeyDecryptionError

_NONCE_BYTES = 12


class Custody:
    """Creates wallets and opens them again, given the master key (64 hex characters)."""

    def __init__(self, master_key_hex: str) -> None:
        key = bytes.fromhex(master_key_hex.removeprefix("0x"))
        if len(key) != 32:
            raise ValueError("the master key must be 32 bytes (64 hex characters)")
        self._aead = AESGCM(key)

    def new_wallet(self) -> tuple[str, bytes]:
        """A fresh account: its address and its encrypted key."""
        account: LocalAccount = Account.create()
        return account.address, self.seal(account)

    def seal(self, account: LocalAccount) -> bytes:
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, bytes(account.key), account.address.encode())

    def seal_data(self, data: bytes, context: bytes) -> bytes:
        """Encrypt other secrets at rest (responses holding API keys); `context` is bound in."""
        nonce = os.urandom(_NONCE_BYTES)
        return nonce + self._aead.encrypt(nonce, data, context)

    def open_data(self, sealed: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], context)
        except Exception as exc:
            raise KeyDecryptionError("a sealed record does not open with this master key") from exc

    def open(self, address: str, sealed: bytes) -> LocalAccount:
        """The account behind `sealed`, which must belong to `address`."""
        try:
            key = self._aead.decrypt(sealed[:_NONCE_BYTES], sealed[_NONCE_BYTES:], address.encode())
        except Exception as exc:
            raise KeyDecryptionError(f"the key stored for {address} does not open with this master key") from exc
        account: LocalAccount = Account.from_key(key)
        return account
