"""Webhooks: a partner (or the admin) registers endpoints for the event types it wants; each
event is signed the Standard Webhooks way and delivered at least once, in order per member,
with retries; the delivery log shows every attempt, and a delivery can be sent again."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import JSONResponse

from loyalty.api.deps import UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    CursorQuery,
    IdPath,
    Limit,
    Page,
    WebhookAttemptPublic,
    WebhookCreate,
    WebhookDeliveryPublic,
    WebhookPublic,
    WebhookSecret,
    WebhookUpdate,
)
from loyalty.db.models import DeliveryStatus, WebhookDelivery, WebhookEndpoint
from loyalty.db.session import write_lock
from loyalty.domain.webhooks import msg_id
from loyalty.services import webhooks
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


def public(endpoint: WebhookEndpoint) -> WebhookPublic:
    return WebhookPublic(
        id=endpoint.id,
        partner_id=endpoint.partner_id,
        url=endpoint.url,
        event_types=webhooks.types_of(endpoint),
        description=endpoint.description,
        status="disabled" if endpoint.disabled_at else "active",
        failures=endpoint.failures,
        disabled_at=endpoint.disabled_at,
        disabled_reason=endpoint.disabled_reason,
        previous_secret_until=endpoint.previous_until if endpoint.previous_secret_sealed else None,
        created_at=endpoint.created_at,
    )


@router.post("", status_code=201, response_model=WebhookSecret)
def create_webhook(
    body: WebhookCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """An endpoint of the calling partner (the admin's gets every event) for these event types.
    The answer holds its signing secret, once."""

    def write() -> tuple[int, WebhookSecret]:
        endpoint, secret = webhooks.create(uow, principal.partner_id, body.url, body.event_types, body.description)
        return 201, WebhookSecret(**public(endpoint).model_dump(), secret=secret)

    return idempotent(request, digest, uow.session, principal, write, secret=True)


@router.get("", response_model=Page[WebhookPublic])
def list_webhooks(
    uow: UowDep, principal: Writer, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[WebhookPublic]:
    """Endpoints, oldest first: a partner's own; the admin's, everyone's."""
    page = webhooks.page_endpoints(uow, principal.partner_id, cursor, limit)
    return Page(data=[public(e) for e in page.rows], next_cursor=page.next_cursor)


@router.get("/{webhook_id}", response_model=WebhookPublic)
def get_webhook(webhook_id: IdPath, uow: UowDep, principal: Writer) -> WebhookPublic:
    return public(webhooks.get(uow, webhook_id, principal.partner_id))


@router.patch("/{webhook_id}", response_model=WebhookPublic)
def update_webhook(webhook_id: IdPath, body: WebhookUpdate, uow: UowDep, principal: Writer) -> WebhookPublic:
    """A new URL or set of event types (PATCH is naturally idempotent)."""
    with write_lock(uow.session):
        endpoint = webhooks.get(uow, webhook_id, principal.partner_id)
        changed = public(webhooks.change(uow, endpoint, url=body.url, event_types=body.event_types))
        uow.session.commit()
    return changed


@router.post("/{webhook_id}/secret-rotations", status_code=201, response_model=WebhookSecret)
def rotate_secret(webhook_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest) -> JSONResponse:
    """A new signing secret; for the next 24 hours deliveries carry a signature by the old one
    too, so the receiver can switch over without refusing any."""

    def write() -> tuple[int, WebhookSecret]:
        endpoint, secret = webhooks.rotate(uow, webhooks.get(uow, webhook_id, principal.partner_id))
        return 201, WebhookSecret(**public(endpoint).model_dump(), secret=secret)

    return idempotent(request, digest, uow.session, principal, write, secret=True)


@router.post("/{webhook_id}/enable", response_model=WebhookPublic)
def enable_webhook(
    webhook_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Send to the endpoint again: what waited while it was disabled goes now, in order."""

    def write() -> tuple[int, WebhookPublic]:
        return 200, public(webhooks.enable(uow, webhooks.get(uow, webhook_id, principal.partner_id)))

    return idempotent(request, digest, uow.session, principal, write)


@router.post("/{webhook_id}/disable", response_model=WebhookPublic)
def disable_webhook(
    webhook_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Stop sending; events still queue for it (enabling it sends them)."""

    def write() -> tuple[int, WebhookPublic]:
        endpoint = webhooks.get(uow, webhook_id, principal.partner_id)
        return 200, public(webhooks.disable(uow, endpoint, f"disabled by {principal.role}"))

    return idempotent(request, digest, uow.session, principal, write)


@router.delete("/{webhook_id}", status_code=204)
def delete_webhook(webhook_id: IdPath, uow: UowDep, principal: Writer) -> Response:
    """No more events for it (DELETE is naturally idempotent: deleting it again answers the same)."""
    with write_lock(uow.session):
        webhooks.delete(uow, webhooks.get(uow, webhook_id, principal.partner_id, deleted=True))
        uow.session.commit()
    return Response(status_code=204)


def delivery_public(uow: UnitOfWork, found: WebhookDelivery, log: list[WebhookAttemptPublic]) -> WebhookDeliveryPublic:
    event = webhooks.event_of(uow.session, found)
    return WebhookDeliveryPublic(
        id=found.id,
        webhook_id=msg_id(event.id),
        type=event.type,
        member_id=found.member_id,
        status=found.status,  # type: ignore[arg-type]
        attempts=found.attempts,
        next_attempt_at=found.next_attempt_at if found.status == DeliveryStatus.PENDING else None,
        last_status_code=found.last_status_code,
        last_error=found.last_error,
        delivered_at=found.delivered_at,
        created_at=found.created_at,
        payload=json.loads(event.payload),
        log=log,
    )


@router.get("/{webhook_id}/deliveries", response_model=Page[WebhookDeliveryPublic])
def list_deliveries(
    webhook_id: IdPath,
    uow: UowDep,
    principal: Writer,
    status: Annotated[DeliveryStatus | None, Query(description="only pending, or only delivered")] = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[WebhookDeliveryPublic]:
    """The endpoint's delivery log, oldest first: each event, its status and every attempt."""
    endpoint = webhooks.get(uow, webhook_id, principal.partner_id)
    page = webhooks.page_deliveries(uow, endpoint, status, cursor, limit)
    logs = webhooks.attempts_of(uow.session, [d.id for d in page.rows])
    return Page(
        data=[
            delivery_public(
                uow, d, [WebhookAttemptPublic.model_validate(a, from_attributes=True) for a in logs.get(d.id, [])]
            )
            for d in page.rows
        ],
        next_cursor=page.next_cursor,
    )


@router.post("/{webhook_id}/deliveries/{delivery_id}/redeliver", response_model=WebhookDeliveryPublic)
def redeliver(
    webhook_id: IdPath, delivery_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Send a delivery again now (delivered or not), with the same `webhook-id`."""

    def write() -> tuple[int, WebhookDeliveryPublic]:
        endpoint = webhooks.get(uow, webhook_id, principal.partner_id)
        found = webhooks.redeliver(uow, webhooks.delivery(uow, endpoint, delivery_id))
        logs = webhooks.attempts_of(uow.session, [found.id])
        log = [WebhookAttemptPublic.model_validate(a, from_attributes=True) for a in logs.get(found.id, [])]
        return 200, delivery_public(uow, found, log)

    return idempotent(request, digest, uow.session, principal, write)
