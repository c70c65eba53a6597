"""Two-phase redemptions: reserved (stock and points held), then posted (burned, voucher issued)
or voided (stock released, nothing burned) by the outbox writer."""

from __future__ import annotations

import time

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select, update

from loyalty.api.deps import ProgramDep, Reader, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import IdPath, IdQuery, RedemptionCreate, RedemptionPublic, on_chain
from loyalty.consent import RedeemConsent, recover_signer
from loyalty.db.models import ChainWrite, ConsentQuote, Redemption
from loyalty.db.session import write_lock
from loyalty.errors import ConflictError, ForbiddenError, NotFoundError, UnprocessableError

router = APIRouter(prefix="/v1/redemptions", tags=["redemptions"])


def _public(program: ProgramDep, redemption: Redemption) -> RedemptionPublic:
    write = program.session.get(ChainWrite, redemption.write_id) if redemption.write_id else None
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
def typed_data(member_id: IdQuery, reward_id: IdQuery, program: ProgramDep, principal: Writer) -> dict[str, object]:
    """EIP-712 typed data a self-custody member signs (`eth_signTypedData_v4`) to consent.

    Each call fixes a fresh ref and the member's next nonce; the consent is valid for an hour.
    """
    with write_lock(program.session):
        member, reward = program.member(member_id), program.reward(reward_id)
        if principal.partner_id is not None and reward.partner_id != principal.partner_id:
            raise ForbiddenError("forbidden", f"reward {reward_id} belongs to another partner")
        program.lock_member(member)
        consent = program.redemption_consent(member, reward)
        program.session.add(
            ConsentQuote(
                member_id=member.id,
                reward_id=reward.id,
                ref=consent.ref,
                nonce=consent.nonce,
                deadline=consent.deadline,
            )
        )
        program.session.commit()
    return program.typed_data(consent)


@router.post("", status_code=201, response_model=RedemptionPublic)
def redeem(
    body: RedemptionCreate, request: Request, program: ProgramDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """Reserve a reward for a member; the burn follows (poll GET /v1/redemptions/{id})."""

    def write() -> tuple[int, RedemptionPublic]:
        member, reward = program.member(body.member_id), program.reward(body.reward_id, principal.partner_id)
        if body.signature is None and body.deadline is None:
            return 201, _public(program, program.reserve_redemption(member, reward, None, None))
        quote, consent, signature = _signed_consent(program, body, member.wallet_address, reward.cost_points)
        redemption = program.reserve_redemption(member, reward, consent, signature)
        used = program.session.execute(
            update(ConsentQuote)
            .where(ConsentQuote.id == quote.id, ConsentQuote.redemption_id.is_(None))
            .values(redemption_id=redemption.id)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError("consent_used", "this consent was used by another redemption")
        return 201, _public(program, redemption)

    return idempotent(request, digest, program.session, principal, write)


def _signed_consent(
    program: ProgramDep, body: RedemptionCreate, wallet: str, cost_points: int
) -> tuple[ConsentQuote, RedeemConsent, bytes]:
    """The quote the member signed, found by the signature among the quotes with this member,
    reward and deadline (two quotes may share a second); each works once."""
    if body.signature is None or body.deadline is None:
        raise UnprocessableError("validation_error", "send both `signature` and `deadline`, or neither")
    quotes = program.session.scalars(
        select(ConsentQuote)
        .where(
            ConsentQuote.member_id == body.member_id,
            ConsentQuote.reward_id == body.reward_id,
            ConsentQuote.deadline == body.deadline,
        )
        .order_by(ConsentQuote.id)
    ).all()
    if not quotes:
        raise NotFoundError("consent_not_found", "no typed data was issued for this member, reward and deadline")
    if body.deadline < time.time():
        raise UnprocessableError("consent_expired", f"the consent expired at {body.deadline}")
    reward = program.reward(body.reward_id)
    partner = program.partner(reward.partner_id)
    signature = bytes.fromhex(body.signature.removeprefix("0x"))
    for quote in quotes:
        consent = RedeemConsent(
            wallet, partner.issuer_address, cost_points, reward.id, quote.ref, quote.nonce, quote.deadline
        )
        if recover_signer(program.typed_data(consent), signature) == wallet:
            if quote.redemption_id is not None:
                raise ConflictError("consent_used", f"this consent was used by redemption {quote.redemption_id}")
            return quote, consent, signature
    raise UnprocessableError("invalid_signature", f"the signature is not {wallet}'s consent to this redemption")


@router.get("/{redemption_id:int}", response_model=RedemptionPublic)
def get_redemption(redemption_id: IdPath, program: ProgramDep, principal: Reader) -> RedemptionPublic:
    redemption = program.redemption(redemption_id)
    if principal.partner_id is not None and redemption.partner_id != principal.partner_id:
        raise NotFoundError("redemption_not_found", f"no redemption {redemption_id}")
    return _public(program, redemption)
