"""Programs: each a LoyaltyPoints token (deployed by the service, or registered), with its
settings; a program's pending period holds purchase awards before they are minted."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse
from sqlalchemy import select

from loyalty.api.deps import Admin, CatalogReader, Reader, RuntimeDep, UowDep
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
    StatementLine,
    StatementPayment,
    StatementPublic,
    TimeQuery,
    parse_time,
)
from loyalty.audit import statements
from loyalty.audit.rpc import Rpc
from loyalty.db.models import Partner, PartnerKind
from loyalty.db.session import write_lock
from loyalty.errors import ErrorCode, NotFoundError, UnprocessableError
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


@router.get("/{program_id}/statements", response_model=StatementPublic)
def coalition_statement(
    program_id: IdPath, uow: UowDep, runtime: RuntimeDep, principal: Reader, since: TimeQuery = None,
    until: TimeQuery = None,
) -> StatementPublic:  # fmt: skip
    """A coalition program's statement for [since, until), from its token's events alone: each
    partner's points issued x the issue fee (owed to the coalition) and points redeemed at it
    x the redemption price (owed by it), netted into at most n - 1 payments with the coalition
    (named by the token's address) as a party. A partner sees its own line and payments.
    `loyalty audit statement` computes the same from the chain and the two prices."""
    start, end = parse_time(since), parse_time(until)
    if start is None or end is None or start >= end:
        raise UnprocessableError(ErrorCode.VALIDATION_ERROR, "give `since` before `until`")
    program = purchases.program(uow.session, program_id)
    if program.token_address is None:
        raise UnprocessableError(ErrorCode.PROGRAM_NOT_ACTIVE, f"program {program_id} has no token deployed yet")
    excluded = [runtime.settings.exchange_address] if runtime.settings.exchange_address else []
    rpc = Rpc(runtime.settings.rpc_url)
    try:
        found = statements.statement(
            rpc, program.token_address, since=int(start.timestamp()), until=int(end.timestamp()),
            issue_fee=program.issue_fee_per_point, redemption_price=program.redemption_price_per_point,
            from_block=int(program.deployment_block or 0), excluded=excluded,
        )  # fmt: skip
    finally:
        rpc.close()
    accounts = uow.session.execute(select(Partner.issuer_address, Partner.id, Partner.kind, Partner.owner_id)).all()
    # a brand's account in another program is the brand's line; a campaign's stays its own,
    # but the brand sees it as its own too
    ids = {a.lower(): owner if kind == PartnerKind.PROGRAM and owner else i for a, i, kind, owner in accounts}
    brands = {a.lower(): owner or i for a, i, _, owner in accounts}
    own = principal.partner_id

    def shown(*addresses: str) -> bool:
        return own is None or any(brands.get(a.lower()) == own for a in addresses)

    return StatementPublic(
        program_id=program.id, token_address=found.token, since=start, until=end, from_block=found.from_block,
        to_block=found.to_block, issue_fee_per_point=found.issue_fee, redemption_price_per_point=found.redemption_price,
        lines=[
            StatementLine(
                partner_id=ids.get(line.issuer.lower()), issuer=line.issuer, issued_points=line.issued,
                redeemed_points=line.redeemed, fees=str(line.fees), reimbursed=str(line.reimbursed), net=str(line.net),
            )
            for line in found.lines
            if shown(line.issuer)
        ],
        net={party: str(amount) for party, amount in found.net.items() if shown(party)},
        payments=[
            StatementPayment(
                debtor=debtor, debtor_id=ids.get(debtor.lower()), creditor=creditor,
                creditor_id=ids.get(creditor.lower()), amount=str(amount),
            )
            for debtor, creditor, amount in found.payments
            if shown(debtor, creditor)
        ],
    )  # fmt: skip


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
