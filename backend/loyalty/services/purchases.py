"""Purchases: priced by the partner's rules, held pending for the program's pending period,
then released (minted through the outbox, after paying any points debt). A refund inside the
window takes back points not yet minted; after it, it becomes a debt the member's next
releases pay first: never a burn without the member's consent.

Budgets: a purchase's awards are reserved against the partner's budget when it is recorded
(`pending_points`, as an accepted earn is), so a release never finds the budget spent."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import (
    Award,
    Debt,
    Earn,
    EarnStatus,
    Member,
    Partner,
    Program,
    Purchase,
    PurchaseStatus,
    Refund,
    RuleVersion,
    utcnow,
)
from loyalty.domain.earning.context import Activity, Line, LineKind, MemberFacts, Trigger
from loyalty.domain.earning.engine import Award as Awarded
from loyalty.domain.earning.engine import Rule, evaluate, period_start, rule_from_definition
from loyalty.domain.earning.refunds import RefundLine, remaining, reversals, settle
from loyalty.domain.tiers import multiplied
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import rules, tiers
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

DEFAULT_PROGRAM = 1
RELEASE_BATCH = 500
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours a till's clock may be


def program(session: Session, program_id: int = DEFAULT_PROGRAM) -> Program:
    found = session.get(Program, program_id)
    if found is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no program {program_id}")
    return found


def record(
    uow: UnitOfWork,
    partner_id: int,
    member: Member,
    *,
    order_id: str,
    occurred_at: datetime,
    currency: str,
    lines: Sequence[Line],
) -> tuple[Purchase, list[Award]]:
    """Price an order under the partner's active rules and hold its points pending (or mint
    them at once with no pending period). An order recorded before is `409 order_exists`."""
    session = uow.session
    if occurred_at > utcnow() + CLOCK_SKEW:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"the order occurred in the future ({occurred_at.isoformat()})"
        )
    if (found := _find(session, partner_id, order_id)) is not None:
        raise ConflictError(ErrorCode.ORDER_EXISTS, f"order {order_id!r} was recorded as purchase {found.id}")
    now = utcnow()
    tier = tiers.tier_of(session, member.id, now)
    active = rules.active_rules(uow, partner_id)
    capped = [rule for rule in active.by_id.values() if rule.limits.per_member is not None]
    earned = _earned_since(
        session, member.id, {rule.id: period_start(occurred_at, rule.limits.period) for rule in capped}
    )
    awarded = evaluate(Activity(Trigger.PURCHASE, occurred_at, lines), MemberFacts(tier=tier), active, earned)
    ladder = tiers.ladder(session)
    extra = multiplied(ladder, tier, sum(a.points for a in awarded)) if ladder else 0
    total = sum(a.points for a in awarded) + extra
    _reserve(session, partner_id, total)
    offset = occurred_at.utcoffset()
    purchase = Purchase(
        partner_id=partner_id,
        member_id=member.id,
        order_id=order_id,
        occurred_at=occurred_at,
        utc_offset_min=int(offset.total_seconds() // 60) if offset else 0,
        currency=currency,
        lines=json.dumps([asdict(line) for line in lines]),
        net_minor=_net(lines),
        pending_until=occurred_at + timedelta(days=program(session).pending_days),
    )
    session.add(purchase)
    session.flush()
    rows = [_award_row(purchase, a) for a in awarded]
    if extra:
        rung = ladder.get(tier) if ladder else None
        assert rung is not None
        rows.append(
            Award(
                purchase_id=purchase.id,
                member_id=member.id,
                tier=tier,
                points=extra,
                reason=f"{tier} tier: x{rung.multiplier_numerator}/{rung.multiplier_denominator}",
            )
        )
    session.add_all(rows)
    session.flush()
    tiers.review(session, member.id, now, at_review=False)
    if purchase.pending_until <= now:
        release(session, purchase.id)
        session.refresh(purchase)
    return purchase, rows


def refund(
    uow: UnitOfWork, partner_id: int, order_id: str, refund_id: str, refunded: Sequence[RefundLine] | None
) -> Refund:
    """Refund the order, whole (`refunded` None) or by lines. Each rule takes back what it gave
    less what it gives the lines left (at the versions that priced the order). Pending, the
    points are simply not minted; released, they become the member's debt. A refund id seen
    before answers the refund it made."""
    session = uow.session
    purchase = _find(session, partner_id, order_id, lock=True)
    if purchase is None:
        raise NotFoundError(ErrorCode.PURCHASE_NOT_FOUND, f"no order {order_id!r}")
    if (
        done := session.scalar(select(Refund).where(Refund.purchase_id == purchase.id, Refund.refund_id == refund_id))
    ) is not None:
        return done
    before = remaining(_lines(purchase), _refunded_so_far(session, purchase))
    if not before:
        raise ConflictError(ErrorCode.PURCHASE_REFUNDED, f"order {order_id!r} is refunded in full")
    after = remaining(before, refunded)
    given = _points_by_rule(session, purchase.id)
    by_tier = given.get(None, 0)
    so_far = {rule_id: points for rule_id, points in given.items() if rule_id is not None}
    versions = _versions_used(session, purchase.id)
    tier = _tier_used(session, purchase.id)
    activity = Activity(Trigger.PURCHASE, _local_time(purchase), after)
    recomputed = {a.rule_id: a.points for a in evaluate(activity, MemberFacts(tier=tier), versions)}
    taken: dict[int | None, int] = {rule_id: back for rule_id, back in reversals(so_far, recomputed).items()}
    rules_before = sum(so_far.values())
    rules_after = rules_before - sum(taken.values())
    tier_back = by_tier - (by_tier * rules_after // rules_before if rules_before else 0)
    if tier_back:
        taken[None] = tier_back
    points = sum(taken.values())
    released = purchase.status == PurchaseStatus.RELEASED
    row = Refund(
        purchase_id=purchase.id,
        refund_id=refund_id,
        lines=None if refunded is None else json.dumps([asdict(item) for item in refunded]),
        points_reversed=points,
        debt_points=points if released else 0,
        net_minor=_net(before) - _net(after),
    )
    session.add(row)
    session.flush()
    version_of = {rule.id: rule.version for rule in versions}
    session.add_all(
        Award(
            purchase_id=purchase.id,
            member_id=purchase.member_id,
            rule_id=rule_id,
            rule_version=version_of[rule_id] if rule_id is not None else None,
            tier=tier if rule_id is None else None,
            points=-back,
            reason=f"refund {refund_id}",
            refund_id=row.id,
        )
        for rule_id, back in taken.items()
    )
    if released and points:
        session.add(
            Debt(
                member_id=purchase.member_id,
                partner_id=partner_id,
                points=points,
                purchase_id=purchase.id,
                reason=f"refund {refund_id} of order {order_id} after its points were released",
            )
        )
    elif points:
        _unreserve(session, partner_id, points)
    session.flush()
    tiers.review(session, purchase.member_id, utcnow(), at_review=False)
    return row


def release(session: Session, purchase_id: int) -> bool:
    """Release a pending purchase's points, once: pay the member's debt to the partner first,
    mint the rest (an earn in the outbox, its budget reserved since the purchase). False if
    another release took it."""
    taken = session.execute(
        update(Purchase)
        .where(Purchase.id == purchase_id, Purchase.status == PurchaseStatus.PENDING)
        .values(status=PurchaseStatus.RELEASED, released_at=utcnow())
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    purchase = session.get(Purchase, purchase_id)
    assert purchase is not None
    points = sum(_points_by_rule(session, purchase_id).values())
    debt = debt_of(session, purchase.member_id, purchase.partner_id)
    paid, minted = settle(points, debt)
    if paid:
        session.add(
            Debt(
                member_id=purchase.member_id,
                partner_id=purchase.partner_id,
                points=-paid,
                purchase_id=purchase_id,
                reason=f"paid from order {purchase.order_id}",
            )
        )
        _unreserve(session, purchase.partner_id, paid)
    if minted:
        earn = Earn(
            partner_id=purchase.partner_id,
            member_id=purchase.member_id,
            amount_points=minted,
            reason=f"order {purchase.order_id}",
            status=EarnStatus.PENDING,
        )
        session.add(earn)
        session.flush()
        purchase.earn_id = earn.id
    session.flush()
    return True


def release_due(session: Session, now: datetime) -> int:
    """Release the purchases whose pending period has ended (a batch); returns how many."""
    due = session.scalars(
        select(Purchase.id)
        .where(Purchase.status == PurchaseStatus.PENDING, Purchase.pending_until <= now)
        .order_by(Purchase.pending_until)
        .limit(RELEASE_BATCH)
    ).all()
    return sum(release(session, purchase_id) for purchase_id in due)


def get(uow: UnitOfWork, partner_id: int, order_id: str) -> Purchase:
    found = _find(uow.session, partner_id, order_id)
    if found is None:
        raise NotFoundError(ErrorCode.PURCHASE_NOT_FOUND, f"no order {order_id!r}")
    return found


def awards_of(session: Session, purchase_id: int) -> Sequence[Award]:
    return session.scalars(select(Award).where(Award.purchase_id == purchase_id).order_by(Award.id)).all()


def page_purchases(
    uow: UnitOfWork, *, partner_id: int | None, member_id: int | None, cursor: str | None, limit: int
) -> Page[Purchase]:
    query = select(Purchase)
    if partner_id is not None:
        query = query.where(Purchase.partner_id == partner_id)
    if member_id is not None:
        query = query.where(Purchase.member_id == member_id)
    return keyset(uow.session, query, [Purchase.id], cursor, limit)


def pending_of(session: Session, member_id: int, partner_id: int | None = None) -> int:
    """Points awarded to the member and not released yet."""
    query = (
        select(func.coalesce(func.sum(Award.points), 0))
        .join(Purchase, Purchase.id == Award.purchase_id)
        .where(Purchase.member_id == member_id, Purchase.status == PurchaseStatus.PENDING)
    )
    if partner_id is not None:
        query = query.where(Purchase.partner_id == partner_id)
    return int(session.scalar(query) or 0)


def debt_of(session: Session, member_id: int, partner_id: int | None = None) -> int:
    """The member's points debt (to one partner, or to all)."""
    query = select(func.coalesce(func.sum(Debt.points), 0)).where(Debt.member_id == member_id)
    if partner_id is not None:
        query = query.where(Debt.partner_id == partner_id)
    return int(session.scalar(query) or 0)


# ----------------------------------------------------------------------------------- private
def _find(session: Session, partner_id: int, order_id: str, *, lock: bool = False) -> Purchase | None:
    query = select(Purchase).where(Purchase.partner_id == partner_id, Purchase.order_id == order_id)
    return session.scalar(query.with_for_update() if lock else query)


def _reserve(session: Session, partner_id: int, points: int) -> None:
    left = session.execute(
        select(Partner.budget_points - Partner.pending_points).where(Partner.id == partner_id).with_for_update()
    ).scalar_one()
    if points > left:
        raise UnprocessableError(
            ErrorCode.BUDGET_EXCEEDED, f"the purchase earns {points} points; partner {partner_id} has {left} left"
        )
    if points:
        session.execute(
            update(Partner)
            .where(Partner.id == partner_id)
            .values(pending_points=Partner.pending_points + points)
            .execution_options(synchronize_session=False)
        )


def _unreserve(session: Session, partner_id: int, points: int) -> None:
    session.execute(
        update(Partner)
        .where(Partner.id == partner_id)
        .values(pending_points=Partner.pending_points - points)
        .execution_options(synchronize_session=False)
    )


def _award_row(purchase: Purchase, awarded: Awarded) -> Award:
    return Award(
        purchase_id=purchase.id,
        member_id=purchase.member_id,
        rule_id=awarded.rule_id,
        rule_version=awarded.rule_version,
        points=awarded.points,
        reason=awarded.reason,
        capped_by=awarded.capped_by,
    )


def _earned_since(session: Session, member_id: int, since: Mapping[int, datetime]) -> dict[int, int]:
    """What each rule gave the member in its limit's current period (`since`: its start), in
    one query."""
    if not since:
        return {}
    rows = session.execute(
        select(Award.rule_id, Purchase.occurred_at, Award.points)
        .join(Purchase, Purchase.id == Award.purchase_id)
        .where(
            Award.member_id == member_id,
            Award.rule_id.in_(since),
            Purchase.occurred_at >= min(since.values()),
        )
    )
    earned = dict.fromkeys(since, 0)
    for rule_id, occurred_at, points in rows:
        if rule_id is not None and occurred_at >= since[rule_id]:
            earned[rule_id] += points
    return earned


def _lines(purchase: Purchase) -> list[Line]:
    return [Line(**{**line, "kind": LineKind(line["kind"])}) for line in json.loads(purchase.lines)]


def _refunded_so_far(session: Session, purchase: Purchase) -> list[RefundLine] | None:
    """Every unit refunded so far; None once the whole order was."""
    so_far: list[RefundLine] = []
    for (lines,) in session.execute(select(Refund.lines).where(Refund.purchase_id == purchase.id)):
        if lines is None:
            return None
        so_far += [RefundLine(**item) for item in json.loads(lines)]
    return so_far


def _net(lines: Sequence[Line]) -> int:
    return sum(line.net_minor for line in lines if line.kind == LineKind.ITEM)


def _tier_used(session: Session, purchase_id: int) -> str | None:
    """The tier whose multiplier the purchase earned (None if it earned none)."""
    return session.scalar(select(Award.tier).where(Award.purchase_id == purchase_id, Award.tier.is_not(None)).limit(1))


def _points_by_rule(session: Session, purchase_id: int) -> dict[int | None, int]:
    return {
        rule_id: int(points)
        for rule_id, points in session.execute(
            select(Award.rule_id, func.sum(Award.points))
            .where(Award.purchase_id == purchase_id)
            .group_by(Award.rule_id)
        )
    }


def _versions_used(session: Session, purchase_id: int) -> list[Rule]:
    """The rules, at the versions that priced the purchase."""
    used = session.execute(
        select(Award.rule_id, Award.rule_version, RuleVersion.definition)
        .join(RuleVersion, (RuleVersion.rule_id == Award.rule_id) & (RuleVersion.version == Award.rule_version))
        .where(Award.purchase_id == purchase_id, Award.refund_id.is_(None), Award.rule_id.is_not(None))
        .distinct()
    )
    return [
        rule_from_definition(rule_id, version, json.loads(definition))
        for rule_id, version, definition in used
        if rule_id is not None and version is not None
    ]


def _local_time(purchase: Purchase) -> datetime:
    return purchase.occurred_at.astimezone(timezone(timedelta(minutes=purchase.utc_offset_min)))
