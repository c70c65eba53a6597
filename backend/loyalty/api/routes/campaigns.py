"""Campaigns: a partner's, each with a window, who is eligible, a bonus or a multiplier, a cap
per member, and a budget its own issuer account holds on-chain (so the chain refuses to issue
past it, and the auditor sees each campaign's liability and breakage apart)."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, Reader, UowDep, Writer
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    CampaignBudget,
    CampaignCreate,
    CampaignPublic,
    CampaignStatus,
    CursorQuery,
    IdPath,
    Limit,
    Page,
    ProgramQuery,
)
from loyalty.db.models import Campaign, utcnow
from loyalty.services import campaigns, partners
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/campaigns", tags=["campaigns"])


def public(uow: UnitOfWork, campaign: Campaign) -> CampaignPublic:
    issuer = campaigns.issuer(uow, campaign)
    onchain = partners.token_of(uow, issuer).issue_budget(issuer.issuer_address) if issuer.provisioned_at else 0
    brand_id, program_id = partners.placed(uow.session, campaign.partner_id)
    now = utcnow()
    if not campaign.active:
        status = CampaignStatus.DEACTIVATED
    elif issuer.provisioned_at is None:
        status = CampaignStatus.PROVISIONING
    elif now < campaign.starts_at:
        status = CampaignStatus.SCHEDULED
    elif now >= campaign.ends_at:
        status = CampaignStatus.ENDED
    else:
        status = CampaignStatus.RUNNING
    return CampaignPublic(
        id=campaign.id,
        partner_id=brand_id,
        program_id=program_id,
        name=campaign.name,
        status=status,
        active=campaign.active,
        starts_at=campaign.starts_at,
        ends_at=campaign.ends_at,
        issuer_address=issuer.issuer_address,
        issuer_id=issuer.id,
        budget=CampaignBudget(
            budget_points=campaign.budget_points,
            onchain_points=onchain,
            issued_points=campaign.budget_points - onchain if issuer.provisioned_at else 0,
            pending_points=issuer.pending_points,
            available_points=max(0, issuer.available_points),
        ),
        definition=json.loads(campaign.definition),
        created_at=campaign.created_at,
    )


@router.post("", status_code=201, response_model=CampaignPublic)
def create_campaign(
    body: CampaignCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """A campaign of the calling partner. Its budget comes out of the partner's at once (`422
    budget_exceeded` if less is left) and goes to the campaign's own issuer account: the outbox
    writer lowers the partner's on-chain budget by it, then gives the account gas, the issuer
    role and the budget. Purchases inside the window earn from it meanwhile (held until then).
    In another program than the first (`program_id`), the budget is the partner's there."""
    assert principal.partner_id is not None
    brand_id = principal.partner_id

    def write() -> tuple[int, CampaignPublic]:
        account = partners.account_in(uow, brand_id, body.program_id)
        definition = body.model_dump(mode="json", exclude={"program_id"})
        return 201, public(uow, campaigns.create(uow, account.id, definition))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("", response_model=Page[CampaignPublic])
def list_campaigns(
    uow: UowDep,
    principal: Reader,
    active: bool | None = None,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    program_id: ProgramQuery = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[CampaignPublic]:
    """Campaigns, oldest first: a partner's own (in every program, or in `program_id`); the
    admin's and auditors' of every partner (or one's, with `partner_id`)."""
    owner = principal.partner_id if principal.role == "partner" else partner_id
    page = campaigns.page_campaigns(
        uow, partner_id=owner, active=active, program_id=program_id, cursor=cursor, limit=limit
    )
    return Page(data=[public(uow, c) for c in page.rows], next_cursor=page.next_cursor)


@router.get("/{campaign_id}", response_model=CampaignPublic)
def get_campaign(campaign_id: IdPath, uow: UowDep, principal: Reader) -> CampaignPublic:
    """A campaign with its budget: what it may issue, what is left on-chain (read now), issued,
    pending and available."""
    return public(uow, campaigns.get(uow, campaign_id, principal.partner_id))


@router.post("/{campaign_id}/deactivate", response_model=CampaignPublic)
def deactivate_campaign(
    campaign_id: IdPath, request: Request, uow: UowDep, principal: Writer, digest: Digest
) -> JSONResponse:
    """The campaign gives nothing more (the partner's, or the admin). What it gave stays, and
    so does its budget left on its account."""

    def write() -> tuple[int, CampaignPublic]:
        return 200, public(uow, campaigns.deactivate(uow, campaign_id, principal.partner_id))

    return idempotent(request, digest, uow.session, principal, write)
