"""Members, their balance by expiry date, and their ledger history."""

from __future__ import annotations

from datetime import UTC, datetime

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import ExpiringPoints, IdPath, LedgerEntry, MemberCreate, MemberDetail, MemberPublic
from loyalty.db.models import Member
from loyalty.services import members

router = APIRouter(prefix="/v1/members", tags=["members"])


def _public(member: Member) -> MemberPublic:
    return MemberPublic(
        id=member.id, external_id=member.external_id, wallet_address=member.wallet_address, custodial=member.custodial
    )


@router.post("", status_code=201, response_model=MemberPublic)
def create_member(body: MemberCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest) -> JSONResponse:
    """Enrol a member: with `wallet_address` they hold their own wallet, without it the service keeps one."""

    def write() -> tuple[int, MemberPublic]:
        return 201, _public(members.create(uow, body.external_id, body.wallet_address))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{member_id}", response_model=MemberDetail)
def get_member(member_id: IdPath, uow: UowDep, _: Reader) -> MemberDetail:
    """A member with their balance (read from the chain) and their points by expiry date."""
    member = members.get(uow, member_id)
    lots = uow.token.lots_of(member.wallet_address)
    return MemberDetail(
        **_public(member).model_dump(),
        balance_points=sum(amount for _, amount in lots),
        expiring=[
            ExpiringPoints(expires_at=datetime.fromtimestamp(expires_at, UTC), amount_points=amount)
            for expires_at, amount in lots
        ],
    )


@router.get("/{member_id}/history", response_model=list[LedgerEntry])
def get_history(member_id: IdPath, uow: UowDep, _: Reader) -> list[LedgerEntry]:
    """Earns, redemptions and expiries of a member, oldest first, each with its transaction."""
    entries = members.history(uow, members.get(uow, member_id))
    return [LedgerEntry.model_validate(entry, from_attributes=True) for entry in entries]
