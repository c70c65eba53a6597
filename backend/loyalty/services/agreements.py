"""Rate agreements between brands: one brand proposes terms, the other counter-signs, and the
outbox registers them on the exchange; either brand may revoke. Each brand is its issuer
account on the chain, and the service signs for it with that account's key, unless the brand
registered an agreement signer of its own (`set_signer`): then the brand sends that signer's
signature of the typed data, and the service never holds the key.

The terms are checked here exactly as `PointsExchange.registerAgreement` checks them
(`domain.exchange.check_terms`), so a proposal the chain would refuse is refused at once.
"""

from __future__ import annotations

import dataclasses
import json
import secrets
from datetime import datetime
from typing import Any

from sqlalchemy import or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.client import is_zero
from loyalty.chain.exchange import PointsExchange
from loyalty.db.models import (
    AgreementStatus,
    ChainWrite,
    Partner,
    PartnerKind,
    ProgramStatus,
    RateAgreement,
    WriteKind,
    WriteStatus,
    utcnow,
)
from loyalty.domain.consent import full_signature, is_low_s, recover_signer, sign_typed_data
from loyalty.domain.exchange import Agreement, QuoteRefused, agreement_typed_data, check_terms
from loyalty.domain.exchange import quote as domain_quote
from loyalty.errors import ConflictError, ErrorCode, ForbiddenError, NotFoundError, UnprocessableError
from loyalty.services.lists import Page, keyset
from loyalty.services.purchases import program
from loyalty.services.uow import UnitOfWork


def terms_of(row: RateAgreement) -> Agreement:
    return Agreement(**json.loads(row.terms))


def propose(uow: UnitOfWork, exchange: PointsExchange, proposer_id: int, body: dict[str, Any]) -> RateAgreement:
    """The terms in `body` (programs and brands by id, the rest as `Agreement`'s fields, times
    as datetimes), signed for the proposer, who must be the payer or the payee."""
    session = uow.session
    if proposer_id not in (body["payer_id"], body["payee_id"]):
        raise ForbiddenError(ErrorCode.FORBIDDEN, "a partner proposes only agreements it is the payer or the payee of")
    payer, payee = _brand(uow, body["payer_id"]), _brand(uow, body["payee_id"])
    proposer = payer if proposer_id == payer.id else payee
    source, target = program(session, body["source_program_id"]), program(session, body["target_program_id"])
    for side in (source, target):
        if side.status != ProgramStatus.ACTIVE or side.token_address is None:
            raise UnprocessableError(ErrorCode.PROGRAM_NOT_ACTIVE, f"program {side.id} has no token deployed yet")
    assert source.token_address is not None and target.token_address is not None
    numbers = {k: body[k] for k in _NUMBERS}
    terms = Agreement(
        source=source.token_address, target=target.token_address, payer=payer.issuer_address,
        payee=payee.issuer_address, valid_from=_unix(body["valid_from"]), valid_until=_unix(body["valid_until"]),
        salt=secrets.randbits(64), **numbers,
    )  # fmt: skip
    try:
        check_terms(terms, int(utcnow().timestamp()))
    except QuoteRefused as refused:
        raise UnprocessableError(ErrorCode.AGREEMENT_INVALID, str(refused)) from refused
    row = RateAgreement(
        agreement_id=exchange.agreement_id(terms), exchange_address=exchange.address, source_program_id=source.id,
        target_program_id=target.id, payer_id=payer.id, payee_id=payee.id, proposed_by=proposer_id,
        terms=json.dumps(dataclasses.asdict(terms)), status=AgreementStatus.PROPOSED,
    )  # fmt: skip
    if proposer.agreement_signer is None:  # else it signs the typed data itself (`sign`)
        _sign_for(uow, exchange, row, proposer_id)
    session.add(row)
    session.flush()
    return row


def sign(
    uow: UnitOfWork, exchange: PointsExchange, row_id: int, partner_id: int, signature: bytes | None = None
) -> RateAgreement:
    """A brand's signature: with both, the agreement is `signed` and the outbox registers it.
    A brand with its own agreement signer sends that signer's `signature` of the typed data
    (`422 agreement_signature_required` without, `422 invalid_signature` for another's).
    Signing after both signed is a no-op."""
    row = get(uow, row_id, partner_id)
    if row.status != AgreementStatus.PROPOSED:
        return row
    try:
        check_terms(terms_of(row), int(utcnow().timestamp()))  # it may have ended since it was proposed
    except QuoteRefused as refused:
        raise UnprocessableError(ErrorCode.AGREEMENT_INVALID, str(refused)) from refused
    _sign_for(uow, exchange, row, partner_id, signature)
    if row.payer_signature and row.payee_signature:
        row.status = AgreementStatus.SIGNED
    uow.session.flush()
    return row


def revoke(uow: UnitOfWork, row_id: int, partner_id: int) -> RateAgreement:
    """Stop the agreement for future exchanges: before registration at once, after it through
    the outbox (`revoking`, then `revoked` once the chain has it). Revoking again is a no-op."""
    row = get(uow, row_id, partner_id)
    if row.status in (AgreementStatus.REVOKING, AgreementStatus.REVOKED):
        return row
    if row.status == AgreementStatus.SIGNED:
        raise ConflictError(ErrorCode.AGREEMENT_REGISTERING, "the agreement is being registered: revoke it once it is")
    row.revoked_by = partner_id
    row.status = AgreementStatus.REVOKING if row.status == AgreementStatus.REGISTERED else AgreementStatus.REVOKED
    uow.session.flush()
    return row


def quote(uow: UnitOfWork, row_id: int, amount_in: int) -> tuple[RateAgreement, int, int]:
    """What `amount_in` points in would give out under a registered agreement, and what the
    payer would owe for them: (agreement, points out, owed), as the exchange computes them."""
    row = get(uow, row_id, None)
    if row.status != AgreementStatus.REGISTERED:
        raise ConflictError(ErrorCode.AGREEMENT_NOT_REGISTERED, f"agreement {row_id} is {row.status}, not registered")
    try:
        amount_out, owed = domain_quote(terms_of(row), amount_in)
    except QuoteRefused as refused:
        raise UnprocessableError(ErrorCode.EXCHANGE_AMOUNT_INVALID, str(refused)) from refused
    return row, amount_out, owed


def landed(session: Session, row_id: int, *, registering: bool, error: str | None) -> None:
    """The agreement's registration or revocation is final: registered or revoked; or the
    chain refused it (a registration is then `refused`, a revocation leaves it registered)."""
    if registering:
        after = AgreementStatus.REGISTERED if error is None else AgreementStatus.REFUSED
        before = AgreementStatus.SIGNED
    else:
        after = AgreementStatus.REVOKED if error is None else AgreementStatus.REGISTERED
        before = AgreementStatus.REVOKING
    session.execute(
        update(RateAgreement)
        .where(RateAgreement.id == row_id, RateAgreement.status == before)
        .values(status=after, error=error, updated_at=utcnow())
    )


def unlanded(session: Session, row_id: int, *, registering: bool) -> None:
    """A reorg took the registration or revocation away: it is on its way again."""
    before, after = (
        (AgreementStatus.REGISTERED, AgreementStatus.SIGNED)
        if registering
        else (AgreementStatus.REVOKED, AgreementStatus.REVOKING)
    )
    session.execute(
        update(RateAgreement).where(RateAgreement.id == row_id, RateAgreement.status == before).values(status=after)
    )


def get(uow: UnitOfWork, row_id: int, partner_id: int | None) -> RateAgreement:
    """An agreement; a partner sees only those it is a party to (another's is `404`)."""
    row = uow.session.get(RateAgreement, row_id)
    if row is None or (partner_id is not None and partner_id not in (row.payer_id, row.payee_id)):
        raise NotFoundError(ErrorCode.AGREEMENT_NOT_FOUND, f"no agreement {row_id}")
    return row


def page(
    uow: UnitOfWork, partner_id: int | None, *, cursor: str | None, limit: int, registered_only: bool = False
) -> Page[RateAgreement]:
    query = select(RateAgreement)
    if registered_only:
        query = query.where(RateAgreement.status == AgreementStatus.REGISTERED)
    if partner_id is not None:
        query = query.where(or_(RateAgreement.payer_id == partner_id, RateAgreement.payee_id == partner_id))
    return keyset(uow.session, query, [RateAgreement.id], cursor, limit)


_NUMBERS = [
    "rate_numerator", "rate_denominator", "minimum_in", "step_in", "max_in_per_exchange",
    "max_in_per_member_period", "bonus_every", "bonus_out", "price_per_point", "credit_limit",
]  # fmt: skip


def _brand(uow: UnitOfWork, partner_id: int) -> Partner:
    partner = uow.session.get(Partner, partner_id)
    if partner is None or partner.kind != PartnerKind.BRAND or partner.deactivated_at is not None:
        raise NotFoundError(ErrorCode.PARTNER_NOT_FOUND, f"no partner {partner_id}")
    return partner


def typed_data(uow: UnitOfWork, row: RateAgreement) -> dict[str, Any]:
    """What both brands' agreement signers sign (EIP-712, on the exchange it was made on)."""
    return agreement_typed_data(terms_of(row), chain_id=uow.chain.chain_id, exchange_address=row.exchange_address)


def set_signer(uow: UnitOfWork, partner_id: int, address: str | None) -> Partner:
    """The brand signs its agreements with `address` from now on (`None`, or its issuer
    account's own address: with that account's key, which the service holds; the zero address
    is `422`). The outbox sets it on the exchange, from the brand's account; registrations
    needing the brand's signature wait until it is there. The brand's signatures on agreements
    not registered yet were the old signer's, which the exchange will no longer take: they are
    dropped (a signed agreement is proposed again, for the brand to sign anew); while one of
    its agreements is being registered, the signer cannot change (`409 agreement_registering`)."""
    partner = _brand(uow, partner_id)
    if address is not None and is_zero(address):
        raise UnprocessableError(
            ErrorCode.VALIDATION_ERROR, "the zero address signs nothing: send null for the issuer account"
        )
    if address is not None and address.lower() == partner.issuer_address.lower():
        address = None
    if address == partner.agreement_signer:
        return partner
    pending = uow.session.scalars(
        select(RateAgreement).where(
            or_(RateAgreement.payer_id == partner_id, RateAgreement.payee_id == partner_id),
            RateAgreement.status.in_((AgreementStatus.PROPOSED, AgreementStatus.SIGNED)),
        )
    ).all()
    registering = uow.session.scalar(
        select(ChainWrite.ref)
        .where(
            ChainWrite.kind == WriteKind.REGISTER_AGREEMENT,
            ChainWrite.status == WriteStatus.SENT,
            ChainWrite.ref.in_([row.id for row in pending]),
        )
        .limit(1)
    )
    if registering is not None:
        raise ConflictError(
            ErrorCode.AGREEMENT_REGISTERING,
            f"agreement {registering} is being registered with the current signer's signature: change it once it is",
        )
    for row in pending:
        if row.payer_id == partner_id:
            row.payer_signature = None
        if row.payee_id == partner_id:
            row.payee_signature = None
        row.status = AgreementStatus.PROPOSED
    partner.agreement_signer = address
    uow.session.flush()
    return partner


def signer_of(partner: Partner) -> str:
    """The address the exchange should take the brand's agreement signatures from."""
    return partner.agreement_signer or partner.issuer_address


def _sign_for(
    uow: UnitOfWork, exchange: PointsExchange, row: RateAgreement, partner_id: int, given: bytes | None = None
) -> None:
    """The partner's signature: by its issuer account's key (the brand's address on the
    chain), or `given` by the brand's own agreement signer."""
    partner = _brand(uow, partner_id)
    typed = exchange.typed_data(terms_of(row))
    if partner.agreement_signer is None:
        if given is not None:
            raise UnprocessableError(
                ErrorCode.VALIDATION_ERROR,
                f"partner {partner_id} signs agreements with its issuer account, whose key the service holds: "
                "send no signature (or register an agreement signer first)",
            )
        key = uow.custody.open(partner.issuer_address, partner.issuer_key_sealed)
        signed = sign_typed_data(typed, key.key)
    else:
        if given is None:
            raise UnprocessableError(
                ErrorCode.AGREEMENT_SIGNATURE_REQUIRED,
                f"partner {partner_id} signs agreements with {partner.agreement_signer}: send its signature of "
                "the agreement's `typed_data`",
            )
        signed = full_signature(given)
        if not is_low_s(signed) or recover_signer(typed, signed) != partner.agreement_signer:
            raise UnprocessableError(
                ErrorCode.INVALID_SIGNATURE,
                f"the signature is not {partner.agreement_signer}'s (low-s, 65 or 64 bytes) of agreement {row.id}",
            )
    signature = "0x" + signed.hex()
    if partner_id == row.payer_id:
        row.payer_signature = signature
    if partner_id == row.payee_id:
        row.payee_signature = signature


def _unix(moment: datetime) -> int:
    return int(moment.timestamp())
