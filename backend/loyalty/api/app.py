"""The FastAPI application: `create_app(settings)`; OpenAPI docs at /docs."""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager

from eth_account import Account
from fastapi import FastAPI, Request, Response
from web3 import HTTPProvider, Web3

from loyalty import __version__
from loyalty.api import problems
from loyalty.api.routes import earn, members, partners, redemptions, rewards, system
from loyalty.chain import Chain
from loyalty.custody import Custody
from loyalty.db.session import make_engine, make_sessionmaker, upgrade
from loyalty.deploy import load_deployment
from loyalty.errors import ChainUnavailableError
from loyalty.outbox import OutboxWriter, run_writer
from loyalty.settings import Settings


def token_address(settings: Settings) -> str:
    """TOKEN_ADDRESS, or the deployment recorded for the chain at RPC_URL."""
    if settings.token_address:
        return settings.token_address
    deployment = load_deployment(Web3(HTTPProvider(settings.rpc_url)))
    if deployment is None:
        raise ChainUnavailableError(f"no token recorded for the chain at {settings.rpc_url}: set TOKEN_ADDRESS")
    return deployment.token_address


def create_app(settings: Settings, *, run_outbox: bool = True) -> FastAPI:
    """The API; with `run_outbox` the outbox writer runs in a thread beside it."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        upgrade(settings.database_url)
        engine = make_engine(settings.database_url)
        app.state.settings = settings
        app.state.principals = {}
        app.state.sessions = make_sessionmaker(engine)
        app.state.custody = Custody(settings.master_key)
        app.state.chain = Chain(
            settings.rpc_url, token_address(settings), Account.from_key(settings.operator_private_key)
        )
        stop = threading.Event()
        thread = None
        if run_outbox:
            thread = run_writer(OutboxWriter(app.state.sessions, app.state.chain, app.state.custody), stop)
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
            engine.dispose()

    app = FastAPI(
        title="loyalty-ledger",
        version=__version__,
        description="Loyalty points on an EVM chain: partners, members, earning, the reward catalog and redemptions.",
        lifespan=lifespan,
    )
    problems.install(app)

    @app.middleware("http")
    async def limit_body(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        length = request.headers.get("content-length")
        if length is not None and (not length.isdigit() or int(length) > settings.max_body_bytes):
            return problems.problem(
                413,
                "body_too_large",
                "Body too large",
                f"request bodies may hold at most {settings.max_body_bytes} bytes",
            )
        return await call_next(request)

    for module in (system, partners, members, earn, rewards, redemptions):
        app.include_router(module.router)
    return app
