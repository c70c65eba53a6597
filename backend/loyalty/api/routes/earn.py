"""Earning: accepted into the outbox at once (202), confirmed when the chain has it."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.acceptor import Acceptor, QueuedEarn
from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest, idempotency_key
from loyalty.api.schemas import (
    MAX_INT,
    CursorQuery,
    EarnAccepted,
    EarnBatchAccepted,
    EarnBatchCreate,
    EarnCreate,
    EarnPublic,
    IdPath,
    Limit,
    Page,
    TimeQuery,
    on_chain,
    parse_time,
)
from loyalty.db.models import ChainWrite, Earn, EarnStatus
from loyalty.domain.earning import EarnItem
from loyalty.services import earning, partners

router = APIRouter(prefix="/v1/earn", tags=["earn"])


def _acceptor(request: Request) -> Acceptor:
    acceptor: Acceptor = request.app.state.acceptor
    return acceptor


@router.post("", status_code=202, response_model=EarnAccepted)
async def earn(body: EarnCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Earn points to a member from the calling partner's budget in the program (default: the
    first; `422 program_not_joined` where the partner does not issue)."""
    items = [EarnItem(body.member_id, body.amount_points, body.reason)]
    return await _acceptor(request).accept(
        QueuedEarn(
            principal,
            idempotency_key(request),
            digest,
            items,
            lambda ids: EarnAccepted(id=ids[0], status=EarnStatus.PENDING),
            _other(body.program_id),
        )
    )


@router.post("/batch", status_code=202, response_model=EarnBatchAccepted)
async def earn_batch(body: EarnBatchCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Earn points to up to 10,000 members at once; refused whole if any item is invalid."""
    items = [EarnItem(i.member_id, i.amount_points, i.reason) for i in body.items]
    return await _acceptor(request).accept(
        QueuedEarn(
            principal,
            idempotency_key(request),
            digest,
            items,
            lambda ids: EarnBatchAccepted(ids=ids, status=EarnStatus.PENDING),
            _other(body.program_id),
        )
    )


def _other(program_id: int | None) -> int | None:
    """The program, unless it is the first (the partner's own account: nothing to look up)."""
    return None if program_id == partners.FIRST_PROGRAM else program_id


def earn_public(earn: Earn, write: ChainWrite | None, program_id: int) -> EarnPublic:
    return EarnPublic(
        id=earn.id,
        member_id=earn.member_id,
        program_id=program_id,
        amount_points=earn.amount_points,
        reason=earn.reason,
        status=EarnStatus(earn.status),
        **on_chain(write),
        error=earn.error,
    )


@router.get("", response_model=Page[EarnPublic])
def list_earns(
    uow: UowDep,
    principal: Reader,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    status: EarnStatus | None = None,
    created_after: TimeQuery = None,
    created_before: TimeQuery = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[EarnPublic]:
    """Earns, oldest first, by member, status and time (`created_after` included,
    `created_before` not); a partner lists its own."""
    page = earning.list_earns(
        uow,
        partner_id=principal.partner_id,
        member_id=member_id,
        status=status,
        created_after=parse_time(created_after),
        created_before=parse_time(created_before),
        cursor=cursor,
        limit=limit,
    )
    return Page(data=[earn_public(e, w, p) for e, w, p in page.rows], next_cursor=page.next_cursor)


@router.get("/{earn_id:int}", response_model=EarnPublic)
def get_earn(earn_id: IdPath, uow: UowDep, principal: Reader) -> EarnPublic:
    """An earn's status: pending, confirmed (with its transaction) or failed (with the reason)."""
    earn = earning.get(uow, earn_id, principal.partner_id)
    write = uow.session.get(ChainWrite, earn.write_id) if earn.write_id else None
    return earn_public(earn, write, partners.get(uow, earn.partner_id).program_id)
