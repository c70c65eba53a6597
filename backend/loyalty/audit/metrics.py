"""A program's figures from its token's events alone, read off the same replay `loyalty audit
verify` makes (`Ledger`): liability, what was issued, redeemed, donated and exchanged, and
breakage by cohort. One computation: the audit report, `GET /v1/metrics` and `loyalty metrics`
all call `figures`, so they cannot drift apart.

A cohort is the points earned in one epoch: they expire together. A cohort whose expiry has
passed is closed, and its breakage (expired ÷ earned) is exact. The breakage to expect of the
open cohorts is estimated from the closed ones (`EXPECTED_METHOD`). Rates are integers in basis
points (1 bp = 0.01 %), rounded down.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Collection
from dataclasses import dataclass, replace

from loyalty.audit.ledger import Ledger

BP = 10_000
EXPIRING_DAYS = (30, 60, 90)
EXPECTED_METHOD = (
    "pooled realized breakage: the closed cohorts' expired points ÷ their earned points, applied to each open "
    "cohort's earned points (never less than it has expired already, never more than it still holds)"
)


@dataclass(frozen=True)
class Cohort:
    """The points earned in one epoch, as of the figures' time."""

    epoch: int
    starts_at: int  # Unix time the epoch began
    expires_at: int  # Unix time its points expire
    earned: int
    spent: int  # redeemed, donated or exchanged out: taken from the lot before expiry
    expired: int
    outstanding: int  # still live (0 once closed)
    closed: bool
    breakage_bp: int | None  # realized: closed cohorts only
    expected_expired: int  # closed: what expired; open: the estimate


@dataclass(frozen=True)
class Flows:
    """Points that moved in a window of blocks (and, for expiry, of time)."""

    issued: int  # minted by the partners' accounts
    exchanged_in: int  # minted by the exchange
    redeemed: int  # burned at partners
    donated: int  # burned at charities
    exchanged_out: int  # burned at the exchange
    expired: int  # of cohorts whose expiry fell in the window


@dataclass(frozen=True)
class Figures:
    at: int  # Unix time of the block the figures are as of
    epoch: int
    outstanding: int  # the liability in points
    expired: int
    expiring: dict[int, int]  # days ahead -> live points expiring by then
    total: Flows  # since the token's deployment
    cohorts: list[Cohort]
    realized_breakage_bp: int | None  # the closed cohorts'
    expected_breakage_bp: int | None  # every cohort's, the open ones estimated
    redemption_rate_bp: int | None  # spent ÷ earned, every cohort
    method: str


def figures(
    ledger: Ledger,
    at: int,
    *,
    owners: Collection[str] | None = None,
    charities: Collection[str] = (),
    exchange: str | None = None,
) -> Figures:
    """The figures at Unix time `at` (the replay's last block's) of the points `owners` issued
    (None: every issuer's, the exchange's included). `charities` and `exchange` tell donations
    and exchanges from other redemptions."""
    params, now = ledger.params, ledger.params.epoch_at(at)
    keep = None if owners is None else {o.lower() for o in owners}

    def kept(issuer: str) -> bool:
        return keep is None or issuer.lower() in keep

    unspent: dict[int, int] = defaultdict(int)
    for book in ledger.members.values():
        for epoch, portions in book.lots.items():
            for issuer, points in portions:
                if kept(str(issuer)):
                    unspent[epoch] += int(points)
    earned: dict[int, int] = defaultdict(int)
    swept: dict[int, int] = defaultdict(int)
    for (epoch, issuer), points in ledger.cohort_earned.items():
        if kept(issuer):
            earned[epoch] += points
    for (epoch, issuer), points in ledger.cohort_swept.items():
        if kept(issuer):
            swept[epoch] += points

    cohorts = []
    for epoch in sorted(earned):
        closed = not params.is_live(epoch, now)
        expired = swept[epoch] + (unspent[epoch] if closed else 0)
        cohorts.append(
            Cohort(
                epoch=epoch,
                starts_at=params.start_time + epoch * params.epoch_length,
                expires_at=params.start_time + (epoch + params.validity_epochs) * params.epoch_length,
                earned=earned[epoch],
                spent=earned[epoch] - unspent[epoch] - swept[epoch],
                expired=expired,
                outstanding=0 if closed else unspent[epoch],
                closed=closed,
                breakage_bp=_rate(expired, earned[epoch]) if closed else None,
                expected_expired=expired,
            )
        )
    closed_earned = sum(c.earned for c in cohorts if c.closed)
    realized = _rate(sum(c.expired for c in cohorts if c.closed), closed_earned)
    if realized is not None:
        cohorts = [
            c
            if c.closed
            else replace(c, expected_expired=min(c.expired + c.outstanding, max(c.expired, c.earned * realized // BP)))
            for c in cohorts
        ]
    all_earned = sum(c.earned for c in cohorts)
    outstanding = sum(c.outstanding for c in cohorts)
    return Figures(
        at=at,
        epoch=now,
        outstanding=outstanding,
        expired=sum(c.expired for c in cohorts),
        expiring={
            days: sum(c.outstanding for c in cohorts if not c.closed and c.expires_at <= at + days * 86_400)
            for days in EXPIRING_DAYS
        },
        total=flows(ledger, cohorts, owners=owners, charities=charities, exchange=exchange),
        cohorts=cohorts,
        realized_breakage_bp=realized,
        expected_breakage_bp=None if realized is None else _rate(sum(c.expected_expired for c in cohorts), all_earned),
        redemption_rate_bp=_rate(sum(c.spent for c in cohorts), all_earned),
        method=EXPECTED_METHOD if realized is not None else "no cohort has fully expired yet: nothing to estimate from",
    )


def flows(
    ledger: Ledger,
    cohorts: list[Cohort],
    *,
    owners: Collection[str] | None = None,
    charities: Collection[str] = (),
    exchange: str | None = None,
    blocks: tuple[int, int] | None = None,
    times: tuple[int, int] | None = None,
) -> Flows:
    """What moved in blocks [first, last] (`blocks`; None: all), and what expired in [since,
    until) (`times`; None: every closed cohort), of the points `owners` issued."""
    keep = None if owners is None else {o.lower() for o in owners}
    giving = {c.lower() for c in charities}
    swap = exchange.lower() if exchange else None

    def inside(block: int) -> bool:
        return blocks is None or blocks[0] <= block <= blocks[1]

    issued = exchanged_in = redeemed = donated = exchanged_out = 0
    for (block, issuer), points in ledger.earned_in.items():
        if inside(block) and (keep is None or issuer.lower() in keep):
            if issuer.lower() == swap:
                exchanged_in += points
            else:
                issued += points
    for (block, owner, at), points in ledger.redeemed_in.items():
        if inside(block) and (keep is None or owner.lower() in keep):
            where = at.lower()
            if where == swap:
                exchanged_out += points
            elif where in giving:
                donated += points
            else:
                redeemed += points
    expired = sum(c.expired for c in cohorts if c.closed and (times is None or times[0] <= c.expires_at < times[1]))
    return Flows(issued, exchanged_in, redeemed, donated, exchanged_out, expired)


def _rate(part: int, whole: int) -> int | None:
    return None if whole <= 0 else part * BP // whole
