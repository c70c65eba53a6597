"""Awards become points. Shared by purchases, custom events and referrals.

An award is held against its issuer account's budget when it is made (the partner's own
account, or a campaign's), as an accepted earn is (`pending_points`), so minting it later never
finds the budget spent. When it is released it is minted through the outbox, one earn per
issuer account, after paying the member's points debt to the partner: a debt is never burned,
only paid from later awards. What the member sees as pending and owed is read from here too."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import Award, Campaign, Debt, Earn, EarnStatus, MemberSegment, Partner, Purchase, PurchaseStatus
from loyalty.domain.earning.context import MemberFacts
from loyalty.domain.earning.engine import Award as Awarded
from loyalty.domain.earning.refunds import settle
from loyalty.services import partners, tiers


def facts_of(session: Session, member_id: int, partner_id: int, now: datetime) -> MemberFacts:
    """What the partner's rules may know of the member: its tier now in the partner's program
    and the brand's segment tags for it."""
    brand_id, program_id = partners.placed(session, partner_id)
    segments = session.scalars(
        select(MemberSegment.tag).where(MemberSegment.member_id == member_id, MemberSegment.partner_id == brand_id)
    )
    return MemberFacts(tier=tiers.tier_of(session, member_id, now, program_id), segments=frozenset(segments))


def available(session: Session, issuer_ids: Iterable[int], *, lock: bool = True) -> dict[int, int]:
    """What each issuer account may still be asked to issue, read under a row lock (callers
    hold `write_lock`, which SQLite needs since it ignores FOR UPDATE); `lock=False` to only
    look.

    The lock is PostgreSQL's FOR NO KEY UPDATE: it queues other budget writers but not the
    key-share locks that inserting a row referencing the partner takes, so two transactions
    that each inserted such a row (a member link, say) cannot deadlock asking for it."""
    query = select(Partner.id, Partner.available_points).where(Partner.id.in_(set(issuer_ids))).order_by(Partner.id)
    rows = session.execute(query.with_for_update(key_share=True) if lock else query)
    return {issuer_id: int(points) for issuer_id, points in rows}


def lock(session: Session, partner_id: int) -> None:
    """The partner's row lock: its budget, and its members' caps and debts, are read and
    written under it (PostgreSQL; SQLite's writers take turns under `write_lock` anyway)."""
    session.execute(select(Partner.id).where(Partner.id == partner_id).with_for_update(key_share=True))


def lock_accounts(session: Session, partner_ids: Iterable[int]) -> None:
    """The row locks of these partners and of their campaigns' accounts, in id order: a
    transaction that will touch several takes them all first, so two such transactions never
    wait for each other's (a deadlock, on PostgreSQL)."""
    ids = set(partner_ids)
    if ids:
        session.execute(
            select(Partner.id)
            .where(or_(Partner.id.in_(ids), Partner.owner_id.in_(ids)))
            .order_by(Partner.id)
            .with_for_update(key_share=True)
        )


def hold(session: Session, issuer_id: int, points: int) -> None:
    """Count `points` against the issuer's budget as pending (negative: no longer)."""
    if points:
        session.execute(
            update(Partner)
            .where(Partner.id == issuer_id)
            .values(pending_points=Partner.pending_points + points)
            .execution_options(synchronize_session=False)
        )


def issuers_of(session: Session, partner_id: int, campaign_ids: Iterable[int | None]) -> dict[int | None, int]:
    """The issuer account of each campaign (None: the partner's own)."""
    wanted = {c for c in campaign_ids if c is not None}
    found: dict[int | None, int] = {None: partner_id}
    if wanted:
        rows = session.execute(select(Campaign.id, Campaign.issuer_id).where(Campaign.id.in_(wanted)))
        found |= {campaign_id: issuer_id for campaign_id, issuer_id in rows if issuer_id is not None}
    return found


def mint(
    session: Session,
    member_id: int,
    partner_id: int,
    made: Sequence[Award],
    reason: str,
    purchase_id: int | None = None,
) -> list[Earn]:
    """Release `made` (a purchase's, event's or referral's awards of one member, take-backs
    included): pay the member's debt to the partner first (from the partner's own points, then
    the campaigns'), and mint the rest, one earn per issuer account, each award naming its earn."""
    lock(session, partner_id)  # the debt is read and paid under the partner's row lock
    issuers = issuers_of(session, partner_id, (a.campaign_id for a in made))
    by_issuer: dict[int, list[Award]] = {}
    for award in sorted(made, key=lambda a: (a.campaign_id is not None, a.campaign_id or 0, a.id or 0)):
        by_issuer.setdefault(issuers[award.campaign_id], []).append(award)
    shares = split(
        [(issuer, sum(a.points for a in awarded)) for issuer, awarded in by_issuer.items()],
        debt_of(session, member_id, partner_id),
    )
    earns: list[Earn] = []
    for (issuer_id, paid, minted), awarded in zip(shares, by_issuer.values(), strict=True):
        hold(session, issuer_id, -paid)
        if minted:
            earn = Earn(
                partner_id=issuer_id,
                member_id=member_id,
                amount_points=minted,
                reason=earn_reason(reason, issuer_id == partner_id, awarded[0].reason),
                status=EarnStatus.PENDING,
            )
            session.add(earn)
            session.flush()
            earns.append(earn)
            for award in awarded:
                award.earn_id = earn.id
    if paid_total := sum(paid for _, paid, _ in shares):
        session.add(Debt(**debt_payment(member_id, partner_id, paid_total, reason), purchase_id=purchase_id))
    session.flush()
    return earns


def grant(
    session: Session,
    member_id: int,
    partner_id: int,
    awarded: Sequence[Awarded],
    left: int,
    reason: str,
    at: datetime,
    **made: int,
) -> tuple[list[Award], int]:
    """Rule awards released as they are made (an event's, an enrolment's, a referral's side):
    each cut to what the partner's budget still has (`capped_by: budget`), held, and minted;
    `made` names what made them (`event_id=...` or `referral_id=...`). Returns the rows and
    what the budget has left after them."""
    rows = []
    for award in awarded:
        points = min(award.points, max(0, left))
        left -= points
        rows.append(
            Award(
                **made,
                member_id=member_id,
                rule_id=award.rule_id,
                rule_version=award.rule_version,
                points=points,
                reason=award.reason,
                capped_by=award.capped_by if points == award.points else "budget",
                occurred_at=at,
            )
        )
    session.add_all(rows)
    session.flush()
    hold(session, partner_id, sum(row.points for row in rows))
    mint(session, member_id, partner_id, rows, reason)
    return rows, left


def pay(session: Session, issuer_id: int, member_id: int, points: int, reason: str) -> tuple[int, Earn | None]:
    """A reward from an issuer account (a campaign's): an earn of `points`, or of what its
    budget has left if less (nothing when it has none). Returns what it pays and the earn."""
    paid = min(points, max(0, available(session, [issuer_id])[issuer_id]))
    if not paid:
        return 0, None
    earn = Earn(partner_id=issuer_id, member_id=member_id, amount_points=paid, reason=reason, status=EarnStatus.PENDING)
    session.add(earn)
    session.flush()
    hold(session, issuer_id, paid)
    return paid, earn


def split(points_by_issuer: Sequence[tuple[int, int]], debt: int) -> list[tuple[int, int, int]]:
    """Each issuer account's share of a release, as (issuer, paid to the debt, minted): the
    debt is paid from the shares in order (the partner's own first)."""
    shares, owed = [], max(debt, 0)
    for issuer_id, points in points_by_issuer:
        paid, minted = settle(max(0, points), owed)
        owed -= paid
        shares.append((issuer_id, paid, minted))
    return shares


def earn_reason(reason: str, own: bool, campaign: str) -> str:
    """An earn's reason: what released it, and the campaign for a campaign's account's."""
    return reason if own else f"{reason}: {campaign}"


def debt_payment(member_id: int, partner_id: int, points: int, reason: str) -> dict[str, Any]:
    """A debt entry paying `points` of the member's debt from what `reason` released."""
    return {"member_id": member_id, "partner_id": partner_id, "points": -points, "reason": f"paid from {reason}"}


Earned = tuple[int | None, int | None, datetime, int]  # an award's rule, campaign, time and points


def earned_since(
    session: Session,
    member_id: int,
    rules: Mapping[int, tuple[datetime, datetime]],
    campaigns: Mapping[int, tuple[datetime, datetime]],
) -> tuple[dict[int, int], dict[int, int]]:
    """What each rule, and each campaign, gave the member in its cap period (the values, as
    [start, end): an order reported late counts against its own period, not today's),
    take-backs counted, in one query."""
    if not rules and not campaigns:
        return {}, {}
    spans = [*rules.values(), *campaigns.values()]
    found = earned_rows(session, [member_id], set(rules), set(campaigns), spans)
    return earned_in(found.get(member_id, ()), rules, campaigns)


def earned_rows(
    session: Session,
    member_ids: Iterable[int],
    rule_ids: Iterable[int],
    campaign_ids: Iterable[int],
    spans: Sequence[tuple[datetime, datetime]],
) -> dict[int, list[Earned]]:
    """Awards of these rules or campaigns to these members inside the spans, by member: what
    their caps count (one query for a whole group of purchases)."""
    rule_ids, campaign_ids = set(rule_ids), set(campaign_ids)
    if not spans or not (rule_ids or campaign_ids):
        return {}
    members, since, until = set(member_ids), min(start for start, _ in spans), max(end for _, end in spans)
    rows = [
        row
        for column, ids in ((Award.rule_id, rule_ids), (Award.campaign_id, campaign_ids))
        if ids  # a query each: the (member, rule) and (member, campaign) indexes serve them
        for row in session.execute(
            select(Award.member_id, Award.rule_id, Award.campaign_id, Award.occurred_at, Award.points).where(
                Award.member_id.in_(members), column.in_(ids), Award.occurred_at >= since, Award.occurred_at < until
            )
        )
    ]
    by_member: dict[int, list[Earned]] = {}
    for member_id, rule_id, campaign_id, occurred_at, points in rows:
        by_member.setdefault(member_id, []).append((rule_id, campaign_id, occurred_at, points))
    return by_member


def earned_in(
    rows: Iterable[Earned],
    rules: Mapping[int, tuple[datetime, datetime]],
    campaigns: Mapping[int, tuple[datetime, datetime]],
) -> tuple[dict[int, int], dict[int, int]]:
    """What each rule and each campaign gave, of `rows`, inside its window."""
    by_rule, by_campaign = dict.fromkeys(rules, 0), dict.fromkeys(campaigns, 0)
    for rule_id, campaign_id, occurred_at, points in rows:
        for source, windows, counted in ((rule_id, rules, by_rule), (campaign_id, campaigns, by_campaign)):
            if source is not None and source in windows and windows[source][0] <= occurred_at < windows[source][1]:
                counted[source] += points
    return by_rule, by_campaign


def owed_in(session: Session, member_id: int, program_id: int, brand_id: int | None = None) -> tuple[int, int]:
    """What the member has coming and owes in a program (with `brand_id`, at that brand only):
    points awarded for purchases not released yet, and its points debt."""
    pending = (
        select(func.coalesce(func.sum(Award.points), 0))
        .join(Purchase, Purchase.id == Award.purchase_id)
        .where(
            Award.member_id == member_id, Purchase.status == PurchaseStatus.PENDING, Purchase.program_id == program_id
        )
    )
    owed = select(func.coalesce(func.sum(Debt.points), 0)).where(
        Debt.member_id == member_id, Debt.partner_id.in_(partners.accounts_there(program_id))
    )
    if brand_id is not None:
        pending = pending.where(Purchase.partner_id.in_(partners.accounts_of(brand_id)))
        owed = owed.where(Debt.partner_id.in_(partners.accounts_of(brand_id)))
    return int(session.scalar(pending) or 0), int(session.scalar(owed) or 0)


def debt_of(session: Session, member_id: int, partner_id: int) -> int:
    """The member's points debt to an issuer account (what its awards pay first)."""
    query = select(func.coalesce(func.sum(Debt.points), 0)).where(
        Debt.member_id == member_id, Debt.partner_id == partner_id
    )
    return int(session.scalar(query) or 0)
