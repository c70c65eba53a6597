"""Member tiers: the program's ladder, each member's earned tier (up at once, down at its
review), paid tiers bought for a period, and the standing that explains it all. The metric is
read from the purchases and awards this service recorded, over the ladder's rolling window."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import lru_cache
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import (
    Award,
    MemberTier,
    Program,
    Purchase,
    Redemption,
    Refund,
    Reward,
    TierSubscription,
    utcnow,
)
from loyalty.db.session import dialect_insert
from loyalty.domain.tiers import (
    Ladder,
    Metric,
    Review,
    Standing,
    effective,
    ladder_from_definition,
    next_tier,
    standing,
)
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import partners, webhooks
from loyalty.services.compiled import forget, memo
from loyalty.services.uow import UnitOfWork

log = logging.getLogger("loyalty.services.tiers")
DEFAULT_PROGRAM = 1
REVIEW_PERIOD = timedelta(days=365)  # a tier is reviewed a year after it was reached or last kept
REVIEW_BATCH = 500
POINTS_PAYMENT = "redemption:"  # the payment reference of a tier paid in points, before the redemption's id


def ladder(session: Session, program_id: int = DEFAULT_PROGRAM) -> Ladder | None:
    """The program's ladder (None without one), read once per transaction."""

    def read() -> Ladder | None:
        program = session.get(Program, program_id)
        return None if program is None or program.tiers is None else _parsed(program.tiers)

    return memo(session, ("ladder", program_id), read)


@lru_cache(maxsize=32)
def _parsed(text: str) -> Ladder:
    """A ladder from its stored JSON, parsed once per text (it is read on every purchase)."""
    return ladder_from_definition(json.loads(text))


def set_ladder(uow: UnitOfWork, program_id: int, definition: Mapping[str, Any]) -> Program:
    """Replace the program's ladder. Members keep the tier they hold until their next review
    (or the next purchase, for a tier that rises); a tier no longer on it counts as none."""
    ladder_from_definition(definition)  # refuses what cannot work
    program = uow.session.get(Program, program_id)
    if program is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no program {program_id}")
    program.tiers = json.dumps(definition, sort_keys=True)
    names = [t["name"] for t in definition.get("tiers", ())]
    uow.session.execute(  # tier rewards for tiers the ladder no longer has leave the catalog
        update(Reward)
        .where(Reward.program_id == program_id, Reward.tier.is_not(None), Reward.tier.not_in(names))
        .values(active=False)
    )
    forget(uow.session)
    return program


def metric_values(
    session: Session, ladder: Ladder, member_ids: Iterable[int], now: datetime, program_id: int = DEFAULT_PROGRAM
) -> dict[int, int]:
    """The members' metric in the program over the ladder's window: net item spend (less
    refunds), or points awarded for purchases (less those refunds took back); grouped, in one
    or two queries. Purchases in other programs count in theirs."""
    ids = set(member_ids)
    since = now - timedelta(days=ladder.window_days)
    window = (
        Purchase.member_id.in_(ids),
        Purchase.occurred_at >= since,
        Purchase.occurred_at <= now,
        Purchase.program_id == program_id,
    )
    values = dict.fromkeys(ids, 0)
    if ladder.metric == Metric.POINTS_EARNED:
        query = select(Purchase.member_id, func.sum(Award.points)).join(Purchase, Purchase.id == Award.purchase_id)
        sums = [(query.where(*window).group_by(Purchase.member_id), 1)]
    else:
        spent = select(Purchase.member_id, func.sum(Purchase.net_minor)).where(*window).group_by(Purchase.member_id)
        refunded = (
            select(Purchase.member_id, func.sum(Refund.net_minor))
            .join(Purchase, Purchase.id == Refund.purchase_id)
            .where(*window)
            .group_by(Purchase.member_id)
        )
        sums = [(spent, 1), (refunded, -1)]
    for query, sign in sums:
        for member_id, total in session.execute(query):
            values[member_id] += sign * int(total or 0)
    return values


def metric_value(
    session: Session, ladder: Ladder, member_id: int, now: datetime, program_id: int = DEFAULT_PROGRAM
) -> int:
    return metric_values(session, ladder, [member_id], now, program_id)[member_id]


@dataclass
class _Held:
    """A member's earned tier as its row holds it."""

    tier: str | None
    reached_at: datetime | None
    next_review_at: datetime | None


class Standings:
    """The earned tiers of a group of members, with their metric values and paid tiers, read
    at once and moved in memory as their purchases come (so a group of purchases needs no
    query per member), then written at once (`write`)."""

    def __init__(
        self,
        session: Session,
        ladder: Ladder,
        member_ids: Iterable[int],
        now: datetime,
        program_id: int = DEFAULT_PROGRAM,
    ) -> None:
        ids = sorted(set(member_ids))
        self.session, self.ladder, self.now, self.program_id = session, ladder, now, program_id
        self.held: dict[int, _Held] = {
            member_id: _Held(tier, reached_at, next_review_at)
            for member_id, tier, reached_at, next_review_at in session.execute(
                select(MemberTier.member_id, MemberTier.tier, MemberTier.reached_at, MemberTier.next_review_at).where(
                    MemberTier.member_id.in_(ids), MemberTier.program_id == program_id
                )
            )
        }
        self.new: set[int] = set()  # members with no row yet
        self.reviewed: set[int] = set()
        self.changed: dict[int, str | None] = {}  # members whose tier moved: the tier before
        self.paid: dict[int, str] = {}
        for member_id, tier in session.execute(
            select(TierSubscription.member_id, TierSubscription.tier).where(
                TierSubscription.member_id.in_(ids),
                TierSubscription.program_id == program_id,
                TierSubscription.starts_at <= now,
                TierSubscription.ends_at > now,
                TierSubscription.cancelled_at.is_(None),
            )
        ):
            if ladder.index(tier) > ladder.index(self.paid.get(member_id)):
                self.paid[member_id] = tier
        self.values = metric_values(session, ladder, ids, now, program_id)

    def tier(self, member_id: int) -> str | None:
        """The member's tier now: the higher of the earned and the paid one."""
        held = self.held.get(member_id)
        return effective(self.ladder, held.tier if held else None, self.paid.get(member_id))

    def bought(self, member_id: int, occurred_at: datetime, net_minor: int, points: int) -> None:
        """A purchase of the member's was recorded: it counts in the window if it falls there,
        and the member's tier is reviewed (up at once; down only on a real-time ladder)."""
        if self.now - timedelta(days=self.ladder.window_days) <= occurred_at <= self.now:
            self.values[member_id] += points if self.ladder.metric == Metric.POINTS_EARNED else net_minor
        self.review(member_id, at_review=False)

    def review(self, member_id: int, *, at_review: bool) -> None:
        """Move the member's earned tier by its metric: up at once; down only at its review (or
        at once on a real-time ladder). A review that keeps the tier moves the next one a year
        on; any change starts a new year."""
        held = self.held.get(member_id)
        if held is None:
            held = self.held[member_id] = _Held(None, None, None)
            self.new.add(member_id)
        ladder, now = self.ladder, self.now
        due = at_review or ladder.review == Review.REAL_TIME
        after = next_tier(ladder, self.values.get(member_id, 0), held.tier, at_review=due)
        if after != held.tier:
            self.changed.setdefault(member_id, held.tier)
            held.tier, held.reached_at = after, now
            held.next_review_at = now + REVIEW_PERIOD if after is not None else None
        elif at_review and held.tier is not None:
            held.next_review_at = now + REVIEW_PERIOD
        self.reviewed.add(member_id)

    def write(self) -> None:
        """The reviewed members' rows: one INSERT for those new, one UPDATE for the others."""
        rows = [
            {"member": m, "program": self.program_id, "tier": h.tier, "reached_at": h.reached_at,
             "next_review_at": h.next_review_at, "updated_at": self.now}
            for m, h in ((m, self.held[m]) for m in sorted(self.reviewed))
        ]  # fmt: skip
        table = cast(Table, MemberTier.__table__)
        if fresh := [r for r in rows if r["member"] in self.new]:
            # An upsert: another process may have made the member's row since it was read.
            statement = dialect_insert(self.session)(table)
            self.session.execute(
                statement.on_conflict_do_update(
                    index_elements=["member_id", "program_id"], set_={k: statement.excluded[k] for k in _HELD}
                ),
                [{"member_id": r["member"], "program_id": r["program"], **{k: r[k] for k in _HELD}} for r in fresh],
            )
        if known := [r for r in rows if r["member"] not in self.new]:
            self.session.execute(
                update(table)
                .where(table.c.member_id == bindparam("member"), table.c.program_id == bindparam("program"))
                .values(**{k: bindparam(k) for k in _HELD}),
                known,
            )
        self._announce()
        self.new.clear()
        self.reviewed.clear()
        self.changed.clear()

    def _announce(self) -> None:
        """A `tier.changed` webhook for each member whose earned tier moved, to the brands it is
        linked to that issue in the program (and the admin)."""
        moved = {m: before for m, before in self.changed.items() if self.held[m].tier != before}
        if not moved or not webhooks.wanted(self.session, "tier.changed"):
            return
        linked = partners.brands_in_program(self.session, self.program_id, moved)
        webhooks.emit(
            self.session,
            "tier.changed",
            [
                webhooks.Happened(
                    f"tier:{self.program_id}:{member_id}:{self.now.isoformat()}", None, member_id,
                    {"member_id": member_id, "program_id": self.program_id, "tier_before": before,
                     "tier": self.held[member_id].tier, "value": self.values.get(member_id, 0)},
                    audience=frozenset(linked.get(member_id, ())),
                )
                for member_id, before in sorted(moved.items())
            ],
        )  # fmt: skip


_HELD = ("tier", "reached_at", "next_review_at", "updated_at")


def earned_tier(session: Session, member_id: int, program_id: int = DEFAULT_PROGRAM) -> MemberTier | None:
    return session.get(MemberTier, (member_id, program_id))


def paid(session: Session, member_id: int, now: datetime, program_id: int = DEFAULT_PROGRAM) -> TierSubscription | None:
    """The paid tier running now, if any (the highest, should two overlap)."""
    running = session.scalars(
        select(TierSubscription).where(
            TierSubscription.member_id == member_id,
            TierSubscription.program_id == program_id,
            TierSubscription.starts_at <= now,
            TierSubscription.ends_at > now,
            TierSubscription.cancelled_at.is_(None),
        )
    ).all()
    current = ladder(session, program_id)
    if not running or current is None:
        return None
    return max(running, key=lambda s: current.index(s.tier))


def tier_of(session: Session, member_id: int, now: datetime, program_id: int = DEFAULT_PROGRAM) -> str | None:
    """The member's tier now: the higher of the earned and the paid one."""
    current = ladder(session, program_id)
    if current is None:
        return None
    held = earned_tier(session, member_id, program_id)
    bought = paid(session, member_id, now, program_id)
    return effective(current, held.tier if held else None, bought.tier if bought else None)


def review(
    session: Session, member_id: int, now: datetime, *, at_review: bool, program_id: int = DEFAULT_PROGRAM
) -> None:
    """Re-read the member's metric and move its earned tier (see `Standings.review`)."""
    current = ladder(session, program_id)
    if current is None:
        return
    standings = Standings(session, current, [member_id], now, program_id)
    standings.review(member_id, at_review=at_review)
    standings.write()


def laddered(session: Session) -> list[int]:
    """The programs with a tier ladder."""
    return list(session.scalars(select(Program.id).where(Program.tiers.is_not(None)).order_by(Program.id)))


def review_due(session: Session, now: datetime, program_id: int = DEFAULT_PROGRAM) -> int:
    """Review the members whose anniversary has come (on a real-time ladder, every member with
    a tier, as the window slides); a batch, returns how many."""
    current = ladder(session, program_id)
    if current is None:
        return 0
    due = select(MemberTier.member_id).where(MemberTier.program_id == program_id, MemberTier.tier.is_not(None))
    if current.review == Review.ANNIVERSARY:
        due = due.where(MemberTier.next_review_at <= now)
    else:
        due = due.where(or_(MemberTier.updated_at < now - timedelta(days=1), MemberTier.next_review_at <= now))
    members = session.scalars(due.order_by(MemberTier.member_id).limit(REVIEW_BATCH)).all()
    standings = Standings(session, current, members, now, program_id)
    for member_id in members:
        standings.review(member_id, at_review=True)
    standings.write()
    return len(members)


@dataclass(frozen=True)
class TierView:
    """A member's tier and why: the standing on the earned tier, the paid one, the effective one."""

    tier: str | None
    earned: Standing
    paid: TierSubscription | None
    benefits: Sequence[str]
    multiplier: tuple[int, int] | None


def view(session: Session, member_id: int, now: datetime, program_id: int = DEFAULT_PROGRAM) -> TierView:
    current = ladder(session, program_id)
    if current is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"program {program_id} has no tier ladder")
    held = earned_tier(session, member_id, program_id)
    bought = paid(session, member_id, now, program_id)
    tier = effective(current, held.tier if held else None, bought.tier if bought else None)
    rung = current.get(tier)
    return TierView(
        tier=tier,
        earned=standing(
            current,
            held.tier if held else None,
            metric_value(session, current, member_id, now, program_id),
            held.next_review_at if held else None,
        ),
        paid=bought,
        benefits=rung.benefits if rung else (),
        multiplier=(rung.multiplier_numerator, rung.multiplier_denominator) if rung else None,
    )


def subscribe(
    uow: UnitOfWork,
    member_id: int,
    *,
    tier: str,
    period_days: int,
    currency: str,
    price_minor: int,
    payment_ref: str,
    sold_by: int | None,
    program_id: int = DEFAULT_PROGRAM,
) -> TierSubscription:
    """A paid tier for `period_days`, paid in money (`payment_ref`). One bought while another of
    the member's runs starts when that one ends: a renewal. A tier multiplies what the member
    earns at every partner, so only the operator (`sold_by` None) may give one away."""
    if payment_ref.startswith(POINTS_PAYMENT):
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"payment references starting {POINTS_PAYMENT!r} are the program's own"
        )
    if sold_by is not None and price_minor <= 0:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, "a partner sells a tier for a price: only the operator gives one away"
        )
    if uow.session.scalar(select(TierSubscription.id).where(TierSubscription.payment_ref == payment_ref)):
        raise ConflictError(ErrorCode.PAYMENT_USED, f"payment {payment_ref!r} paid for a tier already")
    return _start(
        uow.session,
        member_id,
        tier,
        period_days,
        program_id,
        currency=currency,
        price_minor=price_minor,
        payment_ref=payment_ref,
        sold_by=sold_by,
    )


def paid_with_points(session: Session, redemption: Redemption, reward: Reward) -> TierSubscription | None:
    """The tier a posted redemption of a tier reward bought (once: a reorg that posts the
    redemption again finds it bought)."""
    if reward.tier is None or reward.tier_period_days is None:
        return None
    if (
        found := session.scalar(select(TierSubscription).where(TierSubscription.redemption_id == redemption.id))
    ) is not None:
        return found
    try:
        return _start(
            session,
            redemption.member_id,
            reward.tier,
            reward.tier_period_days,
            reward.program_id,
            price_points=redemption.amount_points,
            redemption_id=redemption.id,
            payment_ref=f"{POINTS_PAYMENT}{redemption.id}",
            sold_by=redemption.partner_id,
        )
    except UnprocessableError:  # the ladder lost the tier since the reward was made: the points bought nothing
        log.warning("redemption %s bought tier %r, which the ladder no longer has", redemption.id, reward.tier)
        return None


def unpaid(session: Session, redemption_id: int) -> None:
    """The redemption that paid for a tier in points was voided after all (its burn, posted,
    was reorged away and then refused): the tier ends now."""
    found = session.scalar(select(TierSubscription).where(TierSubscription.redemption_id == redemption_id))
    if found is not None:
        _end(found)
        session.flush()


def _start(
    session: Session, member_id: int, tier: str, period_days: int, program_id: int, **payment: Any
) -> TierSubscription:
    current = ladder(session, program_id)
    if current is None or current.get(tier) is None:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, f"the program has no tier {tier!r}")
    now = utcnow()
    latest = session.scalar(
        select(func.max(TierSubscription.ends_at)).where(
            TierSubscription.member_id == member_id,
            TierSubscription.program_id == program_id,
            TierSubscription.cancelled_at.is_(None),
            TierSubscription.ends_at > now,
        )
    )
    starts_at = max(now, latest) if latest else now
    subscription = TierSubscription(
        member_id=member_id,
        program_id=program_id,
        tier=tier,
        starts_at=starts_at,
        ends_at=starts_at + timedelta(days=period_days),
        **payment,
    )
    session.add(subscription)
    session.flush()
    return subscription


def cancel(uow: UnitOfWork, member_id: int, subscription_id: int, partner_id: int | None) -> TierSubscription:
    """End a paid tier now (refunding the money is the seller's, outside this service). A
    partner cancels only the tiers it sold (others' are as if absent)."""
    found = uow.session.get(TierSubscription, subscription_id)
    if found is None or found.member_id != member_id or (partner_id is not None and found.sold_by != partner_id):
        raise NotFoundError(ErrorCode.NOT_FOUND, f"member {member_id} has no tier subscription {subscription_id}")
    _end(found)
    uow.session.flush()
    return found


def _end(subscription: TierSubscription) -> None:
    """End a paid tier now (once)."""
    if subscription.cancelled_at is None:
        subscription.cancelled_at = utcnow()
        subscription.ends_at = min(subscription.ends_at, max(subscription.starts_at, subscription.cancelled_at))
