"""Program metrics: liability and breakage from the chain (the auditor's own computation), with
members, retention, purchases and deferred revenue from the service's records."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request

from loyalty.api.deps import Reader, RuntimeDep, UowDep
from loyalty.api.routes.audit import program_view
from loyalty.api.schemas import MAX_INT, MetricsPublic, ProgramQuery, TimeQuery, parse_time
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
from loyalty.services import metrics

router = APIRouter(prefix="/v1", tags=["metrics"])


@router.get("/metrics", response_model=MetricsPublic)
def get_metrics(
    request: Request, uow: UowDep, runtime: RuntimeDep, principal: Reader, program_id: ProgramQuery = None,
    partner_id: Annotated[int | None, Query(ge=1, le=MAX_INT, description="a brand's figures in the program")] = None,
    campaign_id: Annotated[int | None, Query(ge=1, le=MAX_INT, description="a budgeted campaign's")] = None,
    since: TimeQuery = None, until: TimeQuery = None,
    active_days: Annotated[int, Query(ge=1, le=3_650, description="active: did something in this many days")] = 90,
) -> MetricsPublic:  # fmt: skip
    """A program's figures (default: the first), a brand's in it (`partner_id`; a partner gets
    its own), or a budgeted campaign's: liability in points and money, what was issued,
    redeemed, donated, exchanged and expired (in all, and in [since, until) if given), points
    expiring in 30/60/90 days, breakage by cohort (realized, and expected with its method),
    redemption and active-member rates, retention by enrolment month, repeat purchases, dormant
    points and deferred revenue. The chain's figures are those `loyalty audit verify` derives."""
    if principal.partner_id is not None:
        if partner_id not in (None, principal.partner_id):
            raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
        partner_id = principal.partner_id
    start, end = parse_time(since), parse_time(until)
    if (start is None) != (end is None) or (start is not None and end is not None and start >= end):
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "give both `since` and `until`, since first")
    program, view = program_view(request, uow, program_id)
    where = metrics.scope(uow, program, partner_id, campaign_id)
    with view.snapshot() as snapshot:
        found = metrics.report(
            uow, snapshot, where, exchange=runtime.settings.exchange_address, since=start, until=end,
            active_days=active_days,
        )  # fmt: skip
    return MetricsPublic.model_validate(found)
