"""Members, their balance by expiry date, and their ledger history."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Literal, cast

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from loyalty.api.deps import ProgramDep, Reader, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import ExpiringPoints, IdPath, LedgerEntry, MemberCreate, MemberDetail, MemberPublic, on_chain
from loyalty.db.models import ChainWrite, Earn, Member, Redemption

router = APIRouter(prefix="/v1/members", tags=["members"])


def _public(member: Member) -> MemberPublic:
    return MemberPublic(
        id=member.id, external_id=member.external_id, wallet_address=member.wallet_address, custodial=member.custodial
    )


@router.post("", status_code=201, response_model=MemberPublic)
def create_member(
    body: MemberCreate, request: Request, program: ProgramDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Enrol a member: with `wallet_address` they hold their own wallet, without it the service keeps one."""

    def write() -> tuple[int, MemberPublic]:
        return 201, _public(program.create_member(body.external_id, body.wallet_address))

    return idempotent(request, digest, program.session, principal, write)


@router.get("/{member_id}", response_model=MemberDetail)
def get_member(member_id: IdPath, program: ProgramDep, _: Reader) -> MemberDetail:
    """A member with their balance (read from the chain) and their points by expiry date."""
    member = program.member(member_id)
    lots = program.chain.lots_of(member.wallet_address)
    return MemberDetail(
        **_public(member).model_dump(),
        balance_points=sum(amount for _, amount in lots),
        expiring=[
            ExpiringPoints(expires_at=datetime.fromtimestamp(expires_at, UTC), amount_points=amount)
            for expires_at, amount in lots
        ],
    )


@router.get("/{member_id}/history", response_model=list[LedgerEntry])
def get_history(member_id: IdPath, program: ProgramDep, _: Reader) -> list[LedgerEntry]:
    """Earns, redemptions and expiries of a member, oldest first, each with its transaction."""
    member = program.member(member_id)
    session = program.session
    entries: list[LedgerEntry] = []
    kinds: tuple[tuple[type[Earn] | type[Redemption], Literal["earn", "redeem"]], ...] = (
        (Earn, "earn"),
        (Redemption, "redeem"),
    )
    for model, kind in kinds:
        query = (
            select(model, ChainWrite)
            .outerjoin(ChainWrite, model.write_id == ChainWrite.id)
            .where(model.member_id == member.id)
        )
        rows = cast(list[tuple[Earn | Redemption, ChainWrite | None]], session.execute(query).all())
        entries += [
            LedgerEntry(
                kind=kind,
                id=row.id,
                amount_points=row.amount_points,
                status=row.status,
                partner_id=row.partner_id,
                **on_chain(write),
                created_at=row.created_at,
            )
            for row, write in rows
        ]
    for expired in program.chain.expired_events(member.wallet_address):
        entries.append(
            LedgerEntry(
                kind="expire",
                id=None,
                amount_points=int(expired["amount_points"]),
                status="confirmed",
                partner_id=None,
                tx_hash=str(expired["tx_hash"]),
                block_number=int(expired["block_number"]),
                created_at=None,
            )
        )
    entries.sort(key=lambda e: (e.block_number or 2**62, e.created_at.timestamp() if e.created_at else 0))
    return entries
