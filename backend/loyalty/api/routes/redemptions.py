"""Two-phase redemptions: reserved (stock and points held), then posted (burned, voucher issued)
or voided (stock released, nothing burned) by the outbox writer. Nothing is burned without the
member: a self-custody member signs a consent; a custodial member approves (or declines) the
redemption in its session, or gives the partner a one-time code."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    ConsentCreate,
    ConsentQuote,
    CursorQuery,
    IdPath,
    IdQuery,
    Limit,
    Page,
    RedemptionCreate,
    RedemptionPublic,
    on_chain,
)
from loyalty.db.models import ChainWrite, Redemption, RedemptionStatus
from loyalty.db.session import write_lock
from loyalty.domain.consent import for_ethers, for_wallets
from loyalty.services import catalog, members, redemptions
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/redemptions", tags=["redemptions"])


def public(uow: UnitOfWork, redemption: Redemption) -> RedemptionPublic:
    write = uow.session.get(ChainWrite, redemption.write_id) if redemption.write_id else None
    return RedemptionPublic(
        id=redemption.id,
        partner_id=redemption.partner_id,
        program_id=catalog.get(uow, redemption.reward_id).program_id,
        member_id=redemption.member_id,
        reward_id=redemption.reward_id,
        amount_points=redemption.amount_points,
        status=RedemptionStatus(redemption.status),
        voucher_code=redemption.voucher_code,
        **on_chain(write),
        error=redemption.error,
    )


def _quote(uow: UnitOfWork, member_id: int, reward_id: int, partner_id: int | None) -> dict[str, object]:
    with write_lock(uow.session):
        reward = catalog.get(uow, reward_id, partner_id)
        member = members.get(uow, member_id, reward.partner_id)
        consent = redemptions.quote(uow, member, reward)
        uow.session.commit()
    return redemptions.typed_data(uow, consent, reward)


@router.post("/consents", status_code=201, response_model=ConsentQuote)
def create_consent(
    body: ConsentCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """The EIP-712 consent a self-custody member signs to redeem a reward, in the
    `eth_signTypedData_v4` shape and ready for ethers and viem. Each quote fixes a fresh ref and
    the member's next nonce; it is valid for an hour and works once."""

    def write() -> tuple[int, ConsentQuote]:
        reward = catalog.get(uow, body.reward_id, principal.partner_id)
        member = members.get(uow, body.member_id, reward.partner_id)
        consent = redemptions.quote(uow, member, reward)
        typed = redemptions.typed_data(uow, consent, reward)
        return 201, ConsentQuote(typed_data=for_wallets(typed), ethers=for_ethers(typed), deadline=consent.deadline)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/typed-data", deprecated=True)
def typed_data(member_id: IdQuery, reward_id: IdQuery, uow: UowDep, principal: Writer) -> dict[str, object]:
    """Deprecated: use POST /v1/redemptions/consents (the same typed data, and a shape for
    ethers and viem). Answers until 0.5 (README "Upgrading")."""
    return _quote(uow, member_id, reward_id, principal.partner_id)


@router.post("", status_code=201, response_model=RedemptionPublic)
def redeem(body: RedemptionCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest) -> JSONResponse:
    """Redeem a reward for a member. Self-custody: send the member's signed consent (`signature`,
    `deadline`); it is reserved at once. Custodial: send the member's `redemption_code` and it is
    reserved at once, or nothing and it awaits the member's approval (`awaiting_member`). The
    burn follows a reservation (poll GET /v1/redemptions/{id})."""

    def write() -> tuple[int, RedemptionPublic]:
        reward = catalog.get(uow, body.reward_id, principal.partner_id)
        member = members.get(uow, body.member_id, reward.partner_id)
        signature = None if body.signature is None else bytes.fromhex(body.signature[2:])
        redemption = redemptions.redeem(
            uow, member, reward, signature=signature, deadline=body.deadline, code=body.redemption_code
        )
        return 201, public(uow, redemption)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("", response_model=Page[RedemptionPublic])
def list_redemptions(
    uow: UowDep,
    principal: Reader,
    member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    status: RedemptionStatus | None = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[RedemptionPublic]:
    """Redemptions, oldest first, by member and status; a partner lists its own."""
    page = redemptions.list_redemptions(
        uow, partner_id=principal.partner_id, member_id=member_id, status=status, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, r) for r in page.rows], next_cursor=page.next_cursor)


@router.get("/{redemption_id:int}", response_model=RedemptionPublic)
def get_redemption(redemption_id: IdPath, uow: UowDep, principal: Reader) -> RedemptionPublic:
    return public(uow, redemptions.get(uow, redemption_id, principal.partner_id))
