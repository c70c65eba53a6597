"""The FastAPI application: `create_app(settings)`; OpenAPI docs at /docs."""

from __future__ import annotations

import gc
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.docs import get_redoc_html, get_swagger_ui_html
from fastapi.openapi.utils import get_openapi
from fastapi.responses import HTMLResponse
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from starlette.datastructures import Headers
from starlette.types import ASGIApp, Receive, Scope, Send

from loyalty import __version__
from loyalty.api import problems
from loyalty.api.acceptor import Acceptor
from loyalty.api.deps import roles_of
from loyalty.api.routes import (
    agreements,
    audit,
    auth,
    campaigns,
    challenges,
    donations,
    earn,
    events,
    exchanges,
    leaderboards,
    me,
    members,
    metrics,
    partners,
    programs,
    purchases,
    redemptions,
    rewards,
    rules,
    settlement,
    system,
    webhooks,
)
from loyalty.audit.leaderboard import Tallies
from loyalty.audit.view import AuditViews
from loyalty.errors import ErrorCode
from loyalty.runtime import Runtime, build
from loyalty.services.leaderboards import Scopes
from loyalty.settings import Settings
from loyalty.workers.outbox import OutboxWriter, run_writer
from loyalty.workers.webhooks import WebhookSender, run_sender

ROUTES = (
    system,
    auth,
    me,
    partners,
    members,
    programs,
    earn,
    donations,
    metrics,
    leaderboards,
    challenges,
    purchases,
    events,
    rules,
    campaigns,
    rewards,
    redemptions,
    agreements,
    exchanges,
    settlement,
    audit,
    webhooks,
)


def create_app(settings: Settings, *, run_outbox: bool = True, runtime: Runtime | None = None) -> FastAPI:
    """The API; with `run_outbox` an outbox writer runs in a thread beside it (it writes only
    while it holds the database's writer lease). `runtime` is built from `settings` on start-up
    unless the caller built it already (the CLI does, to refuse a bad start in one line)."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        wired = runtime or build(settings)
        app.state.runtime = wired
        app.state.settings = settings
        app.state.principals = {}
        app.state.keys_generation = 0
        app.state.runtime.sessions = wired.sessions
        app.state.audit = AuditViews(settings.rpc_url)
        app.state.audit.of(wired.token.address, wired.deployment_block)  # program 1's, from the binding
        app.state.audit_summaries = {}  # each program's last audit summary, and the block it is of
        app.state.leaderboards = Tallies(settings.rpc_url)
        app.state.leaderboard_scopes = Scopes()
        app.state.acceptor = Acceptor(wired, settings.idempotency_ttl_s)
        app.state.acceptor.start()
        # Everything loaded so far lives as long as the process: keep it out of the garbage
        # collector's full passes, which otherwise stall every request for ~100 ms now and then.
        gc.collect()
        gc.freeze()
        stop = threading.Event()
        thread = None
        sender = None
        if run_outbox:
            thread = run_writer(OutboxWriter(wired, role="serve"), stop)
            sender = run_sender(WebhookSender(wired), stop)
        try:
            yield
        finally:
            stop.set()
            if thread is not None:
                thread.join(timeout=10)
            if sender is not None:
                sender.join(timeout=10)
            app.state.acceptor.stop()
            app.state.audit.close()
            app.state.leaderboards.close()
            wired.close()

    app = FastAPI(
        title="loyalty-ledger",
        version=__version__,
        description="Loyalty points on an EVM chain: partners, members, earning, the reward catalog and redemptions.",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    problems.install(app)
    _offline_docs(app)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            roles = {
                (route.path_format, method.lower()): roles_of(route)
                for module in ROUTES
                for route in module.router.routes
                if isinstance(route, APIRoute)
                for method in route.methods or ()
            }
            app.openapi_schema = problems.document(
                get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes), roles
            )
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]

    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)
    for module in ROUTES:
        app.include_router(module.router)
    app.state.api_routes = [route for module in ROUTES for route in module.router.routes if isinstance(route, APIRoute)]
    return app


def _offline_docs(app: FastAPI) -> None:
    """Swagger UI at /docs and ReDoc at /redoc from assets shipped in a Python package
    (fastapi-offline's), not a CDN: the docs work without internet."""
    assets = Path(str(resources.files("fastapi_offline") / "static"))
    app.mount("/docs/assets", StaticFiles(directory=assets), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def swagger() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon.png",
        )

    @app.get("/redoc", include_in_schema=False)
    async def redoc() -> HTMLResponse:
        return get_redoc_html(
            openapi_url="/openapi.json",
            title=f"{app.title} API",
            redoc_js_url="/docs/assets/redoc.standalone.js",
            redoc_favicon_url="/docs/assets/favicon.png",
            with_google_fonts=False,
        )


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
                response = problems.problem(ErrorCode.BODY_TOO_LARGE, detail)
                await response(scope, receive, send)
                return
        await self.app(scope, receive, send)
