"""What `/v1/health` and `loyalty status` report: whether the service can take and deliver
writes, and if not, why. `degraded` names each reason; an empty list means `ok`."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import timedelta

from sqlalchemy import func, select, text
from sqlalchemy.orm import Session

from loyalty.chain.client import redacted
from loyalty.db.models import (
    ChainWrite,
    DeliveryStatus,
    Earn,
    EarnStatus,
    Partner,
    Redemption,
    RedemptionStatus,
    WebhookDelivery,
    WebhookEndpoint,
    WriteStatus,
    utcnow,
)
from loyalty.errors import ChainUnavailableError
from loyalty.runtime import Runtime
from loyalty.workers import lease

STALE_WRITER_S = 15  # a lease holder not seen working for this long is not writing
OLD_PENDING_S = 120  # an accepted write waiting longer than this is late
RECENT = timedelta(hours=1)


@dataclass
class Health:
    """The service's state, with every reason it is not `ok`."""

    status: str = "ok"
    reasons: list[str] = field(default_factory=list)
    database: str = "ok"
    chain: dict[str, object] = field(default_factory=dict)
    writer: dict[str, object] = field(default_factory=dict)
    outbox: dict[str, object] = field(default_factory=dict)
    webhooks: dict[str, object] = field(default_factory=dict)

    def degrade(self, reason: str) -> None:
        self.status = "degraded"
        self.reasons.append(reason)


def check(runtime: Runtime) -> Health:
    health = Health()
    head = _chain(runtime, health)
    try:
        with runtime.sessions() as session:
            session.execute(text("SELECT 1"))
            _writer(session, health, head)
            _outbox(session, health)
            _webhooks(session, health)
    except Exception as exc:  # the database is what failed: say so rather than fail the probe
        health.database = "unreachable"
        health.degrade(f"database unreachable: {type(exc).__name__}")
    return health


def _chain(runtime: Runtime, health: Health) -> int | None:
    chain = runtime.chain
    shown = redacted(runtime.settings.rpc_url)
    health.chain = {"rpc_url": shown, "token_address": runtime.token.address, "reachable": False}
    try:
        head = chain.block_number()
        health.chain.update(
            reachable=True, chain_id=chain.chain_id, block_number=head, confirmations=runtime.required_confirmations()
        )
        return head
    except ChainUnavailableError as exc:
        health.degrade(f"chain unavailable: {exc}")
        return None


def _writer(session: Session, health: Health, head: int | None) -> None:
    held = lease.current(session)
    if held is None:
        health.writer = {"holder": None}
        health.degrade("no outbox writer has run: start `loyalty worker` or `loyalty serve`")
        return
    holder, since, seen, seen_head = held
    age = (utcnow() - seen).total_seconds()
    health.writer = {
        "holder": holder,
        "since": since.isoformat(),
        "last_seen_s": round(age, 1),
        "chain_head": seen_head,
        "blocks_behind": None if head is None or seen_head is None else max(0, head - seen_head),
    }
    if age > STALE_WRITER_S:
        health.degrade(f"the outbox writer ({holder}) was last seen {age:.0f} s ago: is a writer running?")


def _outbox(session: Session, health: Health) -> None:
    now = utcnow()
    earns, oldest_earn = session.execute(
        select(func.count(), func.min(Earn.created_at)).where(Earn.status == EarnStatus.PENDING)
    ).one()
    redemptions, oldest_redemption = session.execute(
        select(func.count(), func.min(Redemption.created_at)).where(Redemption.status == RedemptionStatus.RESERVED)
    ).one()
    in_flight = session.scalar(select(func.count()).where(ChainWrite.status == WriteStatus.SENT)) or 0
    recent = {
        status: session.scalar(
            select(func.count()).where(ChainWrite.status == status, ChainWrite.created_at >= now - RECENT)
        )
        or 0
        for status in (WriteStatus.FAILED, WriteStatus.DROPPED)
    }
    unprovisioned = session.scalar(select(func.count()).where(Partner.provisioned_at.is_(None))) or 0
    stuck = list(session.scalars(select(Partner.id).where(Partner.provision_error.is_not(None))))
    short = list(session.scalars(select(Partner.id).where(Partner.budget_points < Partner.pending_points)))
    oldest = min((t for t in (oldest_earn, oldest_redemption) if t is not None), default=None)
    age = None if oldest is None else (now - oldest).total_seconds()
    health.outbox = {
        "pending_earns": earns,
        "reserved_redemptions": redemptions,
        "oldest_pending_s": None if age is None else round(age, 1),
        "writes_in_flight": in_flight,
        "failed_writes_last_hour": recent[WriteStatus.FAILED],
        "dropped_writes_last_hour": recent[WriteStatus.DROPPED],
        "partners_provisioning": unprovisioned,
    }
    if age is not None and age > OLD_PENDING_S:
        health.degrade(f"the oldest pending write is {age:.0f} s old")
    if recent[WriteStatus.FAILED]:
        health.degrade(f"{recent[WriteStatus.FAILED]} writes failed on-chain in the last hour")
    if recent[WriteStatus.DROPPED]:
        health.degrade(f"{recent[WriteStatus.DROPPED]} writes were dropped (refused or replaced) in the last hour")
    for partner_id in stuck:
        health.degrade(f"partner {partner_id} could not be set up on-chain")
    for partner_id in short:
        health.degrade(f"partner {partner_id}'s on-chain budget is below its pending earns: they wait")


def _webhooks(session: Session, health: Health) -> None:
    """Deliveries waiting, and endpoints disabled by their failures (a partner's receiver, not
    the service: shown, not degrading). Deliveries to enabled endpoints never tried for long
    mean no sender runs."""
    now = utcnow()
    pending, oldest = session.execute(
        select(func.count(), func.min(WebhookDelivery.created_at)).where(
            WebhookDelivery.status == DeliveryStatus.PENDING
        )
    ).one()
    untried = session.scalar(
        select(func.min(WebhookDelivery.created_at))
        .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
        .where(
            WebhookDelivery.status == DeliveryStatus.PENDING,
            WebhookDelivery.attempts == 0,
            WebhookEndpoint.disabled_at.is_(None),
            WebhookEndpoint.deleted_at.is_(None),
        )
    )
    disabled = list(
        session.scalars(
            select(WebhookEndpoint.id)
            .where(WebhookEndpoint.disabled_at.is_not(None), WebhookEndpoint.deleted_at.is_(None))
            .order_by(WebhookEndpoint.id)
        )
    )
    health.webhooks = {
        "pending_deliveries": pending,
        "oldest_pending_s": None if oldest is None else round((now - oldest).total_seconds(), 1),
        "disabled_endpoints": disabled,
    }
    if untried is not None and (waited := (now - untried).total_seconds()) > OLD_PENDING_S:
        health.degrade(f"a webhook delivery has waited {waited:.0f} s untried: is a `serve` or `worker` running?")
