"""Programs: each a LoyaltyPoints token (deployed by the service, or registered), with its
settings; a program's pending period holds purchase awards before they are minted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse

from loyalty.api.deps import Admin, CatalogReader, UowDep
from loyalty.api.idempotency import Digest, idempotent
from loyalty.api.schemas import (
    CursorQuery,
    IdPath,
    IncomingBudgetGrant,
    LadderDefinition,
    Limit,
    Page,
    ProgramCreate,
    ProgramPublic,
    ProgramUpdate,
)
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, NotFoundError
from loyalty.services import programs, purchases, settlement, tiers

router = APIRouter(prefix="/v1/programs", tags=["programs"])


@router.post("", status_code=201, response_model=ProgramPublic)
def create_program(
    body: ProgramCreate, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Deploy a new program's token through the outbox (`deploying` until the deployment is
    final; `token_address` shows where it will be once the deployment is signed), or register
    an existing LoyaltyPoints the operator administers (`token_address` given; read from the
    chain, active at once)."""

    def write() -> tuple[int, ProgramPublic]:
        if body.token_address is not None:
            found = programs.register(
                uow, token_address=body.token_address, name=body.name, kind=body.kind,
                currency=body.currency, pending_days=body.pending_days,
            )  # fmt: skip
        else:
            assert body.name is not None
            found = programs.create(
                uow, name=body.name, symbol=body.symbol or "PTS", epoch_length_s=body.epoch_length_s,
                validity_epochs=body.validity_epochs, kind=body.kind, currency=body.currency,
                pending_days=body.pending_days,
            )  # fmt: skip
        return 201, ProgramPublic.model_validate(found, from_attributes=True)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("", response_model=Page[ProgramPublic])
def list_programs(uow: UowDep, _: CatalogReader, limit: Limit = 100, cursor: CursorQuery = None) -> Page[ProgramPublic]:
    """Every program, oldest first: program 1 is the database's own token."""
    page = programs.page(uow, cursor=cursor, limit=limit)
    return Page(
        data=[ProgramPublic.model_validate(p, from_attributes=True) for p in page.rows], next_cursor=page.next_cursor
    )


@router.get("/{program_id}", response_model=ProgramPublic)
def get_program(program_id: IdPath, uow: UowDep, _: CatalogReader) -> ProgramPublic:
    return ProgramPublic.model_validate(purchases.program(uow.session, program_id), from_attributes=True)


@router.patch("/{program_id}", response_model=ProgramPublic)
def update_program(program_id: IdPath, body: ProgramUpdate, uow: UowDep, _: Admin) -> ProgramPublic:
    """Change a program's settings (PATCH is naturally idempotent). A new pending period holds
    purchases recorded from now on; those pending keep the date they were given."""
    with write_lock(uow.session):
        program = purchases.program(uow.session, program_id)
        for field, value in body.model_dump(exclude_unset=True, exclude_none=True).items():
            setattr(program, field, value)
        uow.session.commit()
        return ProgramPublic.model_validate(program, from_attributes=True)


@router.post("/{program_id}/incoming-budget", response_model=ProgramPublic)
def grant_incoming_budget(
    program_id: IdPath, body: IncomingBudgetGrant, request: Request, uow: UowDep, principal: Admin, digest: Digest
) -> JSONResponse:
    """Let the program take `points` more in through the exchange: the target's cap on incoming
    points (the exchange's issue budget on its token). The outbox makes the exchange an issuer
    of the token the first time, then raises its budget; `incoming_budget_points` counts what
    is on-chain, `incoming_to_grant_points` what is on its way."""

    def write() -> tuple[int, ProgramPublic]:
        found = settlement.grant_incoming(uow, program_id, body.points)
        return 200, ProgramPublic.model_validate(found, from_attributes=True)

    return idempotent(request, digest, uow.session, principal, write)


@router.get("/{program_id}/tiers", response_model=LadderDefinition)
def get_tiers(program_id: IdPath, uow: UowDep, _: CatalogReader) -> LadderDefinition:
    program = purchases.program(uow.session, program_id)
    if program.tiers is None:
        raise NotFoundError(ErrorCode.NOT_FOUND, f"program {program_id} has no tier ladder")
    return LadderDefinition.model_validate_json(program.tiers, strict=False)


@router.put("/{program_id}/tiers", response_model=LadderDefinition)
def set_tiers(program_id: IdPath, body: LadderDefinition, uow: UowDep, _: Admin) -> LadderDefinition:
    """Set the program's tier ladder (PUT is naturally idempotent). Members keep the tier they
    hold until their next review or purchase."""
    with write_lock(uow.session):
        tiers.set_ladder(uow, program_id, body.model_dump(mode="json"))
        uow.session.commit()
    return body
