"""Programs and their settings. One program today (the deployed token's); its pending period
holds purchase awards before they are minted."""

from __future__ import annotations

from fastapi import APIRouter

from loyalty.api.deps import Admin, CatalogReader, UowDep
from loyalty.api.schemas import IdPath, ProgramPublic, ProgramUpdate
from loyalty.db.session import write_lock
from loyalty.services import purchases

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
