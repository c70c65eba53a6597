"""Tables. The chain holds balances; these rows hold who is who, the catalog, and every write
the service owes the chain (the outbox) with its outcome. Rows describing chain writes are never
edited after confirmation: corrections are new entries.
"""

from __future__ import annotations

import enum
from datetime import UTC, datetime
from typing import Any, ClassVar

from sqlalchemy import BigInteger, DateTime, Dialect, ForeignKey, Index, LargeBinary, String, Text, UniqueConstraint
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
    RESERVED = "reserved"
    POSTED = "posted"
    VOIDED = "voided"


class WriteStatus(enum.StrEnum):
    SENT = "sent"
    CONFIRMED = "confirmed"
    FAILED = "failed"


class WriteKind(enum.StrEnum):
    EARN_BATCH = "earn_batch"
    REDEEM = "redeem"


class Partner(Base):
    """A partner brand, with its issuer account on the chain."""

    __tablename__ = "partners"
    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(200), unique=True)
    api_key_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issuer_address: Mapped[str] = mapped_column(String(42), unique=True)
    issuer_key_sealed: Mapped[bytes] = mapped_column(LargeBinary)
    issue_budget_points: Mapped[int] = mapped_column(BigInteger)
    # The on-chain budget as last read (refreshed on every confirmed batch), and the points of
    # earns accepted but not yet confirmed: budget left = budget_points - pending_points.
    budget_points: Mapped[int] = mapped_column(BigInteger)
    pending_points: Mapped[int] = mapped_column(BigInteger, default=0)
    # The next ref this partner's issuer account uses on the chain (refs are per issuer).
    next_ref: Mapped[int] = mapped_column(BigInteger, default=1)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


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
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Reward(Base):
    """A reward in a partner's catalog."""

    __tablename__ = "rewards"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    name: Mapped[str] = mapped_column(String(200))
    description: Mapped[str] = mapped_column(Text, default="")
    cost_points: Mapped[int] = mapped_column(BigInteger)
    stock: Mapped[int] = mapped_column(BigInteger)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ChainWrite(Base):
    """One transaction the service sent for a partner's issuer account (the outbox's send log).

    The signed transaction is stored before it is broadcast, so after a crash the very same
    transaction (same nonce, same ref) is sent again: it can be mined at most once.
    """

    __tablename__ = "chain_writes"
    __table_args__ = (UniqueConstraint("partner_id", "ref"), UniqueConstraint("partner_id", "nonce"))
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    kind: Mapped[str] = mapped_column(String(20))
    ref: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    tx_hash: Mapped[str] = mapped_column(String(66), unique=True)
    raw_tx: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=WriteStatus.SENT)
    block_number: Mapped[int | None] = mapped_column(BigInteger)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class Earn(Base):
    """An accepted earn: pending in the outbox until a confirmed batch carries it."""

    __tablename__ = "earns"
    __table_args__ = (Index("ix_earns_partner_status", "partner_id", "status"),)
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"))
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    amount_points: Mapped[int] = mapped_column(BigInteger)
    reason: Mapped[str] = mapped_column(String(500), default="")
    status: Mapped[str] = mapped_column(String(20), default=EarnStatus.PENDING)
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"), index=True)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    confirmed_at: Mapped[datetime | None]


class Redemption(Base):
    """A two-phase redemption: reserved (stock and points held), then posted or voided."""

    __tablename__ = "redemptions"
    id: Mapped[int] = mapped_column(primary_key=True)
    partner_id: Mapped[int] = mapped_column(ForeignKey("partners.id"), index=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    amount_points: Mapped[int] = mapped_column(BigInteger)
    ref: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    signature: Mapped[bytes] = mapped_column(LargeBinary)
    status: Mapped[str] = mapped_column(String(20), default=RedemptionStatus.RESERVED)
    voucher_code: Mapped[str | None] = mapped_column(String(40))
    write_id: Mapped[int | None] = mapped_column(ForeignKey("chain_writes.id"))
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class ConsentQuote(Base):
    """Typed data handed to a self-custody member to sign: the ref and nonce it fixed."""

    __tablename__ = "consent_quotes"
    id: Mapped[int] = mapped_column(primary_key=True)
    member_id: Mapped[int] = mapped_column(ForeignKey("members.id"), index=True)
    reward_id: Mapped[int] = mapped_column(ForeignKey("rewards.id"))
    ref: Mapped[int] = mapped_column(BigInteger)
    nonce: Mapped[int] = mapped_column(BigInteger)
    deadline: Mapped[int] = mapped_column(BigInteger)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


class IdempotencyRecord(Base):
    """The first response to a POST with a given Idempotency-Key, replayed for retries."""

    __tablename__ = "idempotency_records"
    principal: Mapped[str] = mapped_column(String(80), primary_key=True)
    key: Mapped[str] = mapped_column(String(200), primary_key=True)
    request_hash: Mapped[str] = mapped_column(String(64))
    status_code: Mapped[int]
    response_body: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
