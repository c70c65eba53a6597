"""A unit of work: one database session, with the chain and the keys it may need."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from sqlalchemy.orm import Session

from loyalty.chain.client import ChainClient
from loyalty.chain.custody import Custody
from loyalty.chain.exchange import PointsExchange
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
        token_at: the token of a program, by its address (program 1's is `token`).
        exchange: the exchange between programs (`503 exchange_not_configured` without one).
    """

    session: Session
    chain: ChainClient
    token: LoyaltyToken
    custody: Custody
    token_at: Callable[[str], LoyaltyToken]
    exchange: Callable[[], PointsExchange]

    @classmethod
    def of(cls, runtime: Runtime, session: Session) -> UnitOfWork:
        """A unit of work on `session` with the runtime's chain, tokens, exchange and keys."""
        return cls(session, runtime.chain, runtime.token, runtime.custody, runtime.token_at, runtime.exchange)
