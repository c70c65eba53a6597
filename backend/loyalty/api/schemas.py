"""Request and response bodies (`XCreate`, `XUpdate`, `XPublic`); a `*Public` never carries secrets."""

from __future__ import annotations

from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Any, Generic, Literal, TypedDict, TypeVar

from fastapi import Path, Query
from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from loyalty.db.models import (
    AgreementStatus,
    ChainWrite,
    EarnStatus,
    ExchangeStatus,
    LinkSource,
    PartnerKind,
    ProgramKind,
    ProgramStatus,
    RedemptionStatus,
    ReferralStatus,
    SettlementAction,
    SettlementStatus,
)
from loyalty.domain.campaigns import Shortfall
from loyalty.domain.earning.calculators import Rounding
from loyalty.domain.earning.context import Beneficiary, LineKind, Trigger
from loyalty.domain.earning.engine import Period, Stacking
from loyalty.domain.tiers import Downgrade, Metric, Review
from loyalty.errors import ErrorCode, UnprocessableError

# The database keeps ids, points and times as signed 64-bit integers: larger ones are refused
# here (422), before anything is written or sent.
MAX_INT = 2**63 - 1
MAX_POINTS = MAX_INT
Points = Annotated[int, Field(strict=True, gt=0, le=MAX_POINTS, description="whole points, 1 to 2^63 - 1")]
Stock = Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]
Id = Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]
IdPath = Annotated[int, Path(ge=1, le=MAX_INT)]
IdQuery = Annotated[int, Query(ge=1, le=MAX_INT)]
ProgramQuery = Annotated[
    int | None, Query(ge=1, le=MAX_INT, description="a program (default: every one, or the first)")
]
# Free text is stored as it comes: no NUL, which PostgreSQL refuses in text (a 500, and one bad
# write would fail the whole group it was written with).
NO_NUL = r"^[^\x00]*$"
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200, pattern=NO_NUL)]
Address = Annotated[str, StringConstraints(pattern=r"^0x[0-9a-fA-F]{40}$")]


class OnChain(TypedDict):
    """Where a write landed: its transaction and block, once sent and mined."""

    tx_hash: str | None
    block_number: int | None


def on_chain(write: ChainWrite | None) -> OnChain:
    return {"tx_hash": write.tx_hash if write else None, "block_number": write.block_number if write else None}


T = TypeVar("T")
Limit = Annotated[int, Query(ge=1, le=1_000, description="rows per page")]
CursorQuery = Annotated[
    str | None, Query(max_length=500, description="`next_cursor` of the page before; omit for the first page")
]


# An RFC 3339 time in a query string (pydantic would also read "0.5" as a Unix time).
TimeQuery = Annotated[
    str | None,
    Query(
        pattern=r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d{1,6})?)?(Z|[+-]\d{2}:\d{2})?$",
        description="an RFC 3339 time, UTC unless it says otherwise",
        examples=["2026-11-23T12:00:00Z"],
    ),
]


def parse_time(value: str | None) -> datetime | None:
    if value is None:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        parsed = parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)
        return parsed.astimezone(UTC)  # also refuses times UTC cannot hold (year 1, +01:00)
    except (ValueError, OverflowError) as exc:  # the shape is right, the date is not (month 46)
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, f"{value!r} is not a time") from exc


def _utc_representable(value: datetime) -> datetime:
    """A time the database can store: it must convert to UTC (year 1 at +01:00 cannot)."""
    try:
        value.astimezone(UTC)
    except OverflowError as exc:
        raise ValueError("the time is out of range") from exc
    return value


OccurredAt = Annotated[
    AwareDatetime,
    AfterValidator(_utc_representable),
    Field(strict=False, description="RFC 3339 with its offset (the member's local time, for days of the week)"),
]
Moment = Annotated[AwareDatetime, AfterValidator(_utc_representable), Field(strict=False)]


def _addressable(value: str) -> str:
    if value in (".", ".."):
        raise ValueError("`.` and `..` cannot name anything in a path")
    return value


# A client's own id of a thing (an order, a refund, an event, a payment): it names the thing in
# paths, so no `/`, no control characters (PostgreSQL refuses NUL), and not `.` or `..`.
ClientRef = Annotated[
    str, StringConstraints(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f\x7f]+$"), AfterValidator(_addressable)
]


class Page(BaseModel, Generic[T]):
    """One page of a list, oldest first; `next_cursor` fetches the next (null on the last)."""

    data: list[T]
    next_cursor: str | None


class Strict(BaseModel):
    """A request body: unknown fields are refused, and no value is coerced (`0` is not `false`)."""

    model_config = ConfigDict(extra="forbid", strict=True)


class PartnerStatus(StrEnum):
    PROVISIONING = "provisioning"  # the issuer account's role and budget are not on-chain yet
    ACTIVE = "active"
    DEACTIVATED = "deactivated"  # its key is refused; what it accepted still goes on-chain


class DonationRate(Strict):
    """What a charity's donations are worth: `cash_minor` (minor units of `currency`) per `points`."""

    cash_minor: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]
    points: Points
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]


class PartnerCreate(Strict):
    name: Name
    issue_budget_points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)] | None = Field(
        default=None, description="a brand's budget (required); a charity has none"
    )
    kind: Literal["brand", "charity"] = Field(
        default="brand", description="`charity`: members donate points to it; it issues nothing"
    )
    donation_rate: DonationRate | None = Field(default=None, description="a charity's published rate")

    @model_validator(mode="after")
    def _brand_budget_charity_rate(self) -> PartnerCreate:
        if (self.kind == "charity") != (self.donation_rate is not None):
            raise ValueError("a charity, and only a charity, has a `donation_rate`")
        if self.kind == "brand" and self.issue_budget_points is None:
            raise ValueError("a brand has an `issue_budget_points`")
        return self


class PartnerCreated(BaseModel):
    id: int
    name: str
    issuer_address: str
    status: PartnerStatus = Field(
        description="`provisioning` until the issuer account has its role and budget on-chain; earns wait till then"
    )
    api_key: str = Field(description="shown once; the service keeps only its hash")


class PartnerPublic(BaseModel):
    id: int
    name: str
    kind: PartnerKind = Field(
        description="`brand`; `campaign`: one of a brand's campaigns' own issuer accounts; "
        "`program`: a brand's (or charity's) issuer account in another program than the first; `charity`: "
        "members donate points to it"
    )
    owner_id: int | None = Field(default=None, description="a campaign's or a program account's brand")
    program_id: int = Field(description="the program the account issues in")
    issuer_address: str
    status: PartnerStatus
    created_at: datetime
    donation_rate: DonationRate | None = Field(default=None, description="a charity's published rate")


class PartnerBudget(BaseModel):
    """A partner's issue budget, in points."""

    granted_points: int = Field(description="granted in all")
    onchain_points: int = Field(description="left on-chain, read now")
    used_points: int = Field(description="earned on-chain so far")
    pending_points: int = Field(description="accepted, not yet on-chain")
    to_grant_points: int = Field(description="granted, not yet on-chain (the partner's earns wait for it)")
    moved_points: int = Field(description="moved to the partner's campaigns' own accounts, in all")
    to_move_points: int = Field(description="moved to campaigns, not yet off the partner's on-chain budget")
    available_points: int = Field(description="what new earns may still take: left on-chain less pending and to move")


class BudgetGrant(Strict):
    amount_points: Points
    program_id: Annotated[Id | None, Field(description="the program (default: the first)")] = None


class PartnerProgramCreate(Strict):
    program_id: Id
    issue_budget_points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)]


class KeyRotated(BaseModel):
    id: int
    api_key: str = Field(description="the new key, shown once; the old one is refused from now on")


class AuditorPublic(BaseModel):
    id: int
    name: str
    created_at: datetime


class AuditorCreate(Strict):
    name: Name


class AuditorCreated(BaseModel):
    id: int
    name: str
    api_key: str


Passphrase = Annotated[str, StringConstraints(min_length=10, max_length=200)]


class MemberCreate(Strict):
    external_id: Name
    referral_code: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=NO_NUL)] | None = Field(
        default=None, description="the code of the member who referred this one (its friend)"
    )
    wallet_address: Address | None = Field(default=None, description="omit for a custodial wallet")
    smart_wallet: bool = Field(
        default=False, description="the wallet is a contract that consents through ERC-1271 (a smart account)"
    )
    passphrase: Passphrase | None = Field(
        default=None,
        description="a custodial member's first passphrase; better omitted: the answer then carries a one-time "
        "`enrolment_token` the member uses to choose its own (POST /v1/auth/passphrase)",
    )


class ExpiringPoints(BaseModel):
    expires_at: datetime
    amount_points: int


class MemberPublic(BaseModel):
    id: int
    external_id: str
    wallet_address: str
    custodial: bool
    smart_wallet: bool = False
    referral_code: str | None = Field(default=None, description="the code the member shares with friends")


class MemberCreated(MemberPublic):
    enrolment_token: str | None = Field(
        default=None, description="one-time, for the member to set its passphrase; shown once"
    )
    enrolment_expires_at: datetime | None = None


class LinkToken(BaseModel):
    """A one-time token for the member (hand it over as a link): it sets the passphrase once."""

    token: str
    expires_at: datetime


class SessionCreate(Strict):
    external_id: Name
    passphrase: Annotated[str, StringConstraints(min_length=1, max_length=200)]


class SessionCreated(BaseModel):
    token: str = Field(description="send as `Authorization: Bearer <token>` to the /v1/me routes")
    expires_at: datetime
    member_id: int


class PassphraseSet(Strict):
    token: Annotated[str, StringConstraints(min_length=1, max_length=200)] = Field(
        description="the enrolment or reset token"
    )
    passphrase: Passphrase


class SiweNonce(BaseModel):
    """What a wallet needs to build the Sign-In with Ethereum (EIP-4361) message."""

    nonce: str
    expires_at: datetime
    domain: str
    uri: str
    chain_id: int
    statement: str


MAX_SIGNATURE_BYTES = 4_096  # a contract wallet's signature may hold several, or a passkey's data
Signature = Annotated[
    str,
    StringConstraints(pattern=r"^0x(?:[0-9a-fA-F]{2})+$", max_length=2 + 2 * MAX_SIGNATURE_BYTES),
    Field(
        description="hex: 65 bytes (r, s, v) or 64 (EIP-2098 compact) from an ordinary wallet; whatever a contract "
        f"wallet (`smart_wallet`) takes through ERC-1271, up to {MAX_SIGNATURE_BYTES:,} bytes"
    ),
]


class SiweSignIn(Strict):
    message: Annotated[str, StringConstraints(min_length=1, max_length=4_000, pattern=NO_NUL)]
    signature: Signature


class MeProfile(MemberPublic):
    partner_ids: list[int] = Field(description="the partners the member is linked to")


class LinkCreate(Strict):
    partner_id: Id


class LinkPublic(BaseModel):
    member_id: int
    partner_id: int
    source: LinkSource
    created_at: datetime


class RedemptionCodeCreate(Strict):
    partner_id: Id
    max_points: Points


class RedemptionCodeCreated(BaseModel):
    code: str = Field(description="8 characters, for one redemption at this partner; shown once")
    partner_id: int
    max_points: int
    expires_at: datetime


class ProgramBalance(BaseModel):
    program_id: int
    symbol: str | None
    token_address: str
    balance_points: int = Field(description="on-chain, in this program's token")
    pending_points: int = Field(description="awarded for purchases in this program, not released yet")
    debt_points: int = Field(description="owed in this program: refunds after release, paid from later awards")


class MemberDetail(MemberPublic):
    balance_points: int = Field(description="on-chain, in program 1 (the first program)")
    pending_points: int = Field(description="in program 1: awarded for purchases still in their pending period")
    debt_points: int = Field(description="in program 1: owed for refunds after release; the next awards pay it first")
    expiring: list[ExpiringPoints]
    programs: list[ProgramBalance] = Field(
        default=[],
        description="the balance, pending points and debt in each program with a token (one wallet for all), "
        "program 1 first",
    )


class LedgerEntry(BaseModel):
    kind: Literal["earn", "redeem", "expire"]
    id: int | None
    amount_points: int
    status: str
    partner_id: int | None
    program_id: int = Field(description="the program whose points it earned, redeemed or expired")
    tx_hash: str | None
    block_number: int | None
    created_at: datetime | None


ProgramField = Annotated[
    Id | None,
    Field(description="the program to earn in (default: the first); the partner must issue there"),
]
ProgramShown = Annotated[int, Field(description="the program it is in (the partner's account there prices it)")]


class EarnItemCreate(Strict):
    member_id: Id
    amount_points: Points
    reason: Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)] = ""


class EarnCreate(EarnItemCreate):
    program_id: ProgramField = None


class EarnBatchCreate(Strict):
    items: Annotated[list[EarnItemCreate], Field(min_length=1, max_length=10_000)]
    program_id: ProgramField = None


class EarnAccepted(BaseModel):
    id: int
    status: EarnStatus


class EarnBatchAccepted(BaseModel):
    ids: list[int]
    status: EarnStatus


class EarnPublic(BaseModel):
    id: int
    member_id: int
    program_id: int
    amount_points: int
    reason: str
    status: EarnStatus
    tx_hash: str | None
    block_number: int | None
    error: str | None = None


class RewardCreate(Strict):
    name: Name
    description: Annotated[str, StringConstraints(max_length=2_000, pattern=NO_NUL)] = ""
    cost_points: Points
    stock: Stock
    active: bool = True
    tier: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)] | None = Field(
        default=None,
        description="a paid tier bought with points: redeeming this starts the tier (with `tier_period_days`)",
    )
    tier_period_days: Annotated[int, Field(strict=True, ge=1, le=3_650)] | None = None
    program_id: Annotated[
        Id | None, Field(description="the program whose points it costs (default: the first); the partner issues there")
    ] = None

    @model_validator(mode="after")
    def _tier_with_period(self) -> RewardCreate:
        if (self.tier is None) != (self.tier_period_days is None):
            raise ValueError("a tier reward names both `tier` and `tier_period_days`")
        return self


class RewardUpdate(Strict):
    """The fields to change; an omitted field stays, and none may be set to null."""

    name: Name | None = None
    description: Annotated[str, StringConstraints(max_length=2_000, pattern=NO_NUL)] | None = None
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
    program_id: int = Field(description="the program whose points it costs")
    name: str
    description: str
    cost_points: int
    stock: int | None = Field(description="null: unlimited (a charity's donation reward, any amount)")
    active: bool
    tier: str | None = None
    tier_period_days: int | None = None


class RedemptionCreate(Strict):
    member_id: Id
    reward_id: Id
    signature: Signature | None = Field(
        default=None,
        description="a self-custody member's EIP-712 consent: 65 bytes, or 64 (EIP-2098 compact); a contract "
        "wallet's own form (ERC-1271)",
    )
    deadline: Annotated[int, Field(strict=True, ge=0, le=MAX_INT)] | None = Field(
        default=None, description="the deadline from the typed data the member signed"
    )
    redemption_code: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=NO_NUL)] | None = Field(
        default=None,
        description="a custodial member's one-time code for this partner; without one, the "
        "redemption awaits the member's approval",
    )


class ConsentCreate(Strict):
    member_id: Id
    reward_id: Id


class ConsentQuote(BaseModel):
    """The consent a self-custody member signs, in the shapes wallets take."""

    typed_data: dict[str, object] = Field(description="for `eth_signTypedData_v4`")
    ethers: dict[str, object] = Field(
        description="for ethers `signTypedData(domain, types, message)` and viem: `types` without EIP712Domain"
    )
    deadline: int = Field(description="send it back with the signature")


class MyDonationCreate(Strict):
    charity_id: Id
    program_id: Annotated[Id | None, Field(description="whose points (default: the first)")] = None
    amount_points: Points
    signature: Signature | None = Field(
        default=None, description="a self-custody member's signed consent (POST .../donations/consents)"
    )
    deadline: Annotated[int, Field(strict=True, ge=0, le=MAX_INT)] | None = Field(
        default=None, description="the deadline from the typed data the member signed"
    )


class DonationCreate(MyDonationCreate):
    member_id: Id
    redemption_code: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=NO_NUL)] | None = Field(
        default=None,
        description="a custodial member's one-time code for the relaying partner; without one, the donation "
        "awaits the member's approval (POST /v1/me/redemptions/{redemption_id}/approve)",
    )


class MyDonationConsentCreate(Strict):
    charity_id: Id
    program_id: Annotated[Id | None, Field(description="whose points (default: the first)")] = None
    amount_points: Points


class DonationConsentCreate(MyDonationConsentCreate):
    member_id: Id


class DonationPublic(BaseModel):
    """A donation, and once its burn is final (`posted`), the member's receipt: the transaction."""

    id: int
    charity_id: int
    charity_name: str
    program_id: int
    member_id: int
    relayed_by: int | None = Field(description="the partner that relayed it; null: the member itself")
    amount_points: int
    cash_minor: int = Field(description="what it is worth at the rate of its day, rounded down: the program owes it")
    currency: str
    rate: DonationRate
    status: RedemptionStatus = Field(
        description="its redemption's: `awaiting_member`, `reserved`, `posted` (given, for good), `voided` (the "
        "chain refused the burn: nothing was given) or `declined`"
    )
    redemption_id: int
    tx_hash: str | None
    block_number: int | None
    created_at: datetime
    error: str | None = None


class DonationStatement(BaseModel):
    """What a program owes a charity for [since, until): its donations whose burn is final in the
    window, each at its day's rate; beside them, the same donations counted from the chain."""

    charity_id: int
    program_id: int
    since: datetime
    until: datetime
    from_block: int
    to_block: int
    donations: int
    donated_points: int
    cash_minor: int = Field(description="owed to the charity: the donations' values, each rounded down")
    currency: str
    onchain_donations: int = Field(description="`Redeemed` events at the charity's account in the window")
    onchain_points: int
    matches: bool = Field(description="the chain's count and points equal the service's")
    tx_hashes: list[str]


class RedemptionPublic(BaseModel):
    id: int
    partner_id: int
    program_id: int = Field(description="the program whose points it burns (its reward's)")
    member_id: int
    reward_id: int
    amount_points: int
    status: RedemptionStatus
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
    webhooks: dict[str, object] = Field(
        default={}, description="pending_deliveries, oldest_pending_s, disabled_endpoints (ids)"
    )


class WhoAmI(BaseModel):
    role: Literal["admin", "partner", "auditor", "member"]
    partner_id: int | None = Field(description="a partner key's partner")
    member_id: int | None = Field(description="a member session's member")


class ChainPublic(BaseModel):
    chain_id: int
    token_address: str
    block_number: int


class AuditDiscrepancy(BaseModel):
    check: str
    detail: str
    tx_hash: str | None
    block_number: int | None


class AuditTimelinePoint(BaseModel):
    block_number: int
    at: datetime = Field(description="the block's time")
    outstanding_points: int = Field(description="live points: the liability")
    expired_points: int = Field(description="expired so far: the breakage")


class AuditTimeline(BaseModel):
    program_id: int
    points: list[AuditTimelinePoint]


class AuditProgress(BaseModel):
    program_id: int
    state: Literal["not_started", "replaying", "ready"]
    blocks_done: int = Field(description="while replaying")
    blocks_total: int = Field(description="while replaying: the blocks this replay covers")
    last_block: int | None = Field(description="replayed up to this block")


class AuditCheck(BaseModel):
    name: str
    description: str
    checked: int = Field(description="items it looked at")
    failed: int = Field(description="the items that failed it")


class AuditPartner(BaseModel):
    partner_id: int | None = Field(description="the partner in this service's database, if it is one")
    campaign_id: int | None = Field(default=None, description="the campaign whose own account this is, if it is one")
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

    program_id: int
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
    checks: list[AuditCheck] = Field(default=[], description="every check this replay made, and its result")


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
    """One member's points in a program as re-derived from its token's events, as of `block_number`."""

    program_id: int
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


# ------------------------------------------------------------------------------ earning rules
Count = Annotated[int, Field(strict=True, ge=0, le=MAX_INT)]
Tag = Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)]
Tags = Annotated[list[Tag], Field(max_length=1_000)]


class FixedCalculator(Strict):
    """`points` once per activity."""

    strategy: Literal["fixed"]
    points: Count


class PerSpendCalculator(Strict):
    """`points` per `per_minor` minor units of net item spend (1 per dollar: 1 per 100)."""

    strategy: Literal["per_spend"]
    points: Count
    per_minor: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]
    rounding: Rounding = Field(default=Rounding.FLOOR, strict=False)


class PerItemCalculator(Strict):
    """`points` per unit of the matched item lines."""

    strategy: Literal["per_item"]
    points: Count


class MultiplierCalculator(Strict):
    """The matched lines earn `numerator / denominator` times what rule `rule_id` gives them
    (this rule adds the difference)."""

    strategy: Literal["multiplier"]
    rule_id: Id
    numerator: Count
    denominator: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]
    rounding: Rounding = Field(default=Rounding.FLOOR, strict=False)


class RuleConditions(Strict):
    """All must hold (an empty one always does). `skus`/`categories` choose the item lines the
    rule counts; `min_net_minor` is on those; `days_of_week` are ISO (1 is Monday) in the
    activity's own offset; the window is [`starts_at`, `ends_at`)."""

    skus: Tags = []
    categories: Tags = []
    min_net_minor: Count = 0
    tiers: Tags = []
    segments: Tags = []
    days_of_week: Annotated[list[Annotated[int, Field(strict=True, ge=1, le=7)]], Field(max_length=7)] = []
    starts_at: datetime | None = Field(default=None, strict=False)
    ends_at: datetime | None = Field(default=None, strict=False)


class RuleLimits(Strict):
    per_order: Count | None = Field(default=None, description="the most the rule gives one order")
    per_member: Count | None = Field(default=None, description="the most it gives one member per `period`")
    period: Period = Field(default=Period.MONTH, strict=False)


class RuleDefinition(Strict):
    """An earning rule, as JSON (no code): a trigger, conditions, a calculator, a priority and a
    stacking mode (`additive` rules all add; of the `best_of` ones only the largest counts; a
    multiplier always adds to its base rule), and limits."""

    name: Name
    trigger: Trigger = Field(default=Trigger.PURCHASE, strict=False)
    event_type: Tag | None = Field(default=None, description="for `trigger: event`: the custom event type")
    beneficiary: Beneficiary | None = Field(
        default=None, strict=False, description="for `trigger: referral`: whom it rewards, `referrer` or `friend`"
    )
    conditions: RuleConditions = RuleConditions()
    calculator: Annotated[
        FixedCalculator | PerSpendCalculator | PerItemCalculator | MultiplierCalculator,
        Field(discriminator="strategy"),
    ]
    priority: Annotated[int, Field(strict=True, ge=0, le=1_000_000)] = 0
    stacking: Stacking = Field(default=Stacking.ADDITIVE, strict=False)
    limits: RuleLimits = RuleLimits()


class RuleCreate(RuleDefinition):
    program_id: Annotated[
        Id | None, Field(description="the program it earns in (default: the first); the partner must issue there")
    ] = None


class RulePublic(BaseModel):
    id: int
    partner_id: int
    program_id: ProgramShown
    version: int
    active: bool
    definition: dict[str, object]
    created_at: datetime
    updated_at: datetime


class RuleVersionPublic(BaseModel):
    version: int
    definition: dict[str, object]
    created_at: datetime


class PurchaseLineIn(Strict):
    sku: Tag
    category: Annotated[str, StringConstraints(max_length=100, pattern=NO_NUL)] = ""
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000)]
    unit_price_minor: Count
    discount_minor: Count = 0
    kind: LineKind = Field(default=LineKind.ITEM, strict=False)


class Simulation(Strict):
    """An activity to price: a purchase's lines (or another trigger), and the member facts the
    rules look at."""

    trigger: Trigger = Field(default=Trigger.PURCHASE, strict=False)
    event_type: Tag | None = Field(default=None, description="an event's type; for a referral, `referrer` or `friend`")
    occurred_at: OccurredAt
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    lines: Annotated[list[PurchaseLineIn], Field(max_length=500)] = []
    tier: Tag | None = None
    segments: Tags = []
    program_id: ProgramField = None


class AwardPublic(BaseModel):
    rule_id: int | None = Field(description="the rule that made it; none for a tier's multiplier or a campaign")
    rule_version: int | None
    tier: str | None = Field(default=None, description="the tier whose multiplier made it")
    campaign_id: int | None = Field(default=None, description="the campaign that made it (issued from its own account)")
    member_id: int | None = Field(default=None, description="who earns it (a referral rewards two members)")
    points: int
    reason: str
    capped_by: str | None = Field(
        description="`per_order` or `per_member` if a limit cut the points, `budget` if a budget did (even to 0)"
    )
    earn_id: int | None = Field(default=None, description="the earn that minted it, once released")


class SimulationResult(BaseModel):
    awards: list[AwardPublic]
    total_points: int


# ---------------------------------------------------------------------------------- purchases
MAX_ORDER_MINOR = 10**12  # an order's lines add up to at most this (ten billion dollars): sums stay in 64 bits


class PurchaseCreate(Strict):
    member_id: Id
    order_id: ClientRef = Field(
        description="unique per partner: a replayed order never earns twice; no `/` (it names the order in paths)"
    )
    occurred_at: OccurredAt
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    lines: Annotated[list[PurchaseLineIn], Field(min_length=1, max_length=500)]
    program_id: ProgramField = None

    @model_validator(mode="after")
    def _bounded(self) -> PurchaseCreate:
        if sum(line.quantity * line.unit_price_minor for line in self.lines) > MAX_ORDER_MINOR:
            raise ValueError(f"an order's lines add up to at most {MAX_ORDER_MINOR:,} minor units")
        return self


class PurchasePublic(BaseModel):
    id: int
    partner_id: int
    program_id: ProgramShown
    member_id: int
    order_id: str
    occurred_at: datetime
    currency: str
    status: str = Field(description="`pending` until `pending_until`, then `released`")
    pending_until: datetime
    released_at: datetime | None
    earn_id: int | None = Field(description="the earn that minted the partner's own points, once released")
    awards: list[AwardPublic] = Field(description="every award and, negative, every refund's take-back")
    total_points: int


class RefundLineIn(Strict):
    sku: Tag
    quantity: Annotated[int, Field(strict=True, ge=1, le=1_000_000)]


class RefundCreate(Strict):
    refund_id: ClientRef = Field(
        description="the partner's id of the refund: one seen before answers the refund it made (409 for other lines)"
    )
    lines: Annotated[list[RefundLineIn], Field(min_length=1, max_length=500)] | None = Field(
        default=None, description="units returned; without them, the whole order"
    )
    program_id: Annotated[Id | None, Field(description="the program the order earned in (default: the first)")] = None


class RefundPublic(BaseModel):
    id: int
    refund_id: str
    order_id: str
    points_reversed: int
    debt_points: int = Field(description="of those, owed by the member (the order's points were released)")
    created_at: datetime


class ProgramPublic(BaseModel):
    id: int
    name: str
    pending_days: int = Field(description="how long purchase awards stay pending before they are minted")
    currency: str = Field(description="purchases are priced in it; spend in another is refused")
    token_address: str | None = Field(description="its LoyaltyPoints token (while deploying: where it will be)")
    symbol: str | None
    epoch_length_s: int | None = Field(description="seconds per expiry epoch")
    validity_epochs: int | None = Field(description="epochs points stay valid, the one earned in included")
    kind: ProgramKind
    status: ProgramStatus = Field(description="deploying (its token is in the outbox), then active")
    incoming_budget_points: int = Field(
        description="incoming budget granted on-chain, in all (what is left is the exchange's issue budget on the token)"
    )
    incoming_to_grant_points: int = Field(description="incoming budget granted, not yet on-chain")
    issue_fee_per_point: int = Field(description="a coalition's fee per point issued (settlement-token units)")
    redemption_price_per_point: int = Field(description="a coalition's price per point redeemed at a partner")
    point_value_minor: int | None = Field(
        default=None, description="what `point_value_points` points are worth to a member, in minor units of `currency`"
    )
    point_value_points: int | None = None
    created_at: datetime


class ProgramCreate(Strict):
    """A new program: its token deployed by the service (name, symbol and expiry), or, with
    `token_address`, a LoyaltyPoints the operator already administers (read from the chain)."""

    name: Name | None = Field(default=None, description="required unless token_address is given")
    symbol: Annotated[str, StringConstraints(pattern=r"^[A-Z0-9]{1,11}$")] | None = None
    epoch_length_s: Annotated[int, Field(strict=True, ge=3_600, le=2**32 - 1)] = 30 * 86_400
    validity_epochs: Annotated[int, Field(strict=True, ge=1, le=64)] = 12
    token_address: Address | None = None
    kind: ProgramKind = Field(
        default=ProgramKind.BRAND, strict=False, description="a brand's own points, or a coalition currency"
    )
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] = "USD"
    pending_days: Annotated[int, Field(strict=True, ge=0, le=3_650)] = 0

    @model_validator(mode="after")
    def _named(self) -> ProgramCreate:
        if self.token_address is None and self.name is None:
            raise ValueError("name is required to deploy a new program (or give token_address)")
        return self


Price = Annotated[int, Field(strict=True, ge=0, le=2**62)]


class ProgramUpdate(Strict):
    pending_days: Annotated[int, Field(strict=True, ge=0, le=3_650)] | None = None
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")] | None = None
    name: Name | None = None
    issue_fee_per_point: Price | None = Field(
        default=None, description="a coalition's fee per point a partner issues, in settlement-token units"
    )
    redemption_price_per_point: Price | None = Field(
        default=None, description="what a coalition pays a partner per point redeemed at it, in settlement-token units"
    )
    point_value_minor: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)] | None = Field(
        default=None,
        description="what points are worth to a member (their stand-alone selling price), in minor units of the "
        "program's currency per `point_value_points` points: the metrics' liability in money and deferred revenue",
    )
    point_value_points: Points | None = None

    @model_validator(mode="after")
    def _value_whole(self) -> ProgramUpdate:
        if (self.point_value_minor is None) != (self.point_value_points is None):
            raise ValueError("give `point_value_minor` and `point_value_points` together")
        return self


class StatementLine(BaseModel):
    partner_id: int | None = Field(description="the partner whose issuer account this is (none: not the service's)")
    issuer: str
    issued_points: int
    redeemed_points: int
    fees: str = Field(description="issued x the issue fee: what it owes the coalition (settlement-token units)")
    reimbursed: str = Field(description="redeemed x the redemption price: what the coalition owes it")
    net: str = Field(description="reimbursed less fees")


class StatementPayment(BaseModel):
    debtor: str
    debtor_id: int | None
    creditor: str
    creditor_id: int | None
    amount: str


class StatementPublic(BaseModel):
    """A coalition program's statement for a time window, from the token's events alone (the
    coalition itself is the party named by the token's address)."""

    program_id: int
    token_address: str
    since: datetime
    until: datetime
    from_block: int
    to_block: int
    issue_fee_per_point: int
    redemption_price_per_point: int
    lines: list[StatementLine]
    net: dict[str, str] = Field(description="each party's position, the coalition included; they sum to zero")
    payments: list[StatementPayment] = Field(description="at most one fewer than the parties")


# ---------------------------------------------------------------------------------- agreements
U32 = Annotated[int, Field(strict=True, ge=1, le=2**32 - 1)]
U64 = Annotated[int, Field(strict=True, ge=0, le=2**64 - 1)]
U128 = Annotated[int, Field(strict=True, ge=0, le=2**128 - 1)]


class AgreementCreate(Strict):
    """A rate agreement's terms (as `IPointsExchange.Agreement`): the calling partner must be
    the payer or the payee; brands sign as their issuer accounts. Caps and the credit limit 0
    mean none; `price_per_point` is in the settlement token's smallest units."""

    source_program_id: Id = Field(description="the program members give points in")
    target_program_id: Id = Field(description="the program members get points in")
    payer_id: Id = Field(description="the partner that owes the payee for the points issued on the target")
    payee_id: Id
    rate_numerator: U32 = Field(description="out = in x numerator / denominator, rounded down")
    rate_denominator: U32
    minimum_in: U64 = 1
    step_in: Annotated[int, Field(strict=True, ge=1, le=2**64 - 1)] = 1
    max_in_per_exchange: U64 = 0
    max_in_per_member_period: U64 = 0
    bonus_every: U64 = Field(default=0, description="every bonus_every points in give bonus_out more out")
    bonus_out: U64 = 0
    price_per_point: U128 = 0
    credit_limit: U128 = Field(default=0, description="the most the payer may owe the payee in one period")
    valid_from: Moment | None = Field(default=None, description="default: now")
    valid_until: Moment


class AgreementPublic(BaseModel):
    id: int
    agreement_id: str = Field(description="its id on the exchange: the EIP-712 digest both brands sign")
    exchange_address: str
    status: AgreementStatus
    source_program_id: int
    target_program_id: int
    payer_id: int
    payee_id: int
    proposed_by: int
    terms: dict[str, Any] = Field(description="the struct as the exchange takes it (addresses, integers, Unix times)")
    signed_by_payer: bool
    signed_by_payee: bool
    typed_data: dict[str, Any] = Field(
        description="the EIP-712 typed data both brands sign (`eth_signTypedData_v4`): a brand with its own "
        "agreement signer signs this and sends the signature to `/sign`"
    )
    revoked_by: int | None
    error: str | None = Field(description="why the chain refused it, when it did")
    created_at: datetime


class AgreementSign(Strict):
    signature: Signature | None = Field(
        default=None,
        description="the brand's own agreement signer's signature of the agreement's `typed_data` (65 bytes, or 64 "
        "compact); none for a brand whose issuer account signs (the service holds its key)",
    )


class AgreementSignerSet(Strict):
    address: Address | None = Field(
        description="the address that signs the brand's agreements from now on; null: its issuer account again"
    )


class AgreementSignerPublic(BaseModel):
    partner_id: int
    address: str | None = Field(description="the brand's own agreement signer; null: its issuer account signs")
    onchain: bool = Field(description="whether the exchange takes this signer's signatures for the brand yet")


class QuoteRequest(Strict):
    agreement_id: Id = Field(description="the agreement's id in the service (not its digest)")
    amount_in: Annotated[int, Field(strict=True, ge=1, le=2**96 - 1)] = Field(description="points given on the source")


class QuotePublic(BaseModel):
    agreement_id: int
    source_program_id: int
    target_program_id: int
    amount_in: int
    amount_out: int = Field(description="points the member gets on the target (the rate rounded down, plus any bonus)")
    owed: int = Field(description="what the payer owes the payee for them, in the settlement token's smallest units")


AmountIn = Annotated[int, Field(strict=True, ge=1, le=2**62, description="points given on the source")]


class ExchangeConsentCreate(Strict):
    agreement_id: Id = Field(description="the agreement's id in the service (not its digest)")
    member_id: Id
    amount_in: AmountIn


class MyExchangeConsentCreate(Strict):
    agreement_id: Id = Field(description="the agreement's id in the service (not its digest)")
    amount_in: AmountIn


class ExchangeConsentQuote(ConsentQuote):
    exchange_id: int = Field(description="the exchange this consent is for, `quoted` until signed")
    amount_out: int


class MyExchangeCreate(Strict):
    """A member's own exchange: custodial, nothing more (its session is its consent);
    self-custody, the signed consent from POST /v1/me/exchanges/consents."""

    agreement_id: Id = Field(description="the agreement's id in the service (not its digest)")
    amount_in: AmountIn
    signature: Signature | None = Field(default=None, description="a self-custody member's EIP-712 consent")
    deadline: Annotated[int, Field(strict=True, ge=0, le=MAX_INT)] | None = Field(
        default=None, description="the deadline from the typed data the member signed"
    )


class ExchangeCreate(MyExchangeCreate):
    """A partner relays a member's exchange: with the member's signed consent (self-custody),
    its one-time code (custodial), or neither, and it awaits the member's approval."""

    member_id: Id
    redemption_code: Annotated[str, StringConstraints(min_length=1, max_length=20, pattern=NO_NUL)] | None = Field(
        default=None, description="a custodial member's one-time code for this partner (POST /v1/me/redemption-codes)"
    )


class ExchangePublic(BaseModel):
    id: int
    agreement_id: int
    source_program_id: int
    target_program_id: int
    member_id: int
    partner_id: int | None = Field(description="the partner that relayed it; none when the member asked itself")
    amount_in: int
    amount_out: int
    status: ExchangeStatus
    ref: int | None = Field(
        description="the exchange's ref: the burn's label on the source, the mint's ref on the target"
    )
    tx_hash: str | None
    block_number: int | None
    error: str | None = None
    created_at: datetime


class ExchangeBatchCreate(Strict):
    exchanges: Annotated[list[ExchangeCreate], Field(min_length=1, max_length=1_000)]


class ItemProblem(BaseModel):
    """Why one item of a batch was refused (the problem a single request would have had)."""

    code: str
    status: int
    detail: str


class ExchangeBatchResult(BaseModel):
    exchange: ExchangePublic | None = None
    problem: ItemProblem | None = None


class ExchangeBatchAccepted(BaseModel):
    results: list[ExchangeBatchResult] = Field(description="one per item, in order: the exchange, or why not")


class IncomingBudgetGrant(Strict):
    points: Annotated[int, Field(strict=True, ge=1, le=2**62)] = Field(
        description="more points the program takes in through the exchange (the exchange's issue budget on its token)"
    )


class SettlementOverview(BaseModel):
    exchange_address: str
    settlement_token: str
    current_period: int
    next_period_to_close: int


class DebtPublic(BaseModel):
    payer_id: int | None
    payee_id: int | None
    payer: str
    payee: str
    amount: str = Field(description="settlement-token units, as a decimal string (it may pass 2^53)")


class PaymentPublic(BaseModel):
    index: int
    debtor_id: int | None
    creditor_id: int | None
    debtor: str
    creditor: str
    amount: str = Field(description="settlement-token units, as a decimal string")
    settled: bool


class PeriodPublic(BaseModel):
    period: int
    ends_at: int = Field(description="Unix time the period ends; anyone may close it then")
    due_at: int = Field(description="Unix time its payments are due; an unpaid debtor cannot exchange as payer after")
    closed: bool
    debts: list[DebtPublic] = Field(description="what each payer owes each payee for the period's exchanges")
    net: dict[str, str] = Field(description="each brand's position (credits less debts), by address; they sum to zero")
    payments: list[PaymentPublic] = Field(description="once closed: the payments that settle the net positions")


class SettlementStepPublic(BaseModel):
    id: int
    period: int
    payment_index: int | None
    action: SettlementAction
    partner_id: int | None
    status: SettlementStatus
    tx_hash: str | None
    block_number: int | None
    error: str | None
    created_at: datetime


# -------------------------------------------------------------------------------------- tiers
class TierIn(Strict):
    name: Tag
    threshold: Count = Field(description="the metric value that reaches the tier")
    multiplier_numerator: Annotated[int, Field(strict=True, ge=1, le=1_000)] = 1
    multiplier_denominator: Annotated[int, Field(strict=True, ge=1, le=1_000)] = 1
    benefits: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=200, pattern=NO_NUL)]], Field(max_length=50)
    ] = []


class LadderDefinition(Strict):
    """Tiers from the lowest up (rising thresholds), qualified by `metric` over the last
    `window_days`. Up at once; down at the member's yearly review (`anniversary`) or as soon as
    the metric falls short (`real_time`), one step (`one_down`) or to what it earns
    (`recompute`)."""

    tiers: Annotated[list[TierIn], Field(min_length=1, max_length=20)]
    metric: Metric = Field(default=Metric.NET_SPEND, strict=False)
    window_days: Annotated[int, Field(strict=True, ge=1, le=3_650)] = 365
    downgrade: Downgrade = Field(default=Downgrade.ONE_DOWN, strict=False)
    review: Review = Field(default=Review.ANNIVERSARY, strict=False)


class TierPublic(BaseModel):
    """The member's tier in a program, and why."""

    program_id: int
    tier: str | None = Field(description="effective: the higher of the earned and the paid one")
    earned_tier: str | None
    paid_tier: str | None
    paid_until: datetime | None
    metric: Metric
    value: int | None = Field(
        description="the metric over the ladder's window, now (program-wide: the member, admins and auditors see it)"
    )
    threshold: int | None = Field(description="the earned tier's")
    points_required_to_remain: int | None = Field(description="more of the metric needed by the next review to keep it")
    next_tier: str | None
    required_for_next: int | None
    next_review_at: datetime | None
    benefits: list[str]
    multiplier_numerator: int | None
    multiplier_denominator: int | None


class TierSubscriptionCreate(Strict):
    tier: Tag
    period_days: Annotated[int, Field(strict=True, ge=1, le=3_650)]
    currency: Annotated[str, StringConstraints(pattern=r"^[A-Z]{3}$")]
    price_minor: Count = Field(description="a partner sells for more than 0; only the operator gives a tier away")
    payment_ref: ClientRef = Field(description="the payment that paid for it (each pays once)")
    program_id: Annotated[
        Id | None,
        Field(description="the program whose ladder has the tier (default: the first); a partner issues there"),
    ] = None


class TierSubscriptionPublic(BaseModel):
    id: int
    member_id: int
    program_id: int
    tier: str
    starts_at: datetime
    ends_at: datetime
    currency: str | None = Field(description="paid in money: its currency and price; null when paid in points")
    price_minor: int | None
    price_points: int | None = Field(default=None, description="paid in points: the tier reward's cost")
    redemption_id: int | None = Field(default=None, description="paid in points: the redemption that paid")
    payment_ref: str
    sold_by: int | None
    cancelled_at: datetime | None


# ---------------------------------------------------------------------------------- campaigns
class CampaignConditions(Strict):
    """Who and what a campaign is for; all must hold (an empty one always does)."""

    skus: Tags = []
    categories: Tags = []
    min_net_minor: Count = 0
    tiers: Tags = []
    segments: Tags = []
    days_of_week: Annotated[list[Annotated[int, Field(strict=True, ge=1, le=7)]], Field(max_length=7)] = []


class BonusEffect(Strict):
    """`points` per eligible order."""

    kind: Literal["bonus"]
    points: Annotated[int, Field(strict=True, ge=1, le=MAX_INT)]


class MultiplierEffect(Strict):
    """The eligible lines earn `numerator / denominator` times what the partner's rules give
    them; the campaign gives the difference."""

    kind: Literal["multiplier"]
    numerator: Annotated[int, Field(strict=True, ge=2, le=1_000)]
    denominator: Annotated[int, Field(strict=True, ge=1, le=1_000)]
    rounding: Rounding = Field(default=Rounding.FLOOR, strict=False)


class CampaignCreate(Strict):
    """A campaign: its window, who is eligible, its effect, its budget (moved from the
    partner's to the campaign's own issuer account, which the chain holds to it), and a cap per
    member per `period` (`campaign`: over the whole window)."""

    name: Name
    starts_at: Moment
    ends_at: Moment
    conditions: CampaignConditions = CampaignConditions()
    effect: Annotated[BonusEffect | MultiplierEffect, Field(discriminator="kind")]
    budget_points: Points
    per_member_points: Count | None = Field(default=None, description="the most one member gets per `period`")
    period: Literal["campaign", "day", "week", "month", "year"] = "campaign"
    when_short: Shortfall = Field(
        default=Shortfall.PARTIAL, strict=False, description="with too little budget left: give what is left, or none"
    )
    program_id: Annotated[
        Id | None,
        Field(description="the program it gives points in (default: the first), from the partner's budget there"),
    ] = None


class CampaignStatus(StrEnum):
    PROVISIONING = "provisioning"  # its account's budget is not on-chain yet (awards are held meanwhile)
    SCHEDULED = "scheduled"
    RUNNING = "running"
    ENDED = "ended"
    DEACTIVATED = "deactivated"


class CampaignBudget(BaseModel):
    budget_points: int = Field(description="what the campaign may issue in all")
    onchain_points: int = Field(description="left on its account's on-chain budget, read now")
    issued_points: int = Field(description="issued on-chain so far")
    pending_points: int = Field(description="awarded, not yet on-chain")
    available_points: int = Field(description="what new awards may still take")


class CampaignPublic(BaseModel):
    id: int
    partner_id: int
    program_id: ProgramShown
    name: str
    status: CampaignStatus
    active: bool
    starts_at: datetime
    ends_at: datetime
    issuer_address: str = Field(description="the campaign's own issuer account: its liability and breakage are its own")
    issuer_id: int = Field(description="that account's partner id (kind `campaign`), as the audit names it")
    budget: CampaignBudget
    definition: dict[str, object]
    created_at: datetime


# ------------------------------------------------------------------------------------- events
Scalar = Annotated[str, StringConstraints(max_length=1_000, pattern=NO_NUL)] | int | bool | None


class EventCreate(Strict):
    member_id: Id
    event_id: ClientRef = Field(description="unique per partner: a replayed event never earns twice")
    type: Tag = Field(
        description="what happened (`review_written`, `store_event`): `event` rules of this type price it"
    )
    occurred_at: OccurredAt
    properties: Annotated[dict[Tag, Scalar], Field(max_length=50)] = {}
    program_id: ProgramField = None


class EventPublic(BaseModel):
    id: int
    partner_id: int
    program_id: ProgramShown
    member_id: int
    event_id: str
    type: str
    occurred_at: datetime
    properties: dict[str, object]
    awards: list[AwardPublic]
    total_points: int


# ------------------------------------------------------------------------- segments, referrals
class SegmentsSet(Strict):
    tags: Tags = Field(description="the member's segment tags at this partner (replacing those it had)")


class SegmentsPublic(BaseModel):
    member_id: int
    partner_id: int
    tags: list[str]


class ReferralPublic(BaseModel):
    id: int
    referrer_id: int
    friend_id: int
    partner_id: int | None = Field(description="the partner that enrolled the friend")
    status: ReferralStatus = Field(description="`pending` until the friend's first qualifying purchase is released")
    purchase_id: int | None
    awards: list[AwardPublic]
    created_at: datetime
    rewarded_at: datetime | None


# ----------------------------------------------------------------------------------- webhooks
WebhookEventType = Literal[
    "earn.confirmed",
    "redemption.posted",
    "redemption.voided",
    "purchase.pending_ended",
    "exchange.confirmed",
    "settlement.period_closed",
    "tier.changed",
    "points.expiring",
    "donation.posted",
    "member.dormant",
    "challenge.completed",
]
WebhookUrl = Annotated[
    str,
    StringConstraints(max_length=2_000, pattern=r"^https?://[^\s/$.?#][^\s\x00]*$"),
    Field(description="where events are POSTed (http or https)"),
]


class WebhookCreate(Strict):
    url: WebhookUrl
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=20)]
    description: Annotated[str, StringConstraints(max_length=500, pattern=NO_NUL)] = ""


class WebhookUpdate(Strict):
    url: WebhookUrl | None = None
    event_types: Annotated[list[WebhookEventType], Field(min_length=1, max_length=20)] | None = None


class WebhookPublic(BaseModel):
    id: int
    partner_id: int | None = Field(description="whose endpoint (none: the admin's, which gets every event)")
    url: str
    event_types: list[str]
    description: str
    status: Literal["active", "disabled"]
    failures: int = Field(description="failed attempts in a row (at the limit the endpoint is disabled)")
    disabled_at: datetime | None
    disabled_reason: str | None
    previous_secret_until: datetime | None = Field(description="after a rotation, the old secret signs too until then")
    created_at: datetime


class WebhookSecret(WebhookPublic):
    secret: str = Field(description="the `whsec_` signing secret: shown once, keep it")


class WebhookAttemptPublic(BaseModel):
    status_code: int | None
    error: str | None
    duration_ms: int
    attempted_at: datetime


class WebhookDeliveryPublic(BaseModel):
    id: int
    webhook_id: str = Field(description="the `webhook-id` header: the same on every retry (drop duplicates by it)")
    type: str
    member_id: int | None
    status: Literal["pending", "delivered"]
    attempts: int
    next_attempt_at: datetime | None = Field(description="when it is tried next, while pending")
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    payload: dict[str, object]
    log: list[WebhookAttemptPublic]


# ------------------------------------------------------------------------------------ metrics
class MetricsFlows(BaseModel):
    """Points that moved: minted by partners (`issued`) or the exchange (`exchanged_in`), burned at
    partners (`redeemed`), charities (`donated`) or the exchange (`exchanged_out`), and expired."""

    issued: int
    exchanged_in: int
    redeemed: int
    donated: int
    exchanged_out: int
    expired: int


class MetricsWindow(BaseModel):
    since: datetime
    until: datetime
    from_block: int
    to_block: int
    flows: MetricsFlows = Field(description="in the window's blocks; `expired`: cohorts whose expiry fell in it")


class MetricsExpiring(BaseModel):
    days: int
    points: int = Field(description="live points that expire within `days`")


class MetricsCohort(BaseModel):
    """The points earned in one epoch: they expire together."""

    epoch: int
    starts_at: datetime
    expires_at: datetime
    earned: int
    spent: int = Field(description="redeemed, donated or exchanged out before expiry")
    expired: int
    outstanding: int
    closed: bool = Field(description="its expiry has passed: its breakage is exact")
    breakage_bp: int | None = Field(description="realized: expired ÷ earned, in basis points (closed cohorts)")
    expected_expired: int = Field(description="closed: what expired; open: the estimate (`method`)")


class MetricsBreakage(BaseModel):
    realized_bp: int | None = Field(description="the closed cohorts' expired ÷ earned, basis points")
    expected_bp: int | None = Field(description="every cohort's, the open ones estimated")
    method: str
    cohorts: list[MetricsCohort]


class MetricsMembers(BaseModel):
    enrolled: int = Field(description="a program's members; a brand's (or its campaign's): those linked to it")
    active: int = Field(description="with an earn, redemption or exchange in scope in the last `active_days`")
    active_days: int
    active_rate_bp: int | None
    dormant: int = Field(description="not active, holding live points of the scope")
    dormant_points: int


class MetricsRetention(BaseModel):
    enrolled_in: str = Field(description="the month they enrolled (a brand's: linked), YYYY-MM")
    enrolled: int
    retained: int = Field(description="active in the last `active_days`")
    churned: int
    retention_bp: int


class DeferredPeriod(BaseModel):
    period: str = Field(description="YYYY-MM")
    revenue_minor: int = Field(description="net price of the released purchases that earned points")
    allocated_minor: int = Field(description="of it, allocated to the points (deferred)")
    issued_points: int
    spent_points: int
    recognised_minor: int
    deferred_minor: int = Field(description="at the period's end: allocated so far less recognised so far")


class DeferredRevenue(BaseModel):
    expected_breakage_bp: int
    method: str
    periods: list[DeferredPeriod]


class MetricsPublic(BaseModel):
    """A program's (or a brand's, or a campaign's) figures. Liability, breakage and flows come
    from the chain through the auditor's own computation (`loyalty audit verify` reports the
    same); members, retention, purchases and revenue from the service's records."""

    program_id: int
    partner_id: int | None
    campaign_id: int | None
    block_number: int
    as_of: datetime
    currency: str
    point_value_minor: int | None
    point_value_points: int | None
    liability_points: int = Field(description="outstanding: live points")
    liability_minor: int | None = Field(description="at the program's point value (null: none set)")
    expired_points: int
    totals: MetricsFlows = Field(description="since the token's deployment")
    window: MetricsWindow | None = Field(description="with `since` and `until`")
    expiring: list[MetricsExpiring]
    redemption_rate_bp: int | None = Field(description="spent ÷ earned, basis points")
    breakage: MetricsBreakage
    members: MetricsMembers
    retention: list[MetricsRetention]
    purchasers: int
    repeat_purchase_rate_bp: int | None = Field(description="of the members who bought, those who bought twice or more")
    deferred_revenue: DeferredRevenue | None = Field(description="null without a point value")


# ------------------------------------------------------------------------------- leaderboards
class LeaderboardPrizeRule(Strict):
    rank: Annotated[int, Field(strict=True, ge=1, le=1_000)]
    points: Points


class LeaderboardCreate(Strict):
    name: Name
    program_id: Annotated[Id | None, Field(description="the program (default: the first); the brand issues there")] = (
        None
    )
    period: Literal["weekly", "monthly"] = Field(description="weeks start on Monday, months on the 1st, 00:00 UTC")
    starts_at: Moment | None = Field(
        default=None, description="the first period is the one this falls in (default: now)"
    )
    prizes: list[LeaderboardPrizeRule] = Field(default=[], max_length=100, description="points for the top ranks")
    campaign_id: Annotated[Id | None, Field(description="the budgeted campaign the prizes are paid from")] = None

    @model_validator(mode="after")
    def _ranks_once(self) -> LeaderboardCreate:
        ranks = [p.rank for p in self.prizes]
        if len(set(ranks)) != len(ranks):
            raise ValueError("a rank has one prize")
        return self


class LeaderboardPublic(BaseModel):
    id: int
    partner_id: int = Field(description="the brand")
    program_id: int
    name: str
    period: str
    starts_at: datetime
    prizes: list[LeaderboardPrizeRule]
    campaign_id: int | None
    active: bool
    rule: str = Field(description="how members are ranked, ties included: anyone can rank the same events so")


class StandingPublic(BaseModel):
    rank: int
    points: int
    member_id: int | None = Field(description="null: not shown (another member, to a member) or not one of ours")


class StandingsPublic(BaseModel):
    """A period's ranking from the chain: points earned from the brand's accounts in the program."""

    leaderboard_id: int
    period_start: datetime
    period_end: datetime
    block_number: int = Field(description="read up to this block")
    final: bool = Field(description="the period is over and its last block known")
    ranked: int = Field(description="members with points in the period")
    entries: list[StandingPublic]
    member: StandingPublic | None = Field(description="the member asked about (or signed in), if ranked")
    rule: str


class LeaderboardPrizePublic(BaseModel):
    rank: int
    member_id: int
    points: int = Field(description="paid: the prize, or less if the campaign's budget ran short")
    earn_id: int | None


class LeaderboardClosePublic(BaseModel):
    period_start: datetime
    period_end: datetime
    to_block: int
    ranked: int
    closed_at: datetime
    prizes: list[LeaderboardPrizePublic]


# --------------------------------------------------------------------------------- challenges
class ChallengeCreate(Strict):
    name: Name
    program_id: Annotated[Id | None, Field(description="the program (default: the first); the brand issues there")] = (
        None
    )
    metric: Literal["purchases", "net_spend", "points_earned", "events"] = Field(
        description="purchases counted, net spend in minor units, points earned from the brand, or events of `event_type`"
    )
    event_type: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)] | None = None
    operator: Literal["gte", "gt"] = "gte"
    target: Points
    period: Literal["once", "weekly", "monthly"] = Field(
        default="once", description="counted over the whole window, or over each week (from Monday) or month of it"
    )
    starts_at: Moment
    ends_at: Moment
    segment: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)] | None = Field(
        default=None, description="only members with this segment tag at the brand"
    )
    tiers: list[Annotated[str, StringConstraints(min_length=1, max_length=100)]] | None = Field(
        default=None, max_length=20, description="only members in one of these tiers (effective: earned or paid)"
    )
    reward_points: Annotated[int, Field(strict=True, ge=0, le=MAX_POINTS)] = 0
    campaign_id: Annotated[Id | None, Field(description="the budgeted campaign that pays `reward_points`")] = None
    badge: Annotated[str, StringConstraints(min_length=1, max_length=100, pattern=NO_NUL)] | None = None

    @model_validator(mode="after")
    def _window(self) -> ChallengeCreate:
        if self.starts_at >= self.ends_at:
            raise ValueError("`starts_at` comes before `ends_at`")
        return self


class ChallengePublic(BaseModel):
    id: int
    partner_id: int = Field(description="the brand")
    program_id: int
    name: str
    metric: str
    event_type: str | None
    operator: str
    target: int
    period: str
    starts_at: datetime
    ends_at: datetime
    segment: str | None
    tiers: list[str] | None
    reward_points: int
    campaign_id: int | None
    badge: str | None
    active: bool


class ChallengeProgress(BaseModel):
    challenge_id: int
    name: str
    metric: str
    operator: str
    target: int
    period_start: datetime
    period_end: datetime
    value: int = Field(description="the metric so far in this period")
    completed: bool = Field(description="recorded (the outbox writer records completions within a minute)")
    completed_at: datetime | None
    points: int | None = Field(description="paid for it: the reward, or less if the campaign's budget ran short")
    badge: str | None


class MemberChallenges(BaseModel):
    member_id: int
    challenges: list[ChallengeProgress] = Field(description="active challenges running now")
    badges: list[str] = Field(description="every badge won, first won first")


class MeWallet(BaseModel):
    """A member's wallet in one answer (GET /v1/me/wallet)."""

    profile: MeProfile
    balance: MemberDetail
    tier: TierPublic | None = Field(description="null: the first program has no tier ladder")
    redemptions: list[RedemptionPublic] = Field(description="newest first; `awaiting_member` ones wait for its answer")
    recent: list[LedgerEntry] = Field(
        description="the latest entries, newest first (the whole history: GET /v1/me/history)"
    )
    challenges: MemberChallenges
    rewards: list[RewardPublic] = Field(description="the active catalog (its first 100)")
    agreements: list[AgreementPublic] = Field(description="the registered agreements it may exchange under")
    leaderboards: list[LeaderboardPublic] = Field(description="the active ones (the first 100)")
