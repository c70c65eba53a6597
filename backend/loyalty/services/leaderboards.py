"""Leaderboards: a brand ranks its members by the points they earned from its accounts in a
program (its own and its campaigns'), per week or month. The ranking is read from the chain by
the auditor's code (`audit.leaderboard`, whose rule breaks ties), so anyone can reproduce it;
prizes for the top ranks are paid from a budgeted campaign's account once a period has closed
and its last block is final, exactly once (`LeaderboardClose` is unique per period)."""

from __future__ import annotations

import json
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from loyalty.audit.leaderboard import Standing, Tallies, Tally
from loyalty.db.models import (
    Campaign,
    Leaderboard,
    LeaderboardClose,
    LeaderboardPrize,
    Member,
    Partner,
    Program,
    utcnow,
)
from loyalty.domain.periods import period_end, period_start
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import awards, campaigns, partners
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork

log = logging.getLogger("loyalty.services.leaderboards")
RULE = (
    "more points earned in the period first; on a tie, the member whose last earn in the period came first "
    "(block, then log index); then the lower wallet address"
)


def create(
    uow: UnitOfWork,
    brand_id: int,
    *,
    name: str,
    period: str,
    program_id: int | None = None,
    starts_at: datetime | None = None,
    prizes: Sequence[tuple[int, int]] = (),
    campaign_id: int | None = None,
) -> Leaderboard:
    """A brand's leaderboard in a program (default: the first), its periods starting with the
    one `starts_at` (default: now) falls in. Prizes (rank, points) need a budgeted campaign of the
    brand in that program to pay them."""
    account = partners.account_in(uow, brand_id, program_id)
    if prizes and campaign_id is None:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "prizes are paid from a campaign: give `campaign_id`")
    if campaign_id is not None:
        campaign = campaigns.get(uow, campaign_id, brand_id)
        if campaign.partner_id != account.id or campaign.issuer_id is None:
            raise UnprocessableError(
                ErrorCode.VALIDATION_ERROR,
                f"campaign {campaign_id} has no budget of its own in program {account.program_id}",
            )
    start = period_start(int((starts_at or utcnow()).timestamp()), period)
    board = Leaderboard(
        partner_id=account.id, program_id=account.program_id, name=name, period=period,
        starts_at=datetime.fromtimestamp(start, UTC),
        prizes=json.dumps([{"rank": rank, "points": points} for rank, points in sorted(prizes)]),
        campaign_id=campaign_id,
    )  # fmt: skip
    uow.session.add(board)
    uow.session.flush()
    return board


def get(uow: UnitOfWork, board_id: int, brand_id: int | None = None, scopes: Scopes | None = None) -> Leaderboard:
    """A leaderboard; with `brand_id`, only one of that brand's (others are as if absent)."""
    board = uow.session.get(Leaderboard, board_id)
    if board is not None and brand_id is not None:
        owner = scopes.of(uow.session, board).brand_id if scopes else partners.placed(uow.session, board.partner_id)[0]
        board = board if owner == brand_id else None
    if board is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no leaderboard {board_id}")
    return board


def page(uow: UnitOfWork, brand_id: int | None, cursor: str | None, limit: int) -> Page[Leaderboard]:
    query = select(Leaderboard)
    if brand_id is not None:
        query = query.where(Leaderboard.partner_id.in_(partners.accounts_of(brand_id)))
    return keyset(uow.session, query, [Leaderboard.id], cursor, limit)


def deactivate(uow: UnitOfWork, board_id: int, brand_id: int | None) -> Leaderboard:
    """No more periods are closed or paid (those closed stay)."""
    board = get(uow, board_id, brand_id)
    board.active = False
    uow.session.flush()
    return board


def any_active(session: Session) -> bool:
    return session.scalar(select(Leaderboard.id).where(Leaderboard.active.is_(True)).limit(1)) is not None


def prizes_of(board: Leaderboard) -> list[tuple[int, int]]:
    return [(int(p["rank"]), int(p["points"])) for p in json.loads(board.prizes)]


def issuers_of(session: Session, board: Leaderboard) -> frozenset[str]:
    """The accounts whose earns count: the brand's in the program and its campaigns' there, but
    the one paying the board's prizes (last period's winners would start ahead)."""
    campaign_accounts = select(Campaign.issuer_id).where(
        Campaign.partner_id == board.partner_id, Campaign.id != (board.campaign_id or 0)
    )
    return frozenset(
        session.scalars(
            select(Partner.issuer_address).where(or_(Partner.id == board.partner_id, Partner.id.in_(campaign_accounts)))
        )
    )


def start_of(board: Leaderboard, at: datetime) -> int:
    """The start of the board's period that `at` falls in (never before its first)."""
    return period_start(int(max(at, board.starts_at).timestamp()), board.period)


def window(board: Leaderboard, at: datetime) -> tuple[int, int]:
    """The [start, end) of the board's period that `at` falls in (never before its first)."""
    start = start_of(board, at)
    return start, period_end(start, board.period)


@dataclass(frozen=True)
class Scope:
    """What a board counts: the earns from its brand's accounts on a program's token."""

    brand_id: int
    token: str
    from_block: int  # the token's deployment
    issuers: frozenset[str]


def scope_of(session: Session, board: Leaderboard) -> Scope:
    program = session.get(Program, board.program_id)
    assert program is not None and program.token_address is not None
    brand_id = partners.placed(session, board.partner_id)[0]
    return Scope(brand_id, program.token_address, int(program.deployment_block or 0), issuers_of(session, board))


class Scopes:
    """Boards' scopes as an API process keeps them, each read again after `fresh_s` (a campaign
    the brand adds counts in its rankings from then): a ranking asked for by many clients costs
    no query for what it counts."""

    def __init__(self, fresh_s: float = 5.0) -> None:
        self.fresh_s = fresh_s
        self._kept: dict[int, tuple[float, Scope]] = {}

    def of(self, session: Session, board: Leaderboard) -> Scope:
        now = time.monotonic()
        kept = self._kept.get(board.id)
        if kept is None or now - kept[0] >= self.fresh_s:
            kept = self._kept[board.id] = (now, scope_of(session, board))
        return kept[1]


def tally(
    session: Session,
    tallies: Tallies,
    board: Leaderboard,
    at: datetime,
    scope: Scope | None = None,
    head: int | None = None,
) -> Tally:
    """The period's tally, read up to `head` (default: the latest block)."""
    start, end = window(board, at)
    scope = scope or scope_of(session, board)
    found = tallies.of(scope.token, start, end, scope.issuers, scope.from_block)
    found.sync(tallies.rpc, tallies.head() if head is None else head)
    return found


@dataclass(frozen=True)
class Shown:
    rank: int
    points: int
    member_id: int | None  # None: not one of the service's members (or not shown)


TOP_MOST = 1_000  # the longest top a request may ask for


def top(session: Session, tally: Tally, limit: int) -> list[Shown]:
    """The first `limit` of the tally's ranking with member ids (the API keeps the first
    `TOP_MOST` per version of a ranking: every client of a board asks for the same top)."""
    return shown(session, tally.ranking()[:limit])


def shown(session: Session, standings: Sequence[Standing]) -> list[Shown]:
    """Standings with the service's member ids for their wallets."""
    ids = dict(
        session.execute(
            select(Member.wallet_address, Member.id).where(Member.wallet_address.in_([s.member for s in standings]))
        ).all()
    )
    return [Shown(s.rank, s.points, ids.get(s.member)) for s in standings]


# ---------------------------------------------------------------------------------- prizes
@dataclass(frozen=True)
class Due:
    """A board's period to close now: over, and final (its tally read only from blocks as deep
    as a write must be, so a reorg cannot change whom the prizes go to)."""

    board_id: int
    start: int
    end: int
    tally: Tally


def due(session: Session, tallies: Tallies, confirmations: int) -> list[Due]:
    """Every active board's periods that ended by the chain's clock (the time of the latest
    final block) and are not closed, each with its tally read: chain reads, and no writes (the
    outbox calls it outside the write lock)."""
    found = []
    final = tallies.rpc.block_number() - confirmations
    if final < 0:
        return []
    now = tallies.rpc.timestamps([final])[final]
    for board in session.scalars(select(Leaderboard).where(Leaderboard.active.is_(True)).order_by(Leaderboard.id)):
        done = {
            int(s.timestamp())
            for s in session.scalars(
                select(LeaderboardClose.period_start).where(LeaderboardClose.leaderboard_id == board.id)
            )
        }
        start = int(board.starts_at.timestamp())
        while (end := period_end(start, board.period)) <= now:
            if start not in done:
                read = tally(session, tallies, board, datetime.fromtimestamp(start, UTC), head=final)
                if read.end is not None and read.last_block >= read.end:
                    found.append(Due(board.id, start, end, read))
            start = end
    return found


def close(session: Session, periods: Sequence[Due]) -> int:
    """Close these periods once each (a close is unique per period: another writer's first is
    kept), ranking them and paying their prizes from the campaign's account as earns (cut to
    what its budget has left). Returns how many closed."""
    closed = 0
    for period in periods:
        board = session.get(Leaderboard, period.board_id)
        if board is None or not board.active:
            continue
        ranking = period.tally.ranking()
        try:
            with session.begin_nested():
                record = LeaderboardClose(
                    leaderboard_id=board.id, period_start=datetime.fromtimestamp(period.start, UTC),
                    period_end=datetime.fromtimestamp(period.end, UTC), to_block=period.tally.end, ranked=len(ranking),
                )  # fmt: skip
                session.add(record)
                session.flush()
                _pay(session, board, record, ranking)
        except IntegrityError:  # another writer closed it first
            continue
        closed += 1
    return closed


def _pay(session: Session, board: Leaderboard, close: LeaderboardClose, ranking: Sequence[Standing]) -> None:
    prizes = prizes_of(board)
    if not prizes or board.campaign_id is None:
        return
    campaign = session.get(Campaign, board.campaign_id)
    assert campaign is not None and campaign.issuer_id is not None
    issuer = campaign.issuer_id
    top = ranking[: max(rank for rank, _ in prizes)]
    by_rank = {s.rank: s.member_id for s in shown(session, top) if s.member_id is not None}
    for rank, points in prizes:
        member_id = by_rank.get(rank)
        if member_id is None:
            continue  # nobody (of ours) at that rank
        reason = f"leaderboard {board.name!r}: rank {rank}, {close.period_start:%Y-%m-%d}"
        paid, earn = awards.pay(session, issuer, member_id, points, reason)
        session.add(
            LeaderboardPrize(close_id=close.id, rank=rank, member_id=member_id, points=paid,
                             earn_id=None if earn is None else earn.id)
        )  # fmt: skip
    session.flush()


def closes_of(session: Session, board: Leaderboard) -> list[tuple[LeaderboardClose, list[LeaderboardPrize]]]:
    rows = session.scalars(
        select(LeaderboardClose).where(LeaderboardClose.leaderboard_id == board.id).order_by(LeaderboardClose.id)
    ).all()
    prizes: dict[int, list[LeaderboardPrize]] = {}
    for prize in session.scalars(
        select(LeaderboardPrize)
        .where(LeaderboardPrize.close_id.in_([r.id for r in rows]))
        .order_by(LeaderboardPrize.rank)
    ):
        prizes.setdefault(prize.close_id, []).append(prize)
    return [(row, prizes.get(row.id, [])) for row in rows]


def public(session: Session, board: Leaderboard) -> dict[str, Any]:
    return {
        "id": board.id, "partner_id": partners.placed(session, board.partner_id)[0], "program_id": board.program_id, "name": board.name,
        "period": board.period, "starts_at": board.starts_at, "prizes": json.loads(board.prizes),
        "campaign_id": board.campaign_id, "active": board.active, "rule": RULE,
    }  # fmt: skip
