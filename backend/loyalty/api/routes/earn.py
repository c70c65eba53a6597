"""Earning: accepted into the outbox at once (202), confirmed when the chain has it."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, ProgramDep, Reader
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import EarnAccepted, EarnBatchAccepted, EarnBatchCreate, EarnCreate, EarnPublic
from loyalty.db.models import ChainWrite

router = APIRouter(prefix="/v1/earn", tags=["earn"])


@router.post("", status_code=202, response_model=EarnAccepted)
def earn(body: EarnCreate, request: Request, program: ProgramDep, principal: Partnered, digest: Digest) -> JSONResponse:
    """Earn points to a member from the calling partner's budget."""
    assert principal.partner_id is not None

    def write() -> tuple[int, EarnAccepted]:
        [earn_id] = program.accept_earns(principal.partner_id, [(body.member_id, body.amount_points, body.reason)])  # type: ignore[arg-type]
        return 202, EarnAccepted(id=earn_id, status="pending")

    return idempotent(request, digest, program.session, principal, write)


@router.post("/batch", status_code=202, response_model=EarnBatchAccepted)
def earn_batch(
    body: EarnBatchCreate, request: Request, program: ProgramDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Earn points to up to 10,000 members at once; refused whole if any item is invalid."""
    assert principal.partner_id is not None

    def write() -> tuple[int, EarnBatchAccepted]:
        items = [(i.member_id, i.amount_points, i.reason) for i in body.items]
        return 202, EarnBatchAccepted(ids=program.accept_earns(principal.partner_id, items), status="pending")  # type: ignore[arg-type]

    return idempotent(request, digest, program.session, principal, write)


@router.get("/{earn_id}", response_model=EarnPublic)
def get_earn(earn_id: int, program: ProgramDep, principal: Reader) -> EarnPublic:
    """An earn's status: pending, confirmed (with its transaction) or failed (with the reason)."""
    earn = program.earn(earn_id, principal.partner_id)
    write = program.session.get(ChainWrite, earn.write_id) if earn.write_id else None
    return EarnPublic(
        id=earn.id,
        member_id=earn.member_id,
        amount_points=earn.amount_points,
        status=earn.status,
        tx_hash=write.tx_hash if write else None,
        block_number=write.block_number if write else None,
        error=earn.error,
    )
