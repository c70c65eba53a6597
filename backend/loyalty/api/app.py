"""The FastAPI application: `create_app(settings)`; OpenAPI docs at /docs."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from eth_account import Account
from fastapi import FastAPI
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send
from web3 import HTTPProvider, Web3

from loyalty import __version__
from loyalty.api import problems
from loyalty.api.acceptor import EarnAcceptor
from loyalty.api.routes import audit, earn, members, partners, redemptions, rewards, system
from loyalty.audit.view import AuditView
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


def deployment_block(settings: Settings, chain: Chain) -> int:
    """The block the token was deployed in, when this chain's recorded deployment is that token
    (the auditor's replay starts there); else 0."""
    deployment = load_deployment(chain.w3)
    return (
        deployment.block_number if deployment and deployment.token_address.lower() == chain.token.address.lower() else 0
    )


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
        app.state.audit = AuditView(
            settings.rpc_url, app.state.chain.token.address, deployment_block(settings, app.state.chain)
        )
        app.state.acceptor = EarnAcceptor(app.state.sessions, app.state.chain, app.state.custody)
        app.state.acceptor.start()
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request for ~100 ms now and then.
        gc.collect()
        gc.freeze()
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
            app.state.acceptor.stop()
            app.state.audit.close()
            engine.dispose()

    app = FastAPI(
        title="loyalty-ledger",
        version=__version__,
        description="Loyalty points on an EVM chain: partners, members, earning, the reward catalog and redemptions.",
        lifespan=lifespan,
    )
    problems.install(app)

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for module in (system, partners, members, earn, rewards, redemptions, audit):
        app.include_router(module.router)
    return app


class BodyLimit:
    """Refuses bodies declared larger than `max_bytes` (413) before anything reads them.

    Plain ASGI rather than `@app.middleware("http")`: that one wraps every request in extra
    tasks and streams, which costs more than the check itself."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app, self.max_bytes = app, max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = Headers(scope=scope).get("content-length")
            if length is not None and (not length.isdigit() or int(length) > self.max_bytes):
                detail = f"request bodies may hold at most {self.max_bytes} bytes"
                response = problems.problem(413, "body_too_large", "Body too large", detail)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
