"""Programs: each is one LoyaltyPoints deployment with its own name, symbol and expiry. The
service deploys a program's token through the outbox (the operator administers it), or
registers a deployment the operator already administers. Program 1 is the database's own token.
"""

from __future__ import annotations

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from loyalty.chain.token import LoyaltyToken
from loyalty.db.models import Program, ProgramKind, ProgramStatus
from loyalty.errors import ChainMismatchError, ConflictError, ErrorCode, UnprocessableError
from loyalty.services.lists import Page, keyset
from loyalty.services.purchases import DEFAULT_PROGRAM, program
from loyalty.services.uow import UnitOfWork

__all__ = [
    "DEFAULT_PROGRAM",
    "create",
    "deployed",
    "deploying",
    "page",
    "program",
    "register",
    "undeployed",
]


def create(
    uow: UnitOfWork,
    *,
    name: str,
    symbol: str,
    epoch_length_s: int,
    validity_epochs: int,
    kind: ProgramKind,
    currency: str,
    pending_days: int,
) -> Program:
    """A new program whose token the outbox deploys (`deploying` until that is final)."""
    found = Program(
        name=name, symbol=symbol, epoch_length_s=epoch_length_s, validity_epochs=validity_epochs,
        kind=kind, currency=currency, pending_days=pending_days, status=ProgramStatus.DEPLOYING,
    )  # fmt: skip
    uow.session.add(found)
    uow.session.flush()
    return found


def register(
    uow: UnitOfWork, *, token_address: str, name: str | None, kind: ProgramKind, currency: str, pending_days: int
) -> Program:
    """A program for a token already deployed, read from the chain: `422 program_token_invalid`
    when there is no LoyaltyPoints at the address or the operator does not administer it (it
    could not make partners its issuers), `409 program_exists` when a program has it already."""
    token = LoyaltyToken(uow.chain, token_address, check=False)
    if uow.session.scalar(select(Program.id).where(Program.token_address == token.address)) is not None:
        raise ConflictError(ErrorCode.PROGRAM_EXISTS, f"a program already has the token {token.address}")
    try:
        facts = token.facts()
    except ChainMismatchError as exc:
        raise UnprocessableError(ErrorCode.PROGRAM_TOKEN_INVALID, str(exc)) from exc
    if not facts.administered:
        raise UnprocessableError(
            ErrorCode.PROGRAM_TOKEN_INVALID,
            f"the operator {uow.chain.operator.address} does not administer {token.address}: grant it the admin role first",
        )
    found = Program(
        name=name or facts.name, symbol=facts.symbol, epoch_length_s=facts.epoch_length_s,
        validity_epochs=facts.validity_epochs, token_address=token.address, kind=kind, currency=currency,
        pending_days=pending_days, status=ProgramStatus.ACTIVE,
    )  # fmt: skip
    uow.session.add(found)
    uow.session.flush()
    return found


def page(uow: UnitOfWork, *, cursor: str | None, limit: int) -> Page[Program]:
    return keyset(uow.session, select(Program), [Program.id], cursor, limit)


def deploying(session: Session, program_id: int, address: str) -> None:
    """The outbox signed the program's deployment: its token will be at `address` (a dropped
    deployment's prediction, left on another program, gives way)."""
    session.execute(
        update(Program)
        .where(Program.token_address == address, Program.id != program_id, Program.status == ProgramStatus.DEPLOYING)
        .values(token_address=None)
    )
    session.execute(
        update(Program)
        .where(Program.id == program_id, Program.status == ProgramStatus.DEPLOYING)
        .values(token_address=address)
    )


def deployed(session: Session, program_id: int, block_number: int) -> None:
    """The program's deployment is final: the program is active."""
    session.execute(
        update(Program)
        .where(Program.id == program_id, Program.status == ProgramStatus.DEPLOYING)
        .values(status=ProgramStatus.ACTIVE, deployment_block=block_number)
    )


def undeployed(session: Session, program_id: int) -> None:
    """A reorg took the deployment away: it is on its way again (the very same transaction)."""
    session.execute(
        update(Program)
        .where(Program.id == program_id, Program.status == ProgramStatus.ACTIVE)
        .values(status=ProgramStatus.DEPLOYING, deployment_block=None)
    )
