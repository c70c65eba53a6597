"""The web UI mounted on the API's application: pages, their templates and static assets, and
what a page does when the API says no."""

from __future__ import annotations

import inspect
import os
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from fastapi.routing import APIRoute
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from loyalty.api.app import create_app
from loyalty.runtime import Runtime
from loyalty.settings import Settings
from loyalty.web.api import ApiProblem
from loyalty.web.session import SURFACES, SignInNeeded, Surface, WrongOrigin

HERE = Path(__file__).parent
templates = Jinja2Templates(directory=HERE / "templates")
EXPIRING_SOON = timedelta(days=30)


def _points(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _when(value: str | None) -> str:
    """An API timestamp as a person reads it: `2026-12-07 14:03 UTC`."""
    if not value:
        return "—"
    return datetime.fromisoformat(value).astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _soon(value: str) -> bool:
    return datetime.fromisoformat(value) - datetime.now(UTC) <= EXPIRING_SOON


templates.env.filters.update(points=_points, when=_when)
templates.env.globals["uuid"] = lambda: uuid.uuid4().hex  # a form's idempotency key
templates.env.tests["soon"] = _soon


def page(request: Request, name: str, status_code: int = 200, **context: Any) -> HTMLResponse:
    """A template rendered with what every page needs: the block-explorer link for transactions."""
    context.setdefault("tx_url", request.app.state.settings.tx_url)
    return templates.TemplateResponse(request, name, context, status_code=status_code)


def problem_page(request: Request, surface: Surface | None, problem: ApiProblem) -> HTMLResponse:
    """The API's refusal shown to a person: its detail and code, with the API's status."""
    if request.headers.get("hx-request"):
        return page(request, "_problem.html", problem.status, problem=problem)
    return page(request, "problem.html", problem.status, problem=problem, surface=surface)


def create_site(settings: Settings, *, run_outbox: bool = True, runtime: Runtime | None = None) -> FastAPI:
    """The API (`create_app`) with the web UI on it: what `loyalty serve` runs."""
    app = create_app(settings, run_outbox=run_outbox, runtime=runtime)
    mount(app)
    return app


def site_from_env() -> FastAPI:
    """`create_site` from the environment: what each of `loyalty serve --workers N`'s processes runs."""
    return create_site(Settings.from_env(), run_outbox=os.environ.get("LOYALTY_SERVE_OUTBOX", "1") == "1")


def mount(app: FastAPI) -> None:
    """Add the UI's pages and assets to the API's application `app`."""
    from loyalty.web import console, explorer, wallet

    app.mount("/static", StaticFiles(directory=HERE / "static"), name="static")
    app.state.web_viewers = {}  # session.WHO_CACHE_S
    app.state.replays = {}  # explorer._replay
    for module in (wallet, console, explorer):
        app.include_router(module.router)
    app.state.web_routes = [r for m in (wallet, console, explorer) for r in m.router.routes if isinstance(r, APIRoute)]

    @app.get("/", include_in_schema=False)
    async def home(request: Request) -> HTMLResponse:
        return page(request, "home.html", surfaces=SURFACES)

    @app.exception_handler(SignInNeeded)
    async def sign_in_needed(request: Request, error: SignInNeeded) -> Response:
        target = f"{error.surface.path}/sign-in"
        if request.headers.get("hx-request"):  # htmx swaps fragments: have it load the whole page
            return Response(status_code=401, headers={"HX-Redirect": target})
        if request.method != "GET":
            return page(request, "sign_in.html", 401, surface=error.surface, error=error.reason or "sign in first")
        return RedirectResponse(target, status_code=303)

    @app.exception_handler(WrongOrigin)
    async def wrong_origin(request: Request, error: WrongOrigin) -> Response:
        return page(request, "problem.html", 403, problem=ApiProblem(403, "wrong_origin", f"a form from {error}"))

    api_invalid = app.exception_handlers[RequestValidationError]

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, error: RequestValidationError) -> Response:
        """A page's form that does not parse: shown to the person (the API's own answer elsewhere)."""
        surface = next((s for s in SURFACES if request.url.path.startswith(s.path)), None)
        if surface is None:
            answer = api_invalid(request, error)
            return await answer if inspect.isawaitable(answer) else answer
        fields = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in error.errors())
        return problem_page(request, surface, ApiProblem(422, "validation_error", fields))

    @app.exception_handler(ApiProblem)
    async def refused(request: Request, error: ApiProblem) -> Response:
        surface = next((s for s in SURFACES if request.url.path.startswith(s.path)), None)
        if error.status == 401 and surface is not None:  # the session ended meanwhile
            return await sign_in_needed(request, SignInNeeded(surface, error.detail))
        return problem_page(request, surface, error)
