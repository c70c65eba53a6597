"""Every page of every surface, as each role that may see it, in the browser: it renders (no
problem page), and axe-core reports no serious or critical accessibility violations. Generated
from the app's routes and the console's sections (a new page is checked without being listed)."""

from __future__ import annotations

from typing import Any

import pytest
from playwright.sync_api import Page
from support.backend import ADMIN_KEY, PASSPHRASE
from support.ui import Stack, no_serious_violations
from test_ui_authorization import PAGES

from loyalty.web.sections import SECTIONS_OF


@pytest.fixture(scope="module")
def world(stack: Stack) -> dict[str, Any]:
    brand = stack.partner("Pages")
    member = stack.member(brand)
    stack.earn_confirmed(brand, member, 700)
    stack.call("POST", "/v1/rewards", brand["api_key"], {"name": "Scarf", "cost_points": 300, "stock": 3})
    hook = stack.call(
        "POST", "/v1/webhooks", brand["api_key"], {"url": "http://127.0.0.1:9/hook", "event_types": ["earn.confirmed"]}
    )
    session = stack.call(
        "POST", "/v1/auth/sessions", None, {"external_id": member["external_id"], "passphrase": PASSPHRASE}
    )
    auditor = stack.call("POST", "/v1/auditors", body={"name": "Pages audit"})
    secrets = {
        "admin": ADMIN_KEY,
        "partner": brand["api_key"],
        "auditor": auditor["api_key"],
        "member": session["token"],
    }
    ids = {"member_id": member["id"], "webhook_id": hook["id"], "partner_id": brand["id"]}
    return {"secrets": secrets, "ids": ids}


QUERIES = {  # pages that need a query (a form's answer)
    "/console/earn/uploads/progress": "?since=2026-01-01T00:00:00%2B00:00&first=1&last=1&count=1",
    "/explorer/members": "?member_id={member_id}",
}


def _visits(world: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(role, surface cookie, url) for every GET page each of its surface's roles may open."""
    found = []
    for method, path, surface in PAGES:
        if method != "GET" or surface is None or path.endswith(("/sign-in", ".csv")):  # downloads: below
            continue
        for role in surface.roles:
            names = (
                [s.name for s in SECTIONS_OF.get(surface.name, {}).values() if role in s.roles]
                if "{name}" in path
                else [""]
            )
            for name in names:
                url = path.replace("{name}", name).format(**world["ids"])
                found.append((role, surface.cookie, url + QUERIES.get(path, "").format(**world["ids"])))
    return found


def test_everyPage_rendersWithNoSeriousAccessibilityViolations(page: Page, stack: Stack, world: dict[str, Any]):
    visits = _visits(world)
    assert len(visits) >= 20
    opened = 0
    for role, cookie, url in visits:
        page.context.clear_cookies()
        page.context.add_cookies([{"name": cookie, "value": world["secrets"][role], "url": stack.url + url}])
        response = page.goto(url)
        assert response is not None and response.ok, f"{url} as {role}: {response and response.status}"
        if not response.text().lstrip().lower().startswith("<!doctype html>"):
            continue  # a fragment htmx swaps into a page, or a download
        assert page.locator("h1").count() == 1, f"{url} as {role}: one heading per page"
        no_serious_violations(page)
        opened += 1
    assert opened >= 15


WIDEST = """() => [...document.querySelectorAll("body *")].filter(e => e.getBoundingClientRect().right > 375 && !e.closest(".table"))
  .map(e => e.tagName + "." + e.className + "#" + e.id).slice(0, 5).join(", ")"""


def test_aPhonesWidth_scrollsNoPageSideways(page: Page, stack: Stack, world: dict[str, Any]):
    page.set_viewport_size({"width": 375, "height": 740})
    for role, cookie, url in _visits(world):
        page.context.add_cookies([{"name": cookie, "value": world["secrets"][role], "url": stack.url + url}])
        page.goto(url)
        width = page.evaluate("document.documentElement.scrollWidth")
        widest = page.evaluate(WIDEST)
        assert width <= 375, f"{url} as {role} is {width} px wide on a phone: {widest}"
