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
from dataclasses import asdict, dataclass, replace
from datetime import datetime, timedelta, timezone
from typing import Any, cast

from sqlalchemy import Table, bindparam, func, insert, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import (
    Award,
    Debt,
    Earn,
    EarnStatus,
    MemberLink,
    MemberSegment,
    Partner,
    Program,
    Purchase,
    PurchaseStatus,
    Referral,
    ReferralStatus,
    Refund,
    RuleVersion,
    utcnow,
)
from loyalty.db.session import allocate_ids, insert_rows, pairs_in
from loyalty.domain import campaigns as campaign_rules
from loyalty.domain.earning.context import Activity, Line, LineKind, MemberFacts, Trigger
from loyalty.domain.earning.engine import Rule, RuleSet, evaluate_lines, rule_from_definition
from loyalty.domain.earning.refunds import RefundLine, remaining, reversals
from loyalty.errors import ConflictError, DomainError, ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import awards, campaigns, partners, pricing, referrals, tiers, webhooks
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


@dataclass(frozen=True)
class Order:
    """A partner's report of what a member bought, to earn in a program (the brand's issuer
    account there prices it: its rules, its campaigns, the program's ladder and settings)."""

    partner_id: int
    member_id: int
    order_id: str
    occurred_at: datetime
    currency: str
    lines: Sequence[Line]
    program_id: int = DEFAULT_PROGRAM


@dataclass
class Recorded:
    """A purchase recorded, as the rows written (`purchase`: its columns and id; `awards`:
    its awards' columns), so an answer needs no second read."""

    purchase: dict[str, Any]
    awards: list[dict[str, Any]]


def record(uow: UnitOfWork, order: Order) -> Recorded:
    """Record one order (see `record_many`); a refusal is raised."""
    [recorded] = record_many(uow, [order])
    if isinstance(recorded, DomainError):
        raise recorded
    return recorded


def record_many(uow: UnitOfWork, orders: Sequence[Order]) -> list[Recorded | DomainError]:
    """Price orders (`services.pricing`) and hold their points pending, or mint them at once
    when their pending period is over (none, or reported late); each order is recorded, or
    refused with why, in order, as if alone: a program the partner does not issue in is `422
    program_not_joined`, a member not linked to the partner `404 member_not_found`, an order
    recorded before (in that program) `409 order_exists`, points past the partner's budget
    there `422 budget_exceeded` (a campaign short of its own budget gives less instead).

    A group of orders is read and written together: one query per kind of row for all of them
    (members, caps, tiers, debts), and one INSERT per table. What an order changes (a member's
    caps and tier, a partner's budget, a member's debt) the orders after it see."""
    session = uow.session
    now = utcnow()
    results: list[Recorded | DomainError | None] = [None] * len(orders)
    accounts = partners.accounts_in(
        uow, {(o.partner_id, o.program_id) for o in orders if o.program_id != partners.FIRST_PROGRAM}
    )
    placed = list(orders)  # each priced by the brand's account in its program
    for i, order in enumerate(orders):
        if order.program_id != partners.FIRST_PROGRAM:
            if (account := accounts.get((order.partner_id, order.program_id))) is None:
                results[i] = partners.not_joined(order.partner_id, order.program_id)
            else:
                placed[i] = replace(order, partner_id=account)
    linked = {
        (member_id, brand_id)
        for member_id, brand_id in session.execute(
            select(MemberLink.member_id, MemberLink.partner_id).where(
                pairs_in(MemberLink.partner_id, MemberLink.member_id, {(o.partner_id, o.member_id) for o in orders})
            )
        )
    }
    for i, order in enumerate(orders):
        if results[i] is not None:
            continue
        try:
            if (order.member_id, order.partner_id) not in linked:
                raise NotFoundError(ErrorCode.MEMBER_NOT_FOUND, f"no member {order.member_id}")
            check_occurred_at(order.occurred_at, now)
            if order.currency != (settings := program(session, order.program_id)).currency:
                raise UnprocessableError(
                    ErrorCode.CURRENCY_NOT_ACCEPTED,
                    f"program {order.program_id} prices purchases in {settings.currency}, not {order.currency}",
                )
        except DomainError as refused:
            results[i] = refused
    live = [i for i, result in enumerate(results) if result is None]
    if not live:
        return [r for r in results if r is not None]
    group = _Group(session, [placed[i] for i in live], now)
    for i in live:
        results[i] = group.record(placed[i], program(session, orders[i].program_id).pending_days)
    group.write()
    return [r for r in results if r is not None]


# The tables themselves: a group's rows go in as plain executemany INSERTs (the ORM's bulk
# insert would look at each row, and a mapped class's statement runs once per row here).
_EARNS, _PURCHASES, _AWARDS, _DEBTS, _PARTNERS = (
    cast(Table, model.__table__) for model in (Earn, Purchase, Award, Debt, Partner)
)


def _lines_json(lines: Sequence[Line]) -> str:
    """An order's lines as stored (dataclasses.asdict, written out: it copies deeply, slowly)."""
    return json.dumps(
        [
            {"sku": line.sku, "category": line.category, "quantity": line.quantity,
             "unit_price_minor": line.unit_price_minor, "discount_minor": line.discount_minor, "kind": line.kind.value}
            for line in lines
        ]
    )  # fmt: skip


class _Group:
    """What a group of orders reads once and writes at once."""

    def __init__(self, session: Session, orders: Sequence[Order], now: datetime) -> None:
        self.session, self.now = session, now
        accounts = sorted({o.partner_id for o in orders})
        self.offers = {p: pricing.offer_of(session, p) for p in accounts}
        issuers = {*accounts, *(i for offer in self.offers.values() for i in offer.campaigns.issuers.values())}
        # The partners' row locks first (ids in order: two groups cannot deadlock): their members'
        # caps and debts, and their budgets, are read and written under them.
        self.left = awards.available(session, sorted(issuers))
        self.taken = {
            (partner_id, order_id)
            for partner_id, order_id in session.execute(
                select(Purchase.partner_id, Purchase.order_id).where(
                    pairs_in(Purchase.partner_id, Purchase.order_id, {(o.partner_id, o.order_id) for o in orders})
                )
            )
        }
        members = {o.member_id for o in orders}
        # Each program's ladder, and its members' standings there (a tier is per program).
        ladders = {offer.program_id: offer.ladder for offer in self.offers.values() if offer.ladder is not None}
        self.standings = {
            program_id: tiers.Standings(
                session, ladder, {o.member_id for o in orders if o.program_id == program_id}, now, program_id
            )
            for program_id, ladder in ladders.items()
        }
        self.segments: dict[tuple[int, int], set[str]] = {}  # by member and brand
        for member_id, brand_id, tag in session.execute(
            select(MemberSegment.member_id, MemberSegment.partner_id, MemberSegment.tag).where(
                MemberSegment.member_id.in_(members),
                MemberSegment.partner_id.in_({offer.brand_id for offer in self.offers.values()}),
            )
        ):
            self.segments.setdefault((member_id, brand_id), set()).add(tag)
        windows = [
            w
            for o in orders
            for kind in self.offers[o.partner_id].cap_windows(Activity(Trigger.PURCHASE, o.occurred_at, ()))
            for w in kind.values()
        ]
        capped_rules = {
            r.id for o in self.offers.values() for r in o.rules.by_id.values() if r.limits.per_member is not None
        }
        capped_campaigns = {c.id for o in self.offers.values() for c in o.campaigns.all if c.per_member is not None}
        self.earned = awards.earned_rows(session, members, capped_rules, capped_campaigns, windows)
        self.debts: dict[tuple[int, int], int] = {
            (member_id, partner_id): int(points)
            for member_id, partner_id, points in session.execute(
                select(Debt.member_id, Debt.partner_id, func.sum(Debt.points))
                .where(Debt.member_id.in_(members), Debt.partner_id.in_(accounts))
                .group_by(Debt.member_id, Debt.partner_id)
            )
        }
        self.referred = set(
            session.scalars(
                select(Referral.friend_id).where(
                    Referral.friend_id.in_(members), Referral.status == ReferralStatus.PENDING
                )
            )
        )
        self.held: dict[int, int] = {}  # points held per issuer account, less debts paid
        self.purchases: list[dict[str, Any]] = []
        self.awards: list[list[dict[str, Any]]] = []  # per purchase
        self.earns: list[list[dict[str, Any]]] = []  # per purchase, one per issuer account minting
        self.payments: list[tuple[dict[str, Any], dict[str, Any]]] = []  # (a debt paid, the purchase paying it)
        self.to_refer: list[int] = []  # purchases (by position) released for a referred member

    def record(self, order: Order, pending_days: int) -> Recorded | DomainError:
        partner_id, member_id = order.partner_id, order.member_id
        if (partner_id, order.order_id) in self.taken:
            return ConflictError(ErrorCode.ORDER_EXISTS, f"order {order.order_id!r} was recorded already")
        offer = self.offers[partner_id]
        activity = Activity(Trigger.PURCHASE, order.occurred_at, order.lines)
        standings = self.standings.get(order.program_id)
        facts = MemberFacts(
            tier=standings.tier(member_id) if standings else None,
            segments=frozenset(self.segments.get((member_id, offer.brand_id), ())),
        )
        earned = self.earned.setdefault(member_id, [])
        rules_earned, campaigns_earned = awards.earned_in(earned, *offer.cap_windows(activity))
        priced = pricing.priced(
            offer, activity, facts, rules_earned=rules_earned, campaigns_earned=campaigns_earned, budget_left=self.left
        )
        total = priced.own_points
        if total and total > self.left[partner_id]:
            return UnprocessableError(
                ErrorCode.BUDGET_EXCEEDED,
                f"the purchase earns {total} points; partner {partner_id} has {self.left[partner_id]} left",
            )
        self.taken.add((partner_id, order.order_id))
        made: dict[str, Any] = {"member_id": member_id, "occurred_at": order.occurred_at, "rule_id": None, "rule_version": None,
                "tier": None, "campaign_id": None, "capped_by": None}  # fmt: skip
        rows = [
            {**made, "rule_id": a.rule_id, "rule_version": a.rule_version, "points": a.points, "reason": a.reason,
             "capped_by": a.capped_by}
            for a in priced.awards
        ]  # fmt: skip
        if priced.tier_extra:
            rows.append({**made, "tier": facts.tier, "points": priced.tier_extra, "reason": priced.tier_reason})
        rows += [
            {**made, "campaign_id": b.campaign_id, "points": b.points, "reason": b.reason, "capped_by": b.capped_by}
            for b in priced.bonuses
        ]
        issuer_of: dict[int | None, int] = {None: partner_id}
        issuer_of.update((campaign_id, issuer) for campaign_id, issuer in priced.issuers.items())
        for row in rows:
            issuer, points = issuer_of[row["campaign_id"]], int(row["points"])
            self.left[issuer] -= points
            self.held[issuer] = self.held.get(issuer, 0) + points
            earned.append((row["rule_id"], row["campaign_id"], order.occurred_at, points))
        offset = order.occurred_at.utcoffset()
        net = _net(order.lines)
        purchase: dict[str, Any] = {
            "partner_id": partner_id,
            "program_id": order.program_id,
            "member_id": member_id,
            "order_id": order.order_id,
            "occurred_at": order.occurred_at,
            "utc_offset_min": int(offset.total_seconds() // 60) if offset else 0,
            "currency": order.currency,
            "lines": _lines_json(order.lines),
            "net_minor": net,
            "facts": json.dumps({"tier": facts.tier, "segments": sorted(facts.segments)}),
            "status": PurchaseStatus.PENDING.value,
            "pending_until": order.occurred_at + timedelta(days=pending_days),
            "released_at": None,
            "earn_id": None,
            "created_at": self.now,
        }
        if standings is not None:
            standings.bought(member_id, order.occurred_at, net, sum(row["points"] for row in rows))
        earns = self._release(purchase, rows, issuer_of) if purchase["pending_until"] <= self.now else []
        self.purchases.append(purchase)
        self.awards.append(rows)
        self.earns.append(earns)
        return Recorded(purchase, rows)

    def _release(
        self, purchase: dict[str, Any], rows: list[dict[str, Any]], issuer_of: dict[int | None, int]
    ) -> list[dict[str, Any]]:
        """The purchase's points released as it is recorded (as `release` does): the member's
        debt to the partner paid first, the rest minted, an earn per issuer account."""
        member_id, partner_id = purchase["member_id"], purchase["partner_id"]
        purchase["status"], purchase["released_at"] = PurchaseStatus.RELEASED.value, self.now
        by_issuer: dict[int, list[dict[str, Any]]] = {}
        for row in sorted(rows, key=lambda r: (r["campaign_id"] is not None, r["campaign_id"] or 0)):
            by_issuer.setdefault(issuer_of[row["campaign_id"]], []).append(row)
        debt = self.debts.get((member_id, partner_id), 0)
        reason = f"order {purchase['order_id']}"
        shares = awards.split(
            [(issuer, sum(r["points"] for r in issued)) for issuer, issued in by_issuer.items()], debt
        )
        earns = []
        for (issuer_id, paid, minted), issued in zip(shares, by_issuer.values(), strict=True):
            self.held[issuer_id] -= paid
            self.left[issuer_id] += paid  # what pays a debt is not issued: the orders after may have it
            if minted:
                earn = {
                    "partner_id": issuer_id,
                    "member_id": member_id,
                    "amount_points": minted,
                    "reason": awards.earn_reason(reason, issuer_id == partner_id, issued[0]["reason"]),
                    "status": EarnStatus.PENDING.value,
                    "created_at": self.now,
                }
                earns.append(earn)
                for row in issued:
                    row["earn"] = earn  # its id once written
        if paid_total := sum(paid for _, paid, _ in shares):
            self.debts[(member_id, partner_id)] = debt - paid_total
            self.payments.append((awards.debt_payment(member_id, partner_id, paid_total, reason), purchase))
        if member_id in self.referred:
            self.to_refer.append(len(self.purchases))
        return earns

    def write(self) -> None:
        """Everything the group recorded, one INSERT per table, and each account's budget."""
        session = self.session
        earns = [earn for per_purchase in self.earns for earn in per_purchase]
        for earn, earn_id in zip(earns, allocate_ids(session, _EARNS, len(earns)), strict=True):
            earn["id"] = earn_id
        insert_rows(session, _EARNS, earns)
        for purchase, per_purchase in zip(self.purchases, self.earns, strict=True):
            own = [e for e in per_purchase if e["partner_id"] == purchase["partner_id"]]
            purchase["earn_id"] = own[0]["id"] if own else None
        for purchase, purchase_id in zip(
            self.purchases, allocate_ids(session, _PURCHASES, len(self.purchases)), strict=True
        ):
            purchase["id"] = purchase_id
        insert_rows(session, _PURCHASES, self.purchases)
        rows = []
        for purchase, per_purchase in zip(self.purchases, self.awards, strict=True):
            for row in per_purchase:
                row["purchase_id"] = purchase["id"]
                row["earn_id"] = row.pop("earn")["id"] if "earn" in row else None
                rows.append({**row, "created_at": self.now})
        insert_rows(session, _AWARDS, rows)
        if self.payments:
            session.execute(
                insert(_DEBTS),
                [{**paid, "purchase_id": by["id"], "created_at": self.now} for paid, by in self.payments],
            )
        if changed := [{"issuer": issuer, "delta": points} for issuer, points in self.held.items() if points]:
            session.execute(
                update(_PARTNERS)
                .where(_PARTNERS.c.id == bindparam("issuer"))
                .values(pending_points=_PARTNERS.c.pending_points + bindparam("delta")),
                changed,
            )
        for standings in self.standings.values():
            standings.write()
        for position in self.to_refer:
            purchase = self.purchases[position]
            found = session.get(Purchase, purchase["id"])
            assert found is not None
            referrals.on_release(session, found, _lines(found), _local_time(found))


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
    tiers.review(session, purchase.member_id, utcnow(), at_review=False, program_id=purchase.program_id)
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
    webhooks.emit(
        session,
        "purchase.pending_ended",
        [webhooks.Happened(f"purchase:{purchase.id}", purchase.partner_id, purchase.member_id,
                           {"purchase_id": purchase.id, "order_id": purchase.order_id, "member_id": purchase.member_id,
                            "program_id": purchase.program_id, "points": sum(a.points for a in made),
                            "earn_ids": [earn.id for earn in earns]})],
    )  # fmt: skip
    left = remaining(_lines(purchase), _refunded_so_far(session, purchase))
    if left:
        referrals.on_release(session, purchase, left, _local_time(purchase))
    session.flush()
    return True


def release_due(session: Session, now: datetime) -> int:
    """Release the purchases whose pending period has ended (a batch); returns how many."""
    due = session.execute(
        select(Purchase.id, Purchase.partner_id)
        .where(Purchase.status == PurchaseStatus.PENDING, Purchase.pending_until <= now)
        .order_by(Purchase.pending_until)
        .limit(RELEASE_BATCH)
    ).all()
    awards.lock_accounts(session, {partner_id for _, partner_id in due})  # all first, in order
    return sum(release(session, purchase_id) for purchase_id, _ in due)


def get(uow: UnitOfWork, partner_id: int, order_id: str) -> Purchase:
    found = _find(uow.session, partner_id, order_id)
    if found is None:
        raise NotFoundError(ErrorCode.PURCHASE_NOT_FOUND, f"no order {order_id!r}")
    return found


def awards_of(session: Session, purchase_id: int) -> Sequence[Award]:
    return session.scalars(select(Award).where(Award.purchase_id == purchase_id).order_by(Award.id)).all()


def page_purchases(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    member_id: int | None,
    cursor: str | None,
    limit: int,
    program_id: int | None = None,
) -> Page[Purchase]:
    """Purchases, oldest first: a partner's (in every program it issues in), a member's, a program's."""
    query = select(Purchase)
    if partner_id is not None:
        query = query.where(Purchase.partner_id.in_(partners.accounts_of(partner_id)))
    if program_id is not None:
        query = query.where(Purchase.program_id == program_id)
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
