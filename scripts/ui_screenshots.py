"""The README's pictures of the web UI: `make screenshots` runs the service on a chain of its own
(`benchlib.serving`), makes a small program through the API (a coffee brand, a reward, members
with earns and a redemption awaiting approval, an auditor) and saves, from Debian's Chromium,
docs/ui-wallet.png, docs/ui-console.png and docs/ui-explorer.png (and a phone's view of the
wallet, docs/ui-wallet-phone.png)."""

from __future__ import annotations

import os
import shutil
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "backend"))

from benchlib import serving  # noqa: E402

RUN_DIR = ROOT / "var" / "screenshots-run"
DOCS = ROOT / "docs"
ADMIN_KEY = "adm_screenshots"
PASSPHRASE = "correct horse battery staple"
CHROMIUM = os.environ.get("CHROMIUM", "/usr/bin/chromium")


def call(api: str, method: str, path: str, key: str | None = ADMIN_KEY, body: Any = None) -> Any:
    headers = {"Idempotency-Key": uuid.uuid4().hex} | ({"Authorization": f"Bearer {key}"} if key else {})
    answer = httpx.request(method, api + path, json=body, headers=headers, timeout=120)
    if answer.status_code >= 300:
        raise SystemExit(f"{method} {path}: {answer.status_code} {answer.text[:300]}")
    return answer.json() if answer.content else None


def confirmed(api: str, key: str, earn_id: int) -> None:
    for _ in range(600):
        if call(api, "GET", f"/v1/earn/{earn_id}", key)["status"] == "confirmed":
            return
        time.sleep(0.1)
    raise SystemExit(f"earn {earn_id} was not confirmed")


def main() -> None:
    shutil.rmtree(RUN_DIR, ignore_errors=True)
    RUN_DIR.mkdir(parents=True)
    with serving(RUN_DIR, ADMIN_KEY) as stack:
        api = stack.api
        brand = call(api, "POST", "/v1/partners", body={"name": "Northside Coffee", "issue_budget_points": 1_000_000})
        for _ in range(600):
            if call(api, "GET", f"/v1/partners/{brand['id']}")["status"] == "active":
                break
            time.sleep(0.1)
        key = brand["api_key"]
        for name, cost, stock in (("Latte", 450, 40), ("Croissant", 300, 25), ("Mug", 1_200, 8)):
            call(api, "POST", "/v1/rewards", key, {"name": name, "cost_points": cost, "stock": stock})
        members = []
        for i, points in enumerate((1_250, 820, 2_400, 90, 510)):
            member = call(api, "POST", "/v1/members", key, {"external_id": f"card-{1001 + i}"})
            token = (
                member.get("enrolment_token")
                or call(api, "POST", f"/v1/members/{member['id']}/passphrase-resets")["token"]
            )
            call(api, "POST", "/v1/auth/passphrase", None, {"token": token, "passphrase": PASSPHRASE})
            for part in (points // 2, points - points // 2):
                confirmed(
                    api,
                    key,
                    call(api, "POST", "/v1/earn", key, {"member_id": member["id"], "amount_points": part})["id"],
                )
            members.append(member)
        mug = call(api, "GET", f"/v1/rewards?partner_id={brand['id']}", key)["data"][0]
        call(api, "POST", "/v1/redemptions", key, {"member_id": members[0]["id"], "reward_id": mug["id"]})
        auditor = call(api, "POST", "/v1/auditors", body={"name": "Ledger & Co"})["api_key"]
        session = call(api, "POST", "/v1/auth/sessions", None, {"external_id": "card-1001", "passphrase": PASSPHRASE})[
            "token"
        ]
        call(api, "GET", "/v1/audit/summary", auditor)  # the replay, before the picture

        from playwright.sync_api import ViewportSize, sync_playwright

        DOCS.mkdir(exist_ok=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
            shots = (
                ("ui-wallet.png", "/wallet", "loyalty_wallet", session, ViewportSize(width=1100, height=1200)),
                ("ui-wallet-phone.png", "/wallet", "loyalty_wallet", session, ViewportSize(width=390, height=844)),
                ("ui-console.png", "/console", "loyalty_console", key, ViewportSize(width=1100, height=900)),
                ("ui-explorer.png", "/explorer", "loyalty_explorer", auditor, ViewportSize(width=1100, height=1100)),
            )
            for name, path, cookie, secret, size in shots:
                context = browser.new_context(viewport=size, device_scale_factor=1)
                context.add_cookies([{"name": cookie, "value": secret, "url": api + path}])
                page = context.new_page()
                page.goto(api + path, wait_until="networkidle")
                page.screenshot(path=str(DOCS / name))
                print(f"wrote {DOCS / name}")
                context.close()
            browser.close()


if __name__ == "__main__":
    main()
