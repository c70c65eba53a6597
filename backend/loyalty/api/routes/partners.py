"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Admin, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import AuditorCreate, AuditorCreated, PartnerCreate, PartnerCreated
from loyalty.services import partners

router = APIRouter(prefix="/v1", tags=["partners"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create a partner. Its issuer account gets gas, ISSUER_ROLE and the budget on-chain from the
    outbox writer (`status` says when); its earns are accepted meanwhile and wait for that."""

    def write() -> tuple[int, PartnerCreated]:
        partner, api_key = partners.create(uow, body.name, body.issue_budget_points)
        return 201, PartnerCreated(
            id=partner.id,
            name=partner.name,
            issuer_address=partner.issuer_address,
            status="provisioning",
            api_key=api_key,
        )

    return idempotent(request, digest, uow.session, principal, write, secret=True)


@router.post("/auditors", status_code=201, response_model=AuditorCreated)
def create_auditor(
    body: AuditorCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create read-only API access for an auditor."""

    def write() -> tuple[int, AuditorCreated]:
        auditor, api_key = partners.create_auditor(uow, body.name)
        return 201, AuditorCreated(id=auditor.id, name=auditor.name, api_key=api_key)

    return idempotent(request, digest, uow.session, principal, write, secret=True)
