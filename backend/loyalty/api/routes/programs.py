"""Programs and their settings. One program today (the deployed token's); its pending period
holds purchase awards before they are minted."""

from __future__ import annotations

from fastapi import APIRouter

from loyalty.api.deps import Admin, CatalogReader, UowDep
from loyalty.api.schemas import IdPath, LadderDefinition, ProgramPublic, ProgramUpdate
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, NotFoundError
from loyalty.services import purchases, tiers

router = APIRouter(prefix="/v1/programs", tags=["programs"])


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
