"""Tables. The chain holds balances; these rows hold who is who, the catalog, and every write
the service owes the chain (the outbox) with its outcome. Rows describing chain writes are never
edited after confirmation: corrections are new entries.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import (
    BigInteger,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.ext.hybrid import hybrid_property
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column
from sqlalchemy.types import TypeDecorator


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """A UTC time, stored without a zone and read back as UTC on every database (SQLite would
    otherwise hand back naive times while PostgreSQL hands back aware ones)."""

    impl = DateTime
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.astimezone(UTC).replace(tzinfo=None) if value is not None and value.tzinfo else value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


class Base(DeclarativeBase):
    type_annotation_map: ClassVar[dict[Any, Any]] = {datetime: UtcDateTime}


class EarnStatus(enum.StrEnum):
    PENDING = "pending"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class RedemptionStatus(enum.StrEnum):
    """awaiting_member (a custodial member has not approved it yet; nothing held), declined (by
    the member, or not approved in time), reserved (stock and points held, burn queued), then
    posted (burned, voucher issued) or voided (stock released, nothing burned)."""

    AWAITING_MEMBER = "awaiting_member"
    DECLINED = "declined"
    RESERVED = "reserved"
    POSTED = "posted"
    VOIDED = "voided"


class LinkSource(enum.StrEnum):
    """How a member came to be linked to a partner."""

    ENROLMENT = "enrolment"  # the partner enrolled the member
    MEMBER = "member"  # the member linked itself, signed in
    OPERATOR = "operator"  # the operator (admin) linked them


class MemberTokenKind(enum.StrEnum):
    """A member's credential other than its passphrase, kept as a hash."""

    SESSION = "session"  # a short-lived sign-in
    ENROLMENT = "enrolment"  # a one-time link to set the first passphrase
    RESET = "reset"  # a one-time link to set a new passphrase
    REDEMPTION_CODE = "redemption_code"  # one redemption at one partner, up to `max_points`


class WriteStatus(enum.StrEnum):
    """A chain write's life: sent until final, then confirmed or failed; dropped if it never can be mined."""

    SENT = "sent"  # recorded and broadcast, not yet final
    CONFIRMED = "confirmed"  # mined, succeeded, and as many blocks deep as the settings ask
    FAILED = "failed"  # mined and reverted (final likewise)
    DROPPED = "dropped"  # the node refused it, or its nonce went to another transaction


class WriteKind(enum.StrEnum):
    EARN_BATCH = "earn_batch"
    REDEEM = "redeem"
    # The operator's writes: a partner's issuer account set up (gas, role, budget), gas top-ups
    # and the sweep of expired points.
    TOPUP = "topup"
    GRANT_ISSUER = "grant_issuer"
    SET_BUDGET = "set_budget"
    GRANT_BUDGET = "grant_budget"  # more budget for a partner: its on-chain budget set to what is left + the grant
    # budget a partner moved to one of its campaigns: its on-chain budget set to what is left - the move
    MOVE_BUDGET = "move_budget"
    EXPIRE = "expire"
    DEPLOY_PROGRAM = "deploy_program"  # a program's token (its program in `program_id`)
    # An agreement's registration (by the operator) and revocation (by a brand); `ref` is the
    # agreement's row id.
    REGISTER_AGREEMENT = "register_agreement"
    REVOKE_AGREEMENT = "revoke_agreement"
    # The operator, as the target program's admin, allows an agreement's payee to be paid for
    # points exchanged into it (`ref`: the agreement's row id).
    ALLOW_BRAND = "allow_brand"
    # Members' exchanges under one agreement (`ref`: the agreement's row id), relayed by the operator.
    EXCHANGE_BATCH = "exchange_batch"
    # The operator, as a program's admin, makes the exchange an issuer of its token
    # (`program_id`) and sets its incoming budget there (`amount_points`: the grant it carries).
    GRANT_EXCHANGE = "grant_exchange"
    SET_INCOMING = "set_incoming"
    # A brand's own agreement signer set on the exchange, from the brand's issuer account.
    SET_SIGNER = "set_signer"
    # Settlement: a period closed (`ref`: the period); a brand's payment (`ref`: the
    # settlement action's row id) approved and paid by the debtor, or confirmed by the creditor.
    CLOSE_PERIOD = "close_period"
    SETTLE_APPROVE = "settle_approve"
    SETTLE_PAYMENT = "settle_payment"
    CONFIRM_RECEIPT = "confirm_receipt"
    # A transfer of nothing to itself that takes a nonce: from a stuck write, or one no write holds.
    CANCEL = "cancel"


class PartnerKind(enum.StrEnum):
    """What an issuer account belongs to: a brand (a partner with an API key, issuing in the
    first program), one of a brand's budgeted campaigns (no key: the service issues from it,
    within the campaign's budget, which the chain enforces), or a brand's account in another
    program (no key either: the brand issues there through it, within its budget there), or a
    charity (a key, no issue budget: members' donations are burned at its account)."""

    BRAND = "brand"
    CAMPAIGN = "campaign"
    PROGRAM = "program"  # a brand's issuer account in another program than the first
    CHARITY = "charity"  # a partner members donate points to; it issues nothing (`charities`)


class Partner(Base):
    """An issuer account on the chain, with its budget: a partner brand's own, or one of its
    campaigns' (`kind` campaign, `owner_id` the brand)."""

    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    kind: Mapped[str] = mapped_column(String(20), default=PartnerKind.BRAND, server_default=PartnerKind.BRAND.value)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    # The program whose token this account issues on (its campaigns' accounts: the brand's).
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", name="fk_partners_program_id"), default=1, server_default=text("1")
    )
    # The address that signs the brand's rate agreements, when the brand registered one of its
    # own (the service never holds its key); unset: the brand's issuer account signs.
    agreement_signer: Mapped[str | None] = mapped_column(String(42))
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issuer_address: Mapped[str] = mapped_column(String(42), unique=True)
    issuer_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    issue_budget_points: Mapped[int] = mapped_column(BigInteger)
    # The on-chain budget as last read (refreshed on every confirmed batch), and the points of
    # earns accepted but not yet confirmed: budget left = budget_points - pending_points.
    budget_points: Mapped[int] = mapped_column(BigInteger)
    pending_points: Mapped[int] = mapped_column(BigInteger, default=0)
    # Budget the admin granted that is not on-chain yet (a GRANT_BUDGET write carries it there;
    # meanwhile the partner's earn batches wait, so the write's absolute budget stays right).
    budget_to_grant_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # Budget the partner moved to its campaigns that is still on its own on-chain budget (a
    # MOVE_BUDGET write takes it off; meanwhile the API counts it as spent already).
    budget_to_move_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default=text("0"))
    # The next ref this partner's issuer account uses on the chain (refs are per issuer).
    next_ref: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # Set once the writer has given the issuer account gas, ISSUER_ROLE and its budget on-chain;
    # until then the partner's earns are accepted and wait. Why set-up stopped, if it did.
    provisioned_at: Mapped[datetime | None]
    provision_error: Mapped[str | None] = mapped_column(Text)
    # Set by the admin: the partner's key is refused from then on; what it had accepted still
    # goes on-chain.
    deactivated_at: Mapped[datetime | None]

    @hybrid_property
    def available_points(self) -> int:
        """What the account may still be asked to issue: its budget as last read from the
        chain, less earns not on-chain yet and budget moved to campaigns not yet off it."""
        return self.budget_points - self.pending_points - self.budget_to_move_points


class Auditor(Base):
    """Read-only API access for an auditor."""

    __tablename__ = "auditors"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Member(Base):
    """A program member and the wallet that holds their points."""

    __tablename__ = "members"
    id: Mapped[int] = mapped_column(primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    wallet_address: Mapped[str] = mapped_column(String(42), unique=True)
    custodial: Mapped[bool]
    wallet_key_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    # A self-custody wallet that is a contract, consenting through ERC-1271.
    smart_wallet: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    # A custodial member's passphrase (argon2id, with its salt and parameters).
    passphrase_hash: Mapped[str | None] = mapped_column(String(200))
    # The code a member shares with friends; one who enrols with it is its referral.
    referral_code: Mapped[str | None] = mapped_column(String(16), unique=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberSegment(Base):
    """A segment tag a partner gave one of its members (`vip`, `students`): its rules and
    campaigns may be for members with a tag."""

    __tablename__ = "member_segments"
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    tag: Mapped[str] = mapped_column(String(100), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ReferralStatus(enum.StrEnum):
    PENDING = "pending"  # the friend enrolled; no qualifying purchase has left its pending window yet
    REWARDED = "rewarded"  # the referral rules paid, once


class Referral(Base):
    """A friend who enrolled with a member's referral code: rewarded (once) when the friend's
    first qualifying purchase leaves its pending window."""

    __tablename__ = "referrals"
    __table_args__ = (Index("ix_referrals_referrer", "referrer_id", "created_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    referrer_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    friend_id: Mapped[int] = mapped_column(ForeignKey("members.id"), unique=True)  # one referral per friend
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))  # who enrolled the friend
    status: Mapped[str] = mapped_column(String(20), default=ReferralStatus.PENDING)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))  # the qualifying purchase
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    rewarded_at: Mapped[datetime | None]


class MemberLink(Base):
    """A partner sees and acts on a member only once linked: it enrolled the member, or the
    member linked itself to it."""

    __tablename__ = "member_links"
    # a partner's members in id order: its member list is one range of this index
    __table_args__ = (Index("ix_member_links_partner_member", "partner_id", "member_id"),)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    source: Mapped[str] = mapped_column(String(20))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberToken(Base):
    """A member's session or one-time token (enrolment or reset link, redemption code), kept
    only as a SHA-256 hash: the secret itself is shown once."""

    __tablename__ = "member_tokens"
    token_hash: Mapped[str] = mapped_column(String(64), primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    kind: Mapped[str] = mapped_column(String(20))
    # A redemption code's partner and ceiling.
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    max_points: Mapped[int | None] = mapped_column(BigInteger)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class SignInThrottle(Base):
    """Wrong passphrases in a row for an external id from one source (a client address), or from
    all (`*`). Counted whether or not a member has that id, so a refusal tells nothing of who
    exists; rows untouched for an hour past their block are swept."""

    __tablename__ = "sign_in_throttles"
    external_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    source: Mapped[str] = mapped_column(String(64), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer)
    blocked_until: Mapped[datetime | None]
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class SignInNonce(Base):
    """A Sign-In with Ethereum nonce handed out: each signs in once, before it expires."""

    __tablename__ = "sign_in_nonces"
    nonce: Mapped[str] = mapped_column(String(40), primary_key=True)
    expires_at: Mapped[datetime]
    used_at: Mapped[datetime | None]


class Reward(Base):
    """A reward in a partner's catalog."""

    __tablename__ = "rewards"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    # The program whose points it costs (redeemed from the partner's issuer account there).
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", name="fk_rewards_program_id"), default=1, server_default=text("1")
    )
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    cost_points: Mapped[int] = mapped_column(BigInteger)
    # Unset: unlimited (a charity's donation reward, one per program it is in).
    stock: Mapped[int | None] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    # A paid tier bought with points: posting the redemption starts `tier` for `tier_period_days`.
    tier: Mapped[str | None] = mapped_column(String(100))
    tier_period_days: Mapped[int | None] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class EarningRule(Base):
    """A partner's earning rule; its definitions are `rule_versions` (every change a new one,
    the old ones kept: each award names the version that made it)."""

    __tablename__ = "rules"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    version: Mapped[int] = mapped_column(Integer)  # the current one
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class RuleVersion(Base):
    """One version of a rule: its JSON definition, as the API took it (never edited)."""

    __tablename__ = "rule_versions"
    rule_id: Mapped[int] = mapped_column(ForeignKey("rules.id"), primary_key=True)
    version: Mapped[int] = mapped_column(Integer, primary_key=True)
    definition: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ProgramKind(enum.StrEnum):
    """A brand's own points, or a coalition currency several partners issue."""

    BRAND = "brand"
    COALITION = "coalition"


class ProgramStatus(enum.StrEnum):
    """deploying (its token's deployment is in the outbox), then active."""

    DEPLOYING = "deploying"
    ACTIVE = "active"


class Program(Base):
    """A loyalty program: one LoyaltyPoints deployment (`token_address`, with its expiry
    settings) and its settings; awards from purchases stay pending for `pending_days` (refunds
    inside it cancel them), then are minted. Program 1 is the token the database is bound to."""

    __tablename__ = "programs"
    __table_args__ = (UniqueConstraint("token_address", name="uq_programs_token_address"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # Where a deployment in the outbox will be (the operator's address and nonce decide it).
    token_address: Mapped[str | None] = mapped_column(String(42))
    symbol: Mapped[str | None] = mapped_column(String(20))
    epoch_length_s: Mapped[int | None] = mapped_column(BigInteger)
    validity_epochs: Mapped[int | None] = mapped_column(Integer)
    deployment_block: Mapped[int | None] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(20), default=ProgramKind.BRAND, server_default="brand")
    status: Mapped[str] = mapped_column(String(20), default=ProgramStatus.ACTIVE, server_default="active")
    pending_days: Mapped[int] = mapped_column(Integer, default=0)
    # The currency purchases are priced in: spend in another is refused, never added to it.
    currency: Mapped[str] = mapped_column(String(3), default="USD", server_default="USD")
    tiers: Mapped[str | None] = mapped_column(Text)  # the tier ladder, JSON (domain.tiers)
    # Points exchanged in: the exchange's refs on this token (one per exchange), and its issue
    # budget here, granted by the admin (`incoming_to_grant_points`: granted, not yet on-chain).
    exchange_next_ref: Mapped[int] = mapped_column(BigInteger, default=1, server_default="1")
    incoming_budget_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    incoming_to_grant_points: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # A coalition's prices, in the settlement token's units per point: what a partner pays for
    # each point it issues, and is paid for each point redeemed at it (coalition statements).
    issue_fee_per_point: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    redemption_price_per_point: Mapped[int] = mapped_column(BigInteger, default=0, server_default="0")
    # What points are worth to a member (their stand-alone selling price), in `currency`:
    # `point_value_minor` minor units per `point_value_points` points; unset: not valued (the
    # metrics' liability in money and deferred revenue need it).
    point_value_minor: Mapped[int | None] = mapped_column(BigInteger)
    point_value_points: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class MemberTier(Base):
    """The tier a member earned in a program, and when it is next reviewed (its anniversary)."""

    __tablename__ = "member_tiers"
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), primary_key=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"), primary_key=True)
    tier: Mapped[str | None] = mapped_column(String(100))
    reached_at: Mapped[datetime | None]
    next_review_at: Mapped[datetime | None] = mapped_column(index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class TierSubscription(Base):
    """A paid tier for a period, paid in money (`payment_ref` names the payment) or in points (a
    posted redemption of a tier reward, `redemption_id`); renewing is another period starting
    when this one ends; cancelling ends it at once."""

    __tablename__ = "tier_subscriptions"
    __table_args__ = (Index("ix_tier_subscriptions_member", "member_id", "ends_at"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    tier: Mapped[str] = mapped_column(String(100))
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    currency: Mapped[str | None] = mapped_column(String(3))  # none when paid in points
    price_minor: Mapped[int | None] = mapped_column(BigInteger)
    price_points: Mapped[int | None] = mapped_column(BigInteger)
    payment_ref: Mapped[str] = mapped_column(String(200), unique=True)
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"), unique=True)
    sold_by: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    cancelled_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class PurchaseStatus(enum.StrEnum):
    PENDING = "pending"  # awards held off-chain until `pending_until`
    RELEASED = "released"  # its points minted (or paying a debt): refunds now make a debt


class Purchase(Base):
    """A partner's order, priced by its rules; `order_id` is unique per issuer account, so a
    replayed order never earns twice (a brand may report one order to each program it earns in)."""

    __tablename__ = "purchases"
    __table_args__ = (
        Index("ix_purchases_partner_order", "partner_id", "order_id", unique=True),
        Index("ix_purchases_due", "status", "pending_until"),
        Index("ix_purchases_member", "member_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # The issuer account it earns from: the brand's own, or the brand's in another program
    # (`program_id`, so order ids are unique per brand and program).
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", name="fk_purchases_program_id"), default=1, server_default=text("1")
    )
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    order_id: Mapped[str] = mapped_column(String(200))
    occurred_at: Mapped[datetime]
    # The member's own offset at `occurred_at`, in minutes (rules read the member's weekday).
    utc_offset_min: Mapped[int] = mapped_column(Integer, default=0)
    currency: Mapped[str] = mapped_column(String(3))
    lines: Mapped[str] = mapped_column(Text)  # JSON, as the partner sent them
    net_minor: Mapped[int] = mapped_column(BigInteger)  # net paid on item lines (tiers' net spend)
    # What the rules knew of the member when they priced it (JSON {tier, segments}): a refund
    # prices what is left with the same. None before 0.4.
    facts: Mapped[str | None] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(20), default=PurchaseStatus.PENDING)
    pending_until: Mapped[datetime]
    released_at: Mapped[datetime | None]
    earn_id: Mapped[int | None] = mapped_column(ForeignKey("earns.id"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Award(Base):
    """Points a rule, a tier or a campaign gave (or, negative, took back on a refund) for a
    purchase, a custom event or a referral: append-only, each naming what made it (the rule
    and version, the tier, or the campaign) and, once minted, the earn that carried it."""

    __tablename__ = "awards"
    __table_args__ = (
        Index("ix_awards_member_rule", "member_id", "rule_id", "occurred_at"),
        Index("ix_awards_member_campaign", "member_id", "campaign_id", "occurred_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    # What earned it: one of a purchase, an event and a referral.
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"), index=True)
    event_id: Mapped[int | None] = mapped_column(ForeignKey("events.id"), index=True)
    referral_id: Mapped[int | None] = mapped_column(ForeignKey("referrals.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    # A rule's award names the rule and version; a tier's multiplier names the tier; a
    # campaign's names the campaign (and is issued from the campaign's own account).
    rule_id: Mapped[int | None] = mapped_column(ForeignKey("rules.id"))
    rule_version: Mapped[int | None] = mapped_column(Integer)
    tier: Mapped[str | None] = mapped_column(String(100))
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500))
    capped_by: Mapped[str | None] = mapped_column(String(20))
    refund_id: Mapped[int | None] = mapped_column(ForeignKey("refunds.id"))
    earn_id: Mapped[int | None] = mapped_column(ForeignKey("earns.id"))
    # When the activity happened (limits per period count by it).
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Event(Base):
    """A partner's custom event of a member (a review written, a store event attended),
    priced by the partner's `event` rules and minted at once; `event_id` is unique per
    partner, so a replayed event never earns twice."""

    __tablename__ = "events"
    __table_args__ = (Index("ix_events_partner_event", "partner_id", "event_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    event_id: Mapped[str] = mapped_column(String(200))
    type: Mapped[str] = mapped_column(String(100))
    properties: Mapped[str] = mapped_column(Text, default="{}")  # JSON, as the partner sent it
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Campaign(Base):
    """A partner's campaign: a window, who is eligible, a bonus or a multiplier, a per-member
    cap, and a budget in points held on-chain by the campaign's own issuer account
    (`issuer_id`), so the chain refuses to issue past it."""

    __tablename__ = "campaigns"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    issuer_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    definition: Mapped[str] = mapped_column(Text)  # JSON (domain.campaigns), as the API took it
    budget_points: Mapped[int] = mapped_column(BigInteger)
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Refund(Base):
    """A refund of a purchase, whole or by lines: inside the pending window it cancels points
    not yet minted; after it, they become a debt the member's next awards pay first."""

    __tablename__ = "refunds"
    __table_args__ = (Index("ix_refunds_purchase_refund", "purchase_id", "refund_id", unique=True),)
    id: Mapped[int] = mapped_column(primary_key=True)
    purchase_id: Mapped[int] = mapped_column(ForeignKey("purchases.id"))
    refund_id: Mapped[str] = mapped_column(String(200))
    lines: Mapped[str | None] = mapped_column(Text)  # JSON [{sku, quantity}]; None: the whole order
    points_reversed: Mapped[int] = mapped_column(BigInteger)
    debt_points: Mapped[int] = mapped_column(BigInteger)
    net_minor: Mapped[int] = mapped_column(BigInteger)  # item spend refunded
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Debt(Base):
    """A member's points debt to a partner, as entries: a refund after the pending window adds
    (positive), a later award pays it off (negative). Never a burn without the member."""

    __tablename__ = "debts"
    __table_args__ = (Index("ix_debts_member_partner", "member_id", "partner_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    points: Mapped[int] = mapped_column(BigInteger)
    purchase_id: Mapped[int | None] = mapped_column(ForeignKey("purchases.id"))
    reason: Mapped[str] = mapped_column(String(500))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChainWrite(Base):
    """One transaction the service sent (the outbox's send log), from a partner's issuer account
    or from the operator's.

    The signed transaction is stored before it is broadcast, so after a crash, or after the chain
    lost it (a reorg, a rolled-back dev chain), the very same transaction (same nonce, same ref)
    is sent again: it can be mined at most once. A dropped write's nonce goes to a new one; a
    cancel shares its nonce with the stuck write it replaces.
    """

    __tablename__ = "chain_writes"
    __table_args__ = (
        Index(
            "uq_chain_writes_sender_nonce_live",
            "sender",
            "nonce",
            unique=True,
            sqlite_where=text("status != 'dropped' AND kind != 'cancel'"),
            postgresql_where=text("status != 'dropped' AND kind != 'cancel'"),
        ),
        Index("ix_chain_writes_status", "status"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    # The program whose token the write went to (NULL: program 1, as every write before 0.5).
    program_id: Mapped[int | None] = mapped_column(ForeignKey("programs.id", name="fk_chain_writes_program_id"))
    sender: Mapped[str] = mapped_column(String(42))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[int | None] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=WriteStatus.SENT)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    block_hash: Mapped[str | None] = mapped_column(String(66))
    mined_at: Mapped[int | None] = mapped_column(BigInteger)  # the block's Unix time
    amount_points: Mapped[int | None] = mapped_column(BigInteger)  # the points a GRANT_BUDGET write grants
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Earn(Base):
    """An accepted earn: pending in the outbox until a confirmed batch carries it."""

    __tablename__ = "earns"
    __table_args__ = (
        Index("ix_earns_partner_status", "partner_id", "status"),
        # a member's history in order: one range of this index
        Index("ix_earns_member_history", "member_id", "created_at", "id"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    amount_points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default=EarnStatus.PENDING)
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]
    # Set when a batch carrying this earn could not be sent or reverted for no reason naming one
    # member: the next batch holding it is at most this large, so a bad earn is found by halving.
    batch_limit: Mapped[int | None] = mapped_column(Integer)


class Redemption(Base):
    """A two-phase redemption: reserved (stock and points held), then posted or voided; a
    custodial member's first awaits the member's approval."""

    __tablename__ = "redemptions"
    __table_args__ = (Index("ix_redemptions_member_history", "member_id", "created_at", "id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    amount_points: Mapped[int] = mapped_column(BigInteger)
    # The consent: unset while the redemption awaits the member.
    ref: Mapped[int | None] = mapped_column(BigInteger)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=RedemptionStatus.RESERVED)
    voucher_code: Mapped[str | None] = mapped_column(String(40))
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Charity(Base):
    """A charity partner's published rate: `cash_minor` (in `currency`) per `points` donated.
    Each donation records the rate it was made at; a change applies to later ones."""

    __tablename__ = "charities"
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), primary_key=True)
    cash_minor: Mapped[int] = mapped_column(BigInteger)
    points: Mapped[int] = mapped_column(BigInteger)
    currency: Mapped[str] = mapped_column(String(3))
    updated_at: Mapped[datetime] = mapped_column(default=utcnow)


class Donation(Base):
    """Points a member gave a charity: a redemption of the charity's donation reward (burned at
    the charity's account with the member's consent), and what it is worth in money at the rate of
    the day, which the program owes the charity. Never reversed: its status is the redemption's."""

    __tablename__ = "donations"
    id: Mapped[int] = mapped_column(primary_key=True)
    redemption_id: Mapped[int] = mapped_column(ForeignKey("redemptions.id"), unique=True)
    charity_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    # The partner that relayed it with the member's consent; unset: the member itself.
    relayed_by: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    amount_points: Mapped[int] = mapped_column(BigInteger)
    cash_minor: Mapped[int] = mapped_column(BigInteger)  # floor(points x rate_cash_minor / rate_points)
    currency: Mapped[str] = mapped_column(String(3))
    rate_cash_minor: Mapped[int] = mapped_column(BigInteger)
    rate_points: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Leaderboard(Base):
    """A brand's ranking of its members by points earned from its accounts in a program, per
    week or month (from the chain: `audit.leaderboard`), with prizes for the top ranks paid from
    a budgeted campaign's account when a period closes."""

    __tablename__ = "leaderboards"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)  # the brand's account there
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    period: Mapped[str] = mapped_column(String(20))  # weekly | monthly
    starts_at: Mapped[datetime]  # the first period's start (a Monday, or the 1st, 00:00 UTC)
    prizes: Mapped[str] = mapped_column(Text, default="[]")  # JSON [{"rank": 1, "points": 500}, ...]
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeaderboardClose(Base):
    """A leaderboard period closed: ranked once from its final blocks, its prizes paid (each a
    `LeaderboardPrize`), never again."""

    __tablename__ = "leaderboard_closes"
    __table_args__ = (UniqueConstraint("leaderboard_id", "period_start", name="uq_leaderboard_closes_period"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    leaderboard_id: Mapped[int] = mapped_column(ForeignKey("leaderboards.id"))
    period_start: Mapped[datetime]
    period_end: Mapped[datetime]
    to_block: Mapped[int] = mapped_column(BigInteger)  # the period's last block
    ranked: Mapped[int] = mapped_column(Integer)  # members with points in it
    closed_at: Mapped[datetime] = mapped_column(default=utcnow)


class LeaderboardPrize(Base):
    __tablename__ = "leaderboard_prizes"
    id: Mapped[int] = mapped_column(primary_key=True)
    close_id: Mapped[int] = mapped_column(ForeignKey("leaderboard_closes.id"), index=True)
    rank: Mapped[int] = mapped_column(Integer)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"))
    points: Mapped[int] = mapped_column(BigInteger)  # paid: the prize, or less if the budget ran short
    earn_id: Mapped[int | None] = mapped_column(ForeignKey("earns.id"))


class Challenge(Base):
    """A brand's goal for its members in a program: a metric over a window or each week or month
    of it (purchases, net spend, points earned, events of a type) reaching a target, for members
    who qualify (a segment tag, a tier), rewarded once per period with points from a budgeted
    campaign's account and/or a badge."""

    __tablename__ = "challenges"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)  # the brand's account there
    program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    name: Mapped[str] = mapped_column(String(200))
    metric: Mapped[str] = mapped_column(String(20))  # purchases | net_spend | points_earned | events
    event_type: Mapped[str | None] = mapped_column(String(100))  # for `events`
    operator: Mapped[str] = mapped_column(String(4))  # gte | gt
    target: Mapped[int] = mapped_column(BigInteger)
    period: Mapped[str] = mapped_column(String(20))  # once (the window) | weekly | monthly
    starts_at: Mapped[datetime]
    ends_at: Mapped[datetime]
    segment: Mapped[str | None] = mapped_column(String(100))  # only members with this tag at the brand
    tiers: Mapped[str | None] = mapped_column(Text)  # JSON list: only members in one of these tiers
    reward_points: Mapped[int] = mapped_column(BigInteger, default=0)
    campaign_id: Mapped[int | None] = mapped_column(ForeignKey("campaigns.id"))
    badge: Mapped[str | None] = mapped_column(String(100))
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChallengeCompletion(Base):
    """A member reached a challenge's target in a period: rewarded once (unique per period)."""

    __tablename__ = "challenge_completions"
    __table_args__ = (
        UniqueConstraint("challenge_id", "member_id", "period_start", name="uq_challenge_completions_period"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    challenge_id: Mapped[int] = mapped_column(ForeignKey("challenges.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    period_start: Mapped[datetime]
    value: Mapped[int] = mapped_column(BigInteger)  # the metric when it was seen to reach the target
    points: Mapped[int] = mapped_column(BigInteger)  # paid: the reward, or less if the budget ran short
    earn_id: Mapped[int | None] = mapped_column(ForeignKey("earns.id"))
    badge: Mapped[str | None] = mapped_column(String(100))
    completed_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentQuote(Base):
    """Typed data handed to a self-custody member to sign: the ref and nonce it fixed."""

    __tablename__ = "consent_quotes"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    ref: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    # The points it burns when not the reward's cost (a donation's amount).
    amount_points: Mapped[int | None] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    # The redemption that used it: a consent is used once.
    redemption_id: Mapped[int | None] = mapped_column(ForeignKey("redemptions.id"))


class IdempotencyRecord(Base):
    """The first response to a POST with a given Idempotency-Key, replayed for retries."""

    __tablename__ = "idempotency_records"
    principal: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    # The response as JSON, or, when it holds a secret (a new API key), sealed under the master key.
    response_body: Mapped[str] = mapped_column(Text)
    sealed: Mapped[bool] = mapped_column(default=False, server_default=text("false"))
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class AgreementStatus(enum.StrEnum):
    """proposed (one brand signed), signed (both: the outbox registers it), registered, or
    refused by the chain (`error` says why); revoking (the outbox sends it), then revoked."""

    PROPOSED = "proposed"
    SIGNED = "signed"
    REGISTERED = "registered"
    REFUSED = "refused"
    REVOKING = "revoking"
    REVOKED = "revoked"


class RateAgreement(Base):
    """A rate agreement between two brands for exchanging points of one program for another's
    (`terms`: `domain.exchange.Agreement` as JSON, brands as their issuer accounts), with both
    brands' EIP-712 signatures as they come, and its id on the exchange (`agreement_id`)."""

    __tablename__ = "agreements"
    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[str] = mapped_column(String(66), unique=True)
    exchange_address: Mapped[str] = mapped_column(String(42))
    source_program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    target_program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    payer_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    payee_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    proposed_by: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    terms: Mapped[str] = mapped_column(Text)
    payer_signature: Mapped[str | None] = mapped_column(String(200))
    payee_signature: Mapped[str | None] = mapped_column(String(200))
    status: Mapped[str] = mapped_column(String(20), default=AgreementStatus.PROPOSED)
    revoked_by: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ExchangeStatus(enum.StrEnum):
    """quoted (typed data handed to a self-custody member, not signed yet), awaiting_member (a
    custodial member has not approved it), declined, reserved (points held, the exchange
    queued), then confirmed (burned on the source and minted on the target in one transaction)
    or voided (nothing moved; `error` says why)."""

    QUOTED = "quoted"
    AWAITING_MEMBER = "awaiting_member"
    DECLINED = "declined"
    RESERVED = "reserved"
    CONFIRMED = "confirmed"
    VOIDED = "voided"


class Exchange(Base):
    """A member's exchange of `amount_in` source points for `amount_out` target points under a
    registered agreement, asked by the member or relayed by a partner (`partner_id`). The consent
    (ref, nonce, deadline, signature) is the member's for a self-custody wallet; for a custodial
    one the outbox signs it when it sends the exchange (the member approved it)."""

    __tablename__ = "exchanges"
    __table_args__ = (Index("ix_exchanges_status", "status", "agreement_id"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    agreement_id: Mapped[int] = mapped_column(ForeignKey("agreements.id"))
    # the agreement's programs, kept here for the points held on each
    source_program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    target_program_id: Mapped[int] = mapped_column(ForeignKey("programs.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    amount_in: Mapped[int] = mapped_column(BigInteger)
    amount_out: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[int | None] = mapped_column(BigInteger)
    nonce: Mapped[int | None] = mapped_column(BigInteger)
    deadline: Mapped[int | None] = mapped_column(BigInteger)
    signature: Mapped[bytes | None] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=ExchangeStatus.RESERVED)
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class SettlementAction(enum.StrEnum):
    CLOSE = "close"  # anyone closes an ended period (the operator sends it)
    PAY = "pay"  # the debtor pays through the exchange, in the settlement token
    CONFIRM = "confirm"  # the creditor confirms it was paid off-chain


class SettlementStatus(enum.StrEnum):
    QUEUED = "queued"
    SENT = "sent"
    DONE = "done"
    FAILED = "failed"


class Settlement(Base):
    """A step of settling `period`, asked through the API and sent by the outbox: the period
    closed (by the operator; `partner_id` who asked, none for the admin), or its payment
    `payment_index` paid by the debtor or confirmed by the creditor (from the brand's account)."""

    __tablename__ = "settlements"
    id: Mapped[int] = mapped_column(primary_key=True)
    exchange_address: Mapped[str] = mapped_column(String(42))
    period: Mapped[int] = mapped_column(BigInteger)
    payment_index: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(20))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    amount: Mapped[str] = mapped_column(String(80))  # settlement-token units (may pass 2**63)
    status: Mapped[str] = mapped_column(String(20), default=SettlementStatus.QUEUED, index=True)
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)


class ChainBinding(Base):
    """The chain and token this database belongs to (one row). Every process refuses a node
    whose chain id, or whose block at `block_number`, differs: a database never follows a reset
    chain or another chain's token."""

    __tablename__ = "chain_binding"
    id: Mapped[int] = mapped_column(primary_key=True)
    chain_id: Mapped[int] = mapped_column(BigInteger)
    token_address: Mapped[str] = mapped_column(String(42))
    block_number: Mapped[int] = mapped_column(BigInteger)
    block_hash: Mapped[str] = mapped_column(String(66))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WriterLease(Base):
    """Who holds the outbox writer's lease (the lock itself is a file lock or an advisory lock;
    this row says who took it and when it was last seen working)."""

    __tablename__ = "writer_leases"
    name: Mapped[str] = mapped_column(String(40), primary_key=True)
    holder: Mapped[str] = mapped_column(String(200))
    acquired_at: Mapped[datetime]
    heartbeat_at: Mapped[datetime]
    chain_head: Mapped[int | None] = mapped_column(BigInteger)


class ExpirySweep(Base):
    """A sweep of expired points: members whose points expiring up to `expired_before` (Unix
    time) were checked, and how many had some left to burn (sent as `expire` writes)."""

    __tablename__ = "expiry_sweeps"
    id: Mapped[int] = mapped_column(primary_key=True)
    # The program whose token was swept.
    program_id: Mapped[int] = mapped_column(
        ForeignKey("programs.id", name="fk_expiry_sweeps_program_id"), default=1, server_default=text("1")
    )
    expired_before: Mapped[int] = mapped_column(BigInteger)
    members_checked: Mapped[int]
    members_swept: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEndpoint(Base):
    """Where a partner (or, with no `partner_id`, the admin) wants events sent, and which ones.
    Its signing secret is sealed under the master key; after a rotation the previous one signs
    too until `previous_until`, so a receiver can switch over without missing a message."""

    __tablename__ = "webhook_endpoints"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"), index=True)
    url: Mapped[str] = mapped_column(String(2_000))
    event_types: Mapped[str] = mapped_column(Text)  # JSON list of types
    description: Mapped[str] = mapped_column(String(500), default="")
    secret_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    previous_secret_sealed: Mapped[bytes | None] = mapped_column(LargeBinary)
    previous_until: Mapped[datetime | None]
    # Failed attempts in a row; at the limit the endpoint is disabled (its deliveries wait, none
    # is lost: enabling it sends them, in order).
    failures: Mapped[int] = mapped_column(Integer, default=0)
    disabled_at: Mapped[datetime | None]
    disabled_reason: Mapped[str | None] = mapped_column(String(500))
    deleted_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookEvent(Base):
    """Something that happened, recorded in the transaction that made it happen (so it is
    never lost nor made up), for the brand it concerns (`partner_id`; none: the program's own,
    seen by the admin's endpoints only) and the member it is about (deliveries to one endpoint
    go in order per member)."""

    __tablename__ = "webhook_events"
    id: Mapped[int] = mapped_column(primary_key=True)
    # What it is about, once: `type:subject:brand` (a reorg that confirms a write again makes
    # no second event, so a receiver dropping seen webhook-ids drops every duplicate).
    key: Mapped[str] = mapped_column(String(200), unique=True)
    type: Mapped[str] = mapped_column(String(100))
    partner_id: Mapped[int | None] = mapped_column(ForeignKey("partners.id"))
    member_id: Mapped[int | None] = mapped_column(ForeignKey("members.id"))
    payload: Mapped[str] = mapped_column(Text)  # JSON, as sent: {type, timestamp, data}
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class DeliveryStatus(enum.StrEnum):
    PENDING = "pending"  # to send (again) at `next_attempt_at`
    DELIVERED = "delivered"  # the receiver answered 2xx


class WebhookDelivery(Base):
    """One event for one endpoint: sent until the receiver answers 2xx (at least once), with
    backoff; `next_attempt_at` is also the claim a sender takes before sending, so two senders
    do not both send it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        UniqueConstraint("endpoint_id", "event_id", name="uq_webhook_deliveries_endpoint_event"),
        Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
    )
    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event_id: Mapped[int] = mapped_column(ForeignKey("webhook_events.id"))
    member_id: Mapped[int | None] = mapped_column(Integer)  # the event's: in order per member
    status: Mapped[str] = mapped_column(String(20), default=DeliveryStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_status_code: Mapped[int | None] = mapped_column(Integer)
    last_error: Mapped[str | None] = mapped_column(String(500))
    delivered_at: Mapped[datetime | None]
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class WebhookAttempt(Base):
    """One try at a delivery, as the log shows it: when, the answer (or why there was none)
    and how long it took."""

    __tablename__ = "webhook_attempts"
    id: Mapped[int] = mapped_column(primary_key=True)
    delivery_id: Mapped[int] = mapped_column(ForeignKey("webhook_deliveries.id"), index=True)
    status_code: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(String(500))
    duration_ms: Mapped[int] = mapped_column(Integer)
    attempted_at: Mapped[datetime] = mapped_column(default=utcnow)
