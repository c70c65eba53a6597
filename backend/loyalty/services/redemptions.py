"""Two-phase redemptions: reserved (stock and points held, the burn queued), then posted
(burned on-chain, voucher issued) or voided (stock released, nothing burned) by the outbox."""

from __future__ import annotations

import secrets
import time

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import ConsentQuote, Member, Redemption, RedemptionStatus, Reward
from loyalty.domain.consent import RedeemConsent, recover_signer, redeem_typed_data, sign_typed_data
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import members, partners
from loyalty.services.refs import take_ref
from loyalty.services.uow import UnitOfWork

CONSENT_VALIDITY_S = 3_600


def typed_data(uow: UnitOfWork, consent: RedeemConsent) -> dict[str, object]:
    """The EIP-712 typed data of `consent` on this token."""
    return redeem_typed_data(
        consent, chain_id=uow.chain.chain_id, token_address=uow.token.address, token_name=uow.token.name
    )


def new_consent(uow: UnitOfWork, member: Member, reward: Reward, nonce: int | None = None) -> RedeemConsent:
    """The consent a redemption of `reward` by `member` needs: a fresh ref (a label; the
    chain does not spend it) and the member's next nonce, counting redemptions still to burn."""
    partner = partners.get(uow, reward.partner_id)
    nonce = (
        members.spendable_points(uow, member)[1] if nonce is None else nonce
    )  # the chain first, then the ref's row lock
    return RedeemConsent(
        member=member.wallet_address,
        issuer=partner.issuer_address,
        amount_points=reward.cost_points,
        reward_id=reward.id,
        ref=take_ref(uow.session, partner.id),
        nonce=nonce,
        deadline=int(time.time()) + CONSENT_VALIDITY_S,
    )


def quote(uow: UnitOfWork, member: Member, reward: Reward) -> RedeemConsent:
    """A consent for a self-custody member to sign, recorded so it works once."""
    members.lock(uow, member)
    consent = new_consent(uow, member, reward)
    uow.session.add(
        ConsentQuote(
            member_id=member.id, reward_id=reward.id, ref=consent.ref, nonce=consent.nonce, deadline=consent.deadline
        )
    )
    return consent


def reserve(
    uow: UnitOfWork, member: Member, reward: Reward, signature: bytes | None = None, deadline: int | None = None
) -> Redemption:
    """Phase one: hold the stock and the points, and queue the burn for the outbox.

    With `signature` and `deadline`, the member's own consent to a quote; without, the service
    signs with the member's custodial key."""
    if not reward.active:
        raise ConflictError(ErrorCode.REWARD_INACTIVE, f"reward {reward.id} is not active")
    session = uow.session
    quote_used: ConsentQuote | None = None
    if signature is None and deadline is None:
        if not member.custodial or member.wallet_key_sealed is None:
            raise UnprocessableError(
                ErrorCode.SIGNATURE_REQUIRED,
                f"member {member.id} holds their own wallet: send `signature` and `deadline`",
            )
        consent = None
    else:
        quote_used, consent, signature = _signed_consent(uow, member, reward, signature, deadline)
    members.lock(uow, member)
    spendable, next_nonce = members.spendable_points(uow, member)
    if consent is None:
        assert member.wallet_key_sealed is not None
        consent = new_consent(uow, member, reward, next_nonce)
        wallet = uow.custody.open(member.wallet_address, member.wallet_key_sealed)
        signature = sign_typed_data(typed_data(uow, consent), wallet.key)
    elif consent.nonce != next_nonce:
        raise ConflictError(
            ErrorCode.CONSENT_STALE,
            f"the consent was signed for nonce {consent.nonce}, but the member's next redemption takes nonce "
            f"{next_nonce} (another redemption or a permit came first): ask for a new consent",
        )
    assert signature is not None
    taken = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, Reward.stock > 0)
        .values(stock=Reward.stock - 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(ErrorCode.REWARD_OUT_OF_STOCK, f"reward {reward.id} is out of stock")
    if spendable < reward.cost_points:
        raise UnprocessableError(
            ErrorCode.INSUFFICIENT_POINTS,
            f"member {member.id} has {spendable} spendable points; reward costs {reward.cost_points}",
        )
    redemption = Redemption(
        partner_id=reward.partner_id,
        member_id=member.id,
        reward_id=reward.id,
        amount_points=reward.cost_points,
        ref=consent.ref,
        nonce=consent.nonce,
        deadline=consent.deadline,
        signature=signature,
    )
    session.add(redemption)
    session.flush()
    session.refresh(reward)
    if quote_used is not None:
        used = session.execute(
            update(ConsentQuote)
            .where(ConsentQuote.id == quote_used.id, ConsentQuote.redemption_id.is_(None))
            .values(redemption_id=redemption.id)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(ErrorCode.CONSENT_USED, "this consent was used by another redemption")
    return redemption


def _signed_consent(
    uow: UnitOfWork, member: Member, reward: Reward, signature: bytes | None, deadline: int | None
) -> tuple[ConsentQuote, RedeemConsent, bytes]:
    """The quote the member signed, found by the signature among the quotes with this member,
    reward and deadline (two quotes may share a second); each works once."""
    if signature is None or deadline is None:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "send both `signature` and `deadline`, or neither")
    quotes = uow.session.scalars(
        select(ConsentQuote)
        .where(
            ConsentQuote.member_id == member.id,
            ConsentQuote.reward_id == reward.id,
            ConsentQuote.deadline == deadline,
        )
        .order_by(ConsentQuote.id)
    ).all()
    if not quotes:
        raise NotFoundError(
            ErrorCode.CONSENT_NOT_FOUND, "no typed data was issued for this member, reward and deadline"
        )
    if deadline < time.time():
        raise UnprocessableError(ErrorCode.CONSENT_EXPIRED, f"the consent expired at {deadline}")
    issuer = partners.get(uow, reward.partner_id).issuer_address
    wallet = member.wallet_address
    for found in quotes:
        consent = RedeemConsent(wallet, issuer, reward.cost_points, reward.id, found.ref, found.nonce, found.deadline)
        if recover_signer(typed_data(uow, consent), signature) == wallet:
            if found.redemption_id is not None:
                raise ConflictError(
                    ErrorCode.CONSENT_USED, f"this consent was used by redemption {found.redemption_id}"
                )
            return found, consent, signature
    raise UnprocessableError(ErrorCode.INVALID_SIGNATURE, f"the signature is not {wallet}'s consent to this redemption")


def get(uow: UnitOfWork, redemption_id: int, partner_id: int | None = None) -> Redemption:
    """A redemption; with `partner_id`, only one at that partner (others are as if absent)."""
    redemption = uow.session.get(Redemption, redemption_id)
    if redemption is None or (partner_id is not None and redemption.partner_id != partner_id):
        raise NotFoundError(ErrorCode.REDEMPTION_NOT_FOUND, f"no redemption {redemption_id}")
    return redemption


def post(session: Session, write_id: int) -> None:
    """Phase two: the burn `write_id` is final on-chain. A voucher handed out stays the same if
    a reorg makes the burn post twice."""
    session.execute(
        update(Redemption)
        .where(Redemption.write_id == write_id, Redemption.status == RedemptionStatus.RESERVED)
        .values(
            status=RedemptionStatus.POSTED,
            voucher_code=func.coalesce(Redemption.voucher_code, secrets.token_hex(8).upper()),
        )
    )


def void(session: Session, redemption: Redemption, error: str) -> None:
    """Phase two, refused: nothing burned, the stock released (once)."""
    changed = session.execute(
        update(Redemption)
        .where(Redemption.id == redemption.id, Redemption.status == RedemptionStatus.RESERVED)
        .values(status=RedemptionStatus.VOIDED, error=error)
    )
    if changed.rowcount == 1:  # type: ignore[attr-defined]
        session.execute(update(Reward).where(Reward.id == redemption.reward_id).values(stock=Reward.stock + 1))
