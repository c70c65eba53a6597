"""The reward catalog: each partner owns its rewards; everyone may read the catalog."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from loyalty.db.models import Reward
from loyalty.errors import ErrorCode, ForbiddenError, NotFoundError, UnprocessableError
from loyalty.services import partners, tiers
from loyalty.services.lists import Page, keyset
from loyalty.services.uow import UnitOfWork


def get(uow: UnitOfWork, reward_id: int, partner_id: int | None = None) -> Reward:
    """A reward; with `partner_id`, only one that partner owns."""
    reward = uow.session.get(Reward, reward_id)
    if reward is None:
        raise NotFoundError(ErrorCode.REWARD_NOT_FOUND, f"no reward {reward_id}")
    if partner_id is not None and reward.partner_id != partner_id:
        raise ForbiddenError(ErrorCode.FORBIDDEN, f"reward {reward_id} belongs to another partner")
    return reward


def create(uow: UnitOfWork, partner_id: int, fields: dict[str, Any]) -> Reward:
    """A reward of `partner_id`, costing points of a program it issues in (`program_id`,
    default the first: `422 program_not_joined` elsewhere); a tier reward (`tier`) sells a tier
    on the program's ladder for points: redeeming it starts the tier for `tier_period_days`."""
    if partners.is_charity(uow.session, partner_id):
        raise partners.charity_issues_nothing(partner_id)
    fields["program_id"] = program_id = fields.get("program_id") or partners.FIRST_PROGRAM
    partners.account_in(uow, partner_id, program_id)
    if (tier := fields.get("tier")) is not None:
        ladder = tiers.ladder(uow.session, program_id)
        if ladder is None or ladder.get(tier) is None:
            raise UnprocessableError(ErrorCode.VALIDATION_ERROR, f"the program's ladder has no tier {tier!r}")
    reward = Reward(partner_id=partner_id, **fields)
    uow.session.add(reward)
    uow.session.flush()
    return reward


def update(uow: UnitOfWork, reward_id: int, partner_id: int, changes: dict[str, Any]) -> Reward:
    """Change a reward `partner_id` owns."""
    reward = get(uow, reward_id, partner_id)
    if partners.is_charity(uow.session, partner_id):
        raise partners.charity_issues_nothing(partner_id)
    for field, value in changes.items():
        setattr(reward, field, value)
    return reward


def page_rewards(
    uow: UnitOfWork,
    *,
    active: bool | None,
    partner_id: int | None,
    cursor: str | None,
    limit: int,
    program_id: int | None = None,
) -> Page[Reward]:
    """The catalog (every partner's rewards), optionally only active ones, one partner's or one
    program's."""
    query = select(Reward)
    if program_id is not None:
        query = query.where(Reward.program_id == program_id)
    if active is not None:
        query = query.where(Reward.active == active)
    if partner_id is not None:
        query = query.where(Reward.partner_id == partner_id)
    return keyset(uow.session, query, [Reward.id], cursor, limit)
