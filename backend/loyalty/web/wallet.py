"""The member wallet (/wallet), built on GET /v1/me/wallet: balances by program and expiry,
tier, history, the catalog, answering a partner's redemption request, one-time checkout codes,
donations, exchanges with a quote first, challenges and leaderboard positions."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any

from eth_utils.address import to_checksum_address
from fastapi import APIRouter, Form, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response

from loyalty.web.api import Api, ApiProblem, api_of
from loyalty.web.session import WALLET, IdempotencyKey, Viewer, check_origin, sign_in_cookie, sign_out_cookie, viewer
from loyalty.web.site import page

router = APIRouter(prefix="/wallet", include_in_schema=False)
Member = Annotated[Viewer, viewer(WALLET)]
SIWE_VALID = timedelta(minutes=5)  # to sign the message in
RECENT = 20  # GET /v1/me/wallet's latest entries
AFTER_WRITE_POLLS = 15  # the balance is refreshed every 2 s for 30 s after a write
DONE = {
    "approved": "Approved: the points are being burned. Your balance falls once the chain confirms it.",
    "declined": "Declined: nothing was burned.",
    "donated": "Thank you: your donation is on its way to the chain.",
    "exchanged": "Exchanged: the points move once the chain confirms it.",
}


@router.get("/sign-in")
async def sign_in_form(request: Request) -> HTMLResponse:
    return page(request, "sign_in.html", surface=WALLET)


@router.post("/sign-in")
async def sign_in(
    request: Request,
    external_id: Annotated[str, Form(max_length=200)],
    passphrase: Annotated[str, Form(max_length=1024)],
) -> Response:
    """A custodial member: external id and passphrase."""
    check_origin(request)
    async with api_of(request, None) as api:
        try:
            made = await api.send("POST", "/v1/auth/sessions", {"external_id": external_id, "passphrase": passphrase})
        except ApiProblem as problem:
            return page(request, "sign_in.html", problem.status, surface=WALLET, error=problem.detail)
    return _signed_in(request, made["token"])


@router.post("/sign-in/siwe")
async def sign_in_siwe(
    request: Request, message: Annotated[str, Form(max_length=4000)], signature: Annotated[str, Form(max_length=8200)]
) -> Response:
    """A self-custody member: the Sign-In with Ethereum message its wallet signed (static/wallet.js)."""
    check_origin(request)
    async with api_of(request, None) as api:
        try:
            # a browser sends a form's line breaks as CRLF; the signed message has LF (EIP-4361)
            body = {"message": message.replace("\r\n", "\n"), "signature": signature}
            made = await api.send("POST", "/v1/auth/siwe", body)
        except ApiProblem as problem:
            return page(request, "sign_in.html", problem.status, surface=WALLET, error=problem.detail)
    return _signed_in(request, made["token"])


@router.post("/sign-in/siwe-message")
async def siwe_message(request: Request, address: Annotated[str, Form(pattern=r"^0x[0-9a-fA-F]{40}$")]) -> JSONResponse:
    """The Sign-In with Ethereum message for `address` to sign, on a fresh nonce from the API
    (the address EIP-55 checksummed, as the standard requires)."""
    check_origin(request)
    async with api_of(request, None) as api:
        nonce = await api.send("POST", "/v1/auth/siwe/nonces")
    now = datetime.now(UTC)
    message = (
        f"{nonce['domain']} wants you to sign in with your Ethereum account:\n{to_checksum_address(address)}\n\n"
        f"{nonce['statement']}\n\nURI: {nonce['uri']}\nVersion: 1\nChain ID: {nonce['chain_id']}\n"
        f"Nonce: {nonce['nonce']}\nIssued At: {now.isoformat()}\nExpiration Time: {(now + SIWE_VALID).isoformat()}"
    )
    return JSONResponse({"message": message})


def _signed_in(request: Request, token: str) -> Response:
    response = RedirectResponse(WALLET.path, status_code=303)
    sign_in_cookie(response, WALLET, token, secure=request.url.scheme == "https")
    return response


@router.post("/sign-out")
async def sign_out(member: Member) -> Response:
    await member.api.send("DELETE", "/v1/me/session")
    response = RedirectResponse(f"{WALLET.path}/sign-in", status_code=303)
    sign_out_cookie(response, WALLET)
    return response


@router.get("")
async def home(request: Request, member: Member, done: str = "") -> HTMLResponse:
    api = member.api
    found = await api.get("/v1/me/wallet")
    active = found["leaderboards"]
    standings = await asyncio.gather(*(_standing(api, b["id"]) for b in active))
    redemptions, recent = found["redemptions"], found["recent"]
    return page(
        request, "wallet.html", surface=WALLET, me=found["profile"], balance=found["balance"], tier=found["tier"],
        waiting=[r for r in redemptions if r["status"] == "awaiting_member"], redemptions=redemptions,
        history=recent, more_history=len(recent) >= RECENT, rewards=found["rewards"],
        challenges=found["challenges"], agreements=found["agreements"], notice=DONE.get(done),
        standings=[(b, st) for b, st in zip(active, standings, strict=True) if st is not None],
        in_flight=any(r["status"] == "reserved" for r in redemptions) or any(e["status"] == "pending" for e in recent),
        polls=AFTER_WRITE_POLLS if done in DONE else 0,
    )  # fmt: skip


@router.get("/history")
async def history(request: Request, member: Member, cursor: str = "") -> HTMLResponse:
    """The whole history, oldest first, a page at a time."""
    found = await member.api.get("/v1/me/history", limit=100, cursor=cursor or None)
    return page(request, "wallet_history.html", surface=WALLET, me=True, history=found)


async def _standing(api: Api, leaderboard_id: int) -> dict[str, Any] | None:
    """The member's standing, or None where it takes no part (another program's board)."""
    try:
        found: dict[str, Any] = await api.get(f"/v1/me/leaderboards/{leaderboard_id}", limit=3)
    except ApiProblem as problem:
        if problem.status in (404, 422):
            return None
        raise
    return found


@router.get("/balance")
async def balance(request: Request, member: Member, polls: int = 0) -> HTMLResponse:
    """The balances alone: htmx refreshes them while a redemption is on its way to the chain,
    and `polls` more times after any write (an exchange or donation confirms within seconds)."""
    found, redemptions = await asyncio.gather(member.api.get("/v1/me/balance"), member.api.get("/v1/me/redemptions"))
    in_flight = any(r["status"] == "reserved" for r in redemptions)
    return page(
        request, "_balance.html", balance=found, in_flight=in_flight, polls=max(0, min(polls, AFTER_WRITE_POLLS))
    )


@router.post("/redemptions/{redemption_id}/{answer}")
async def answer(redemption_id: int, answer: str, member: Member, idempotency_key: IdempotencyKey) -> Response:
    """Approve or decline a partner's request (a custodial member: the service signs for it)."""
    if answer not in ("approve", "decline"):
        raise ApiProblem(404, "not_found", f"a redemption is approved or declined, not {answer!r}")
    await member.api.send("POST", f"/v1/me/redemptions/{redemption_id}/{answer}", key=idempotency_key)
    return RedirectResponse(f"{WALLET.path}?done={answer}d", status_code=303)


@router.post("/redemption-codes")
async def redemption_code(
    request: Request, member: Member, idempotency_key: IdempotencyKey,
    partner_id: Annotated[int, Form(ge=1)], max_points: Annotated[int, Form(ge=1)],
) -> HTMLResponse:  # fmt: skip
    """A one-time code for a partner's checkout, shown once."""
    body = {"partner_id": partner_id, "max_points": max_points}
    made = await member.api.send("POST", "/v1/me/redemption-codes", body, key=idempotency_key)
    return page(request, "_code.html", code=made)


@router.post("/donations/consents")
async def donation_consent(
    member: Member, idempotency_key: IdempotencyKey,
    charity_id: Annotated[int, Form(ge=1)], amount_points: Annotated[int, Form(ge=1)],
) -> JSONResponse:  # fmt: skip
    """The typed data a self-custody member's wallet signs for a donation (static/wallet.js)."""
    body = {"charity_id": charity_id, "amount_points": amount_points}
    return JSONResponse(await member.api.send("POST", "/v1/me/donations/consents", body, key=idempotency_key))


@router.post("/donations")
async def donate(
    member: Member, idempotency_key: IdempotencyKey,
    charity_id: Annotated[int, Form(ge=1)], amount_points: Annotated[int, Form(ge=1)],
    signature: Annotated[str, Form(max_length=8200)] = "", deadline: Annotated[int | None, Form()] = None,
) -> Response:  # fmt: skip
    """Donate: a custodial member's request is its consent; a self-custody one sends its signature."""
    body = _signed({"charity_id": charity_id, "amount_points": amount_points}, signature, deadline)
    await member.api.send("POST", "/v1/me/donations", body, key=idempotency_key)
    return RedirectResponse(f"{WALLET.path}?done=donated", status_code=303)


AgreementId = Annotated[int, Form(ge=1)]
AmountIn = Annotated[int, Form(ge=1)]


@router.post("/exchanges/quote")
async def exchange_quote(
    request: Request, member: Member, agreement_id: AgreementId, amount_in: AmountIn
) -> HTMLResponse:
    """What an exchange would give, before anything is signed or sent."""
    quote = await member.api.send("POST", "/v1/exchanges/quote", {"agreement_id": agreement_id, "amount_in": amount_in})
    me = await member.api.get("/v1/me")
    return page(request, "_quote.html", quote=quote, me=me)


@router.post("/exchanges/consents")
async def exchange_consent(
    member: Member, idempotency_key: IdempotencyKey, agreement_id: AgreementId, amount_in: AmountIn
) -> JSONResponse:
    """The typed data a self-custody member's wallet signs for its exchange (static/wallet.js)."""
    body = {"agreement_id": agreement_id, "amount_in": amount_in}
    return JSONResponse(await member.api.send("POST", "/v1/me/exchanges/consents", body, key=idempotency_key))


@router.post("/exchanges")
async def exchange(
    member: Member, idempotency_key: IdempotencyKey, agreement_id: AgreementId, amount_in: AmountIn,
    signature: Annotated[str, Form(max_length=8200)] = "", deadline: Annotated[int | None, Form()] = None,
) -> Response:  # fmt: skip
    """Exchange as quoted: a custodial member's request is its consent; a self-custody one signed."""
    body = _signed({"agreement_id": agreement_id, "amount_in": amount_in}, signature, deadline)
    await member.api.send("POST", "/v1/me/exchanges", body, key=idempotency_key)
    return RedirectResponse(f"{WALLET.path}?done=exchanged", status_code=303)


def _signed(body: dict[str, Any], signature: str, deadline: int | None) -> dict[str, Any]:
    """A self-custody member's signed consent goes with its deadline; a custodial one's has none."""
    return body | {"signature": signature, "deadline": deadline} if signature else body
