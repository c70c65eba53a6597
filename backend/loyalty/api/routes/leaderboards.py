"""Leaderboards: a brand's members ranked by the points they earned from it in a program, per
week or month, read from the chain (anyone can reproduce a ranking: `loyalty audit
leaderboard`), with prizes for the top ranks paid from a campaign's budget when a period closes."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse, Response

from loyalty.api.deps import CatalogReader, Partnered, Reader, Signed, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    CursorQuery,
    IdPath,
    LeaderboardClosePublic,
    LeaderboardCreate,
    LeaderboardPrizePublic,
    LeaderboardPublic,
    Limit,
    Page,
    StandingPublic,
    StandingsPublic,
    TimeQuery,
    parse_time,
)
from loyalty.audit.leaderboard import Tallies, Tally
from loyalty.db.models import Leaderboard, Member
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import leaderboards, members
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["leaderboards"])
TopN = Annotated[int, Query(ge=1, le=1_000, description="the top N")]


def public(uow: UnitOfWork, board: Leaderboard) -> LeaderboardPublic:
    return LeaderboardPublic.model_validate(leaderboards.public(uow.session, board))


@router.post("/leaderboards", status_code=201, response_model=LeaderboardPublic)
def create_leaderboard(
    body: LeaderboardCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """A leaderboard of the brand's members in a program, per week or month, with prizes for the
    top ranks from a budgeted campaign of the brand there (paid when a period closes)."""

    def write() -> tuple[int, LeaderboardPublic]:
        assert principal.partner_id is not None
        board = leaderboards.create(
            uow,
            principal.partner_id,
            name=body.name,
            period=body.period,
            program_id=body.program_id,
            starts_at=body.starts_at,
            prizes=[(p.rank, p.points) for p in body.prizes],
            campaign_id=body.campaign_id,
        )
        return 201, public(uow, board)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/leaderboards", response_model=Page[LeaderboardPublic])
def list_leaderboards(
    uow: UowDep, principal: CatalogReader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[LeaderboardPublic]:
    """Leaderboards, oldest first (a partner: its own; members and others: every brand's)."""
    found = leaderboards.page(uow, principal.partner_id, cursor, limit)
    return Page(data=[public(uow, b) for b in found.rows], next_cursor=found.next_cursor)


@router.get("/leaderboards/{leaderboard_id}", response_model=LeaderboardPublic)
def get_leaderboard(leaderboard_id: IdPath, uow: UowDep, _: CatalogReader) -> LeaderboardPublic:
    """A leaderboard's terms (public, as the catalog is)."""
    return public(uow, leaderboards.get(uow, leaderboard_id))


@router.post("/leaderboards/{leaderboard_id}/deactivate", response_model=LeaderboardPublic)
def deactivate_leaderboard(
    leaderboard_id: IdPath, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """No more periods close or pay (those closed stay)."""

    def write() -> tuple[int, LeaderboardPublic]:
        return 200, public(uow, leaderboards.deactivate(uow, leaderboard_id, principal.partner_id))

    return idempotent(request, digest, uow.session, principal, write)


def _scopes(request: Request) -> leaderboards.Scopes:
    scopes: leaderboards.Scopes = request.app.state.leaderboard_scopes
    return scopes


def _standings(
    request: Request, uow: UnitOfWork, board: Leaderboard, at: str | None, limit: int, member: Member | None,
    *, others_shown: bool,
) -> Response:  # fmt: skip
    """The standings, dumped here: the entries every client of a board asks for are made once per
    change of its ranking, and FastAPI's validation of 100 of them again (in another worker
    thread) would cost more than the rest of the request."""
    tallies: Tallies = request.app.state.leaderboards
    now = datetime.now(UTC)
    moment = parse_time(at) or now
    if leaderboards.start_of(board, moment) > now.timestamp():  # each would push a current tally out
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, f"the period of {moment.isoformat()} has not begun")
    scope = _scopes(request).of(uow.session, board)
    tally = leaderboards.tally(uow.session, tallies, board, moment, scope)
    own = tally.rank_of(member.wallet_address) if member is not None else None
    entries = _entries(uow, tally)[:limit]
    if not others_shown:  # a member's own view: only its own id
        mine = None if member is None else member.id
        entries = [
            e if e.member_id == mine else StandingPublic(rank=e.rank, points=e.points, member_id=None) for e in entries
        ]
    found = StandingsPublic.model_construct(
        leaderboard_id=board.id, period_start=datetime.fromtimestamp(tally.since, UTC),
        period_end=datetime.fromtimestamp(tally.until, UTC), block_number=tally.last_block,
        final=tally.end is not None and tally.last_block >= tally.end, ranked=len(tally.ranking()),
        entries=entries,
        member=None if own is None or member is None else StandingPublic(rank=own.rank, points=own.points, member_id=member.id),
        rule=leaderboards.RULE,
    )  # fmt: skip
    return Response(found.model_dump_json(), media_type="application/json")


def _entries(uow: UnitOfWork, tally: Tally) -> list[StandingPublic]:
    """The top of the ranking (`leaderboards.TOP_MOST`) with every member's id, made once per
    version of the ranking."""
    version = tally.version
    kept = tally.views.get("entries")
    if kept is None or kept[0] != version:
        top = leaderboards.top(uow.session, tally, leaderboards.TOP_MOST)
        kept = tally.views["entries"] = (
            version,
            [StandingPublic.model_construct(rank=s.rank, points=s.points, member_id=s.member_id) for s in top],
        )
    entries: list[StandingPublic] = kept[1]
    return entries


@router.get("/leaderboards/{leaderboard_id}/standings", response_model=StandingsPublic)
def standings(
    leaderboard_id: IdPath, request: Request, uow: UowDep, principal: Reader, at: TimeQuery = None,
    limit: TopN = 100, member_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
) -> Response:  # fmt: skip
    """The ranking of the period `at` falls in (default: now), from the chain: the top `limit`
    and, with `member_id`, that member's own rank (the brand itself, the admin, auditors)."""
    board = leaderboards.get(uow, leaderboard_id, principal.partner_id, _scopes(request))
    member = None if member_id is None else members.get(uow, member_id, principal.partner_id)
    return _standings(request, uow, board, at, limit, member, others_shown=True)


@router.get("/me/leaderboards/{leaderboard_id}", response_model=StandingsPublic)
def my_standing(
    leaderboard_id: IdPath, request: Request, uow: UowDep, principal: Signed, at: TimeQuery = None,
    limit: TopN = 100,
) -> Response:  # fmt: skip
    """The member's rank in a leaderboard of a brand it is linked to, and the top `limit` (the
    others without their ids)."""
    assert principal.member_id is not None
    member = members.get(uow, principal.member_id)
    board = leaderboards.get(uow, leaderboard_id)
    if not members.is_linked(uow, member.id, leaderboards.public(uow.session, board)["partner_id"]):
        raise NotFoundError(ErrorCode.NOT_FOUND, f"no leaderboard {leaderboard_id}")
    return _standings(request, uow, board, at, limit, member, others_shown=False)


@router.get("/leaderboards/{leaderboard_id}/closes", response_model=list[LeaderboardClosePublic])
def closes(leaderboard_id: IdPath, uow: UowDep, principal: Reader) -> list[LeaderboardClosePublic]:
    """The periods closed, each with the prizes it paid (and the earns that pay them)."""
    board = leaderboards.get(uow, leaderboard_id, principal.partner_id)
    return [
        LeaderboardClosePublic(
            period_start=close.period_start,
            period_end=close.period_end,
            to_block=close.to_block,
            ranked=close.ranked,
            closed_at=close.closed_at,
            prizes=[LeaderboardPrizePublic.model_validate(p, from_attributes=True) for p in prizes],
        )
        for close, prizes in leaderboards.closes_of(uow.session, board)
    ]
