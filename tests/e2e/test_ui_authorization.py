"""Every page of the web UI, as every kind of user (generated from the app's routes: a new page
cannot skip it). A page belongs to one surface and needs one of its roles; whatever it shows or
does beyond that the API decides, with the user's own key or session.
- each page under /wallet, /console or /explorer is a sign-in page or needs its surface's user;
- no sign-in, a wrong one, or a user of another role: sent to the sign-in form (303 for a page,
  401 for a write), never the page;
- the surface's own roles: neither sent away nor a 5xx;
- a write started by another site (its `Origin`) is refused."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from support.backend import ADMIN_KEY, PASSPHRASE
from support.ui import Stack

from loyalty.settings import DEV_OPERATOR_KEY, Settings
from loyalty.web.session import SURFACES, Surface, surface_of
from loyalty.web.site import create_site

SIGN_IN = re.compile(r"/sign-in(/.*)?$")


def _pages() -> list[tuple[str, str, Surface | None]]:
    settings = Settings(database_url="sqlite://", rpc_url="http://127.0.0.1:1", token_address=None,
                        operator_private_key=DEV_OPERATOR_KEY, admin_api_key=ADMIN_KEY, master_key="00" * 32)  # fmt: skip
    found = []
    for route in create_site(settings).state.web_routes:
        pending, surface = list(route.dependant.dependencies), None
        while pending and surface is None:
            dependant = pending.pop()
            surface = surface_of(dependant.call) if dependant.call else None
            pending += dependant.dependencies
        found += [(method, route.path, surface) for method in sorted(route.methods or ())]
    return sorted(found, key=lambda page: page[1].endswith("/sign-out"))  # a member's sign-out ends its session: last


PAGES = _pages()


@pytest.fixture(scope="module")
def users(stack: Stack) -> dict[str, tuple[str, str]]:
    """A sign-in of each role: (surface cookie's value, role)."""
    brand = stack.partner("Matrix")
    member = stack.member(brand)
    session = stack.call(
        "POST", "/v1/auth/sessions", None, {"external_id": member["external_id"], "passphrase": PASSPHRASE}
    )
    auditor = stack.call("POST", "/v1/auditors", body={"name": "Matrix audit"})
    return {"admin": ADMIN_KEY, "partner": brand["api_key"], "auditor": auditor["api_key"], "member": session["token"]}


def _url(path: str) -> str:
    named = {"answer": "approve", "name": "rewards", "index": "0"}
    return re.sub(r"\{(\w+)\}", lambda m: named.get(m.group(1), "1"), path)


def test_everyPage_isASignInPage_orNeedsItsSurfacesUser():
    assert len(PAGES) >= 20
    assert all(p.startswith(tuple(s.path for s in SURFACES)) for _, p, _ in PAGES)
    unguarded = [f"{m} {p}" for m, p, s in PAGES if s is None and not SIGN_IN.search(p)]
    misplaced = [f"{m} {p}" for m, p, s in PAGES if s is not None and not p.startswith(s.path)]
    assert not unguarded and not misplaced, (unguarded, misplaced)


def test_everyPage_answersEachUserAsItsSurfaceSays(stack: Stack, users: dict[str, str]):
    wrong: list[str] = []
    checked = 0
    for method, path, surface in PAGES:
        if surface is None:
            continue
        for role, secret in {"none": "", "wrong": "nope", **users}.items():
            cookies = {surface.cookie: secret} if secret else {}
            response = httpx.request(
                method, stack.url + _url(path), cookies=cookies, follow_redirects=False, timeout=60
            )
            checked += 1
            sent_away = (
                response.status_code == 303 and response.headers["location"] == f"{surface.path}/sign-in"
                if method == "GET"
                else response.status_code == 401
            )
            allowed = role in surface.roles
            if (allowed and (sent_away or response.status_code >= 500)) or (not allowed and not sent_away):
                wrong.append(f"{method} {path} as {role}: {response.status_code} {response.text[:120]}")
    assert not wrong, "\n".join(wrong)
    assert checked >= 6 * 20


def test_aWriteFromAnotherSite_isRefused(stack: Stack, users: dict[str, Any]):
    body = {"idempotency_key": "k" * 16, "name": "Evil", "issue_budget_points": "1"}
    cookies = {"loyalty_console": users["admin"]}
    foreign = httpx.post(
        stack.url + "/console/partners", data=body, cookies=cookies, headers={"Origin": "https://evil.example"}
    )
    assert foreign.status_code == 403 and "wrong_origin" in foreign.text
    names = [p["name"] for p in stack.call("GET", "/v1/partners?limit=1000")["data"]]
    assert "Evil" not in names
    own = httpx.post(stack.url + "/console/partners", data=body, cookies=cookies, headers={"Origin": stack.url})
    assert own.status_code == 200 and "Evil" in own.text
