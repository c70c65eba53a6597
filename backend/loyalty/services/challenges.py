"""Challenges: a brand's goals for its members in a program. A metric (purchases, net spend,
points earned, events of a type) counted over the challenge's window, or over each week or month
of it, reaching a target. Members who qualify (a segment tag at the brand, a tier) and reach it
are rewarded once per period: points from a budgeted campaign's account (cut to what its budget
has left) and/or a badge, announced by `challenge.completed`.

Progress is counted from the service's records on demand; completions are recorded by the
outbox writer's housekeeping (`evaluate`), once: a completion is unique per challenge, member
and period, and is recorded with its reward in one transaction."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.db.models import (
    Campaign,
    Challenge,
    ChallengeCompletion,
    Earn,
    EarnStatus,
    Event,
    MemberLink,
    MemberSegment,
    Partner,
    Purchase,
    Refund,
    utcnow,
)
from loyalty.domain.periods import period_end, period_start
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import awards, campaigns, partners, tiers, webhooks
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

METRICS = ("purchases", "net_spend", "points_earned", "events")


def create(uow: UnitOfWork, brand_id: int, fields: dict[str, Any]) -> Challenge:
    """A challenge of the brand in a program (`program_id`, default the first). Points rewards
    are paid from a budgeted campaign of the brand there (`campaign_id`)."""
    account = partners.account_in(uow, brand_id, fields.pop("program_id", None))
    if fields["metric"] == "events" and not fields.get("event_type"):
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "an `events` challenge names its `event_type`")
    if fields.get("reward_points") and fields.get("campaign_id") is None:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, "reward points are paid from a campaign: give `campaign_id`"
        )
    if not fields.get("reward_points") and not fields.get("badge"):
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "a challenge rewards points, a badge, or both")
    if (campaign_id := fields.get("campaign_id")) is not None:
        campaign = campaigns.get(uow, campaign_id, brand_id)
        if campaign.partner_id != account.id or campaign.issuer_id is None:
            raise UnprocessableError(
                ErrorCode.VALIDATION_ERROR,
                f"campaign {campaign_id} has no budget of its own in program {account.program_id}",
            )
    tiers_wanted = fields.pop("tiers", None)
    challenge = Challenge(
        partner_id=account.id, program_id=account.program_id, tiers=None if not tiers_wanted else json.dumps(tiers_wanted),
        **fields,
    )  # fmt: skip
    uow.session.add(challenge)
    uow.session.flush()
    return challenge


def get(uow: UnitOfWork, challenge_id: int, brand_id: int | None = None) -> Challenge:
    """A challenge; with `brand_id`, only one of that brand's (others are as if absent)."""
    found = uow.session.get(Challenge, challenge_id)
    if found is None or (brand_id is not None and partners.placed(uow.session, found.partner_id)[0] != brand_id):
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no challenge {challenge_id}")
    return found


def page(uow: UnitOfWork, brand_id: int | None, cursor: str | None, limit: int) -> Page[Challenge]:
    query = select(Challenge)
    if brand_id is not None:
        query = query.where(Challenge.partner_id.in_(partners.accounts_of(brand_id)))
    return keyset(uow.session, query, [Challenge.id], cursor, limit)


def deactivate(uow: UnitOfWork, challenge_id: int, brand_id: int | None) -> Challenge:
    """No more completions (those recorded stay, with their rewards)."""
    found = get(uow, challenge_id, brand_id)
    found.active = False
    uow.session.flush()
    return found


def window(challenge: Challenge, at: datetime) -> tuple[datetime, datetime] | None:
    """The [start, end) the metric is counted over at `at`: the whole window, or the week or
    month of it `at` falls in (clipped to the window); None outside the window."""
    if not challenge.starts_at <= at < challenge.ends_at:
        return None
    if challenge.period == "once":
        return challenge.starts_at, challenge.ends_at
    start = period_start(int(at.timestamp()), challenge.period)
    begin = max(challenge.starts_at, datetime.fromtimestamp(start, UTC))
    return begin, min(challenge.ends_at, datetime.fromtimestamp(period_end(start, challenge.period), UTC))


def reached(challenge: Challenge, value: int) -> bool:
    return value > challenge.target if challenge.operator == "gt" else value >= challenge.target


def values(
    session: Session, challenge: Challenge, start: datetime, end: datetime, member_ids: Sequence[int] | None = None
) -> dict[int, int]:
    """Each member's metric in [start, end) (those with none are absent)."""
    if challenge.metric == "points_earned":  # not the points of the campaign paying its rewards
        campaign_accounts = select(Campaign.issuer_id).where(
            Campaign.partner_id == challenge.partner_id, Campaign.id != (challenge.campaign_id or 0)
        )
        query = (
            select(Earn.member_id, func.sum(Earn.amount_points))
            .where(
                (Earn.partner_id == challenge.partner_id) | Earn.partner_id.in_(campaign_accounts),
                Earn.status == EarnStatus.CONFIRMED,
                Earn.created_at >= start,
                Earn.created_at < end,
            )
            .group_by(Earn.member_id)
        )
        member = Earn.member_id
    elif challenge.metric == "events":
        query = (
            select(Event.member_id, func.count())
            .where(
                Event.partner_id == challenge.partner_id,
                Event.type == challenge.event_type,
                Event.occurred_at >= start,
                Event.occurred_at < end,
            )
            .group_by(Event.member_id)
        )
        member = Event.member_id
    else:  # net of refunds; a purchase refunded in full does not count
        refunded = (
            select(Refund.purchase_id, func.sum(Refund.net_minor).label("net_minor"))
            .group_by(Refund.purchase_id)
            .subquery()
        )
        kept = Purchase.net_minor - func.coalesce(refunded.c.net_minor, 0)
        counted = func.count() if challenge.metric == "purchases" else func.sum(kept)
        query = (
            select(Purchase.member_id, counted)
            .outerjoin(refunded, refunded.c.purchase_id == Purchase.id)
            .where(
                Purchase.partner_id == challenge.partner_id,
                Purchase.program_id == challenge.program_id,
                Purchase.occurred_at >= start,
                Purchase.occurred_at < end,
                or_(refunded.c.purchase_id.is_(None), kept > 0),
            )
            .group_by(Purchase.member_id)
        )
        member = Purchase.member_id
    if member_ids is not None:
        query = query.where(member.in_(member_ids))
    return {int(m): int(v or 0) for m, v in session.execute(query)}


def _eligible(session: Session, challenge: Challenge, member_ids: Sequence[int], now: datetime) -> set[int]:
    """Of these members, those the challenge is for (its segment tag at the brand, its tiers)."""
    found = set(member_ids)
    brand = partners.placed(session, challenge.partner_id)[0]
    if challenge.segment:
        found &= set(
            session.scalars(
                select(MemberSegment.member_id).where(
                    MemberSegment.partner_id == brand,
                    MemberSegment.tag == challenge.segment,
                    MemberSegment.member_id.in_(found),
                )
            )
        )
    if challenge.tiers:
        wanted = set(json.loads(challenge.tiers))
        found = {m for m in found if tiers.tier_of(session, m, now, challenge.program_id) in wanted}
    return found


# -------------------------------------------------------------------------------- progress
def progress(session: Session, member_id: int, brand_id: int | None, now: datetime) -> list[dict[str, Any]]:
    """The member's progress in every active challenge running now of the brands it is linked
    to (`brand_id`: that brand's only), with what it completed in the current period."""
    linked = select(MemberLink.partner_id).where(MemberLink.member_id == member_id)
    accounts = select(Partner.id).where(Partner.id.in_(linked) | Partner.owner_id.in_(linked))
    query = select(Challenge).where(Challenge.active.is_(True), Challenge.partner_id.in_(accounts))
    if brand_id is not None:
        query = query.where(Challenge.partner_id.in_(partners.accounts_of(brand_id)))
    rows = []
    for challenge in session.scalars(query.order_by(Challenge.id)):
        span = window(challenge, now)
        if span is None:
            continue
        value = values(session, challenge, span[0], span[1], [member_id]).get(member_id, 0)
        done = session.scalar(
            select(ChallengeCompletion).where(
                ChallengeCompletion.challenge_id == challenge.id,
                ChallengeCompletion.member_id == member_id,
                ChallengeCompletion.period_start == span[0],
            )
        )
        rows.append({
            "challenge_id": challenge.id, "name": challenge.name, "metric": challenge.metric,
            "operator": challenge.operator, "target": challenge.target, "period_start": span[0],
            "period_end": span[1], "value": value, "completed": done is not None,
            "completed_at": None if done is None else done.completed_at,
            "points": None if done is None else done.points, "badge": None if done is None else done.badge,
        })  # fmt: skip
    return rows


def badges(session: Session, member_id: int, brand_id: int | None = None) -> list[str]:
    """The badges the member won (`brand_id`: in that brand's challenges), each once, first won
    first."""
    seen: dict[str, None] = {}
    query = select(ChallengeCompletion.badge).where(
        ChallengeCompletion.member_id == member_id, ChallengeCompletion.badge.is_not(None)
    )
    if brand_id is not None:
        query = query.join(Challenge, Challenge.id == ChallengeCompletion.challenge_id).where(
            Challenge.partner_id.in_(partners.accounts_of(brand_id))
        )
    for badge in session.scalars(query.order_by(ChallengeCompletion.id)):
        seen.setdefault(str(badge), None)
    return list(seen)


# ------------------------------------------------------------------------------ completions
def evaluate(session: Session, now: datetime | None = None) -> int:
    """Record the completions due in every active challenge's current period and the one
    before (a target reached in its last minutes), each with its reward. Returns how many."""
    now = now or utcnow()
    recorded = 0
    for challenge in session.scalars(select(Challenge).where(Challenge.active.is_(True)).order_by(Challenge.id)):
        spans = {span for at in (now, _before(challenge, now)) if at is not None and (span := window(challenge, at))}
        for start, end in sorted(spans):
            reached_by = {m: v for m, v in values(session, challenge, start, end).items() if reached(challenge, v)}
            done = set(
                session.scalars(
                    select(ChallengeCompletion.member_id).where(
                        ChallengeCompletion.challenge_id == challenge.id, ChallengeCompletion.period_start == start
                    )
                )
            )
            fresh = sorted(_eligible(session, challenge, [m for m in reached_by if m not in done], now))
            for member_id in fresh:
                recorded += _complete(session, challenge, member_id, start, reached_by[member_id])
    return recorded


def _before(challenge: Challenge, now: datetime) -> datetime | None:
    """A moment in the period before the current one; for a day after the window ended, its
    last second (the whole of a one-off, or its last week or month, cut short by the end)."""
    if challenge.ends_at <= now:
        return challenge.ends_at - timedelta(seconds=1) if now < challenge.ends_at + timedelta(days=1) else None
    if challenge.period == "once":
        return None
    start = period_start(int(now.timestamp()), challenge.period)
    return datetime.fromtimestamp(start - 1, UTC)


def _complete(session: Session, challenge: Challenge, member_id: int, start: datetime, value: int) -> int:
    try:
        with session.begin_nested():
            paid, earn = 0, None
            if challenge.reward_points and challenge.campaign_id is not None:
                campaign = session.get(Campaign, challenge.campaign_id)
                assert campaign is not None and campaign.issuer_id is not None
                reason = f"challenge {challenge.name!r} completed"
                paid, earn = awards.pay(session, campaign.issuer_id, member_id, challenge.reward_points, reason)
            completion = ChallengeCompletion(
                challenge_id=challenge.id, member_id=member_id, period_start=start, value=value, points=paid,
                earn_id=None if earn is None else earn.id, badge=challenge.badge,
            )  # fmt: skip
            session.add(completion)
            session.flush()
            webhooks.emit(
                session,
                "challenge.completed",
                [
                    webhooks.Happened(
                        f"{challenge.id}:{member_id}:{start.isoformat()}", challenge.partner_id, member_id,
                        {"challenge_id": challenge.id, "member_id": member_id, "period_start": start.isoformat(),
                         "value": value, "points": paid, "badge": challenge.badge},
                    )
                ],
            )  # fmt: skip
    except IntegrityError:  # another writer recorded it first
        return 0
    return 1


def public(session: Session, challenge: Challenge) -> dict[str, Any]:
    return {
        "id": challenge.id, "partner_id": partners.placed(session, challenge.partner_id)[0],
        "program_id": challenge.program_id, "name": challenge.name, "metric": challenge.metric,
        "event_type": challenge.event_type, "operator": challenge.operator, "target": challenge.target,
        "period": challenge.period, "starts_at": challenge.starts_at, "ends_at": challenge.ends_at,
        "segment": challenge.segment, "tiers": json.loads(challenge.tiers) if challenge.tiers else None,
        "reward_points": challenge.reward_points, "campaign_id": challenge.campaign_id, "badge": challenge.badge,
        "active": challenge.active,
    }  # fmt: skip
