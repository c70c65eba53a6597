"""The reward catalog: each partner owns its rewards; everyone may read the catalog."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import IdPath, RewardCreate, RewardPublic, RewardUpdate
from loyalty.db.models import Reward
from loyalty.db.session import write_lock
from loyalty.services import catalog

router = APIRouter(prefix="/v1/rewards", tags=["rewards"])


def _public(reward: Reward) -> RewardPublic:
    return RewardPublic.model_validate(reward, from_attributes=True)


@router.get("", response_model=list[RewardPublic])
def list_rewards(uow: UowDep, _: Reader, active: bool | None = None) -> list[RewardPublic]:
    """The shared catalog, optionally only active rewards."""
    return [_public(r) for r in catalog.list_rewards(uow, active)]


@router.post("", status_code=201, response_model=RewardPublic)
def create_reward(
    body: RewardCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Add a reward to the calling partner's catalog."""
    assert principal.partner_id is not None
    partner_id = principal.partner_id

    def write() -> tuple[int, RewardPublic]:
        return 201, _public(catalog.create(uow, partner_id, body.model_dump()))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{reward_id}", response_model=RewardPublic)
def get_reward(reward_id: IdPath, uow: UowDep, _: Reader) -> RewardPublic:
    return _public(catalog.get(uow, reward_id))


@router.patch("/{reward_id}", response_model=RewardPublic)
def update_reward(reward_id: IdPath, body: RewardUpdate, uow: UowDep, principal: Partnered) -> RewardPublic:
    """Change a reward the calling partner owns (PATCH is naturally idempotent)."""
    assert principal.partner_id is not None
    with write_lock(uow.session):
        reward = catalog.update(uow, reward_id, principal.partner_id, body.model_dump(exclude_unset=True))
        uow.session.commit()
    return _public(reward)
