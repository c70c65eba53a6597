"""Campaigns: a partner's, each issuing from an issuer account of its own whose on-chain budget
is the campaign's budget, so the chain itself refuses to issue past it and the auditor sees each
campaign's liability and breakage apart.

The budget comes out of the partner's: creating a campaign counts it as spent at once, and the
outbox writer moves it on-chain (the partner's budget lowered by it, then the campaign's account
given it)."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import func, select, update
from sqlalchemy.orm import Session

from loyalty.db.models import Campaign, Partner, PartnerKind, utcnow
from loyalty.domain.campaigns import Campaign as Rules
from loyalty.domain.campaigns import CampaignSet, campaign_from_definition
from loyalty.domain.credentials import hash_secret, new_secret
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import partners
from loyalty.services.compiled import Compiled, forget, memo
from loyalty.services.lists import Page, keyset
from loyalty.services.partners import CAMPAIGN_ACCOUNT
from loyalty.services.uow import UnitOfWork


def create(uow: UnitOfWork, partner_id: int, definition: Mapping[str, Any]) -> Campaign:
    """A campaign of `partner_id` (a brand's issuer account: in its first program, or in
    another) with its own issuer account in the same program, its budget taken from the
    partner's (`422 budget_exceeded` if the partner has less left)."""
    session = uow.session
    parsed = campaign_from_definition(0, definition)  # refuses what cannot work
    budget = int(definition["budget_points"])
    owner = session.execute(
        select(Partner).where(Partner.id == partner_id).with_for_update(key_share=True)
    ).scalar_one()
    if budget > owner.available_points:
        raise UnprocessableError(
            ErrorCode.BUDGET_EXCEEDED,
            f"the campaign's budget is {budget} points; partner {partner_id} has {owner.available_points} left",
        )
    campaign = Campaign(
        partner_id=partner_id,
        name=parsed.name,
        definition=json.dumps(definition, sort_keys=True, default=str),
        budget_points=budget,
        starts_at=parsed.starts_at,
        ends_at=parsed.ends_at,
    )
    session.add(campaign)
    session.flush()
    forget(session)  # the partner's campaigns changed
    address, sealed = uow.custody.new_wallet()
    issuer = Partner(
        name=f"{CAMPAIGN_ACCOUNT}{campaign.id}",  # brands' names cannot start so
        kind=PartnerKind.CAMPAIGN,
        owner_id=partner_id,
        program_id=owner.program_id,
        api_key_hash=hash_secret(new_secret("cmp_")),  # never handed out: nobody signs in as a campaign
        issuer_address=address,
        issuer_key_sealed=sealed,
        issue_budget_points=budget,
        budget_points=budget,
        pending_points=0,
    )
    session.add(issuer)
    session.flush()
    campaign.issuer_id = issuer.id
    session.execute(
        update(Partner)
        .where(Partner.id == partner_id)
        .values(budget_to_move_points=Partner.budget_to_move_points + budget)
        .execution_options(synchronize_session=False)
    )
    session.flush()
    return campaign


def get(uow: UnitOfWork, campaign_id: int, partner_id: int | None = None) -> Campaign:
    """A campaign; with `partner_id` (a brand), only one of that brand's, in any program
    (others are as if absent)."""
    campaign = uow.session.get(Campaign, campaign_id)
    if campaign is None or (
        partner_id is not None and partners.placed(uow.session, campaign.partner_id)[0] != partner_id
    ):
        raise NotFoundError(ErrorCode.CAMPAIGN_NOT_FOUND, f"no campaign {campaign_id}")
    return campaign


def deactivate(uow: UnitOfWork, campaign_id: int, partner_id: int | None) -> Campaign:
    """The campaign gives nothing more (what it gave stays; its budget left stays on its account)."""
    campaign = get(uow, campaign_id, partner_id)
    if campaign.active:
        campaign.active, campaign.updated_at = False, utcnow()
    uow.session.flush()
    forget(uow.session)
    return campaign


def issuer(uow: UnitOfWork, campaign: Campaign) -> Partner:
    found = uow.session.get(Partner, campaign.issuer_id)
    assert found is not None  # every campaign is made with its account
    return found


def page_campaigns(
    uow: UnitOfWork,
    *,
    partner_id: int | None,
    active: bool | None,
    cursor: str | None,
    limit: int,
    program_id: int | None = None,
) -> Page[Campaign]:
    """Campaigns, oldest first: a brand's (in every program it issues in), a program's."""
    query = select(Campaign)
    if partner_id is not None:
        query = query.where(Campaign.partner_id.in_(partners.accounts_of(partner_id)))
    if program_id is not None:
        query = query.where(Campaign.issuer_id.in_(partners.accounts_there(program_id)))
    if active is not None:
        query = query.where(Campaign.active == active)
    return keyset(uow.session, query, [Campaign.id], cursor, limit)


@dataclass(frozen=True)
class Running:
    """A partner's active campaigns, compiled, with the issuer account of each."""

    campaigns: CampaignSet
    issuers: Mapping[int, int]

    @property
    def all(self) -> list[Rules]:
        return self.campaigns.campaigns

    def at(self, when: datetime) -> list[Rules]:
        """Those whose window holds `when`."""
        return [c for c in self.campaigns.campaigns if c.starts_at <= when < c.ends_at]


_COMPILED: Compiled[Running] = Compiled()


def running(session: Session, partner_id: int) -> Running:
    """The partner's active campaigns, compiled once per change (a fingerprint of how many are
    active and when one last changed); read once per transaction."""
    return memo(session, ("campaigns", partner_id), lambda: _compiled_campaigns(session, partner_id))


def _compiled_campaigns(session: Session, partner_id: int) -> Running:
    fingerprint = tuple(
        session.execute(
            select(
                func.count(Campaign.id), func.coalesce(func.sum(Campaign.id), 0), func.max(Campaign.updated_at)
            ).where(Campaign.partner_id == partner_id, Campaign.active.is_(True))
        ).one()
    )

    def build() -> Running:
        rows = session.execute(
            select(Campaign.id, Campaign.issuer_id, Campaign.definition)
            .where(Campaign.partner_id == partner_id, Campaign.active.is_(True))
            .order_by(Campaign.id)
        ).all()
        return Running(
            campaigns=CampaignSet(
                [campaign_from_definition(cid, json.loads(definition)) for cid, _, definition in rows]
            ),
            issuers={cid: issuer_id for cid, issuer_id, _ in rows if issuer_id is not None},
        )

    return _COMPILED.get((str(session.get_bind().engine.url), partner_id), fingerprint, build)


def compiled(session: Session, campaign_ids: Sequence[int]) -> list[Rules]:
    """These campaigns as the engine sees them, active or not (a refund recomputes what a
    purchase's campaigns give the lines left)."""
    rows = session.execute(
        select(Campaign.id, Campaign.definition).where(Campaign.id.in_(campaign_ids)).order_by(Campaign.id)
    )
    return [campaign_from_definition(cid, json.loads(definition)) for cid, definition in rows]
