"""Challenges: a brand's goals for its members (a metric reaching a target in a window, or in
each week or month of it), rewarded once per period with points from a campaign's budget and/or
a badge; progress per member."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import CatalogReader, Partnered, Reader, Signed, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    ChallengeCreate,
    ChallengeProgress,
    ChallengePublic,
    CursorQuery,
    IdPath,
    Limit,
    MemberChallenges,
    Page,
)
from loyalty.db.models import Challenge, Member, utcnow
from loyalty.services import challenges, members
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1", tags=["challenges"])


def public(uow: UnitOfWork, found: Challenge) -> ChallengePublic:
    return ChallengePublic.model_validate(challenges.public(uow.session, found))


def of_member(uow: UnitOfWork, member: Member, brand_id: int | None) -> MemberChallenges:
    rows = challenges.progress(uow.session, member.id, brand_id, utcnow())
    return MemberChallenges(
        member_id=member.id,
        challenges=[ChallengeProgress.model_validate(row) for row in rows],
        badges=challenges.badges(uow.session, member.id, brand_id),
    )


@router.post("/challenges", status_code=201, response_model=ChallengePublic)
def create_challenge(
    body: ChallengeCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """A challenge for the brand's members in a program: `metric` `operator` `target` over the
    window (or each week or month of it), for members with `segment` or in `tiers`, rewarded once
    per period with `reward_points` from the budgeted `campaign_id` and/or a `badge`."""

    def write() -> tuple[int, ChallengePublic]:
        assert principal.partner_id is not None
        return 201, public(uow, challenges.create(uow, principal.partner_id, body.model_dump()))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/challenges", response_model=Page[ChallengePublic])
def list_challenges(
    uow: UowDep, principal: CatalogReader, limit: Limit = 100, cursor: CursorQuery = None
) -> Page[ChallengePublic]:
    """Challenges, oldest first (a partner: its own; members and others: every brand's)."""
    found = challenges.page(uow, principal.partner_id, cursor, limit)
    return Page(data=[public(uow, c) for c in found.rows], next_cursor=found.next_cursor)


@router.get("/challenges/{challenge_id}", response_model=ChallengePublic)
def get_challenge(challenge_id: IdPath, uow: UowDep, _: CatalogReader) -> ChallengePublic:
    """A challenge's terms (public, as the catalog is)."""
    return public(uow, challenges.get(uow, challenge_id))


@router.post("/challenges/{challenge_id}/deactivate", response_model=ChallengePublic)
def deactivate_challenge(
    challenge_id: IdPath, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """No more completions (those recorded stay)."""

    def write() -> tuple[int, ChallengePublic]:
        return 200, public(uow, challenges.deactivate(uow, challenge_id, principal.partner_id))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/members/{member_id}/challenges", response_model=MemberChallenges)
def member_challenges(member_id: IdPath, uow: UowDep, principal: Reader) -> MemberChallenges:
    """A member's progress in the challenges running now (a partner: its own challenges) and its badges."""
    return of_member(uow, members.get(uow, member_id, principal.partner_id), principal.partner_id)


@router.get("/me/challenges", response_model=MemberChallenges)
def my_challenges(uow: UowDep, principal: Signed) -> MemberChallenges:
    """The member's progress in the challenges of the brands it is linked to, and its badges."""
    assert principal.member_id is not None
    return of_member(uow, members.get(uow, principal.member_id), None)
