"""A member's EIP-712 consent to a redemption: the typed data and its signature.

The token burns a member's points only against this signature, so the custodial service and
self-custody wallets must sign exactly the struct `LoyaltyPoints.REDEEM_TYPEHASH` describes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_account import Account
from eth_account.messages import encode_typed_data
from eth_utils.crypto import keccak

REDEEM_TYPE = [
    {"name": "member", "type": "address"},
    {"name": "issuer", "type": "address"},
    {"name": "amount", "type": "uint256"},
    {"name": "rewardId", "type": "uint256"},
    {"name": "ref", "type": "uint256"},
    {"name": "nonce", "type": "uint256"},
    {"name": "deadline", "type": "uint256"},
]

DOMAIN_TYPE = [
    {"name": "name", "type": "string"},
    {"name": "version", "type": "string"},
    {"name": "chainId", "type": "uint256"},
    {"name": "verifyingContract", "type": "address"},
]


@dataclass(frozen=True)
class RedeemConsent:
    """What a member agrees to when redeeming.

    Attributes:
        member: the member's wallet address.
        issuer: the partner account that relays (and pays for) the redemption.
        amount_points: points to burn.
        reward_id: the reward bought.
        ref: the issuer's ref for this write (works once).
        nonce: the member's current nonce on the token.
        deadline: Unix time after which the consent is void.
    """

    member: str
    issuer: str
    amount_points: int
    reward_id: int
    ref: int
    nonce: int
    deadline: int


def redeem_typed_data(consent: RedeemConsent, *, chain_id: int, token_address: str, token_name: str) -> dict[str, Any]:
    """The EIP-712 typed data (as for `eth_signTypedData_v4`) a wallet signs to consent."""
    return {
        "types": {"EIP712Domain": DOMAIN_TYPE, "Redeem": REDEEM_TYPE},
        "primaryType": "Redeem",
        "domain": {
            "name": token_name,
            "version": "1",
            "chainId": chain_id,
            "verifyingContract": token_address,
        },
        "message": {
            "member": consent.member,
            "issuer": consent.issuer,
            "amount": consent.amount_points,
            "rewardId": consent.reward_id,
            "ref": consent.ref,
            "nonce": consent.nonce,
            "deadline": consent.deadline,
        },
    }


def sign_typed_data(typed_data: dict[str, Any], private_key: bytes | str) -> bytes:
    """Sign EIP-712 typed data with a member's key; returns the 65-byte signature."""
    signed = Account.sign_message(encode_typed_data(full_message=typed_data), private_key)
    return bytes(signed.signature)


def typed_data_digest(typed_data: dict[str, Any]) -> bytes:
    """The EIP-712 digest of `typed_data`: what an ordinary wallet signs, and what a contract
    wallet is asked about (ERC-1271)."""
    signable = encode_typed_data(full_message=typed_data)
    return keccak(b"\x19" + signable.version + signable.header + signable.body)


def recover_signer(typed_data: dict[str, Any], signature: bytes) -> str | None:
    """The address that signed `typed_data`, or None for a malformed signature."""
    try:
        return str(Account.recover_message(encode_typed_data(full_message=typed_data), signature=signature))
    except Exception:
        return None


MAX_SAFE_INTEGER = 2**53 - 1  # JavaScript's largest exact integer


def for_wallets(typed_data: dict[str, Any]) -> dict[str, Any]:
    """The typed data as JSON wallets take it: integers above 2^53 as decimal strings (a
    JavaScript number would round them), in the `eth_signTypedData_v4` shape."""

    def safe(value: Any) -> Any:
        return (
            str(value) if isinstance(value, int) and not isinstance(value, bool) and value > MAX_SAFE_INTEGER else value
        )

    return {
        **typed_data,
        "domain": {k: safe(v) for k, v in typed_data["domain"].items()},
        "message": {k: safe(v) for k, v in typed_data["message"].items()},
    }


def for_ethers(typed_data: dict[str, Any]) -> dict[str, Any]:
    """The same, ready for ethers' `signTypedData(domain, types, message)` and viem's
    `signTypedData({domain, types, primaryType, message})`: `types` without `EIP712Domain`
    (both derive it from `domain`, and ethers refuses it)."""
    shaped = for_wallets(typed_data)
    types = {name: fields for name, fields in shaped["types"].items() if name != "EIP712Domain"}
    return {
        "domain": shaped["domain"],
        "types": types,
        "primaryType": shaped["primaryType"],
        "message": shaped["message"],
    }


SECP256K1_N = 0xFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFFEBAAEDCE6AF48A03BBFD25E8CD0364141


def is_low_s(signature: bytes) -> bool:
    """Whether a 65-byte signature's `s` is in the lower half of the curve order: the token
    (OpenZeppelin's ECDSA) refuses the other half, which eth_account would still recover."""
    return len(signature) == 65 and int.from_bytes(signature[32:64], "big") <= SECP256K1_N // 2


def full_signature(signature: bytes) -> bytes:
    """A 65-byte (r, s, v) signature; a 64-byte EIP-2098 compact one (r, yParity and s packed
    as `vs`) is expanded. Any other length is returned as is (it will not verify)."""
    if len(signature) != 64:
        return signature
    r, vs = signature[:32], int.from_bytes(signature[32:], "big")
    y_parity, s = vs >> 255, vs & ((1 << 255) - 1)
    return r + s.to_bytes(32, "big") + bytes([27 + y_parity])
