"""Custom events (a review written, a store event attended) and enrolments, priced by the
partner's `event` and `enrolment` rules and minted at once (there is nothing to refund, so no
pending period); `event_id` is unique per partner in a program, so a replayed event never
earns twice. A brand's events in another program are its issuer account's there."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import select

from loyalty.db.models import Award, Event, Member, utcnow
from loyalty.domain.earning.context import Activity, Trigger
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import awards, partners, pricing
from loyalty.services.lists import Page, keyset
from loyalty.services.purchases import check_occurred_at
from loyalty.services.uow import UnitOfWork

ENROLMENT = "enrolment"  # the type of the event an enrolment is recorded as
ENROLMENT_PREFIX = "enrolment:"  # event ids of enrolments (a partner's own may not start so)


def record(
    uow: UnitOfWork,
    partner_id: int,
    member: Member,
    *,
    event_id: str,
    type: str,
    occurred_at: datetime,
    properties: Mapping[str, Any],
) -> tuple[Event, list[Award]]:
    """Price a custom event under the partner's `event` rules for its type and mint the points
    at once. An event id seen before is `409 event_exists`; points past the partner's budget
    are `422 budget_exceeded`."""
    check_occurred_at(occurred_at, utcnow())
    if event_id.startswith(ENROLMENT_PREFIX):
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"event ids starting {ENROLMENT_PREFIX!r} are the program's"
        )
    activity = Activity(Trigger.EVENT, occurred_at, event_type=type, properties=properties)
    event, rows = _earn(uow, partner_id, member, event_id, activity, partial=False)
    assert event is not None  # recorded even when it earns nothing
    return event, rows


def enrolled(uow: UnitOfWork, partner_id: int, member: Member) -> list[Award]:
    """The partner's `enrolment` rules reward a member it just enrolled (what its budget allows:
    an enrolment is never refused for want of a bonus). Recorded as an event only if it earns."""
    return _earn(
        uow, partner_id, member, f"{ENROLMENT_PREFIX}{member.id}", Activity(Trigger.ENROLMENT, utcnow()), partial=True
    )[1]


def get(uow: UnitOfWork, partner_id: int, event_id: str) -> Event:
    found = uow.session.scalar(select(Event).where(Event.partner_id == partner_id, Event.event_id == event_id))
    if found is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no event {event_id!r}")
    return found


def page_events(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    cursor: str | None,
    limit: int,
    program_id: int | None = None,
) -> Page[Event]:
    """Events, oldest first: a brand's (in every program it issues in), a member's, a program's."""
    query = select(Event)
    if partner_id is not None:
        query = query.where(Event.partner_id.in_(partners.accounts_of(partner_id)))
    if program_id is not None:
        query = query.where(Event.partner_id.in_(partners.accounts_there(program_id)))
    if member_id is not None:
        query = query.where(Event.member_id == member_id)
    return keyset(uow.session, query, [Event.id], cursor, limit)


def awards_of(uow: UnitOfWork, event: Event) -> Sequence[Award]:
    return uow.session.scalars(select(Award).where(Award.event_id == event.id).order_by(Award.id)).all()


def _earn(
    uow: UnitOfWork, partner_id: int, member: Member, event_id: str, activity: Activity, *, partial: bool
) -> tuple[Event | None, list[Award]]:
    """Price and mint an event; with `partial` (an enrolment) what the budget allows, and
    nothing recorded when nothing is earned."""
    session = uow.session
    left = awards.available(session, [partner_id])[partner_id]  # the partner's row lock first: caps are read under it
    found = session.scalar(select(Event).where(Event.partner_id == partner_id, Event.event_id == event_id))
    if found is not None:
        raise ConflictError(ErrorCode.EVENT_EXISTS, f"event {event_id!r} was recorded as event {found.id}")
    at = activity.occurred_at
    facts = awards.facts_of(session, member.id, partner_id, utcnow())
    awarded = pricing.price(session, partner_id, activity, facts, member_id=member.id).awards
    total = sum(a.points for a in awarded)
    if partial and not awarded:
        return None, []
    if total and total > left and not partial:
        raise UnprocessableError(
            ErrorCode.BUDGET_EXCEEDED, f"the event earns {total} points; partner {partner_id} has {left} left"
        )
    event = Event(
        partner_id=partner_id,
        member_id=member.id,
        event_id=event_id,
        type=activity.event_type or activity.trigger.value,
        properties=json.dumps(dict(activity.properties), sort_keys=True),
        occurred_at=at,
    )
    session.add(event)
    session.flush()
    rows, _ = awards.grant(session, member.id, partner_id, awarded, left, f"event {event_id}", at, event_id=event.id)
    return event, rows
