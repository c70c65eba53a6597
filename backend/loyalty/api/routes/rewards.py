"""The reward catalog: each partner owns its rewards; everyone may read the catalog."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from loyalty.api.deps import Partnered, ProgramDep, Reader
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import IdPath, RewardCreate, RewardPublic, RewardUpdate
from loyalty.db.models import Reward
from loyalty.db.session import write_lock

router = APIRouter(prefix="/v1/rewards", tags=["rewards"])


def _public(reward: Reward) -> RewardPublic:
    return RewardPublic.model_validate(reward, from_attributes=True)


@router.get("", response_model=list[RewardPublic])
def list_rewards(program: ProgramDep, _: Reader, active: bool | None = None) -> list[RewardPublic]:
    """The shared catalog, optionally only active rewards."""
    query = select(Reward).order_by(Reward.id)
    if active is not None:
        query = query.where(Reward.active == active)
    return [_public(r) for r in program.session.scalars(query)]


@router.post("", status_code=201, response_model=RewardPublic)
def create_reward(
    body: RewardCreate, request: Request, program: ProgramDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Add a reward to the calling partner's catalog."""
    assert principal.partner_id is not None

    def write() -> tuple[int, RewardPublic]:
        reward = Reward(partner_id=principal.partner_id, **body.model_dump())
        program.session.add(reward)
        program.session.flush()
        return 201, _public(reward)

    return idempotent(request, digest, program.session, principal, write)


@router.get("/{reward_id}", response_model=RewardPublic)
def get_reward(reward_id: IdPath, program: ProgramDep, _: Reader) -> RewardPublic:
    return _public(program.reward(reward_id))


@router.patch("/{reward_id}", response_model=RewardPublic)
def update_reward(reward_id: IdPath, body: RewardUpdate, program: ProgramDep, principal: Partnered) -> RewardPublic:
    """Change a reward the calling partner owns (PATCH is naturally idempotent)."""
    with write_lock(program.session):
        reward = program.reward(reward_id, principal.partner_id)
        for field, value in body.model_dump(exclude_unset=True).items():
            setattr(reward, field, value)
        program.session.commit()
    return _public(reward)
