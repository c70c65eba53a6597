"""Earning rules: a partner's own, versioned JSON definitions, and a simulator that prices an
activity under them without writing anything."""

from __future__ import annotations

import json
from typing import Annotated

from fastapi import APIRouter, Query, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Partnered, Reader, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    MAX_INT,
    AwardPublic,
    CursorQuery,
    IdPath,
    Limit,
    Page,
    ProgramQuery,
    RuleCreate,
    RuleDefinition,
    RulePublic,
    RuleVersionPublic,
    Simulation,
    SimulationResult,
)
from loyalty.db.models import EarningRule, RuleVersion
from loyalty.db.session import write_lock
from loyalty.domain.earning.context import Activity, Line, MemberFacts
from loyalty.services import awards, campaigns, partners, pricing, rules
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/rules", tags=["rules"])


def _public(uow: UnitOfWork, rule: EarningRule, version: RuleVersion) -> RulePublic:
    brand_id, program_id = partners.placed(uow.session, rule.partner_id)
    return RulePublic(
        id=rule.id,
        partner_id=brand_id,
        program_id=program_id,
        version=rule.version,
        active=rule.active,
        definition=json.loads(version.definition),
        created_at=rule.created_at,
        updated_at=rule.updated_at,
    )


def _definition(body: RuleDefinition) -> dict[str, object]:
    return body.model_dump(mode="json", exclude_none=True, exclude={"program_id"})


@router.post("", status_code=201, response_model=RulePublic)
def create_rule(body: RuleCreate, request: Request, uow: UowDep, principal: Partnered, digest: Digest) -> JSONResponse:
    """A new earning rule of the calling partner, at version 1; it earns from now on, in the
    program it names (default: the first; a rule stays in its program)."""
    assert principal.partner_id is not None
    brand_id = principal.partner_id

    def write() -> tuple[int, RulePublic]:
        account = partners.account_in(uow, brand_id, body.program_id)
        return 201, _public(uow, *rules.create(uow, account.id, _definition(body)))

    return idempotent(request, digest, uow.session, principal, write)


@router.get("", response_model=Page[RulePublic])
def list_rules(
    uow: UowDep,
    principal: Reader,
    active: bool | None = None,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT)] = None,
    program_id: ProgramQuery = None,
    limit: Limit = 100,
    cursor: CursorQuery = None,
) -> Page[RulePublic]:
    """Rules at their current versions, oldest first: a partner sees its own (in every program,
    or in `program_id`); the admin and auditors every partner's (or one's, with `partner_id`)."""
    owner = principal.partner_id if principal.role == "partner" else partner_id
    page = rules.page_rules(uow, partner_id=owner, active=active, program_id=program_id, cursor=cursor, limit=limit)
    return Page(data=[_public(uow, r, rules.version_of(uow, r)) for r in page.rows], next_cursor=page.next_cursor)


@router.post("/simulate", response_model=SimulationResult)
def simulate(body: Simulation, uow: UowDep, principal: Partnered) -> SimulationResult:
    """What an activity would earn under the calling partner's active rules in the program
    (default: the first), its tier ladder (for the `tier` given) and the campaigns running at
    `occurred_at` (with their budgets as they are now; no member's caps). Writes nothing, so it
    takes no Idempotency-Key."""
    assert principal.partner_id is not None
    account_id = partners.account_in(uow, principal.partner_id, body.program_id).id
    activity = Activity(
        trigger=body.trigger,
        occurred_at=body.occurred_at,
        lines=[Line(**line.model_dump()) for line in body.lines],
        event_type=body.event_type,
    )
    facts = MemberFacts(body.tier, frozenset(body.segments))
    issuers = [account_id, *campaigns.running(uow.session, account_id).issuers.values()]
    budget_left = awards.available(uow.session, issuers, lock=False)
    priced = pricing.price(uow.session, account_id, activity, facts, budget_left=budget_left)
    return SimulationResult(
        awards=award_views(priced), total_points=priced.own_points + sum(b.points for b in priced.bonuses)
    )


def award_views(priced: pricing.Priced) -> list[AwardPublic]:
    """A priced activity's awards as the API shows them: the rules', the tier's, the campaigns'."""
    views = [AwardPublic.model_validate(a, from_attributes=True) for a in priced.awards]
    if priced.tier_extra:
        views.append(
            AwardPublic(
                rule_id=None,
                rule_version=None,
                points=priced.tier_extra,
                reason=priced.tier_reason or "",
                capped_by=None,
            )
        )
    return views + [
        AwardPublic(
            rule_id=None,
            rule_version=None,
            campaign_id=b.campaign_id,
            points=b.points,
            reason=b.reason,
            capped_by=b.capped_by,
        )
        for b in priced.bonuses
    ]


@router.get("/{rule_id:int}", response_model=RulePublic)
def get_rule(rule_id: IdPath, uow: UowDep, principal: Reader) -> RulePublic:
    rule = rules.get(uow, rule_id, _owner(principal.role, principal.partner_id))
    return _public(uow, rule, rules.version_of(uow, rule))


@router.get("/{rule_id:int}/versions", response_model=list[RuleVersionPublic])
def rule_versions(rule_id: IdPath, uow: UowDep, principal: Reader) -> list[RuleVersionPublic]:
    """Every version of the rule, oldest first (awards name the one that made them)."""
    rule = rules.get(uow, rule_id, _owner(principal.role, principal.partner_id))
    return [
        RuleVersionPublic(version=v.version, definition=json.loads(v.definition), created_at=v.created_at)
        for v in rules.versions(uow, rule)
    ]


@router.put("/{rule_id:int}", response_model=RulePublic)
def update_rule(rule_id: IdPath, body: RuleDefinition, uow: UowDep, principal: Partnered) -> RulePublic:
    """Change a rule: a new version when the definition differs (so a retried PUT makes no
    second one, and needs no Idempotency-Key); the old versions are kept."""
    with write_lock(uow.session):
        rule, version = rules.update(uow, rule_id, principal.partner_id, _definition(body))
        public = _public(uow, rule, version)
        uow.session.commit()
    return public


@router.post("/{rule_id:int}/deactivate", response_model=RulePublic)
def deactivate_rule(
    rule_id: IdPath, request: Request, uow: UowDep, principal: Partnered, digest: Digest
) -> JSONResponse:
    """The rule stops earning; its versions stay (awards name them)."""

    def write() -> tuple[int, RulePublic]:
        return 200, _public(uow, *rules.deactivate(uow, rule_id, principal.partner_id))

    return idempotent(request, digest, uow.session, principal, write)


def _owner(role: str, partner_id: int | None) -> int | None:
    return partner_id if role == "partner" else None
