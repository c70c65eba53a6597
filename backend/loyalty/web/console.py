"""The partner and admin console (/console). A partner: its budget, the members linked to it
(search by external id, paginated), earning one at a time or from a CSV file with progress, and
its resources' pages (`sections`). The admin: partners (create, top up a budget), the service's
health, and programs and auditors."""

from __future__ import annotations

import asyncio
import csv
import io
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import APIRouter, File, Form, Request, UploadFile
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loyalty.web.api import ApiProblem
from loyalty.web.keys import sign_in_routes
from loyalty.web.sections import Input, Section, body_of, download, listed, section_of, show
from loyalty.web.session import CONSOLE, IdempotencyKey, Viewer, viewer
from loyalty.web.site import page

router = APIRouter(prefix="/console", include_in_schema=False)
sign_in_routes(router, CONSOLE)
User = Annotated[Viewer, viewer(CONSOLE)]
MAX_CSV_ROWS = 10_000  # one POST /v1/earn/batch
PAGE_ROWS = 50


@router.get("")
async def home(request: Request, user: User, external_id: str = "", cursor: str = "") -> HTMLResponse:
    if user.role == "admin":
        partners, health = await asyncio.gather(user.api.get("/v1/partners", limit=100), user.api.get("/v1/health"))
        return page(
            request, "console_admin.html", surface=CONSOLE, user=user, partners=partners, health=health,
            sections=listed(user),
        )  # fmt: skip
    budget, members = await asyncio.gather(
        user.api.get(f"/v1/partners/{user.partner_id}/budget"),
        user.api.get("/v1/members", external_id=external_id, cursor=cursor, limit=PAGE_ROWS),
    )
    return page(
        request, "console_partner.html", surface=CONSOLE, user=user, budget=budget, members=members,
        external_id=external_id, sections=listed(user),
    )  # fmt: skip


@router.post("/earn")
async def earn(
    request: Request, user: User, idempotency_key: IdempotencyKey,
    member_id: Annotated[int, Form(ge=1)], amount_points: Annotated[int, Form(ge=1)],
    reason: Annotated[str, Form(max_length=500)] = "",
) -> HTMLResponse:  # fmt: skip
    body = {"member_id": member_id, "amount_points": amount_points, "reason": reason}
    made = await user.api.send("POST", "/v1/earn", body, key=idempotency_key)
    return page(request, "_earned.html", earn=made, member_id=member_id, amount_points=amount_points)


def parse_earns(text: str) -> list[dict[str, Any]]:
    """CSV rows `member_id,amount_points[,reason]` (a header row names the columns) as earn items;
    a bad row is refused with its line number, before anything is sent."""
    rows = csv.DictReader(io.StringIO(text))
    if rows.fieldnames is None or not {"member_id", "amount_points"} <= set(rows.fieldnames):
        raise ApiProblem(422, "csv_invalid", "the first line must name the columns: member_id,amount_points[,reason]")
    items = []
    for line, row in enumerate(rows, start=2):
        try:
            item: dict[str, Any] = {"member_id": int(row["member_id"]), "amount_points": int(row["amount_points"])}
        except (TypeError, ValueError):
            raise ApiProblem(
                422, "csv_invalid", f"line {line}: member_id and amount_points are whole numbers"
            ) from None
        if row.get("reason"):
            item["reason"] = row["reason"]
        items.append(item)
        if len(items) > MAX_CSV_ROWS:
            raise ApiProblem(422, "csv_invalid", f"at most {MAX_CSV_ROWS:,} rows per file")
    if not items:
        raise ApiProblem(422, "csv_invalid", "the file has no rows")
    return items


@router.post("/earn/uploads")
async def upload(user: User, idempotency_key: IdempotencyKey, file: Annotated[UploadFile, File()]) -> Response:
    """Earn every row of a CSV file in one batch, then watch it confirm."""
    since = datetime.now(UTC).isoformat()
    items = parse_earns((await file.read()).decode("utf-8-sig", errors="replace"))
    made = await user.api.send("POST", "/v1/earn/batch", {"items": items}, key=idempotency_key)
    ids = made["ids"]
    target = f"{CONSOLE.path}/earn/uploads/progress?since={since}&first={min(ids)}&last={max(ids)}&count={len(ids)}"
    return RedirectResponse(target.replace("+", "%2B"), status_code=303)


@router.get("/earn/uploads/progress")
async def progress(request: Request, user: User, since: str, first: int, last: int, count: int) -> HTMLResponse:
    """How many of an upload's earns the chain confirmed (htmx polls the fragment until all are)."""
    confirmed, failed = await asyncio.gather(
        _count(user, "confirmed", since, first, last), _count(user, "failed", since, first, last)
    )
    context: dict[str, Any] = {"confirmed": confirmed, "failed": failed, "count": count, "query": request.url.query}
    if request.headers.get("hx-request"):
        return page(request, "_progress.html", **context)
    return page(request, "console_upload.html", surface=CONSOLE, user=user, **context)


async def _count(user: Viewer, status: str, since: str, first: int, last: int) -> int:
    found, cursor = 0, None
    rows: dict[str, Any]
    while True:
        rows = await user.api.get("/v1/earn", status=status, created_after=since, cursor=cursor, limit=1000)
        found += sum(bool(first <= row["id"] <= last) for row in rows["data"])
        if not (cursor := rows["next_cursor"]):
            return found


@router.post("/partners")
async def create_partner(
    request: Request, user: User, idempotency_key: IdempotencyKey,
    name: Annotated[str, Form(min_length=1, max_length=200)], issue_budget_points: Annotated[int, Form(ge=0)],
) -> HTMLResponse:  # fmt: skip
    """The admin adds a brand; its API key is shown once."""
    body = {"name": name, "issue_budget_points": issue_budget_points}
    made = await user.api.send("POST", "/v1/partners", body, key=idempotency_key)
    return page(request, "_partner_created.html", partner=made)


@router.post("/partners/{partner_id}/budget/grants")
async def grant(
    request: Request,
    partner_id: int,
    user: User,
    idempotency_key: IdempotencyKey,
    amount_points: Annotated[int, Form(ge=1)],
) -> HTMLResponse:
    """The admin tops up a partner's budget."""
    body = {"amount_points": amount_points}
    budget = await user.api.send("POST", f"/v1/partners/{partner_id}/budget/grants", body, key=idempotency_key)
    return page(request, "_budget.html", budget=budget, partner_id=partner_id)


@router.get("/partners/{partner_id}/budget")
async def budget(request: Request, partner_id: int, user: User) -> HTMLResponse:
    """A partner's budget alone (htmx refreshes it while a grant is on its way to the chain)."""
    found = await user.api.get(f"/v1/partners/{partner_id}/budget")
    return page(request, "_budget.html", budget=found, partner_id=partner_id)


@router.get("/webhooks/{webhook_id}/deliveries")
async def deliveries(request: Request, webhook_id: int, user: User, cursor: str = "") -> HTMLResponse:
    """A webhook's delivery log: each attempt's status and answer."""
    found = await user.api.get(f"/v1/webhooks/{webhook_id}/deliveries", cursor=cursor, limit=PAGE_ROWS)
    columns = ("id", "type", "status", "attempts", "last_status_code", "last_error", "delivered_at", "created_at")
    return page(
        request, "section.html", surface=CONSOLE, user=user, sections=listed(user), found=found,
        section=Section("webhooks", f"Webhook {webhook_id}: deliveries", "", columns), rows=found["data"],
    )  # fmt: skip


@router.post("/rules/simulate")
async def simulate(request: Request, user: User, activity: Annotated[str, Form(max_length=100_000)]) -> HTMLResponse:
    """What an activity would earn under the partner's rules, tiers and campaigns (writes nothing)."""
    body = body_of(SIMULATION, {"body": activity})
    return page(request, "_simulated.html", result=await user.api.send("POST", "/v1/rules/simulate", body))


SIMULATION = (Input("body", "Activity (JSON)", "json"),)


@router.get("/{name}.csv")
async def section_csv(name: str, user: User) -> Response:
    return await download(user, name)


@router.get("/{name}")
async def section_page(request: Request, name: str, user: User, cursor: str = "", done: str = "") -> HTMLResponse:
    return await show(request, user, name, cursor, "Saved." if done else None)


@router.post("/{name}")
async def section_create(request: Request, name: str, user: User, idempotency_key: IdempotencyKey) -> Response:
    section = section_of(user, name)
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    made = await user.api.send(section.write, section.path, body_of(section.create, form), key=idempotency_key)
    secret = made.get("api_key") or made.get("secret") if isinstance(made, dict) else None
    if secret:  # shown once: on this answer, not after a redirect
        return page(
            request, "console_secret.html", surface=CONSOLE, user=user, section=section, made=made, secret=secret
        )
    return RedirectResponse(f"{CONSOLE.path}/{name}?done=1", status_code=303)


@router.post("/{name}/{row_id}/actions/{index}")
async def section_action(
    request: Request, name: str, row_id: int, index: int, user: User, idempotency_key: IdempotencyKey
) -> Response:
    section = section_of(user, name)
    if not 0 <= index < len(section.actions):
        raise ApiProblem(404, "page_not_found", f"{name} has no action {index}")
    action = section.actions[index]
    form = {k: v for k, v in (await request.form()).items() if isinstance(v, str)}
    body = body_of(action.inputs, form) if action.inputs else None
    await user.api.send(action.method, action.path.format(id=row_id), body, key=idempotency_key)
    return RedirectResponse(f"{CONSOLE.path}/{name}?done=1", status_code=303)
