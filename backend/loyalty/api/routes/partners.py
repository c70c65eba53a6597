"""Partners (brands with an issuer account) and auditors: created by the admin."""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from loyalty.api.deps import Admin, ProgramDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import AuditorCreate, AuditorCreated, PartnerCreate, PartnerCreated
from loyalty.db.models import Auditor
from loyalty.errors import ConflictError
from loyalty.program import hash_api_key

router = APIRouter(prefix="/v1", tags=["partners"])


@router.post("/partners", status_code=201, response_model=PartnerCreated)
def create_partner(
    body: PartnerCreate, request: Request, program: ProgramDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create a partner. Its issuer account gets gas, ISSUER_ROLE and the budget on-chain from the
    outbox writer (`status` says when); its earns are accepted meanwhile and wait for that."""

    def write() -> tuple[int, PartnerCreated]:
        partner, api_key = program.create_partner(body.name, body.issue_budget_points)
        return 201, PartnerCreated(
            id=partner.id,
            name=partner.name,
            issuer_address=partner.issuer_address,
            status="provisioning",
            api_key=api_key,
        )

    return idempotent(request, digest, program.session, principal, write, secret=True)


@router.post("/auditors", status_code=201, response_model=AuditorCreated)
def create_auditor(
    body: AuditorCreate, request: Request, program: ProgramDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Create read-only API access for an auditor."""

    def write() -> tuple[int, AuditorCreated]:
        if program.session.scalar(select(Auditor).where(Auditor.name == body.name)) is not None:
            raise ConflictError("auditor_exists", f"an auditor named {body.name!r} already exists")
        api_key = "aud_" + secrets.token_hex(24)
        auditor = Auditor(name=body.name, api_key_hash=hash_api_key(api_key))
        program.session.add(auditor)
        program.session.flush()
        return 201, AuditorCreated(id=auditor.id, name=auditor.name, api_key=api_key)

    return idempotent(request, digest, program.session, principal, write, secret=True)
