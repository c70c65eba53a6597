"""Sign-In with Ethereum (EIP-4361): a self-custody member proves it holds its wallet by
signing a plain-text message (EIP-191 `personal_sign`) that names this service, a nonce the
service issued, and an expiry."""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import defunct_hash_message, encode_defunct
from eth_utils.address import to_checksum_address

from loyalty.errors import ErrorCode, UnauthorizedError

_HEADER = re.compile(
    r"^(?:(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*)://)?(?P<domain>\S+) wants you to sign in with your Ethereum account:$"
)
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours a wallet's clock may be
_ADDRESS = re.compile(r"^0x[0-9a-fA-F]{40}$")
_FIELDS = {
    "URI": "uri",
    "Version": "version",
    "Chain ID": "chain_id",
    "Nonce": "nonce",
    "Issued At": "issued_at",
    "Expiration Time": "expiration_time",
    "Not Before": "not_before",
    "Request ID": "request_id",
}


@dataclass(frozen=True)
class SiweMessage:
    """The fields of an EIP-4361 message this service checks."""

    domain: str
    address: str
    statement: str | None
    uri: str
    version: str
    chain_id: int
    nonce: str
    issued_at: datetime
    expiration_time: datetime | None
    not_before: datetime | None


def parse(message: str) -> SiweMessage:
    """Read an EIP-4361 message; a malformed one is refused as unauthorized (it signs nobody in)."""
    lines = message.split("\n")
    header = _HEADER.match(lines[0]) if lines else None
    if header is None or len(lines) < 3 or not _ADDRESS.match(lines[1]):
        raise _refused("not a Sign-In with Ethereum message (EIP-4361)")
    fields: dict[str, str] = {}
    statement = None
    for line in lines[2:]:
        key, _, value = line.partition(": ")
        if key in _FIELDS and value:
            fields[_FIELDS[key]] = value
        elif line and not line.startswith("- ") and line != "Resources:" and "uri" not in fields:
            statement = line
    missing = [name for name in ("uri", "version", "chain_id", "nonce", "issued_at") if name not in fields]
    if missing or not fields["chain_id"].isdigit():
        raise _refused(f"the message lacks {', '.join(missing) or 'a numeric Chain ID'}")
    return SiweMessage(
        domain=header["domain"],
        address=lines[1],
        statement=statement,
        uri=fields["uri"],
        version=fields["version"],
        chain_id=int(fields["chain_id"]),
        nonce=fields["nonce"],
        issued_at=_time(fields["issued_at"]),
        expiration_time=_time(fields["expiration_time"]) if "expiration_time" in fields else None,
        not_before=_time(fields["not_before"]) if "not_before" in fields else None,
    )


WalletAccepts = Callable[[str, bytes, bytes], bool]
"""Whether the contract wallet at an address accepts a signature over a digest (ERC-1271)."""


def verify(
    message: str,
    signature: bytes,
    *,
    domains: tuple[str, ...],
    chain_id: int,
    now: datetime,
    wallet_accepts: WalletAccepts | None = None,
) -> SiweMessage:
    """The message, once it is checked: signed by the address it names (or, for a contract wallet,
    accepted by it through `wallet_accepts`, as EIP-4361 says), for this service's domain and
    chain, version 1, inside its time window, with an expiry. The caller checks the nonce was
    issued and not used."""
    parsed = parse(message)
    if parsed.domain not in domains:
        raise _refused(f"the message is for {parsed.domain}, not {' or '.join(domains)}")
    if parsed.chain_id != chain_id or parsed.version != "1":
        raise _refused(
            f"the message is for chain {parsed.chain_id} (version {parsed.version}), not chain {chain_id} (1)"
        )
    if urlsplit(parsed.uri).netloc != parsed.domain:
        raise _refused(f"the message's URI {parsed.uri} is not at its domain {parsed.domain}")
    if to_checksum_address(parsed.address) != parsed.address:
        raise _refused(f"{parsed.address} is not an EIP-55 checksummed address")
    if parsed.expiration_time is None:
        raise _refused("the message has no Expiration Time")
    if now >= parsed.expiration_time or (parsed.not_before is not None and now < parsed.not_before):
        raise _refused("the message is outside its time window")
    if parsed.issued_at > now + CLOCK_SKEW:
        raise _refused(f"the message was issued in the future ({parsed.issued_at.isoformat()})")
    try:
        signer: str | None = Account.recover_message(encode_defunct(text=message), signature=signature)
    except Exception:  # not an ordinary wallet's signature; perhaps a contract wallet's
        signer = None
    if signer == parsed.address:
        return parsed
    if wallet_accepts is not None and wallet_accepts(parsed.address, defunct_hash_message(text=message), signature):
        return parsed
    raise _refused(f"the message was signed by {signer or 'no one'}, not {parsed.address}")


def _time(value: str) -> datetime:
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError as exc:
        raise _refused(f"{value!r} is not an RFC 3339 time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _refused(detail: str) -> UnauthorizedError:
    return UnauthorizedError(ErrorCode.SIGN_IN_FAILED, detail)
