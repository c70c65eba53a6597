"""Webhooks: endpoints a partner (or the admin) registers for the event types it wants; events
recorded in the transaction that makes the change they describe (`emit`), each with a delivery
per endpoint that wants it; deliveries are signed the Standard Webhooks way
(`domain.webhooks`) and sent by `workers.webhooks`.

A brand's endpoints get the events about its own issuer accounts (its campaigns' and its
accounts in other programs' included); the admin's get every event. An event about no brand (a
settlement period closing: public on the chain) goes to every endpoint that asks for it."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import Table, insert, select, update
from sqlalchemy.orm import Session

from loyalty.chain.custody import Custody
from loyalty.db.models import (
    DeliveryStatus,
    Partner,
    PartnerKind,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
    WebhookEvent,
    utcnow,
)
from loyalty.domain.webhooks import EVENT_TYPES, new_secret
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

OVERLAP = timedelta(hours=24)  # how long the previous secret still signs after a rotation
_CONTEXT = b"webhook-secret"


# ------------------------------------------------------------------------------- endpoints
def create(
    uow: UnitOfWork, partner_id: int | None, url: str, event_types: Sequence[str], description: str
) -> tuple[WebhookEndpoint, str]:
    """An endpoint of the partner (None: the admin's) for these event types; returns its secret,
    shown once."""
    _check_types(event_types)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        partner_id=partner_id,
        url=url,
        event_types=json.dumps(sorted(set(event_types))),
        description=description,
        secret_sealed=uow.custody.seal_data(secret.encode(), _CONTEXT),
        failures=0,
    )
    uow.session.add(endpoint)
    uow.session.flush()
    return endpoint, secret


def get(uow: UnitOfWork, endpoint_id: int, partner_id: int | None, *, deleted: bool = False) -> WebhookEndpoint:
    """An endpoint (with `deleted`, one deleted too); with `partner_id`, only one of that
    partner's (others are as if absent)."""
    found = uow.session.get(WebhookEndpoint, endpoint_id)
    if (
        found is None
        or (found.deleted_at is not None and not deleted)
        or (partner_id is not None and found.partner_id != partner_id)
    ):
        raise NotFoundError(ErrorCode.WEBHOOK_NOT_FOUND, f"no webhook endpoint {endpoint_id}")
    return found


def page_endpoints(uow: UnitOfWork, partner_id: int | None, cursor: str | None, limit: int) -> Page[WebhookEndpoint]:
    query = select(WebhookEndpoint).where(WebhookEndpoint.deleted_at.is_(None))
    if partner_id is not None:
        query = query.where(WebhookEndpoint.partner_id == partner_id)
    return keyset(uow.session, query, [WebhookEndpoint.id], cursor, limit)


def change(
    uow: UnitOfWork, endpoint: WebhookEndpoint, *, url: str | None, event_types: Sequence[str] | None
) -> WebhookEndpoint:
    """A new URL or set of event types (deliveries already made for it keep going to the new URL)."""
    if event_types is not None:
        _check_types(event_types)
        endpoint.event_types = json.dumps(sorted(set(event_types)))
    if url is not None:
        endpoint.url = url
    uow.session.flush()
    return endpoint


def rotate(uow: UnitOfWork, endpoint: WebhookEndpoint) -> tuple[WebhookEndpoint, str]:
    """A new secret; the one before still signs (a second signature) for `OVERLAP`."""
    secret = new_secret()
    endpoint.previous_secret_sealed, endpoint.previous_until = endpoint.secret_sealed, utcnow() + OVERLAP
    endpoint.secret_sealed = uow.custody.seal_data(secret.encode(), _CONTEXT)
    uow.session.flush()
    return endpoint, secret


def enable(uow: UnitOfWork, endpoint: WebhookEndpoint) -> WebhookEndpoint:
    """Send to the endpoint again: what waited while it was disabled goes now, in order."""
    if endpoint.disabled_at is not None:
        endpoint.disabled_at, endpoint.disabled_reason, endpoint.failures = None, None, 0
        uow.session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.endpoint_id == endpoint.id, WebhookDelivery.status == DeliveryStatus.PENDING)
            .values(next_attempt_at=utcnow())
        )
    uow.session.flush()
    return endpoint


def disable(uow: UnitOfWork, endpoint: WebhookEndpoint, reason: str) -> WebhookEndpoint:
    """Stop sending (events still queue for it: enabling it sends them)."""
    if endpoint.disabled_at is None:
        endpoint.disabled_at, endpoint.disabled_reason = utcnow(), reason
    uow.session.flush()
    return endpoint


def delete(uow: UnitOfWork, endpoint: WebhookEndpoint) -> None:
    """No more events for it (once); its log stays."""
    endpoint.deleted_at = endpoint.deleted_at or utcnow()
    uow.session.flush()


def secrets_of(custody: Custody, endpoint: WebhookEndpoint, now: datetime) -> list[str]:
    """The secrets that sign its deliveries now: the current one, and the previous during the overlap."""
    found = [custody.open_data(endpoint.secret_sealed, _CONTEXT).decode()]
    if endpoint.previous_secret_sealed is not None and endpoint.previous_until and endpoint.previous_until > now:
        found.append(custody.open_data(endpoint.previous_secret_sealed, _CONTEXT).decode())
    return found


def types_of(endpoint: WebhookEndpoint) -> list[str]:
    return list(json.loads(endpoint.event_types))


# ------------------------------------------------------------------------------ deliveries
def page_deliveries(
    uow: UnitOfWork, endpoint: WebhookEndpoint, status: DeliveryStatus | None, cursor: str | None, limit: int
) -> Page[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return keyset(uow.session, query, [WebhookDelivery.id], cursor, limit)


def delivery(uow: UnitOfWork, endpoint: WebhookEndpoint, delivery_id: int) -> WebhookDelivery:
    found = uow.session.get(WebhookDelivery, delivery_id)
    if found is None or found.endpoint_id != endpoint.id:
        raise NotFoundError(ErrorCode.WEBHOOK_NOT_FOUND, f"endpoint {endpoint.id} has no delivery {delivery_id}")
    return found


def attempts_of(session: Session, delivery_ids: Iterable[int]) -> dict[int, list[WebhookAttempt]]:
    by_delivery: dict[int, list[WebhookAttempt]] = {}
    for attempt in session.scalars(
        select(WebhookAttempt).where(WebhookAttempt.delivery_id.in_(set(delivery_ids))).order_by(WebhookAttempt.id)
    ):
        by_delivery.setdefault(attempt.delivery_id, []).append(attempt)
    return by_delivery


def redeliver(uow: UnitOfWork, found: WebhookDelivery) -> WebhookDelivery:
    """Send it again now (delivered or not), with the same `webhook-id`."""
    found.status, found.next_attempt_at = DeliveryStatus.PENDING, utcnow()
    uow.session.flush()
    return found


def event_of(session: Session, found: WebhookDelivery) -> WebhookEvent:
    event = session.get(WebhookEvent, found.event_id)
    assert event is not None
    return event


# ---------------------------------------------------------------------------------- events
@dataclass(frozen=True)
class Happened:
    """An event to record: about `subject` (what the `type` is of, e.g. `earn:12`), for an
    issuer account (its brand's endpoints get it; None: no brand), about a member. An event of
    no brand but not public (a member's tier) names its `audience`: the brands that may hear it."""

    subject: str
    account_id: int | None
    member_id: int | None
    data: Mapping[str, Any]
    audience: frozenset[int] | None = None


def _subscribed(session: Session, type: str) -> list[tuple[int, int | None]]:
    """The endpoints (id, owner) that want events of `type`."""
    return [
        (endpoint_id, partner_id)
        for endpoint_id, partner_id, types in session.execute(
            select(WebhookEndpoint.id, WebhookEndpoint.partner_id, WebhookEndpoint.event_types).where(
                WebhookEndpoint.deleted_at.is_(None)
            )
        )
        if type in json.loads(types)
    ]


def wanted(session: Session, type: str) -> bool:
    """Whether any endpoint wants events of `type` (so a caller can skip working one out)."""
    return bool(_subscribed(session, type))


def emit(session: Session, type: str, happened: Sequence[Happened]) -> int:
    """Record events of `type` in the caller's transaction, each with a delivery for every
    endpoint that wants it (none wants it: nothing is recorded). An event recorded before (the
    same type, subject and brand: a reorg confirmed the write again) is not recorded twice.
    Returns how many were recorded."""
    assert type in EVENT_TYPES, type
    if not happened:
        return 0
    endpoints = _subscribed(session, type)
    if not endpoints:
        return 0
    brands = _brands(session, {h.account_id for h in happened if h.account_id is not None})
    now = utcnow()
    wanted: list[tuple[WebhookEvent, list[int]]] = []
    for h in happened:
        brand_id = brands.get(h.account_id) if h.account_id is not None else None
        if h.audience is not None:
            to = [e for e, owner in endpoints if owner is None or owner in h.audience]
        else:
            to = [e for e, owner in endpoints if owner is None or brand_id is None or owner == brand_id]
        if to:
            body = {"type": type, "timestamp": now.isoformat(), "data": {**h.data, "partner_id": brand_id}}
            event = WebhookEvent(
                key=f"{type}:{h.subject}:{brand_id or 0}",
                type=type,
                partner_id=brand_id,
                member_id=h.member_id,
                payload=json.dumps(body, sort_keys=True, separators=(",", ":"), default=str),
                created_at=now,
            )
            wanted.append((event, to))
    seen = set(session.scalars(select(WebhookEvent.key).where(WebhookEvent.key.in_([e.key for e, _ in wanted]))))
    fresh = [(event, to) for event, to in wanted if event.key not in seen]
    session.add_all(event for event, _ in fresh)
    session.flush()
    rows = [
        {"endpoint_id": endpoint_id, "event_id": event.id, "member_id": event.member_id,
         "status": DeliveryStatus.PENDING.value, "attempts": 0, "next_attempt_at": now, "created_at": now}
        for event, to in fresh
        for endpoint_id in to
    ]  # fmt: skip
    if rows:
        session.execute(insert(cast(Table, WebhookDelivery.__table__)), rows)
    return len(fresh)


def _brands(session: Session, account_ids: set[int]) -> dict[int, int]:
    """The brand of each issuer account: itself, or the brand whose campaign or account in
    another program it is (a campaign of such an account: that account's brand)."""
    rows: dict[int, tuple[str, int | None]] = {}
    wanted = set(account_ids)
    while wanted:  # at most three rounds: a campaign, its program account, the brand
        rows |= {
            pid: (kind, owner)
            for pid, kind, owner in session.execute(
                select(Partner.id, Partner.kind, Partner.owner_id).where(Partner.id.in_(wanted))
            )
        }
        wanted = {owner for kind, owner in rows.values() if owner is not None} - set(rows)

    def brand(pid: int) -> int:
        kind, owner = rows[pid]
        return pid if kind == PartnerKind.BRAND or owner is None else brand(owner)

    return {pid: brand(pid) for pid in account_ids if pid in rows}


def _check_types(event_types: Sequence[str]) -> None:
    unknown = sorted(set(event_types) - set(EVENT_TYPES))
    if unknown or not event_types:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"unknown event types {unknown}; known: {', '.join(EVENT_TYPES)}"
            if unknown
            else "name at least one event type",
        )
