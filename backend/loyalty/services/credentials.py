"""Members sign in: a custodial member with its passphrase (set through a one-time enrolment or
reset link), a self-custody member by signing a Sign-In with Ethereum message with its wallet.
Either way it gets a short-lived session token, the credential the `/v1/me` routes take."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.orm import Session

from loyalty.chain.client import checksum
from loyalty.db.models import Member, MemberToken, MemberTokenKind, SignInNonce, SignInThrottle, utcnow
from loyalty.db.session import dialect_insert
from loyalty.domain import siwe
from loyalty.domain.credentials import (
    ALL_SOURCES,
    FREE_SIGN_IN_FAILURES,
    FREE_SIGN_IN_FAILURES_ALL_SOURCES,
    MAX_SIGN_IN_BLOCK,
    hash_secret,
    new_secret,
    normal_code,
    sign_in_block,
    verify_passphrase,
)
from loyalty.domain.credentials import (
    new_redemption_code as new_code_text,
)
from loyalty.errors import DomainError, ErrorCode, TooManyAttemptsError, UnauthorizedError, UnprocessableError
from loyalty.services.uow import UnitOfWork

SESSION_TTL = timedelta(minutes=30)
ENROLMENT_LINK_TTL = timedelta(days=7)
RESET_LINK_TTL = timedelta(hours=1)
REDEMPTION_CODE_TTL = timedelta(minutes=10)
SIWE_NONCE_TTL = timedelta(minutes=10)


def _issue(
    uow: UnitOfWork, member: Member, kind: MemberTokenKind, ttl: timedelta, secret: str, **extra: int
) -> datetime:
    expires_at = utcnow() + ttl
    uow.session.add(
        MemberToken(token_hash=hash_secret(secret), member_id=member.id, kind=kind, expires_at=expires_at, **extra)
    )
    uow.session.flush()
    return expires_at


def new_session(uow: UnitOfWork, member: Member) -> tuple[str, datetime]:
    """A session token (shown once) and when it expires."""
    token = new_secret("mbr_")
    return token, _issue(uow, member, MemberTokenKind.SESSION, SESSION_TTL, token)


def new_link(uow: UnitOfWork, member: Member, kind: MemberTokenKind) -> tuple[str, datetime]:
    """A one-time token to set the passphrase (enrolment, or reset) of a custodial member."""
    if not member.custodial:
        raise UnprocessableError(ErrorCode.CUSTODIAL_ONLY, f"member {member.id} signs in with its own wallet")
    token = new_secret("lnk_")
    ttl = ENROLMENT_LINK_TTL if kind == MemberTokenKind.ENROLMENT else RESET_LINK_TTL
    return token, _issue(uow, member, kind, ttl, token)


def new_redemption_code(uow: UnitOfWork, member: Member, partner_id: int, max_points: int) -> tuple[str, datetime]:
    """A code the member hands a partner's checkout: one redemption there, up to `max_points`."""
    if not member.custodial:
        raise UnprocessableError(
            ErrorCode.CUSTODIAL_ONLY, f"member {member.id} holds its own wallet: it consents by signing"
        )
    code = new_code_text()
    return code, _issue(
        uow,
        member,
        MemberTokenKind.REDEMPTION_CODE,
        REDEMPTION_CODE_TTL,
        code,
        partner_id=partner_id,
        max_points=max_points,
    )


def use_redemption_code(uow: UnitOfWork, member: Member, partner_id: int, code: str, amount_points: int) -> None:
    """Spend a redemption code on a redemption of `amount_points` at `partner_id`, once."""
    used = uow.session.execute(
        update(MemberToken)
        .where(
            MemberToken.token_hash == hash_secret(normal_code(code)),
            MemberToken.kind == MemberTokenKind.REDEMPTION_CODE,
            MemberToken.member_id == member.id,
            MemberToken.partner_id == partner_id,
            MemberToken.max_points >= amount_points,
            MemberToken.expires_at > utcnow(),
            MemberToken.used_at.is_(None),
        )
        .values(used_at=utcnow())
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise UnprocessableError(
            ErrorCode.REDEMPTION_CODE_INVALID,
            f"no unused, unexpired code of member {member.id} for this partner covers {amount_points} points",
        )


def redemption_codes_fitting(uow: UnitOfWork, partner_id: int, wanted: list[tuple[int, str, int]]) -> list[str | None]:
    """For each (member id, code, points): the code's hash if it is the member's, unused,
    unexpired, for this partner and covers the points, else None (a code given twice fits the
    first time only). Nothing is spent: `spend_redemption_codes` does, for those used."""
    hashes = [hash_secret(normal_code(code)) for _, code, _ in wanted]
    found = {
        row.token_hash: row
        for row in uow.session.scalars(
            select(MemberToken).where(
                MemberToken.token_hash.in_(set(hashes)),
                MemberToken.kind == MemberTokenKind.REDEMPTION_CODE,
                MemberToken.partner_id == partner_id,
                MemberToken.expires_at > utcnow(),
                MemberToken.used_at.is_(None),
            )
        )
    }
    fitting: list[str | None] = []
    for (member_id, _, points), token_hash in zip(wanted, hashes, strict=True):
        row = found.pop(token_hash, None)
        fitting.append(token_hash if row and row.member_id == member_id and (row.max_points or 0) >= points else None)
    return fitting


def spend_redemption_codes(uow: UnitOfWork, hashes: list[str]) -> set[str]:
    """Spend the codes (by hash) still unused; returns those spent here (a racing request may
    have spent one first)."""
    if not hashes:
        return set()
    return set(
        uow.session.scalars(
            update(MemberToken)
            .where(MemberToken.token_hash.in_(hashes), MemberToken.used_at.is_(None))
            .values(used_at=utcnow())
            .returning(MemberToken.token_hash)
            .execution_options(synchronize_session=False)
        )
    )


def member_of_session(uow: UnitOfWork, token: str) -> Member | None:
    """The member a live session token belongs to."""
    query = select(MemberToken.member_id).where(
        MemberToken.token_hash == hash_secret(token),
        MemberToken.kind == MemberTokenKind.SESSION,
        MemberToken.expires_at > utcnow(),
        MemberToken.used_at.is_(None),
    )
    member_id = uow.session.scalar(query)
    return None if member_id is None else uow.session.get(Member, member_id)


def end_session(uow: UnitOfWork, token: str) -> None:
    uow.session.execute(
        update(MemberToken).where(MemberToken.token_hash == hash_secret(token)).values(used_at=utcnow())
    )


def check_passphrase(uow: UnitOfWork, external_id: str, passphrase: str, source: str) -> tuple[Member | None, bool]:
    """The member and whether the passphrase is right: read without a lock, verified outside
    any transaction's lock (argon2 takes ~0.1 s; the write lock would stall every writer). An
    unknown member, one without a passphrase and a wrong passphrase look the same, take as long
    and are throttled alike. Sign-in closed for `external_id` from `source` (a client address),
    or from all, is `TooManyAttemptsError`."""
    now = utcnow()
    blocked = uow.session.scalar(
        select(func.max(SignInThrottle.blocked_until)).where(
            SignInThrottle.external_id == external_id, SignInThrottle.source.in_([source, ALL_SOURCES])
        )
    )
    if blocked is not None and blocked > now:
        wait_s = int((blocked - now).total_seconds()) + 1
        raise TooManyAttemptsError(f"too many wrong passphrases: try again in {wait_s} s", wait_s)
    member = uow.session.scalar(select(Member).where(Member.external_id == external_id))
    uow.session.rollback()  # no transaction stays open across the hash
    right = verify_passphrase(member.passphrase_hash if member else None, passphrase)
    return member, right and member is not None


def count_sign_in(uow: UnitOfWork, external_id: str, source: str, right: bool) -> DomainError | None:
    """Record the attempt (under the write lock, briefly): a right one clears the counts, a
    wrong one counts, from `source` and from all, and may close sign-in for a while. Returns
    the refusal, if it was wrong."""
    mine = (SignInThrottle.external_id == external_id, SignInThrottle.source.in_([source, ALL_SOURCES]))
    if right:
        uow.session.execute(delete(SignInThrottle).where(*mine))
        return None
    now = utcnow()
    for key, free in ((source, FREE_SIGN_IN_FAILURES), (ALL_SOURCES, FREE_SIGN_IN_FAILURES_ALL_SOURCES)):
        insert = dialect_insert(uow.session)(SignInThrottle).values(
            external_id=external_id, source=key, failures=1, updated_at=now
        )
        failures = uow.session.execute(
            insert.on_conflict_do_update(
                index_elements=[SignInThrottle.external_id, SignInThrottle.source],
                set_={"failures": SignInThrottle.failures + 1, "updated_at": now},
            ).returning(SignInThrottle.failures)
        ).scalar_one()
        if block := sign_in_block(failures, free):
            uow.session.execute(
                update(SignInThrottle)
                .where(SignInThrottle.external_id == external_id, SignInThrottle.source == key)
                .values(blocked_until=now + block)
            )
    return UnauthorizedError(ErrorCode.SIGN_IN_FAILED, "wrong external_id or passphrase")


def forget_throttles(session: Session, now: datetime) -> None:
    """Throttles untouched for the longest block, and not blocking now, go."""
    session.execute(
        delete(SignInThrottle).where(
            SignInThrottle.updated_at < now - MAX_SIGN_IN_BLOCK,
            or_(SignInThrottle.blocked_until.is_(None), SignInThrottle.blocked_until < now),
        )
    )


def set_passphrase(uow: UnitOfWork, link_token: str, passphrase_hash: str) -> Member:
    """Set a custodial member's passphrase (hashed by the caller, outside any lock) with a
    one-time enrolment or reset link; every session it had ends, and sign-in opens again."""
    now = utcnow()
    token_hash = hash_secret(link_token)
    row = uow.session.get(MemberToken, token_hash)
    used = uow.session.execute(
        update(MemberToken)
        .where(
            MemberToken.token_hash == token_hash,
            MemberToken.kind.in_([MemberTokenKind.ENROLMENT, MemberTokenKind.RESET]),
            MemberToken.expires_at > now,
            MemberToken.used_at.is_(None),
        )
        .values(used_at=now)
    )
    if row is None or used.rowcount != 1:  # type: ignore[attr-defined]
        raise UnprocessableError(ErrorCode.LINK_INVALID, "this link is unknown, used or expired: ask for a new one")
    member = uow.session.get(Member, row.member_id)
    assert member is not None
    member.passphrase_hash = passphrase_hash
    uow.session.execute(delete(SignInThrottle).where(SignInThrottle.external_id == member.external_id))
    uow.session.execute(
        update(MemberToken)
        .where(MemberToken.member_id == member.id, MemberToken.kind == MemberTokenKind.SESSION)
        .values(used_at=now)
    )
    return member


def new_siwe_nonce(uow: UnitOfWork) -> tuple[str, datetime]:
    nonce = secrets.token_hex(12)  # EIP-4361: at least 8 alphanumeric characters
    expires_at = utcnow() + SIWE_NONCE_TTL
    uow.session.add(SignInNonce(nonce=nonce, expires_at=expires_at))
    uow.session.flush()
    return nonce, expires_at


def sign_in_with_ethereum(uow: UnitOfWork, message: str, signature: bytes, domains: tuple[str, ...]) -> Member:
    """The self-custody member whose wallet signed `message` (EIP-4361) for this service, with a
    nonce it issued (each signs in once). A member's contract wallet is asked (ERC-1271)."""
    now = utcnow()

    def wallet_accepts(address: str, digest: bytes, signature: bytes) -> bool:
        smart = uow.session.scalar(
            select(Member.smart_wallet).where(Member.wallet_address == checksum(address), Member.custodial.is_(False))
        )
        return bool(smart) and uow.token.wallet_accepts(address, digest, signature)

    parsed = siwe.verify(
        message, signature, domains=domains, chain_id=uow.chain.chain_id, now=now, wallet_accepts=wallet_accepts
    )
    used = uow.session.execute(
        update(SignInNonce)
        .where(SignInNonce.nonce == parsed.nonce, SignInNonce.expires_at > now, SignInNonce.used_at.is_(None))
        .values(used_at=now)
    )
    if used.rowcount != 1:  # type: ignore[attr-defined]
        raise UnauthorizedError(ErrorCode.SIGN_IN_FAILED, "the nonce was not issued here, or is used or expired")
    member = uow.session.scalar(
        select(Member).where(Member.wallet_address == checksum(parsed.address), Member.custodial.is_(False))
    )
    if member is None:
        raise UnauthorizedError(ErrorCode.SIGN_IN_FAILED, f"no member holds wallet {parsed.address}")
    return member
