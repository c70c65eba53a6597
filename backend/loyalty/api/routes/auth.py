"""Members sign in: with a passphrase (custodial), or by signing a Sign-In with Ethereum
message with their wallet (self-custody). Each answers a session token for the /v1/me routes,
valid 30 minutes. No key needed; a retried sign-in only makes another session, so these take
no Idempotency-Key."""

from __future__ import annotations

from fastapi import APIRouter, Request

from loyalty.api.deps import RuntimeDep, UowDep
from loyalty.api.schemas import PassphraseSet, SessionCreate, SessionCreated, SiweNonce, SiweSignIn
from loyalty.db.models import Member
from loyalty.db.session import write_lock
from loyalty.domain.credentials import hash_passphrase
from loyalty.errors import ErrorCode, UnauthorizedError
from loyalty.services import credentials
from loyalty.services.uow import UnitOfWork

router = APIRouter(prefix="/v1/auth", tags=["sign-in"])
SIWE_STATEMENT = "Sign in to your loyalty points."


def _session(uow: UnitOfWork, member: Member) -> SessionCreated:
    token, expires_at = credentials.new_session(uow, member)
    uow.session.commit()
    return SessionCreated(token=token, expires_at=expires_at, member_id=member.id)


@router.post("/sessions", status_code=201, response_model=SessionCreated)
def sign_in(body: SessionCreate, request: Request, uow: UowDep) -> SessionCreated:
    """A custodial member signs in with its external id and passphrase. Wrong passphrases in a
    row close sign-in for that id for a while, from the client's address (5 free) and from all
    (50 free): `429 too_many_attempts` with `Retry-After`. Too many sign-ins at once on one
    process answer `503 busy` (`Retry-After: 1`)."""
    source = request.client.host if request.client else "unknown"
    member, right = credentials.check_passphrase(uow, body.external_id, body.passphrase, source)
    with write_lock(uow.session):
        refusal = credentials.count_sign_in(uow, body.external_id, source, right)
        if refusal is not None or member is None:
            uow.session.commit()  # the failure counts
            raise refusal or UnauthorizedError(ErrorCode.SIGN_IN_FAILED, "wrong external_id or passphrase")
        return _session(uow, member)


@router.post("/passphrase", response_model=SessionCreated)
def set_passphrase(body: PassphraseSet, uow: UowDep) -> SessionCreated:
    """Set a custodial member's passphrase with its one-time enrolment or reset token; the
    member's other sessions end, and it is signed in."""
    hashed = hash_passphrase(body.passphrase)  # before the lock: argon2 takes ~0.1 s
    with write_lock(uow.session):
        return _session(uow, credentials.set_passphrase(uow, body.token, hashed))


@router.post("/siwe/nonces", status_code=201, response_model=SiweNonce)
def siwe_nonce(request: Request, uow: UowDep, runtime: RuntimeDep) -> SiweNonce:
    """A nonce for a Sign-In with Ethereum message, with the domain, URI and chain the message
    must name (the service checks them; the domain is one it is configured to be reached at)."""
    with write_lock(uow.session):
        nonce, expires_at = credentials.new_siwe_nonce(uow)
        uow.session.commit()
    domains = runtime.settings.siwe_domains
    domain = request.url.netloc if request.url.netloc in domains else domains[0]
    return SiweNonce(
        nonce=nonce,
        expires_at=expires_at,
        domain=domain,
        uri=f"{request.url.scheme}://{domain}",
        chain_id=uow.chain.chain_id,
        statement=SIWE_STATEMENT,
    )


@router.post("/siwe", status_code=201, response_model=SessionCreated)
def siwe_sign_in(body: SiweSignIn, uow: UowDep, runtime: RuntimeDep) -> SessionCreated:
    """A self-custody member signs in with its wallet: the EIP-4361 message (naming one of the
    service's domains, with a nonce from /v1/auth/siwe/nonces and an Expiration Time) and its
    `personal_sign` signature."""
    with write_lock(uow.session):
        member = credentials.sign_in_with_ethereum(
            uow, body.message, bytes.fromhex(body.signature[2:]), domains=runtime.settings.siwe_domains
        )
        return _session(uow, member)
