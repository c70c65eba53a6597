"""Earning: accepted into the outbox at once (202), confirmed when the chain has it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.acceptor import EarnAcceptor, QueuedEarn
from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest, idempotency_key
from loyalty.api.schemas import (
    EarnAccepted,
    EarnBatchAccepted,
    EarnBatchCreate,
    EarnCreate,
    EarnPublic,
    IdPath,
    on_chain,
)
from loyalty.db.models import ChainWrite
from loyalty.domain.earning import EarnItem
from loyalty.services import earning

router = APIRouter(prefix="/v1/earn", tags=["earn"])


def _acceptor(request: Request) -> EarnAcceptor:
    acceptor: EarnAcceptor = request.app.state.acceptor
    return acceptor


@router.post("", status_code=202, response_model=EarnAccepted)
async def earn(body: EarnCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Earn points to a member from the calling partner's budget."""
    items = [EarnItem(body.member_id, body.amount_points, body.reason)]
    return await _acceptor(request).accept(
        QueuedEarn(
            principal, idempotency_key(request), digest, items, lambda ids: EarnAccepted(id=ids[0], status="pending")
        )
    )


@router.post("/batch", status_code=202, response_model=EarnBatchAccepted)
async def earn_batch(body: EarnBatchCreate, request: Request, principal: Partnered, digest: Digest) -> JSONResponse:
    """Earn points to up to 10,000 members at once; refused whole if any item is invalid."""
    items = [EarnItem(i.member_id, i.amount_points, i.reason) for i in body.items]
    return await _acceptor(request).accept(
        QueuedEarn(
            principal, idempotency_key(request), digest, items, lambda ids: EarnBatchAccepted(ids=ids, status="pending")
        )
    )


@router.get("/{earn_id:int}", response_model=EarnPublic)
def get_earn(earn_id: IdPath, uow: UowDep, principal: Reader) -> EarnPublic:
    """An earn's status: pending, confirmed (with its transaction) or failed (with the reason)."""
    earn = earning.get(uow, earn_id, principal.partner_id)
    write = uow.session.get(ChainWrite, earn.write_id) if earn.write_id else None
    return EarnPublic(
        id=earn.id,
        member_id=earn.member_id,
        amount_points=earn.amount_points,
        status=earn.status,
        **on_chain(write),
        error=earn.error,
    )
