"""Purchases: priced by the partner's rules, its tier ladder and its running campaigns, held
pending for the program's pending period, then released (minted through the outbox, after
paying any points debt). A refund inside the window takes back points not yet minted; after
it, it becomes a debt the member's next releases pay first: never a burn without the member's
consent.

Budgets: a purchase's awards are held against their issuer accounts' budgets when it is
recorded (`services.awards`), so a release never finds the budget spent. A campaign short of
budget gives what is left, or nothing, as it says."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import datetime, timedelta, timezone

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import (
    Award,
    Debt,
    Member,
    Program,
    Purchase,
    PurchaseStatus,
    Refund,
    RuleVersion,
    utcnow,
)
from loyalty.domain import campaigns as campaign_rules
from loyalty.domain.earning.context import Activity, Line, LineKind, MemberFacts, Trigger
from loyalty.domain.earning.engine import Rule, RuleSet, evaluate_lines, rule_from_definition
from loyalty.domain.earning.refunds import RefundLine, remaining, reversals
from loyalty.errors import ConflictError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import awards, campaigns, pricing, referrals, tiers
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

DEFAULT_PROGRAM = 1
RELEASE_BATCH = 500
CLOCK_SKEW = timedelta(minutes=5)  # how far ahead of ours a till's clock may be
MAX_AGE = timedelta(days=90)  # how late an activity may be reported
Source = tuple[str, int | None]  # what made an award: ("rule", id), ("tier", None) or ("campaign", id)


def program(session: Session, program_id: int = DEFAULT_PROGRAM) -> Program:
    found = session.get(Program, program_id)  # the session's identity map: one read per transaction
    if found is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no program {program_id}")
    return found


def check_occurred_at(occurred_at: datetime, now: datetime) -> None:
    """An activity is reported when it happens, or up to `MAX_AGE` later; never from the future."""
    if occurred_at > now + CLOCK_SKEW:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, f"it occurred in the future ({occurred_at.isoformat()})")
    if occurred_at < now - MAX_AGE:
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, f"it occurred more than {MAX_AGE.days} days ago ({occurred_at.isoformat()})"
        )


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
    """Price an order (`price`) and hold its points pending (or mint them at once with no
    pending period). An order recorded before is `409 order_exists`; points past the partner's
    budget are `422 budget_exceeded` (a campaign short of its own budget gives less instead)."""
    session = uow.session
    now = utcnow()
    check_occurred_at(occurred_at, now)
    if currency != (accepted := program(session).currency):
        raise UnprocessableError(
            ErrorCode.CURRENCY_NOT_ACCEPTED, f"the program prices purchases in {accepted}, not {currency}"
        )
    offer = campaigns.running(session, partner_id)
    # The partner's row lock first: its members' caps, debts and budget are read under it.
    left = awards.available(session, [partner_id, *(offer.issuers[c.id] for c in offer.at(occurred_at))])
    if (found := _find(session, partner_id, order_id)) is not None:
        raise ConflictError(ErrorCode.ORDER_EXISTS, f"order {order_id!r} was recorded as purchase {found.id}")
    facts = awards.facts_of(session, member.id, partner_id, now)
    priced = pricing.price(
        session,
        partner_id,
        Activity(Trigger.PURCHASE, occurred_at, lines),
        facts,
        member_id=member.id,
        budget_left=left,
    )
    total = priced.own_points
    if total and total > left[partner_id]:
        raise UnprocessableError(
            ErrorCode.BUDGET_EXCEEDED,
            f"the purchase earns {total} points; partner {partner_id} has {left[partner_id]} left",
        )
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
        facts=json.dumps({"tier": facts.tier, "segments": sorted(facts.segments)}),
        pending_until=occurred_at + timedelta(days=program(session).pending_days),
    )
    session.add(purchase)
    session.flush()
    made = dict(purchase_id=purchase.id, member_id=member.id, occurred_at=occurred_at)
    rows = [
        Award(
            **made,
            rule_id=a.rule_id,
            rule_version=a.rule_version,
            points=a.points,
            reason=a.reason,
            capped_by=a.capped_by,
        )
        for a in priced.awards
    ]
    if priced.tier_extra:
        rows.append(Award(**made, tier=facts.tier, points=priced.tier_extra, reason=priced.tier_reason))
    rows += [
        Award(**made, campaign_id=b.campaign_id, points=b.points, reason=b.reason, capped_by=b.capped_by)
        for b in priced.bonuses
    ]
    session.add_all(rows)
    awards.hold(session, partner_id, total)
    for bonus in priced.bonuses:
        awards.hold(session, priced.issuers[bonus.campaign_id], bonus.points)
    session.flush()
    tiers.review(session, member.id, now, at_review=False)
    if purchase.pending_until <= now:
        release(session, purchase.id)
        session.refresh(purchase)
    return purchase, rows


def refund(
    uow: UnitOfWork, partner_id: int, order_id: str, refund_id: str, refunded: Sequence[RefundLine] | None
) -> Refund:
    """Refund the order, whole (`refunded` None) or by lines. Each rule and campaign takes back
    what it gave less what it gives the lines left (at the rule versions that priced the order,
    with what the rules knew of the member then); a tier's multiplier goes back in proportion.
    Pending, the points are simply not minted; released, they become the member's debt. A
    refund id seen before answers the refund it made."""
    session = uow.session
    purchase = _find(session, partner_id, order_id, lock=True)
    if purchase is None:
        raise NotFoundError(ErrorCode.PURCHASE_NOT_FOUND, f"no order {order_id!r}")
    asked = None if refunded is None else json.dumps([asdict(item) for item in refunded])
    if (
        done := session.scalar(select(Refund).where(Refund.purchase_id == purchase.id, Refund.refund_id == refund_id))
    ) is not None:
        if done.lines != asked:
            raise ConflictError(
                ErrorCode.REFUND_EXISTS, f"refund {refund_id!r} of order {order_id!r} was for other lines"
            )
        return done
    before = remaining(_lines(purchase), _refunded_so_far(session, purchase))
    if not before:
        raise ConflictError(ErrorCode.PURCHASE_REFUNDED, f"order {order_id!r} is refunded in full")
    after = remaining(before, refunded)
    given = _given(session, purchase.id)
    versions = RuleSet(_versions_used(session, purchase.id))
    facts = _facts(session, purchase)
    activity = Activity(Trigger.PURCHASE, _local_time(purchase), after)
    evaluation = evaluate_lines(activity, facts, versions)
    recomputed: dict[Source, int] = {("rule", a.rule_id): a.points for a in evaluation.awards}
    used = [cid for kind, cid in given if kind == "campaign" and cid is not None]
    if used:
        recomputed |= {
            ("campaign", b.campaign_id): b.points
            for b in campaign_rules.apply(campaigns.compiled(session, used), activity, facts, evaluation)
        }
    by_tier = given.pop(("tier", None), 0)
    taken = reversals(given, recomputed)
    rules_before = sum(points for (kind, _), points in given.items() if kind == "rule")
    rules_after = rules_before - sum(points for (kind, _), points in taken.items() if kind == "rule")
    if tier_back := by_tier - (by_tier * rules_after // rules_before if rules_before else 0):
        taken[("tier", None)] = tier_back
    points = sum(taken.values())
    released = purchase.status == PurchaseStatus.RELEASED
    row = Refund(
        purchase_id=purchase.id,
        refund_id=refund_id,
        lines=asked,
        points_reversed=points,
        debt_points=points if released else 0,
        net_minor=_net(before) - _net(after),
    )
    session.add(row)
    session.flush()
    version_of = {rule.id: rule.version for rule in versions.by_id.values()}
    made = dict(
        purchase_id=purchase.id, member_id=purchase.member_id, occurred_at=purchase.occurred_at, refund_id=row.id
    )
    reason = f"refund {refund_id}"
    for (kind, source_id), back in taken.items():
        if kind == "rule":
            session.add(
                Award(**made, rule_id=source_id, rule_version=version_of[source_id or 0], points=-back, reason=reason)
            )
        elif kind == "campaign":
            session.add(Award(**made, campaign_id=source_id, points=-back, reason=reason))
        else:
            session.add(Award(**made, tier=facts.tier, points=-back, reason=reason))
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
        issuers = awards.issuers_of(session, partner_id, (cid for kind, cid in taken if kind == "campaign"))
        for (kind, source_id), back in taken.items():
            awards.hold(session, issuers[source_id if kind == "campaign" else None], -back)
    session.flush()
    tiers.review(session, purchase.member_id, utcnow(), at_review=False)
    return row


def release(session: Session, purchase_id: int) -> bool:
    """Release a pending purchase's points, once: pay the member's debt to the partner first,
    mint the rest (an earn per issuer account in the outbox, its budget held since the
    purchase); then, if it is the member's first qualifying purchase since a friend referred
    it, reward the referral. False if another release took it."""
    taken = session.execute(
        update(Purchase)
        .where(Purchase.id == purchase_id, Purchase.status == PurchaseStatus.PENDING)
        .values(status=PurchaseStatus.RELEASED, released_at=utcnow())
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        return False
    purchase = session.get(Purchase, purchase_id)
    assert purchase is not None
    made = awards_of(session, purchase_id)
    earns = awards.mint(
        session, purchase.member_id, purchase.partner_id, made, f"order {purchase.order_id}", purchase_id
    )
    own = [earn for earn in earns if earn.partner_id == purchase.partner_id]
    purchase.earn_id = own[0].id if own else None
    left = remaining(_lines(purchase), _refunded_so_far(session, purchase))
    if left:
        referrals.on_release(session, purchase, left, _local_time(purchase))
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


# ----------------------------------------------------------------------------------- private
def _find(session: Session, partner_id: int, order_id: str, *, lock: bool = False) -> Purchase | None:
    query = select(Purchase).where(Purchase.partner_id == partner_id, Purchase.order_id == order_id)
    return session.scalar(query.with_for_update(key_share=True) if lock else query)


def _given(session: Session, purchase_id: int) -> dict[Source, int]:
    """What each rule, the tier and each campaign has given the purchase so far, take-backs counted."""
    given: dict[Source, int] = {}
    for rule_id, campaign_id, points in session.execute(
        select(Award.rule_id, Award.campaign_id, func.sum(Award.points))
        .where(Award.purchase_id == purchase_id)
        .group_by(Award.rule_id, Award.campaign_id)
    ):
        source: Source = ("rule", rule_id) if rule_id else ("campaign", campaign_id) if campaign_id else ("tier", None)
        given[source] = int(points)
    return given


def _facts(session: Session, purchase: Purchase) -> MemberFacts:
    """What the rules knew of the member when they priced the purchase (before 0.4 only the
    tier whose multiplier it earned was kept)."""
    if purchase.facts is not None:
        known = json.loads(purchase.facts)
        return MemberFacts(tier=known["tier"], segments=frozenset(known["segments"]))
    return MemberFacts(
        tier=session.scalar(
            select(Award.tier).where(Award.purchase_id == purchase.id, Award.tier.is_not(None)).limit(1)
        )
    )


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
