"""The auditor's explorer (/explorer): the program as re-derived from the chain alone (the API's
audit routes replay the token's events): every check and its result, the figures per issuer
account, a member's entries with their transactions, each table downloadable as CSV."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Annotated

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from loyalty.web.api import ApiProblem, api_of
from loyalty.web.keys import sign_in_routes
from loyalty.web.sections import csv_download, download, listed, show
from loyalty.web.session import EXPLORER, Viewer, viewer
from loyalty.web.site import page

router = APIRouter(prefix="/explorer", include_in_schema=False)
sign_in_routes(router, EXPLORER)
User = Annotated[Viewer, viewer(EXPLORER)]
PARTNER_COLUMNS = (
    "partner_id", "campaign_id", "issuer_address", "earned_points", "redeemed_at_points", "expired_points",
    "outstanding_points", "budget_remaining_points", "budget_onchain_points", "last_tx_hash", "last_block_number",
)  # fmt: skip


@router.get("")
async def summary(request: Request, user: User, program_id: int | None = None) -> HTMLResponse:
    """The summary; while this process has never replayed the program's token, a progress bar
    instead, the replay running in the background (other pages are served meanwhile)."""
    progress = await user.api.get("/v1/audit/progress", program_id=program_id)
    if progress["state"] != "ready":
        _replay(request, user, program_id)
        return page(request, "explorer_replaying.html", surface=EXPLORER, user=user, progress=progress,
                    program_id=program_id, sections=listed(user))  # fmt: skip
    found = await user.api.get("/v1/audit/summary", program_id=program_id)
    return page(
        request, "explorer.html", surface=EXPLORER, user=user, summary=found, program_id=program_id,
        sections=listed(user),
    )  # fmt: skip


@router.get("/progress")
async def replay_progress(request: Request, user: User, program_id: int | None = None) -> HTMLResponse:
    """The replay's progress bar alone (htmx polls it); once replayed, the page reloads."""
    progress = await user.api.get("/v1/audit/progress", program_id=program_id)
    response = page(request, "_replay.html", progress=progress, program_id=program_id)
    if progress["state"] == "ready":
        response.headers["HX-Refresh"] = "true"
    return response


def _replay(request: Request, user: Viewer, program_id: int | None) -> None:
    """Start the program's first replay in the background, once per process at a time: the
    summary, asked in-process, replays it (its answer is not needed here)."""
    running: dict[int | None, asyncio.Task[None]] = request.app.state.replays
    if program_id in running and not running[program_id].done():
        return

    async def replay() -> None:
        async with api_of(request, user.api.token) as api:
            with contextlib.suppress(ApiProblem):  # the summary page shows the API's refusal, if any
                await api.get("/v1/audit/summary", program_id=program_id)

    running[program_id] = asyncio.create_task(replay())


@router.get("/partners.csv")
async def partners_csv(user: User, program_id: int | None = None) -> Response:
    """The summary's figures per issuer account (liability, breakage, redemptions) as CSV."""
    found = await user.api.get("/v1/audit/summary", program_id=program_id)
    name = f"partners-program-{found['program_id']}-block-{found['block_number']}.csv"
    return csv_download(name, PARTNER_COLUMNS, found["partners"])


@router.get("/members/{member_id}")
async def member(request: Request, member_id: int, user: User, program_id: int | None = None) -> HTMLResponse:
    found = await user.api.get(f"/v1/audit/members/{member_id}", program_id=program_id)
    return page(
        request, "explorer_member.html", surface=EXPLORER, user=user, member=found, member_id=member_id,
        sections=listed(user),
    )  # fmt: skip


@router.get("/members/{member_id}/entries.csv")
async def member_csv(member_id: int, user: User, program_id: int | None = None) -> Response:
    found = await user.api.get(f"/v1/audit/members/{member_id}", program_id=program_id)
    entries = found["entries"]
    columns = tuple(entries[0]) if entries else ("kind", "amount_points", "tx_hash", "block_number")
    return csv_download(f"member-{member_id}-entries.csv", columns, entries)


@router.get("/members")
async def member_form(member_id: int, _: User) -> Response:
    """The summary's member form: on to that member's page."""
    return RedirectResponse(f"{EXPLORER.path}/members/{member_id}", status_code=303)


@router.get("/{name}.csv")
async def section_csv(name: str, user: User) -> Response:
    return await download(user, name)


@router.get("/{name}")
async def section_page(request: Request, name: str, user: User, cursor: str = "") -> HTMLResponse:
    return await show(request, user, name, cursor)
