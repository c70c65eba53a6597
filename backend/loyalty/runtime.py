"""The composition root: database, key custody and chain client built once from `Settings`, for
the API, the worker and the CLI alike.

It also decides which chain and token the service talks to, and refuses the wrong ones: the
database records the chain id, the token and a block hash of the chain it belongs to (the
deployment's block when it is known), and every process checks a node against that record when
it first reaches it. Nothing here needs the chain to be up: a process starts, accepts earns and
waits for the chain; it is checked when it answers.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from pathlib import Path

from eth_account import Account
from sqlalchemy import Engine, select, update
from sqlalchemy.orm import Session, sessionmaker
from web3 import Web3

from loyalty.chain.client import LOCAL_CHAIN_IDS, ChainClient, redacted
from loyalty.chain.custody import Custody
from loyalty.chain.deploy import load_deployment, load_exchange
from loyalty.chain.exchange import PointsExchange
from loyalty.chain.token import LoyaltyToken
from loyalty.db.models import ChainBinding, Program
from loyalty.db.session import make_engine, make_sessionmaker, upgrade, write_lock
from loyalty.errors import ChainMismatchError, ChainUnavailableError, ConfigurationError, DomainError, ErrorCode
from loyalty.settings import DEV_OPERATOR_KEY, Settings

log = logging.getLogger("loyalty.runtime")
DEFAULT_CONFIRMATIONS = 12  # on chains other than a local dev chain, unless LOYALTY_CONFIRMATIONS says


@dataclass
class Runtime:
    """Everything a process of the service shares.

    Attributes:
        settings: the configuration.
        engine: the database engine.
        sessions: units of work on it.
        custody: custodial and issuer keys.
        chain: the chain client (connects on first use).
        token: the points token on it.
        deployment_block: the token's deployment block when known (the auditor's replay starts
            there), else 0.
    """

    settings: Settings
    engine: Engine
    sessions: sessionmaker[Session]
    custody: Custody
    chain: ChainClient
    token: LoyaltyToken
    deployment_block: int = 0
    confirmations: int | None = field(default=None)
    _tokens: dict[str, LoyaltyToken] = field(default_factory=dict)
    _exchange: PointsExchange | None = None

    def required_confirmations(self) -> int:
        """Blocks deep a write must be to count as final (needs the chain id)."""
        if self.confirmations is None:
            self.confirmations = self.settings.confirmations or (
                1 if self.chain.chain_id in LOCAL_CHAIN_IDS else DEFAULT_CONFIRMATIONS
            )
        return self.confirmations

    def token_at(self, address: str) -> LoyaltyToken:
        """The token of a program (at `address`) on the runtime's chain, one client per address."""
        if address.lower() == self.token.address.lower():
            return self.token
        found = self._tokens.get(address.lower())
        if found is None:
            found = self._tokens[address.lower()] = LoyaltyToken(self.chain, address, check=False)
        return found

    def exchange(self) -> PointsExchange:
        """The exchange between programs: EXCHANGE_ADDRESS, else this chain's recorded
        development deployment; `503 exchange_not_configured` without either."""
        if self._exchange is None:
            recorded = load_exchange(self.chain.chain_id) if self.settings.exchange_address is None else None
            address = self.settings.exchange_address or (recorded.exchange_address if recorded else None)
            if address is None:
                raise DomainError(
                    ErrorCode.EXCHANGE_NOT_CONFIGURED, "set EXCHANGE_ADDRESS to the PointsExchange between programs"
                )
            self._exchange = PointsExchange(self.chain, address)
        return self._exchange

    def close(self) -> None:
        self.engine.dispose()


def build(settings: Settings) -> Runtime:
    """Migrate the database and wire the service; raises `ConfigurationError` (one line, what to
    do) for a database, token or chain that do not belong together."""
    _private_sqlite_files(settings.database_url)
    upgrade(settings.database_url)
    engine = make_engine(settings.database_url)
    sessions = make_sessionmaker(engine)
    with sessions() as session:
        binding = session.get(ChainBinding, 1)
    chain = ChainClient(settings.rpc_url, Account.from_key(settings.operator_private_key))
    runtime = Runtime(settings, engine, sessions, Custody(settings.master_key), chain, None)  # type: ignore[arg-type]
    chain.checks.append(lambda client, chain_id: _check_chain(runtime, client, chain_id))
    runtime.token = LoyaltyToken(chain, _token(settings, binding))
    if binding is not None:
        runtime.deployment_block = binding.block_number
    with sessions() as session:  # program 1 is the database's own token: recorded on the first start
        unbound = session.scalar(select(Program.id).where(Program.id == 1, Program.token_address.is_(None)))
    if unbound is not None:
        with sessions() as session, write_lock(session):
            session.execute(
                update(Program)
                .where(Program.id == 1, Program.token_address.is_(None))
                .values(token_address=runtime.token.address, deployment_block=runtime.deployment_block or None)
            )
            session.commit()
    try:
        runtime.chain.chain_id  # noqa: B018 - connect now when the chain is up: a mismatch stops the start
    except ChainMismatchError as exc:
        engine.dispose()
        raise ConfigurationError(str(exc)) from exc
    except ChainUnavailableError as exc:
        log.warning("starting without the chain (%s); writes wait until it answers", exc)
    return runtime


def _token(settings: Settings, binding: ChainBinding | None) -> str:
    if binding is not None:
        if settings.token_address and settings.token_address.lower() != binding.token_address.lower():
            raise ConfigurationError(
                f"{_where(settings)} belongs to token {binding.token_address} on chain {binding.chain_id}, "
                f"not TOKEN_ADDRESS={settings.token_address}: point DATABASE_URL at that token's database, "
                "or move this one aside to start over"
            )
        return binding.token_address
    if settings.token_address:
        return settings.token_address
    try:
        deployment = load_deployment(Web3(Web3.HTTPProvider(settings.rpc_url, request_kwargs={"timeout": 5})))
    except Exception as exc:
        raise ConfigurationError(
            f"no token known: the chain at {redacted(settings.rpc_url)} does not answer ({type(exc).__name__}) and "
            "TOKEN_ADDRESS is not set; start the chain (make up) or set TOKEN_ADDRESS"
        ) from exc
    if deployment is None:
        raise ConfigurationError(f"no token recorded for the chain at {redacted(settings.rpc_url)}: set TOKEN_ADDRESS")
    return deployment.token_address


def _check_chain(runtime: Runtime, chain: ChainClient, chain_id: int) -> None:
    """On first contact: the operator key fits the chain, and the chain is the database's."""
    settings = runtime.settings
    if settings.operator_private_key.lower() == DEV_OPERATOR_KEY and chain_id not in LOCAL_CHAIN_IDS:
        raise ChainMismatchError(
            f"ISSUER_PRIVATE_KEY is the well-known development key, and chain {chain_id} is not a local dev "
            "chain: set ISSUER_PRIVATE_KEY to the operator's own key"
        )
    with runtime.sessions() as session:
        binding = session.get(ChainBinding, 1)
        if binding is None:
            binding = _bind(session, chain, runtime.token.address, chain_id)
            runtime.deployment_block = binding.block_number
            return
    if binding.chain_id != chain_id:
        raise ChainMismatchError(
            f"{_where(settings)} belongs to chain {binding.chain_id} (token {binding.token_address}), but "
            f"{redacted(settings.rpc_url)} is chain {chain_id}: point RPC_URL at that chain, or DATABASE_URL at this "
            "chain's database"
        )
    block = chain.w3.eth.get_block(binding.block_number) if binding.block_number <= chain.w3.eth.block_number else None
    found = "0x" + bytes(block["hash"]).hex() if block is not None else None
    if found != binding.block_hash:
        now = f"is now {found}" if found else "is not there"
        raise ChainMismatchError(
            f"{_where(settings)} belongs to token {binding.token_address} on a chain whose block "
            f"{binding.block_number} is {binding.block_hash}, but at {redacted(settings.rpc_url)} that block {now}: the "
            "chain was reset or is another one. Move the database aside (for make up: delete var/) to start "
            "over, or point RPC_URL at the right chain"
        )


def _bind(session: Session, chain: ChainClient, token_address: str, chain_id: int) -> ChainBinding:
    """Record which chain and token this (new) database belongs to."""
    deployment = load_deployment(chain.w3)
    if deployment is not None and deployment.token_address.lower() == token_address.lower():
        number = deployment.block_number
    else:  # a token deployed elsewhere: the head as of now identifies the chain just as well
        number = int(chain.w3.eth.block_number)
    block = chain.w3.eth.get_block(number)
    binding = ChainBinding(
        id=1,
        chain_id=chain_id,
        token_address=token_address,
        block_number=number,
        block_hash="0x" + bytes(block["hash"]).hex(),
    )
    with write_lock(session):
        if session.get(ChainBinding, 1) is None:  # another process may have bound it meanwhile
            session.add(binding)
            session.commit()
    return session.get(ChainBinding, 1) or binding


def _where(settings: Settings) -> str:
    url = settings.database_url
    return f"the database {url.split('///', 1)[-1]}" if url.startswith("sqlite") else "the database at DATABASE_URL"


def _private_sqlite_files(url: str) -> None:
    """The SQLite database holds sealed keys and idempotency records: owner-only (0600), its
    journal files too (SQLite gives those the database file's mode)."""
    if not url.startswith("sqlite:///") or url.endswith(":memory:"):
        return
    path = Path(url.split("///", 1)[-1])
    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(os.open(path, os.O_CREAT | os.O_RDWR, 0o600))
    for suffix in ("", "-wal", "-shm", ".lock", ".writer.lock"):
        file = Path(f"{path}{suffix}")
        if file.exists() and file.stat().st_uid == os.getuid():
            file.chmod(0o600)
