"""Two-phase redemptions: reserved (stock and points held, the burn queued), then posted
(burned on-chain, voucher issued) or voided (stock released, nothing burned) by the outbox."""

from __future__ import annotations

import logging
import secrets
import time
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.token import LoyaltyToken
from loyalty.db.models import (
    ChainWrite,
    ConsentQuote,
    Donation,
    Member,
    Partner,
    Redemption,
    RedemptionStatus,
    Reward,
    utcnow,
)
from loyalty.domain.consent import (
    RedeemConsent,
    full_signature,
    is_low_s,
    recover_signer,
    redeem_typed_data,
    sign_typed_data,
    typed_data_digest,
)
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import catalog, credentials, members, partners, tiers, webhooks
from loyalty.services.lists import Page, keyset
from loyalty.services.refs import take_ref
from loyalty.services.uow import UnitOfWork

log = logging.getLogger("loyalty.services.redemptions")

CONSENT_VALIDITY_S = 3_600
APPROVAL_WINDOW = timedelta(days=1)  # how long a redemption may await its member


def typed_data(uow: UnitOfWork, consent: RedeemConsent, reward: Reward) -> dict[str, object]:
    """The EIP-712 typed data of `consent` on the token of the reward's program."""
    return _typed_on(uow, consent, partners.token_of(uow, issuer_of(uow, reward)))


def _typed_on(uow: UnitOfWork, consent: RedeemConsent, token: LoyaltyToken) -> dict[str, object]:
    return redeem_typed_data(consent, chain_id=uow.chain.chain_id, token_address=token.address, token_name=token.name)


def issuer_of(uow: UnitOfWork, reward: Reward) -> Partner:
    """The issuer account that burns the reward's points: its partner's in the reward's program."""
    return partners.account_in(uow, reward.partner_id, reward.program_id)


def new_consent(
    uow: UnitOfWork, member: Member, reward: Reward, nonce: int | None = None, amount_points: int | None = None
) -> RedeemConsent:
    """The consent a redemption of `reward` by `member` needs: a fresh ref (a label; the
    chain does not spend it) and the member's next nonce, counting redemptions still to burn."""
    partner = issuer_of(uow, reward)
    nonce = (
        members.spendable_points(uow, member, reward.program_id)[1] if nonce is None else nonce
    )  # the chain first, then the ref's row lock
    return RedeemConsent(
        member=member.wallet_address,
        issuer=partner.issuer_address,
        amount_points=reward.cost_points if amount_points is None else amount_points,
        reward_id=reward.id,
        ref=take_ref(uow.session, partner.id),
        nonce=nonce,
        deadline=int(time.time()) + CONSENT_VALIDITY_S,
    )


def quote(uow: UnitOfWork, member: Member, reward: Reward, amount_points: int | None = None) -> RedeemConsent:
    """A consent for a self-custody member to sign, recorded so it works once; for the
    reward's cost, or `amount_points` (a donation)."""
    if amount_points is None:
        _not_donation(uow, reward)
    members.lock(uow, member)
    consent = new_consent(uow, member, reward, amount_points=amount_points)
    uow.session.add(
        ConsentQuote(
            member_id=member.id, reward_id=reward.id, ref=consent.ref, nonce=consent.nonce, deadline=consent.deadline,
            amount_points=amount_points,
        )
    )  # fmt: skip
    return consent


def redeem(
    uow: UnitOfWork,
    member: Member,
    reward: Reward,
    *,
    signature: bytes | None = None,
    deadline: int | None = None,
    code: str | None = None,
    amount_points: int | None = None,
    asked_by: int | None = None,
    by_member: bool = False,
) -> Redemption:
    """A partner's redemption of `reward` for `member`, with the member's consent or awaiting it.

    A self-custody member consents by signing a quote (`signature` and `deadline`). For a
    custodial member the service signs with the key it keeps, but only with the member's
    approval: its own request (`by_member`), a one-time `code` the member made for the partner
    asking (`asked_by`, default the reward's), or else the redemption waits (`awaiting_member`)
    until the member approves it in its session. `amount_points`: a donation's amount (default
    the reward's cost)."""
    amount = reward.cost_points if amount_points is None else amount_points
    _offered(uow, reward, donation=amount_points is not None)
    if not member.custodial:
        if signature is None and deadline is None:
            raise UnprocessableError(
                ErrorCode.SIGNATURE_REQUIRED,
                f"member {member.id} holds their own wallet: send `signature` and `deadline`",
            )
        quote_used, consent, signature = _signed_consent(uow, member, reward, signature, deadline, amount)
        return _reserve(uow, member, reward, amount, signed=(quote_used, consent, signature))
    if signature is not None or deadline is not None:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR,
            f"the service keeps member {member.id}'s wallet: send the member's `redemption_code`, or nothing "
            "and the member approves the redemption",
        )
    if by_member:
        return _reserve(uow, member, reward, amount)
    if code is not None:
        credentials.use_redemption_code(uow, member, asked_by or reward.partner_id, code, amount)
        return _reserve(uow, member, reward, amount)
    awaiting = Redemption(
        partner_id=reward.partner_id,
        member_id=member.id,
        reward_id=reward.id,
        amount_points=amount,
        status=RedemptionStatus.AWAITING_MEMBER,
    )
    uow.session.add(awaiting)
    uow.session.flush()
    return awaiting


def approve(uow: UnitOfWork, member: Member, redemption_id: int) -> Redemption:
    """The member approves a redemption awaiting it: reserved, and signed with its custodial key
    for the points it was asked for."""
    awaiting = _awaiting(uow, member, redemption_id)
    reward = catalog.get(uow, awaiting.reward_id)
    _offered(uow, reward, donation=True)  # what it asks was checked when it was asked
    return _reserve(uow, member, reward, awaiting.amount_points, awaiting=awaiting)


def decline(uow: UnitOfWork, member: Member, redemption_id: int) -> Redemption:
    """The member declines: nothing was held, nothing is burned."""
    awaiting = _awaiting(uow, member, redemption_id)
    _leave_awaiting(uow, awaiting, RedemptionStatus.DECLINED, error="declined by the member")
    uow.session.refresh(awaiting)
    return awaiting


def decline_unanswered(session: Session, now: datetime) -> int:
    """Redemptions a member left unanswered past `APPROVAL_WINDOW` are declined (they held
    nothing); returns how many."""
    declined = session.execute(
        update(Redemption)
        .where(Redemption.status == RedemptionStatus.AWAITING_MEMBER, Redemption.created_at < now - APPROVAL_WINDOW)
        .values(status=RedemptionStatus.DECLINED, error="not approved in time")
    )
    return int(declined.rowcount)  # type: ignore[attr-defined]


def _awaiting(uow: UnitOfWork, member: Member, redemption_id: int) -> Redemption:
    redemption = get(uow, redemption_id, member_id=member.id)
    if redemption.status != RedemptionStatus.AWAITING_MEMBER or redemption.created_at < utcnow() - APPROVAL_WINDOW:
        raise ConflictError(
            ErrorCode.REDEMPTION_NOT_AWAITING,
            f"redemption {redemption_id} is {redemption.status}, not awaiting approval",
        )
    return redemption


def _leave_awaiting(uow: UnitOfWork, awaiting: Redemption, status: RedemptionStatus, **values: object) -> None:
    """Move a redemption out of `awaiting_member`, once: a second approval (or decline) racing
    with the first finds it gone."""
    changed = uow.session.execute(
        update(Redemption)
        .where(Redemption.id == awaiting.id, Redemption.status == RedemptionStatus.AWAITING_MEMBER)
        .values(status=status, **values)
        .execution_options(synchronize_session=False)
    )
    if changed.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(ErrorCode.REDEMPTION_NOT_AWAITING, f"redemption {awaiting.id} was answered already")


def _reserve(
    uow: UnitOfWork,
    member: Member,
    reward: Reward,
    amount_points: int,
    *,
    signed: tuple[ConsentQuote, RedeemConsent, bytes] | None = None,
    awaiting: Redemption | None = None,
) -> Redemption:
    """Phase one: hold the stock and the points, and queue the burn for the outbox. With
    `signed`, the member's own consent to a quote; without, the service signs with the member's
    custodial key (its approval was checked by the caller)."""
    session = uow.session
    members.lock(uow, member)
    spendable, next_nonce = members.spendable_points(uow, member, reward.program_id)
    if signed is None:
        if member.wallet_key_sealed is None:
            raise UnprocessableError(ErrorCode.CUSTODIAL_ONLY, f"the service keeps no key for member {member.id}")
        consent = new_consent(uow, member, reward, next_nonce, amount_points)
        wallet = uow.custody.open(member.wallet_address, member.wallet_key_sealed)
        signature = sign_typed_data(typed_data(uow, consent, reward), wallet.key)
    else:
        _, consent, signature = signed
        if consent.nonce != next_nonce:
            raise ConflictError(
                ErrorCode.CONSENT_STALE,
                f"the consent was signed for nonce {consent.nonce}, but the member's next redemption takes nonce "
                f"{next_nonce} (another redemption or a permit came first): ask for a new consent",
            )
    taken = session.execute(
        update(Reward)
        .where(Reward.id == reward.id, or_(Reward.stock.is_(None), Reward.stock > 0))  # unset: unlimited
        .values(stock=Reward.stock - 1)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise ConflictError(ErrorCode.REWARD_OUT_OF_STOCK, f"reward {reward.id} is out of stock")
    if spendable < amount_points:
        raise UnprocessableError(
            ErrorCode.INSUFFICIENT_POINTS,
            f"member {member.id} has {spendable} spendable points; the redemption takes {amount_points}",
        )
    held = {"ref": consent.ref, "nonce": consent.nonce, "deadline": consent.deadline, "signature": signature}
    if awaiting is not None:
        _leave_awaiting(uow, awaiting, RedemptionStatus.RESERVED, **held)
        redemption = awaiting
        session.refresh(redemption)
    else:
        redemption = Redemption(
            partner_id=reward.partner_id,
            member_id=member.id,
            reward_id=reward.id,
            amount_points=amount_points,
            **held,
        )
        session.add(redemption)
        session.flush()
    session.refresh(reward)
    if signed is not None:
        used = session.execute(
            update(ConsentQuote)
            .where(ConsentQuote.id == signed[0].id, ConsentQuote.redemption_id.is_(None))
            .values(redemption_id=redemption.id)
        )
        if used.rowcount != 1:  # type: ignore[attr-defined]
            raise ConflictError(ErrorCode.CONSENT_USED, "this consent was used by another redemption")
    return redemption


def _signed_consent(
    uow: UnitOfWork, member: Member, reward: Reward, signature: bytes | None, deadline: int | None, amount: int
) -> tuple[ConsentQuote, RedeemConsent, bytes]:
    """The quote the member signed, found by the signature among the quotes with this member,
    reward, deadline and amount (two quotes may share a second); each works once. An ordinary
    wallet's signature is recovered (a compact one expanded); a contract wallet is asked (ERC-1271)."""
    if signature is None or deadline is None:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "send both `signature` and `deadline`, or neither")
    quotes = uow.session.scalars(
        select(ConsentQuote)
        .where(
            ConsentQuote.member_id == member.id,
            ConsentQuote.reward_id == reward.id,
            ConsentQuote.deadline == deadline,
            func.coalesce(ConsentQuote.amount_points, reward.cost_points) == amount,
        )
        .order_by(ConsentQuote.id)
    ).all()
    if not quotes:
        raise NotFoundError(
            ErrorCode.CONSENT_NOT_FOUND, "no typed data was issued for this member, reward, amount and deadline"
        )
    signature = usable_signature(member, signature, deadline)
    account = issuer_of(uow, reward)
    token, wallet = partners.token_of(uow, account), member.wallet_address
    for found in quotes:
        consent = RedeemConsent(
            wallet, account.issuer_address, amount, reward.id, found.ref, found.nonce, found.deadline
        )
        typed = _typed_on(uow, consent, token)
        if (
            token.wallet_accepts(wallet, typed_data_digest(typed), signature)
            if member.smart_wallet
            else recover_signer(typed, signature) == wallet
        ):
            if found.redemption_id is not None:
                raise ConflictError(
                    ErrorCode.CONSENT_USED, f"this consent was used by redemption {found.redemption_id}"
                )
            return found, consent, signature
    raise UnprocessableError(ErrorCode.INVALID_SIGNATURE, f"the signature is not {wallet}'s consent to this redemption")


def usable_signature(member: Member, signature: bytes, deadline: int) -> bytes:
    """A consent's signature as the token takes it (a compact one expanded), refused when the
    consent has expired or the token would refuse its form (an `s` in the upper half)."""
    if deadline < time.time():
        raise UnprocessableError(ErrorCode.CONSENT_EXPIRED, f"the consent expired at {deadline}")
    if member.smart_wallet:  # a contract wallet's own form (ERC-1271)
        return signature
    signature = full_signature(signature)
    if not is_low_s(signature):
        raise UnprocessableError(
            ErrorCode.INVALID_SIGNATURE,
            "not a 65-byte (or 64-byte compact) signature with s in the lower half of the curve order: the "
            "token refuses it",
        )
    return signature


def _not_donation(uow: UnitOfWork, reward: Reward) -> None:
    if partners.is_charity(uow.session, reward.partner_id):
        raise UnprocessableError(
            ErrorCode.CHARITY_ISSUES_NOTHING,
            f"reward {reward.id} takes donations to charity {reward.partner_id}: POST /v1/donations",
        )


def get(uow: UnitOfWork, redemption_id: int, partner_id: int | None = None, member_id: int | None = None) -> Redemption:
    """A redemption; with `partner_id` only one at that partner, with `member_id` only one of
    that member (others are as if absent)."""
    redemption = uow.session.get(Redemption, redemption_id)
    if (
        redemption is None
        or (partner_id is not None and redemption.partner_id != partner_id)
        or (member_id is not None and redemption.member_id != member_id)
    ):
        raise NotFoundError(ErrorCode.REDEMPTION_NOT_FOUND, f"no redemption {redemption_id}")
    return redemption


def _offered(uow: UnitOfWork, reward: Reward, *, donation: bool = False) -> None:
    """A reward may be redeemed while active; a tier reward while the ladder has its tier (the
    points would buy nothing); a charity's donation reward only as a donation (which records
    what it is worth)."""
    if not donation:
        _not_donation(uow, reward)
    if not reward.active:
        raise ConflictError(ErrorCode.REWARD_INACTIVE, f"reward {reward.id} is not active")
    ladder = tiers.ladder(uow.session, reward.program_id) if reward.tier is not None else None
    if reward.tier is not None and (ladder is None or ladder.get(reward.tier) is None):
        raise ConflictError(
            ErrorCode.REWARD_INACTIVE, f"reward {reward.id} sells tier {reward.tier!r}, no longer on the ladder"
        )


def post(session: Session, write_id: int) -> None:
    """Phase two: the burn `write_id` is final on-chain. A voucher handed out stays the same if
    a reorg makes the burn post twice; a tier reward starts its tier (once)."""
    posted = session.execute(
        update(Redemption)
        .where(Redemption.write_id == write_id, Redemption.status == RedemptionStatus.RESERVED)
        .values(
            status=RedemptionStatus.POSTED,
            voucher_code=func.coalesce(Redemption.voucher_code, secrets.token_hex(8).upper()),
        )
        .returning(
            Redemption.id, Redemption.partner_id, Redemption.member_id, Redemption.reward_id, Redemption.amount_points
        )
    ).all()
    webhooks.emit(session, "redemption.posted", [_happened(row) for row in posted])
    _donations_posted(session, [row.id for row in posted])
    for redemption, reward in session.execute(
        select(Redemption, Reward)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.id.in_([row.id for row in posted]), Reward.tier.is_not(None))
    ).all():
        try:  # a savepoint: a tier that cannot start must not hold up the writes finalized with it
            with session.begin_nested():
                tiers.paid_with_points(session, redemption, reward)
        except Exception:
            log.exception(
                "redemption %s of tier reward %s posted, but its tier could not start", redemption.id, reward.id
            )


def _donations_posted(session: Session, redemption_ids: list[int]) -> None:
    """Of these posted redemptions, the donations are announced to the charity and to the
    partner that relayed them (`donation.posted`, once: a reorg posting again adds nothing)."""
    if not redemption_ids or not webhooks.wanted(session, "donation.posted"):
        return
    rows = session.execute(
        select(Donation, ChainWrite.tx_hash)
        .join(Redemption, Redemption.id == Donation.redemption_id)
        .outerjoin(ChainWrite, ChainWrite.id == Redemption.write_id)
        .where(Donation.redemption_id.in_(redemption_ids))
    ).all()
    webhooks.emit(
        session,
        "donation.posted",
        [
            webhooks.Happened(
                f"donation:{d.id}", d.charity_id, d.member_id,
                {"donation_id": d.id, "charity_id": d.charity_id, "program_id": d.program_id, "member_id": d.member_id,
                 "amount_points": d.amount_points, "cash_minor": d.cash_minor, "currency": d.currency,
                 "tx_hash": tx_hash},
                audience=frozenset({d.charity_id} | ({d.relayed_by} if d.relayed_by else set())),
            )
            for d, tx_hash in rows
        ],
    )  # fmt: skip


def void(session: Session, redemption: Redemption, error: str) -> None:
    """Phase two, refused: nothing burned, the stock released (once), and a tier the
    redemption bought, if a burn reorged away had posted it, cancelled."""
    changed = session.execute(
        update(Redemption)
        .where(Redemption.id == redemption.id, Redemption.status == RedemptionStatus.RESERVED)
        .values(status=RedemptionStatus.VOIDED, error=error)
    )
    if changed.rowcount == 1:  # type: ignore[attr-defined]
        session.execute(update(Reward).where(Reward.id == redemption.reward_id).values(stock=Reward.stock + 1))
        tiers.unpaid(session, redemption.id)
        webhooks.emit(session, "redemption.voided", [_happened(redemption, error=error)])


def _happened(row: Any, **more: Any) -> webhooks.Happened:
    """A redemption (a row, or the columns the outbox read of it) as a webhook event."""
    return webhooks.Happened(
        f"redemption:{row.id}",
        row.partner_id,
        row.member_id,
        {"redemption_id": row.id, "member_id": row.member_id, "reward_id": row.reward_id,
         "amount_points": row.amount_points, **more},
    )  # fmt: skip


def of_member(uow: UnitOfWork, member: Member) -> Sequence[Redemption]:
    """A member's redemptions, newest first (those awaiting it among them)."""
    query = select(Redemption).where(Redemption.member_id == member.id).order_by(Redemption.id.desc())
    return uow.session.scalars(query).all()


def list_redemptions(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    status: RedemptionStatus | None,
    cursor: str | None,
    limit: int,
) -> Page[Redemption]:
    """Redemptions, oldest first; with `partner_id` that partner's, with `member_id` that member's."""
    query = select(Redemption)
    for column, value in (
        (Redemption.partner_id, partner_id),
        (Redemption.member_id, member_id),
        (Redemption.status, status),
    ):
        if value is not None:
            query = query.where(column == value)
    return keyset(uow.session, query, [Redemption.id], cursor, limit)
