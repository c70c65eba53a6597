"""Two-phase redemptions: reserved (stock and points held), then posted (burned, voucher issued)
or voided (stock released, nothing burned) by the outbox writer."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import IdPath, IdQuery, RedemptionCreate, RedemptionPublic, on_chain
from loyalty.db.models import ChainWrite, Redemption
from loyalty.db.session import write_lock
from loyalty.services import catalog, members, redemptions
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/redemptions", tags=["redemptions"])


def _public(uow: UnitOfWork, redemption: Redemption) -> RedemptionPublic:
    write = uow.session.get(ChainWrite, redemption.write_id) if redemption.write_id else None
    return RedemptionPublic(
        id=redemption.id,
        member_id=redemption.member_id,
        reward_id=redemption.reward_id,
        amount_points=redemption.amount_points,
        status=redemption.status,
        voucher_code=redemption.voucher_code,
        **on_chain(write),
        error=redemption.error,
    )


@router.get("/typed-data")
def typed_data(member_id: IdQuery, reward_id: IdQuery, uow: UowDep, principal: Writer) -> dict[str, object]:
    """EIP-712 typed data a self-custody member signs (`eth_signTypedData_v4`) to consent.

    Each call fixes a fresh ref and the member's next nonce; the consent is valid for an hour.
    """
    with write_lock(uow.session):
        member, reward = members.get(uow, member_id), catalog.get(uow, reward_id, principal.partner_id)
        consent = redemptions.quote(uow, member, reward)
        uow.session.commit()
    return redemptions.typed_data(uow, consent)


@router.post("", status_code=201, response_model=RedemptionPublic)
def redeem(body: RedemptionCreate, request: Request, uow: UowDep, principal: Writer, digest: Digest) -> JSONResponse:
    """Reserve a reward for a member; the burn follows (poll GET /v1/redemptions/{id})."""

    def write() -> tuple[int, RedemptionPublic]:
        member, reward = members.get(uow, body.member_id), catalog.get(uow, body.reward_id, principal.partner_id)
        signature = None if body.signature is None else bytes.fromhex(body.signature.removeprefix("0x"))
        return 201, _public(uow, redemptions.reserve(uow, member, reward, signature, body.deadline))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{redemption_id:int}", response_model=RedemptionPublic)
def get_redemption(redemption_id: IdPath, uow: UowDep, principal: Reader) -> RedemptionPublic:
    return _public(uow, redemptions.get(uow, redemption_id, principal.partner_id))
