"""Signing in to the console or the explorer with an API key: the key is checked by the API
(`GET /v1/whoami`), then kept in the surface's HttpOnly cookie."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loyalty.web.api import ApiProblem, api_of
from loyalty.web.session import Surface, Viewer, check_origin, sign_in_cookie, sign_out_cookie, viewer
from loyalty.web.site import page


def sign_in_routes(router: APIRouter, surface: Surface) -> None:
    """GET and POST `{surface}/sign-in` with an API key, and POST `{surface}/sign-out`."""

    @router.get("/sign-in")
    async def sign_in_form(request: Request) -> HTMLResponse:
        return page(request, "sign_in.html", surface=surface)

    @router.post("/sign-in")
    async def sign_in(request: Request, api_key: Annotated[str, Form(min_length=1, max_length=200)]) -> Response:
        check_origin(request)
        async with api_of(request, api_key.strip()) as api:
            try:
                who = await api.get("/v1/whoami")
            except ApiProblem as problem:
                return page(request, "sign_in.html", problem.status, surface=surface, error=problem.detail)
        if who["role"] not in surface.roles:
            error = f"this is a key of the {who['role']}: the {surface.title.lower()} takes the {' or '.join(surface.roles)}'s"
            return page(request, "sign_in.html", 403, surface=surface, error=error)
        response = RedirectResponse(surface.path, status_code=303)
        sign_in_cookie(response, surface, api_key.strip(), secure=request.url.scheme == "https")
        return response

    signed_in = viewer(surface)  # a default, not in `Annotated`: annotations here are strings, and `surface` a local

    @router.post("/sign-out")
    async def sign_out(_: Viewer = signed_in) -> Response:
        response = RedirectResponse(f"{surface.path}/sign-in", status_code=303)
        sign_out_cookie(response, surface)
        return response
