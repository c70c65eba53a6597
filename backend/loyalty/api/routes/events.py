"""Custom events: a partner reports what a member did (a review written, a store event
attended); its `event` rules price it and the points are minted at once."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Path, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.acceptor import grouped
from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest
from loyalty.api.schemas import MAX_INT, AwardPublic, CursorQuery, EventCreate, EventPublic, Limit, Page, ProgramQuery
from loyalty.db.models import Event
from loyalty.services import events, members, partners
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/events", tags=["events"])
EventId = Annotated[str, Path(min_length=1, max_length=200, pattern=r"^[^/\x00-\x1f\x7f]+$")]


def public(uow: UnitOfWork, event: Event) -> EventPublic:
    made = [AwardPublic.model_validate(a, from_attributes=True) for a in events.awards_of(uow, event)]
    brand_id, program_id = partners.placed(uow.session, event.partner_id)
    return EventPublic(
        id=event.id,
        partner_id=brand_id,
        program_id=program_id,
        member_id=event.member_id,
        event_id=event.event_id,
        type=event.type,
        occurred_at=event.occurred_at,
        properties=json.loads(event.properties),
        awards=made,
        total_points=sum(a.points for a in made),
    )


@router.post("", status_code=201, response_model=EventPublic)
async def record_event(body: EventCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Report a custom event of a linked member: the partner's `event` rules for its `type`
    price it, and the points go to the outbox at once (there is nothing to refund). An
    `event_id` seen before is `409 event_exists`: a replayed event never earns twice. In another
    program than the first (`program_id`), the partner's rules there price it."""
    assert principal.partner_id is not None
    brand_id = principal.partner_id

    def write(uow: UnitOfWork) -> tuple[int, EventPublic]:
        member = members.get(uow, body.member_id, brand_id)
        event, _ = events.record(
            uow,
            partners.account_in(uow, brand_id, body.program_id).id,
            member,
            event_id=body.event_id,
            type=body.type,
            occurred_at=body.occurred_at,
            properties=body.properties,
        )
        return 201, public(uow, event)

    return await grouped(request, principal, digest, write)


@router.get("", response_model=Page[EventPublic])
def list_events(
    uow: UowDep,
    principal: Reader,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    program_id: ProgramQuery = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[EventPublic]:
    """Events (enrolments among them), oldest first: a partner's own (in every program, or in
    `program_id`); the admin's and auditors' of every partner."""
    page = events.page_events(
        uow, partner_id=principal.partner_id, member_id=member_id, program_id=program_id, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, e) for e in page.rows], next_cursor=page.next_cursor)


@router.get("/{event_id}", response_model=EventPublic)
def get_event(event_id: EventId, uow: UowDep, principal: Partnered, program_id: ProgramQuery = None) -> EventPublic:
    """The partner's event, in the program it earned in (default: the first)."""
    assert principal.partner_id is not None
    return public(uow, events.get(uow, partners.account_in(uow, principal.partner_id, program_id).id, event_id))
