"""Helpers for the browser tests: the running stack's API, an injected EIP-1193 wallet backed by
a test key, and the accessibility check (axe-core from npm, run in the page)."""

from __future__ import annotations

import json
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
from eth_account import Account
from eth_account.messages import encode_defunct
from playwright.sync_api import Page

from support.backend import ADMIN_KEY, PASSPHRASE, wait_for

TX_URL = "https://explorer.example/tx/{tx}"
AXE = Path(__file__).resolve().parents[2] / "node_modules/axe-core/axe.min.js"


@dataclass
class Stack:
    """The running service: its URL, and calls to its API as the admin or any key."""

    url: str
    rpc_url: str

    def call(self, method: str, path: str, key: str | None = ADMIN_KEY, body: Any = None) -> Any:
        headers = {"Idempotency-Key": uuid.uuid4().hex}
        if key:
            headers["Authorization"] = f"Bearer {key}"
        response = httpx.request(method, self.url + path, json=body, headers=headers, timeout=60)
        assert response.status_code < 300, response.text
        return response.json() if response.content else None

    def partner(self, name: str = "Acme", budget: int = 1_000_000) -> dict[str, Any]:
        return dict(self.call("POST", "/v1/partners", body={"name": name, "issue_budget_points": budget}))

    def member(self, partner: dict[str, Any], **body: Any) -> dict[str, Any]:
        """A member of `partner`'s; a custodial one with its passphrase set to `PASSPHRASE`."""
        made = dict(self.call("POST", "/v1/members", partner["api_key"], {"external_id": uuid.uuid4().hex, **body}))
        if made["custodial"]:
            token = made.get("enrolment_token") or self.call("POST", f"/v1/members/{made['id']}/passphrase-resets")["token"]
            self.call("POST", "/v1/auth/passphrase", None, {"token": token, "passphrase": PASSPHRASE})
        return made

    def earn_confirmed(self, partner: dict[str, Any], member: dict[str, Any], points: int) -> None:
        earn = self.call("POST", "/v1/earn", partner["api_key"], {"member_id": member["id"], "amount_points": points})
        wait_for(lambda: self.call("GET", f"/v1/earn/{earn['id']}", partner["api_key"])["status"] == "confirmed")


def inject_wallet(page: Page, key: bytes) -> str:
    """An EIP-1193 provider (`window.ethereum`) in `page`, backed by a test key: it signs in
    Python (eth-account, not the project's code) what the page asks. Returns its address."""
    account = Account.from_key(key)

    def answer(method: str, params: list[Any]) -> Any:
        if method in ("eth_requestAccounts", "eth_accounts"):
            return [account.address.lower()]  # as wallets do: the page must not rely on the spelling
        if method == "personal_sign":
            return "0x" + account.sign_message(encode_defunct(hexstr=params[0])).signature.hex()
        if method == "eth_signTypedData_v4":
            return "0x" + account.sign_typed_data(full_message=json.loads(params[1])).signature.hex()
        raise ValueError(f"the test wallet does not do {method}")

    page.expose_function("__testWallet", answer)
    page.add_init_script(
        "window.ethereum = { isTest: true, request: ({ method, params }) => window.__testWallet(method, params || []) };"
    )
    return str(account.address)


def no_serious_violations(page: Page) -> None:
    """axe-core (from npm) in the page: no serious or critical accessibility violations."""
    page.add_script_tag(path=str(AXE))
    found = page.evaluate(
        "async () => (await axe.run()).violations.map(v => ({id: v.id, impact: v.impact, help: v.help, nodes: v.nodes.map(n => n.target.join(' ')).slice(0, 3)}))"
    )
    serious = [v for v in found if v["impact"] in ("serious", "critical")]
    assert not serious, json.dumps(serious, indent=1)
