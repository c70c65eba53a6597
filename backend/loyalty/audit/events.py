"""The token's events, decoded from raw logs (see `ILoyaltyPoints`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from eth_utils.address import to_checksum_address
from eth_utils.crypto import keccak


def topic(signature: str) -> str:
    """An event's topic 0, 0x hex."""
    return "0x" + keccak(text=signature).hex()


TRANSFER = topic("Transfer(address,address,uint256)")
APPROVAL = topic("Approval(address,address,uint256)")
EARNED = topic("Earned(address,address,uint256,uint256,uint256)")
BATCH_EARNED = topic("BatchEarned(address,uint256,uint256,uint256,uint256)")
REDEEMED = topic("Redeemed(address,address,uint256,uint256,uint256)")
EXPIRED = topic("Expired(address,uint256,uint256)")
ISSUE_BUDGET_SET = topic("IssueBudgetSet(address,uint256)")
ROLE_GRANTED = topic("RoleGranted(bytes32,address,address)")
ROLE_REVOKED = topic("RoleRevoked(bytes32,address,address)")
ISSUER_ROLE = "0x" + keccak(text="ISSUER_ROLE").hex()
ZERO = "0x" + "00" * 20

_addresses: dict[str, str] = {}


def address(topic: str) -> str:
    """The checksummed address in a 32-byte topic or word (memoized: members recur)."""
    found = _addresses.get(topic)
    if found is None:
        found = _addresses[topic] = to_checksum_address("0x" + topic[-40:])
    return found


def words(data: str) -> list[int]:
    """The 32-byte words of a log's data, as integers."""
    return [int(data[i : i + 64], 16) for i in range(2, len(data), 64)]


@dataclass(slots=True, frozen=True)
class Log:
    """Where an event happened: enough to find it on any block explorer."""

    block_number: int
    tx_hash: str
    log_index: int
    topics: list[str]
    data: str
    timestamp: int | None  # when the node reports it with the log

    @classmethod
    def of(cls, raw: dict[str, Any]) -> Log:
        stamp = raw.get("blockTimestamp")
        return cls(
            int(raw["blockNumber"], 16),
            raw["transactionHash"],
            int(raw["logIndex"], 16),
            raw["topics"],
            raw["data"],
            int(stamp, 16) if stamp else None,
        )
