"""Program metrics (`GET /v1/metrics`, `loyalty metrics`): the chain's figures, computed by the
auditor's own code over the API's replay (`audit.metrics`, so liability and breakage are the
audit's to the point), priced at the program's point value, with what only the database knows
beside them: members' activity, retention by enrolment month, repeat purchases, dormant points,
and the deferred revenue of the points sold with purchases.

Scopes: a program (every issuer on its token), a brand in it (its account there and its
campaigns'), or one campaign. Rates are integer basis points, amounts integer minor units, all
rounded down.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import asdict, dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import CompoundSelect, Select, case, func, or_, select, union
from sqlalchemy.orm import Session

from loyalty.audit import metrics as chain_metrics
from loyalty.audit.rpc import Rpc
from loyalty.audit.statements import first_block_at
from loyalty.audit.view import Snapshot
from loyalty.db.models import (
    Award,
    Campaign,
    Charity,
    Earn,
    Exchange,
    Member,
    MemberLink,
    Partner,
    PartnerKind,
    Program,
    Purchase,
    PurchaseStatus,
    Redemption,
    Reward,
    utcnow,
)
from loyalty.errors import ErrorCode, NotFoundError
from loyalty.services import partners
from loyalty.services.uow import UnitOfWork

BP = chain_metrics.BP
DEFERRED_METHOD = (
    "IFRS 15 / ASC 606: each purchase's net price is split between the goods and the points by relative stand-alone "
    "selling price (the points' = points x the program's point value x (1 - expected breakage)); the part allocated "
    "to points is deferred, and recognised as the scope's points are spent, in proportion to the points expected to "
    "be spent (issued x (1 - expected breakage)), never beyond what was allocated. Every period is computed with "
    "today's expected breakage, so a revised estimate is caught up in the figures."
)


@dataclass(frozen=True)
class Scope:
    """Whose figures: a program's, a brand's in it, or one campaign's."""

    program: Program
    partner_id: int | None
    campaign_id: int | None
    accounts: list[int]  # the issuer accounts in scope (every one on the token for a program)
    owners: list[str] | None  # their addresses; None: every issuer on the token


def scope(uow: UnitOfWork, program: Program, partner_id: int | None, campaign_id: int | None) -> Scope:
    """The accounts whose points are counted: `404` for a campaign or partner not in the program."""
    query: Select[int, str] = select(Partner.id, Partner.issuer_address).where(Partner.program_id == program.id)
    if campaign_id is not None:
        found = uow.session.get(Campaign, campaign_id)
        brand = None if found is None else partners.placed(uow.session, found.partner_id)
        if (
            found is None
            or found.issuer_id is None
            or brand is None
            or brand[1] != program.id
            or (partner_id is not None and brand[0] != partner_id)
        ):
            raise NotFoundError(ErrorCode.NOT_FOUND, f"no budgeted campaign {campaign_id} in program {program.id}")
        query = query.where(Partner.id == found.issuer_id)
    elif partner_id is not None:
        partners.brand(uow, partner_id)
        query = query.where(Partner.id.in_(partners.accounts_of(partner_id)))
    rows = uow.session.execute(query.order_by(Partner.id)).all()
    whole = partner_id is None and campaign_id is None
    return Scope(program, partner_id, campaign_id, [i for i, _ in rows], None if whole else [a for _, a in rows])


def report(
    uow: UnitOfWork,
    snapshot: Snapshot,
    where: Scope,
    *,
    exchange: str | None,
    since: datetime | None = None,
    until: datetime | None = None,
    active_days: int = 90,
) -> dict[str, Any]:
    """The whole report, as `MetricsPublic` has it."""
    session, ledger, program = uow.session, snapshot.ledger, where.program
    at = snapshot.rpc.timestamps([snapshot.block_number])[snapshot.block_number]
    charities = _charity_accounts(session, program.id)
    found = chain_metrics.figures(ledger, at, owners=where.owners, charities=charities, exchange=exchange)
    window = None
    if since is not None and until is not None:
        window = _window(snapshot.rpc, ledger, found, where, charities, exchange, since, until, program)
    value = (program.point_value_minor, program.point_value_points)
    now = utcnow()  # the records' clock (the chain's may run ahead, on a test node)
    members = _members(session, ledger, where, now, active_days, at)
    return {
        "program_id": program.id,
        "partner_id": where.partner_id,
        "campaign_id": where.campaign_id,
        "block_number": snapshot.block_number,
        "as_of": datetime.fromtimestamp(at, UTC),
        "currency": program.currency,
        "point_value_minor": value[0],
        "point_value_points": value[1],
        "liability_points": found.outstanding,
        "liability_minor": _money(found.outstanding, value),
        "expired_points": found.expired,
        "totals": asdict(found.total),
        "window": window,
        "expiring": [{"days": days, "points": points} for days, points in found.expiring.items()],
        "redemption_rate_bp": found.redemption_rate_bp,
        "breakage": {
            "realized_bp": found.realized_breakage_bp,
            "expected_bp": found.expected_breakage_bp,
            "method": found.method,
            "cohorts": [
                {
                    **asdict(c),
                    "starts_at": datetime.fromtimestamp(c.starts_at, UTC),
                    "expires_at": datetime.fromtimestamp(c.expires_at, UTC),
                }
                for c in found.cohorts
            ],
        },
        "members": members,
        "retention": _retention(session, where, now, active_days),
        **_repeat(session, where),
        "deferred_revenue": _deferred(session, snapshot, where, found, value),
    }


def _money(points: int, value: tuple[int | None, int | None]) -> int | None:
    minor, per = value
    return None if minor is None or not per else points * minor // per


def _charity_accounts(session: Session, program_id: int) -> list[str]:
    """The issuer addresses of charities in the program (their redemptions are donations)."""
    charities = select(Charity.partner_id)
    return list(
        session.scalars(
            select(Partner.issuer_address).where(
                Partner.program_id == program_id,
                or_(Partner.id.in_(charities), (Partner.kind == PartnerKind.PROGRAM) & Partner.owner_id.in_(charities)),
            )
        )
    )


def _window(
    rpc: Rpc, ledger: Any, found: chain_metrics.Figures, where: Scope, charities: list[str], exchange: str | None,
    since: datetime, until: datetime, program: Program,
) -> dict[str, Any]:  # fmt: skip
    """What moved in [since, until): blocks found by their time, expiry by the cohorts'."""
    head = ledger.last_block
    low = int(program.deployment_block or 0)
    start = first_block_at(rpc, int(since.timestamp()), low, head)
    end = first_block_at(rpc, int(until.timestamp()), start, head) - 1
    moved = chain_metrics.flows(
        ledger, found.cohorts, owners=where.owners, charities=charities, exchange=exchange, blocks=(start, end),
        times=(int(since.timestamp()), int(until.timestamp())),
    )  # fmt: skip
    return {"since": since, "until": until, "from_block": start, "to_block": end, "flows": asdict(moved)}


# ------------------------------------------------------------------------------------ members
def _joined(session: Session, where: Scope) -> Select[int, datetime]:
    """(member, when it joined) of the members counted: every member (enrolled) for a program,
    the brand's linked members (linked) for a brand or a campaign of it."""
    if where.partner_id is None and where.campaign_id is None:
        return select(Member.id, Member.created_at)
    brand = where.partner_id
    if brand is None:  # a campaign: its brand's members
        brand = partners.placed(session, where.accounts[0])[0]
    return select(MemberLink.member_id, MemberLink.created_at).where(MemberLink.partner_id == brand)


def _active_since(where: Scope, cutoff: datetime) -> CompoundSelect[int]:
    """Members with an earn from an account in scope, a redemption of a reward in the program
    (at a brand in scope), or an exchange touching the program, since `cutoff`."""
    program_id = where.program.id
    redeemed = (
        select(Redemption.member_id)
        .join(Reward, Reward.id == Redemption.reward_id)
        .where(Redemption.created_at >= cutoff, Reward.program_id == program_id)
    )
    if where.partner_id is not None:
        redeemed = redeemed.where(Redemption.partner_id == where.partner_id)
    parts = [
        select(Earn.member_id).where(Earn.created_at >= cutoff, Earn.partner_id.in_(where.accounts)),
        redeemed,
    ]
    if where.owners is None:
        parts.append(
            select(Exchange.member_id).where(
                Exchange.created_at >= cutoff,
                or_(Exchange.source_program_id == program_id, Exchange.target_program_id == program_id),
            )
        )
    return union(*parts)


def _members(
    session: Session, ledger: Any, where: Scope, now: datetime, active_days: int, ledger_time: int
) -> dict[str, Any]:
    counted = _joined(session, where).subquery()
    active_ids = set(session.scalars(_active_since(where, now - timedelta(days=active_days))))
    wallets = dict(
        session.execute(select(Member.id, Member.wallet_address).where(Member.id.in_(select(counted.c[0])))).all()
    )
    enrolled = len(wallets)
    active = len(active_ids & wallets.keys())
    keep = None if where.owners is None else {o.lower() for o in where.owners}
    now_epoch = ledger.params.epoch_at(ledger_time)
    dormant = dormant_points = 0
    for member_id, wallet in wallets.items():
        if member_id in active_ids:
            continue
        book = ledger.members.get(wallet)
        held = 0
        if book is not None:
            for epoch, portions in book.lots.items():
                if ledger.params.is_live(epoch, now_epoch):
                    held += sum(int(p) for i, p in portions if keep is None or str(i).lower() in keep)
        if held:
            dormant += 1
            dormant_points += held
    return {
        "enrolled": enrolled,
        "active": active,
        "active_days": active_days,
        "active_rate_bp": None if not enrolled else active * BP // enrolled,
        "dormant": dormant,
        "dormant_points": dormant_points,
    }


def _retention(session: Session, where: Scope, now: datetime, active_days: int) -> list[dict[str, Any]]:
    """By month of enrolment (a brand's: of linking): enrolled, still active in the last
    `active_days` (retained), the rest churned."""
    active = set(session.scalars(_active_since(where, now - timedelta(days=active_days))))
    months: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    for member_id, created_at in session.execute(_joined(session, where)):
        month = months[created_at.strftime("%Y-%m")]
        month[0] += 1
        month[1] += member_id in active
    return [
        {"enrolled_in": month, "enrolled": n, "retained": kept, "churned": n - kept, "retention_bp": kept * BP // n}
        for month, (n, kept) in sorted(months.items())
    ]


def _repeat(session: Session, where: Scope) -> dict[str, Any]:
    """Of the members who bought in scope, those who bought more than once."""
    per_member = (
        select(Purchase.member_id, func.count().label("n"))
        .where(Purchase.program_id == where.program.id, Purchase.partner_id.in_(where.accounts))
        .group_by(Purchase.member_id)
        .subquery()
    )
    buyers, repeat = session.execute(
        select(func.count(), func.coalesce(func.sum(case((per_member.c.n > 1, 1), else_=0)), 0))
    ).one()
    return {
        "purchasers": int(buyers),
        "repeat_purchase_rate_bp": None if not buyers else int(repeat) * BP // int(buyers),
    }


# ------------------------------------------------------------------------------ deferred revenue
def _deferred(
    session: Session, snapshot: Snapshot, where: Scope, found: chain_metrics.Figures,
    value: tuple[int | None, int | None],
) -> dict[str, Any] | None:  # fmt: skip
    """Revenue allocated to the points of released purchases, and recognised as points are
    spent, month by month (`DEFERRED_METHOD`); None without a point value."""
    minor, per = value
    if minor is None or not per:
        return None
    breakage = found.expected_breakage_bp or 0
    sold: dict[str, list[int]] = defaultdict(lambda: [0, 0])  # month -> [net price, allocated to points]
    awarded = (
        select(Award.purchase_id, func.sum(Award.points).label("points"))
        .where(Award.purchase_id.is_not(None), Award.earn_id.is_not(None))
        .group_by(Award.purchase_id)
        .subquery()
    )
    for occurred_at, net, points in session.execute(
        select(Purchase.occurred_at, Purchase.net_minor, awarded.c.points)
        .join(awarded, awarded.c.purchase_id == Purchase.id)
        .where(
            Purchase.program_id == where.program.id,
            Purchase.partner_id.in_(where.accounts),
            Purchase.status == PurchaseStatus.RELEASED,
        )
    ):
        standalone = int(points) * minor * (BP - breakage) // (per * BP)
        sale = sold[occurred_at.strftime("%Y-%m")]
        sale[0] += int(net)
        sale[1] += int(net) * standalone // (int(net) + standalone) if net + standalone else 0
    issued, spent = _by_month(snapshot, where)
    rows, allocated, issued_all, spent_all, recognised = [], 0, 0, 0, 0
    for month in sorted(set(sold) | set(issued) | set(spent)):
        net, allocated_now = sold.get(month, (0, 0))
        allocated += allocated_now
        issued_all += issued.get(month, 0)
        spent_all += spent.get(month, 0)
        expected = issued_all * (BP - breakage) // BP
        total = (
            allocated if expected and spent_all >= expected else (allocated * spent_all // expected if expected else 0)
        )
        rows.append({
            "period": month, "revenue_minor": net, "allocated_minor": allocated_now, "issued_points": issued.get(month, 0),
            "spent_points": spent.get(month, 0), "recognised_minor": total - recognised, "deferred_minor": allocated - total,
        })  # fmt: skip
        recognised = total
    return {"expected_breakage_bp": breakage, "method": DEFERRED_METHOD, "periods": rows}


def _by_month(snapshot: Snapshot, where: Scope) -> tuple[dict[str, int], dict[str, int]]:
    """Points the scope issued, and of its points spent, per month of their block."""
    ledger = snapshot.ledger
    keep = None if where.owners is None else {o.lower() for o in where.owners}
    issued_blocks: dict[int, int] = defaultdict(int)
    spent_blocks: dict[int, int] = defaultdict(int)
    for (block, issuer), points in ledger.earned_in.items():
        if keep is None or issuer.lower() in keep:
            issued_blocks[block] += points
    for (block, owner, _), points in ledger.redeemed_in.items():
        if keep is None or owner.lower() in keep:
            spent_blocks[block] += points
    times = snapshot.rpc.timestamps(sorted(issued_blocks.keys() | spent_blocks.keys()))
    issued: dict[str, int] = defaultdict(int)
    spent: dict[str, int] = defaultdict(int)
    for block, points in issued_blocks.items():
        issued[datetime.fromtimestamp(times[block], UTC).strftime("%Y-%m")] += points
    for block, points in spent_blocks.items():
        spent[datetime.fromtimestamp(times[block], UTC).strftime("%Y-%m")] += points
    return issued, spent
