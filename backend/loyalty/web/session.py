"""Who is signed in to a surface: a cookie per surface (HttpOnly, SameSite=Strict, scoped to the
surface's path) holding a member's session token or an API key, checked by the API itself on
every page (`GET /v1/whoami`).

Forms are safe from other sites twice over: a SameSite=Strict cookie is not sent with a request
another site starts, and a write whose `Origin` is not this site's is refused."""

from __future__ import annotations

import hashlib
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, Form, Request
from fastapi.responses import Response

from loyalty.web.api import Api, ApiProblem, api_of

IdempotencyKey = Annotated[str, Form(min_length=8, max_length=64)]  # a form's own (templates: `key()`)
WHO_CACHE_S = 10.0  # how long a page trusts who a cookie's secret belongs to (the API checks every call)
SESSION_S = 30 * 60  # a member's session lasts 30 minutes (the API's)
KEY_COOKIE_S = 8 * 3600  # a console or explorer sign-in lasts a working day


@dataclass(frozen=True)
class Surface:
    """One of the UI's three parts: its path, its cookie and the roles it serves."""

    name: str
    title: str
    roles: tuple[str, ...]
    max_age_s: int

    @property
    def path(self) -> str:
        return f"/{self.name}"

    @property
    def cookie(self) -> str:
        return f"loyalty_{self.name}"


WALLET = Surface("wallet", "Wallet", ("member",), SESSION_S)
CONSOLE = Surface("console", "Console", ("admin", "partner"), KEY_COOKIE_S)
EXPLORER = Surface("explorer", "Explorer", ("admin", "auditor"), KEY_COOKIE_S)
SURFACES = (WALLET, CONSOLE, EXPLORER)


class SignInNeeded(Exception):
    """No valid sign-in for `surface`: the page sends the browser to its sign-in form."""

    def __init__(self, surface: Surface, reason: str = "") -> None:
        super().__init__(reason)
        self.surface, self.reason = surface, reason


class WrongOrigin(Exception):
    """A write started by another site."""


@dataclass
class Viewer:
    """The signed-in user of a page, and its client of the API."""

    surface: Surface
    role: str
    partner_id: int | None
    member_id: int | None
    api: Api


def sign_in_cookie(response: Response, surface: Surface, secret: str, *, secure: bool) -> None:
    response.set_cookie(
        surface.cookie, secret, max_age=surface.max_age_s, path=surface.path,
        httponly=True, samesite="strict", secure=secure,
    )  # fmt: skip


def sign_out_cookie(response: Response, surface: Surface) -> None:
    response.delete_cookie(surface.cookie, path=surface.path, httponly=True, samesite="strict")


def check_origin(request: Request) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    origin = request.headers.get("origin")
    if origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}":
        raise WrongOrigin(origin)


def viewer(surface: Surface) -> Any:
    """A dependency: the page's signed-in user of `surface` (one of its roles), or a redirect to
    its sign-in form. The surface is published on the dependency (the web authorization test
    reads it)."""

    async def signed_in(request: Request) -> AsyncIterator[Viewer]:
        check_origin(request)
        secret = request.cookies.get(surface.cookie)
        if not secret:
            raise SignInNeeded(surface)
        async with api_of(request, secret) as api:
            who = await _whoami(request, api, surface, secret)
            if who["role"] not in surface.roles:
                raise SignInNeeded(surface, f"the {surface.title.lower()} is for the {' or '.join(surface.roles)}")
            yield Viewer(surface, who["role"], who["partner_id"], who["member_id"], api)

    signed_in.surface = surface  # type: ignore[attr-defined]
    return Depends(signed_in)


async def _whoami(request: Request, api: Api, surface: Surface, secret: str) -> dict[str, Any]:
    """Who `secret` belongs to, remembered for `WHO_CACHE_S`: it only picks the page to show,
    and every call the page makes is authorized by the API again (an ended session is refused
    there at once)."""
    known: dict[str, tuple[dict[str, Any], float]] = request.app.state.web_viewers
    digest, now = hashlib.sha256(secret.encode()).hexdigest(), time.monotonic()
    if (cached := known.get(digest)) is not None and cached[1] > now:
        return cached[0]
    try:
        who: dict[str, Any] = await api.get("/v1/whoami")
    except ApiProblem as problem:
        if problem.status in (401, 403):
            raise SignInNeeded(surface, problem.detail) from None
        raise
    if len(known) > 10_000:  # a bound, not an eviction policy: it refills within WHO_CACHE_S
        known.clear()
    known[digest] = (who, now + WHO_CACHE_S)
    return who


def surface_of(call: Callable[..., Any]) -> Surface | None:
    return getattr(call, "surface", None)
