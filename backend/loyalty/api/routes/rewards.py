"""The reward catalog: each partner owns its rewards; everyone may read the catalog."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import CatalogReader, Partnered, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import MAX_INT, CursorQuery, IdPath, Limit, Page, RewardCreate, RewardPublic, RewardUpdate
from loyalty.db.models import Reward
from loyalty.db.session import write_lock
from loyalty.services import catalog

router = APIRouter(prefix="/v1/rewards", tags=["rewards"])


def _public(reward: Reward) -> RewardPublic:
    return RewardPublic.model_validate(reward, from_attributes=True)


@router.get("", response_model=Page[RewardPublic])
def list_rewards(
    uow: UowDep,
    _: CatalogReader,
    active: bool | None = None,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    program_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[RewardPublic]:
    """The shared catalog, oldest first, optionally only active rewards, one partner's or one
    program's."""
    page = catalog.page_rewards(
        uow, active=active, partner_id=partner_id, program_id=program_id, cursor=cursor, limit=limit
    )
    return Page(data=[_public(r) for r in page.rows], next_cursor=page.next_cursor)


@router.post("", status_code=201, response_model=RewardPublic)
def create_reward(
    body: RewardCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """Add a reward to the calling partner's catalog, costing points of a program it issues in
    (`program_id`, default the first)."""
    assert principal.partner_id is not None
    partner_id = principal.partner_id

    def write() -> tuple[int, RewardPublic]:
        return 201, _public(catalog.create(uow, partner_id, body.model_dump()))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{reward_id}", response_model=RewardPublic)
def get_reward(reward_id: IdPath, uow: UowDep, _: CatalogReader) -> RewardPublic:
    return _public(catalog.get(uow, reward_id))


@router.patch("/{reward_id}", response_model=RewardPublic)
def update_reward(reward_id: IdPath, body: RewardUpdate, uow: UowDep, principal: Partnered) -> RewardPublic:
    """Change a reward the calling partner owns (PATCH is naturally idempotent)."""
    assert principal.partner_id is not None
    with write_lock(uow.session):
        reward = catalog.update(uow, reward_id, principal.partner_id, body.model_dump(exclude_unset=True))
        uow.session.commit()
    return _public(reward)
