"""Request and response bodies (`XCreate`, `XUpdate`, `XPublic`); a `*Public` never carries secrets."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal, TypedDict

from fastapi import Path, Query
from pydantic import BaseModel, ConfigDict, Field, StringConstraints, model_validator

from loyalty.db.models import ChainWrite

# The database keeps ids, points and times as signed 64-bit integers: larger ones are refused
# here (422), before anything is written or sent.
MAX_INT = 2**63 - 1
MAX_POINTS = MAX_INT
Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS, description="whole points, 1 to 2^63 - 1")]
Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
IdQuery = Annotated[int, Query(ge=1, le=MAX_INT)]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]


class OnChain(TypedDict):
    """Where a write landed: its transaction and block, once sent and mined."""

    tx_hash: str | None
    block_number: int | None


def on_chain(write: ChainWrite | None) -> OnChain:
    return {"tx_hash": write.tx_hash if write else None, "block_number": write.block_number if write else None}


class Strict(BaseModel):
    """A request body: unknown fields are refused, and no value is coerced (`0` is not `false`)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PartnerCreate(Strict):
    name: Name
    issue_budget_points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]


class PartnerCreated(BaseModel):
    id: int
    name: str
    issuer_address: str
    status: Literal["provisioning", "active"] = Field(
        description="`provisioning` until the issuer account has its role and budget on-chain; earns wait till then"
    )
    api_key: str = Field(description="shown once; the service keeps only its hash")


class AuditorCreate(Strict):
    name: Name


class AuditorCreated(BaseModel):
    id: int
    name: str
    api_key: str


class MemberCreate(Strict):
    external_id: Name
    wallet_address: Address | None = Field(default=None, description="omit for a custodial wallet")


class ExpiringPoints(BaseModel):
    expires_at: datetime
    amount_points: int


class MemberPublic(BaseModel):
    id: int
    external_id: str
    wallet_address: str
    custodial: bool


class MemberDetail(MemberPublic):
    balance_points: int
    expiring: list[ExpiringPoints]


class LedgerEntry(BaseModel):
    kind: Literal["earn", "redeem", "expire"]
    id: int | None
    amount_points: int
    status: str
    partner_id: int | None
    tx_hash: str | None
    block_number: int | None
    created_at: datetime | None


class EarnCreate(Strict):
    member_id: Id
    amount_points: Points
    reason: Annotated[str, StringConstraints(max_length=500)] = ""


class EarnBatchCreate(Strict):
    items: Annotated[list[EarnCreate], Field(min_length=1, max_length=10_000)]


class EarnAccepted(BaseModel):
    id: int
    status: str


class EarnBatchAccepted(BaseModel):
    ids: list[int]
    status: str


class EarnPublic(BaseModel):
    id: int
    member_id: int
    amount_points: int
    status: str
    tx_hash: str | None
    block_number: int | None
    error: str | None = None


class RewardCreate(Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2_000)] = ""
    cost_points: Points
    stock: Stock
    active: bool = True


class RewardUpdate(Strict):
    """The fields to change; an omitted field stays, and none may be set to null."""

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2_000)] | None = None
    cost_points: Points | None = None
    stock: Stock | None = None
    active: bool | None = None

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: object) -> object:
        if isinstance(data, dict) and (nulls := sorted(k for k, v in data.items() if v is None)):
            raise ValueError(f"{', '.join(nulls)} cannot be null: omit a field to leave it as it is")
        return data


class RewardPublic(BaseModel):
    id: int
    partner_id: int
    name: str
    description: str
    cost_points: int
    stock: int
    active: bool


class RedemptionCreate(Strict):
    member_id: Id
    reward_id: Id
    signature: Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{130}$")] | None = None
    deadline: Annotated[int, Field(strict=True, ge=0, le=MAX_INT)] | None = Field(
        default=None, description="the deadline from the typed data the member signed"
    )


class RedemptionPublic(BaseModel):
    id: int
    member_id: int
    reward_id: int
    amount_points: int
    status: str
    voucher_code: str | None
    tx_hash: str | None
    block_number: int | None
    error: str | None = None


class HealthPublic(BaseModel):
    status: Literal["ok", "degraded"]
    reasons: list[str] = Field(description="why it is degraded; empty when ok")
    database: str
    chain: dict[str, object] = Field(
        description="rpc_url, token_address, reachable, chain_id, block_number, confirmations"
    )
    writer: dict[str, object] = Field(description="the lease holder, since, last_seen_s, chain_head, blocks_behind")
    outbox: dict[str, object] = Field(
        description="pending_earns, reserved_redemptions, oldest_pending_s, writes_in_flight, "
        "failed_writes_last_hour, dropped_writes_last_hour, partners_provisioning"
    )


class ChainPublic(BaseModel):
    chain_id: int
    token_address: str
    block_number: int


class AuditDiscrepancy(BaseModel):
    check: str
    detail: str
    tx_hash: str | None
    block_number: int | None


class AuditPartner(BaseModel):
    partner_id: int | None = Field(description="the partner in this service's database, if it is one")
    issuer_address: str
    earned_points: int
    redeemed_at_points: int = Field(description="points redeemed at this partner, whoever issued them")
    expired_points: int = Field(description="points this partner issued that expired (breakage)")
    outstanding_points: int = Field(description="points this partner issued still live: its liability")
    budget_remaining_points: int
    budget_onchain_points: int
    last_tx_hash: str | None
    last_block_number: int | None


class AuditSummary(BaseModel):
    """The program as re-derived from the token's events, as of `block_number`."""

    token_address: str
    chain_id: int
    block_number: int
    members: int
    earned_points: int
    redeemed_points: int
    expired_points: int
    outstanding_points: int
    total_supply_onchain_points: int
    partners: list[AuditPartner]
    discrepancies: list[AuditDiscrepancy]


class AuditEntry(BaseModel):
    kind: Literal["earn", "redeem", "expire", "transfer_in", "transfer_out"]
    amount_points: int
    issuer_address: str | None
    epoch: int | None
    reward_id: int | None
    ref: int | None
    tx_hash: str
    block_number: int


class AuditMember(BaseModel):
    """One member's points as re-derived from the token's events, as of `block_number`."""

    member_id: int
    wallet_address: str
    block_number: int
    earned_points: int
    redeemed_points: int
    received_points: int
    sent_points: int
    expired_points: int
    balance_points: int
    balance_onchain_points: int
    entries: list[AuditEntry]
