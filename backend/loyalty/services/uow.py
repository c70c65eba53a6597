"""A unit of work: one database session, with the chain and the keys it may need."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.orm import Session

from loyalty.chain.client import ChainClient
from loyalty.chain.custody import Custody
from loyalty.chain.token import LoyaltyToken
from loyalty.runtime import Runtime


@dataclass
class UnitOfWork:
    """What a use case works with; the caller commits (or the idempotency layer does).

    Attributes:
        session: the database session.
        chain: the chain client (reads, blocks).
        token: the points token.
        custody: custodial and issuer keys.
    """

    session: Session
    chain: ChainClient
    token: LoyaltyToken
    custody: Custody

    @classmethod
    def of(cls, runtime: Runtime, session: Session) -> UnitOfWork:
        """A unit of work on `session` with the runtime's chain, token and keys."""
        return cls(session, runtime.chain, runtime.token, runtime.custody)
