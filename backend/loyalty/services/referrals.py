"""Referrals: a member's code, a friend who enrols with it, and the reward (once per friend)
when the friend's first qualifying purchase leaves its pending window, priced by the partner's
`referral` rules for each side (the referrer's per-member limits cap what one referrer earns
per period). A partner pays a referrer only if it is one of its members."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.db.models import Award, Earn, Member, MemberLink, Purchase, Referral, ReferralStatus, utcnow
from loyalty.domain.earning.context import Activity, Beneficiary, Line, Trigger
from loyalty.domain.referrals import normalized, same_person
from loyalty.errors import ErrorCode, UnprocessableError
from loyalty.services import awards, partners, pricing
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork


def refer(uow: UnitOfWork, friend: Member, code: str, partner_id: int | None) -> Referral:
    """The member whose code `friend` enrolled with refers it (`422 referral_code_invalid` for
    no such code, `422 self_referral` for the friend's own wallet or external id)."""
    referrer = uow.session.scalar(select(Member).where(Member.referral_code == normalized(code)))
    if referrer is None:
        raise UnprocessableError(ErrorCode.REFERRAL_CODE_INVALID, f"no member has the referral code {code!r}")
    if referrer.id == friend.id or same_person(
        (referrer.external_id, referrer.wallet_address), (friend.external_id, friend.wallet_address)
    ):
        raise UnprocessableError(ErrorCode.SELF_REFERRAL, "the referral code is the member's own")
    referral = Referral(referrer_id=referrer.id, friend_id=friend.id, partner_id=partner_id)
    uow.session.add(referral)
    uow.session.flush()
    return referral


def on_release(session: Session, purchase: Purchase, lines: Sequence[Line], at: datetime) -> Referral | None:
    """Reward the member's pending referral if `purchase` (its `lines` left after refunds,
    just released) qualifies: the partner's referral rules give either side something. Once:
    the referral's status moves only from pending. A purchase they give nothing for (too small,
    or the referrer's limit for the period reached) leaves it pending for the next."""
    referral = session.scalar(
        select(Referral).where(Referral.friend_id == purchase.member_id, Referral.status == ReferralStatus.PENDING)
    )
    if referral is None:
        return None
    awards.lock(session, purchase.partner_id)  # caps are read under the partner's row lock
    now = utcnow()
    sides = {Beneficiary.FRIEND: referral.friend_id}
    brand_id, _ = partners.placed(session, purchase.partner_id)  # its account in the purchase's program
    if session.get(MemberLink, (referral.referrer_id, brand_id)) is not None:
        sides[Beneficiary.REFERRER] = referral.referrer_id  # a partner pays only its own members
    priced = {}
    for side, member_id in sides.items():
        facts = awards.facts_of(session, member_id, purchase.partner_id, now)
        activity = Activity(Trigger.REFERRAL, at, lines, event_type=side)
        priced[side] = pricing.price(session, purchase.partner_id, activity, facts, member_id=member_id).awards
    if not any(priced.values()):
        return None
    taken = session.execute(
        update(Referral)
        .where(Referral.id == referral.id, Referral.status == ReferralStatus.PENDING)
        .values(status=ReferralStatus.REWARDED, purchase_id=purchase.id, rewarded_at=now)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return None
    left = awards.available(session, [purchase.partner_id])[purchase.partner_id]
    for side, member_id in sides.items():
        _, left = awards.grant(
            session,
            member_id,
            purchase.partner_id,
            priced[side],
            left,
            f"referral {referral.id}",
            at,
            referral_id=referral.id,
        )
    session.refresh(referral)
    return referral


def awards_of(session: Session, referral_id: int, partner_id: int | None = None) -> Sequence[Award]:
    """What a referral paid; with `partner_id`, what that partner paid (from its accounts)."""
    query = select(Award).where(Award.referral_id == referral_id)
    if partner_id is not None:
        query = query.join(Earn, Earn.id == Award.earn_id).where(Earn.partner_id.in_(partners.accounts_of(partner_id)))
    return session.scalars(query.order_by(Award.id)).all()


def page_referrals(
    uow: UnitOfWork, referrer_id: int, cursor: str | None, limit: int, partner_id: int | None = None
) -> Page[Referral]:
    """The referrals a member made, oldest first; with `partner_id`, those of friends that
    partner enrolled (a partner sees no other partner's members)."""
    query = select(Referral).where(Referral.referrer_id == referrer_id)
    if partner_id is not None:
        query = query.where(Referral.partner_id == partner_id)
    return keyset(uow.session, query, [Referral.id], cursor, limit)
