"""The web UI's journeys in a real browser (Chromium) against a real stack (Anvil, `loyalty
serve` with its outbox writer), each page checked with axe-core as it is reached."""

from __future__ import annotations

import csv
import io
import re
from pathlib import Path

from eth_account import Account
from playwright.sync_api import Page, expect
from support.backend import PASSPHRASE, wait_for
from support.ui import TX_URL, Stack, inject_wallet, no_serious_violations

SLOW_MS = 60_000  # a write is on-chain within seconds; a loaded CI machine gets a minute


def sign_in_member(page: Page, member: dict[str, str]) -> None:
    page.goto("/wallet")
    expect(page).to_have_url(re.compile(r"/wallet/sign-in$"))  # not signed in yet
    no_serious_violations(page)
    page.get_by_label("Member id").fill(member["external_id"])
    page.get_by_label("Passphrase").fill(PASSPHRASE)
    page.get_by_role("button", name="Sign in", exact=True).click()
    expect(page).to_have_url(re.compile(r"/wallet$"))


def test_custodialMember_seesAnEarn_approvesARedemption_andTheBalanceFalls(page: Page, stack: Stack):
    brand = stack.partner("Coffee")
    member = stack.member(brand)
    stack.earn_confirmed(brand, member, 500)
    reward = stack.call("POST", "/v1/rewards", brand["api_key"], {"name": "Latte", "cost_points": 200, "stock": 5})

    sign_in_member(page, member)
    expect(page.locator("[data-program='1'] [data-balance]")).to_have_text("500")
    history = page.get_by_role("table").filter(has_text="Transaction")
    expect(history.get_by_role("link").first).to_have_attribute("href", re.compile(TX_URL.format(tx="0x")))
    expect(page.get_by_role("row", name=re.compile("Latte")).get_by_text("You can afford it")).to_be_visible()
    no_serious_violations(page)

    asked = stack.call(
        "POST", "/v1/redemptions", brand["api_key"], {"member_id": member["id"], "reward_id": reward["id"]}
    )
    assert asked["status"] == "awaiting_member"
    page.reload()
    waiting = page.locator(f"[data-redemption='{asked['id']}']")
    expect(waiting).to_contain_text("200 points")
    waiting.get_by_role("button", name="Approve").click()
    expect(page.get_by_role("status").first).to_contain_text("Approved")
    expect(page.locator("[data-program='1'] [data-balance]")).to_have_text("300", timeout=SLOW_MS)  # htmx refreshes it
    no_serious_violations(page)
    assert stack.call("GET", f"/v1/redemptions/{asked['id']}", brand["api_key"])["status"] == "posted"


def test_selfCustodyMember_signsInWithItsWallet_andSignsADonationConsent(page: Page, stack: Stack):
    key = Account.create().key
    address = inject_wallet(page, key)
    brand = stack.partner("Grocer")
    member = stack.member(brand, wallet_address=address)
    stack.earn_confirmed(brand, member, 800)
    rate = {"cash_minor": 500, "points": 1_000, "currency": "USD"}
    charity = stack.call("POST", "/v1/partners", body={"name": "Food Bank", "kind": "charity", "donation_rate": rate})

    page.goto("/wallet/sign-in")
    page.get_by_role("button", name="Sign in with your wallet").click()
    expect(page).to_have_url(re.compile(r"/wallet$"))
    expect(page.get_by_text("your own wallet")).to_be_visible()
    expect(page.locator("[data-program='1'] [data-balance]")).to_have_text("800")

    row = page.get_by_role("row", name=re.compile("Donation to Food Bank"))
    row.get_by_label("Points to donate").fill("300")
    row.get_by_role("button", name="Donate").click()  # the page asks the wallet for the EIP-712 consent
    expect(page.get_by_role("status").first).to_contain_text("Thank you")
    assert stack.call("GET", f"/v1/donations?member_id={member['id']}", charity["api_key"])["data"]
    expect(page.locator("[data-program='1'] [data-balance]")).to_have_text("500", timeout=SLOW_MS)


def test_partner_uploadsACsvOf1000Earns_andWatchesThemConfirm(page: Page, stack: Stack, tmp_path: Path):
    brand = stack.partner("Books", budget=10_000_000)
    members = [stack.member(brand) for _ in range(5)]
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["member_id", "amount_points", "reason"])
    for i in range(1_000):
        writer.writerow([members[i % 5]["id"], 10 + i, f"row {i}"])
    upload = tmp_path / "earns.csv"
    upload.write_text(out.getvalue())

    page.goto("/console")
    expect(page).to_have_url(re.compile(r"/console/sign-in$"))
    page.get_by_label("API key").fill(brand["api_key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=f"Partner {brand['id']}")).to_be_visible()
    no_serious_violations(page)
    page.get_by_label("External id").fill(members[2]["external_id"])
    page.get_by_role("button", name="Search").click()
    expect(page.get_by_role("cell", name=members[2]["external_id"])).to_be_visible()
    expect(page.get_by_role("cell", name=members[1]["external_id"])).to_have_count(0)

    page.get_by_label(re.compile("^File")).set_input_files(upload)
    page.get_by_role("button", name="Upload and earn").click()
    expect(page.locator("[data-confirmed]")).to_have_text("1,000", timeout=SLOW_MS * 2)
    expect(page.get_by_role("status")).to_contain_text("done")
    no_serious_violations(page)
    total = sum(10 + i for i in range(1_000))
    budget = stack.call("GET", f"/v1/partners/{brand['id']}/budget", brand["api_key"])
    assert budget["used_points"] == total


def test_admin_createsAPartner_andTopsUpItsBudget(page: Page, stack: Stack):
    page.goto("/console/sign-in")
    page.get_by_label("API key").fill("adm_test")
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name="Admin")).to_be_visible()
    no_serious_violations(page)
    page.get_by_label("Name").fill("Cinema")
    page.get_by_label("Budget (points)").fill("1000")
    page.get_by_role("button", name="Add").click()
    created = page.locator("[data-api-key]")
    expect(created).to_have_text(re.compile(r"^\S{20,}$"))
    api_key = created.inner_text()
    partner_id = stack.call("GET", "/v1/whoami", api_key)["partner_id"]

    page.reload()
    row = page.locator(f"[data-partner='{partner_id}']")
    row.get_by_label("Points for Cinema").fill("4000")
    row.get_by_role("button", name="Grant").click()
    expect(row.locator("[data-available]")).to_have_text("5,000", timeout=SLOW_MS)
    wait_for(lambda: stack.call("GET", f"/v1/partners/{partner_id}/budget", api_key)["onchain_points"] == 5_000)


def test_auditor_opensTheExplorer_andDownloadsACsv(page: Page, stack: Stack, tmp_path: Path):
    brand = stack.partner("Fuel")
    member = stack.member(brand)
    stack.earn_confirmed(brand, member, 1_234)
    auditor = stack.call("POST", "/v1/auditors", body={"name": "Audit & Co"})

    page.goto("/explorer")
    expect(page).to_have_url(re.compile(r"/explorer/sign-in$"))
    page.get_by_label("API key").fill(auditor["api_key"])
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_role("heading", name=re.compile("from the chain"))).to_be_visible()
    checks = page.get_by_role("table").filter(has_text="What it means")
    expect(checks.get_by_role("row", name=re.compile("mints_by_issuers"))).to_contain_text("pass")
    no_serious_violations(page)

    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    saved = tmp_path / "partners.csv"
    download.value.save_as(saved)
    rows = {int(r["partner_id"]): r for r in csv.DictReader(saved.open()) if r["partner_id"]}
    assert int(rows[brand["id"]]["outstanding_points"]) == 1_234

    page.get_by_label("Member id").fill(str(member["id"]))
    page.get_by_role("button", name="Open").click()
    expect(page.get_by_role("heading", name=f"Member {member['id']}, from the chain")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile("earn"))).to_contain_text("1,234")
    no_serious_violations(page)


def test_partner_addsARewardToTheCatalog_setsItsStock_andSimulatesARule(page: Page, stack: Stack):
    brand = stack.partner("Bakery")
    stack.call(
        "POST", "/v1/rules", brand["api_key"], {"name": "Ten", "calculator": {"strategy": "fixed", "points": 10}}
    )
    page.context.add_cookies([{"name": "loyalty_console", "value": brand["api_key"], "url": stack.url + "/console"}])
    page.goto("/console/rewards")
    page.get_by_label("Name").fill("Croissant")
    page.get_by_label("Cost (points)").fill("120")
    page.get_by_label("Stock", exact=True).fill("7")
    page.get_by_role("button", name="Add").click()
    row = page.get_by_role("row", name=re.compile("Croissant"))
    expect(row).to_contain_text("120")
    row.get_by_label("Stock").fill("2")
    row.get_by_role("button", name="Set stock").click()
    expect(page.get_by_role("row", name=re.compile("Croissant")).get_by_role("cell").nth(3)).to_have_text("2")
    rewards = stack.call("GET", f"/v1/rewards?partner_id={brand['id']}", brand["api_key"])["data"]
    assert [(r["name"], r["stock"]) for r in rewards] == [("Croissant", 2)]

    page.goto("/console/rules")
    page.get_by_role("button", name="Simulate").click()
    expect(page.locator("#simulated")).to_contain_text("It would earn 10 points")


def test_auditor_seesLiabilityByDate_andDownloadsTheCohorts(page: Page, stack: Stack, tmp_path: Path):
    brand = stack.partner("Air")
    flyer = stack.member(brand)
    stack.earn_confirmed(brand, flyer, 500)
    stack.earn_confirmed(brand, flyer, 400)  # a second block: the timeline has a start and an end
    auditor = stack.call("POST", "/v1/auditors", body={"name": "Chart audit"})
    page.context.add_cookies(
        [{"name": "loyalty_explorer", "value": auditor["api_key"], "url": stack.url + "/explorer"}]
    )
    page.goto("/explorer")
    page.get_by_role("navigation", name="Explorer").get_by_role("link", name="Liability and breakage").click()
    chart = page.locator("figure.chart svg")
    expect(chart).to_have_attribute("aria-label", re.compile(r"liability [\d,]+ points"))
    expect(chart.locator("text").filter(has_text=re.compile(r"^\d{4}-\d{2}-\d{2}$")).first).to_be_visible()  # dates
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    saved = tmp_path / "cohorts.csv"
    download.value.save_as(saved)
    cohorts = list(csv.DictReader(saved.open()))
    summary = stack.call("GET", "/v1/audit/summary", auditor["api_key"])
    assert sum(int(c["outstanding"]) for c in cohorts) == summary["outstanding_points"] >= 900

    page.get_by_role("navigation", name="Explorer").get_by_role("link", name="Liability over time").click()
    line = page.locator("figure.chart svg")
    expect(line.locator("polyline")).to_have_count(2)  # liability and breakage
    expect(line.locator("text").filter(has_text=re.compile(r"^\d{4}-\d{2}-\d{2}$"))).to_have_count(5)
    with page.expect_download() as download:
        page.get_by_role("link", name="Download as CSV").click()
    download.value.save_as(saved)
    points = list(csv.DictReader(saved.open()))
    assert int(points[-1]["outstanding_points"]) == summary["outstanding_points"]
    assert points[0]["at"] <= points[-1]["at"] and len(points) >= 2


def test_auditor_watchesAFirstReplay_thenSeesTheSummary(page: Page, stack: Stack):
    program = stack.call("POST", "/v1/programs", body={"name": "Replay Miles", "symbol": "RPLY"})
    wait_for(lambda: stack.call("GET", f"/v1/programs/{program['id']}")["status"] == "active")
    auditor = stack.call("POST", "/v1/auditors", body={"name": "Replay audit"})
    page.context.add_cookies(
        [{"name": "loyalty_explorer", "value": auditor["api_key"], "url": stack.url + "/explorer"}]
    )
    page.goto(f"/explorer?program_id={program['id']}")
    expect(page.get_by_role("heading", name="Replaying the chain")).to_be_visible()  # never replayed here yet
    no_serious_violations(page)
    expect(page.get_by_role("heading", name=f"Program {program['id']}, from the chain")).to_be_visible(timeout=SLOW_MS)
    assert stack.call("GET", f"/v1/audit/progress?program_id={program['id']}", auditor["api_key"])["state"] == "ready"


def test_custodialMember_exchangesBetweenPrograms_withAQuoteFirst(page: Page, stack: Stack):
    hotel, airline = stack.partner("Hotel"), stack.partner("Airline")
    miles = stack.call("POST", "/v1/programs", body={"name": "Air Miles", "symbol": "MILES"})["id"]
    wait_for(lambda: stack.call("GET", f"/v1/programs/{miles}")["status"] == "active")
    stack.call("POST", f"/v1/programs/{miles}/incoming-budget", body={"points": 10_000})
    terms = {"source_program_id": 1, "target_program_id": miles, "payer_id": hotel["id"], "payee_id": airline["id"],
             "rate_numerator": 1, "rate_denominator": 3, "minimum_in": 300, "step_in": 3, "price_per_point": 20_000,
             "valid_until": "2036-01-01T00:00:00Z"}  # fmt: skip
    agreement = stack.call("POST", "/v1/agreements", hotel["api_key"], terms)
    stack.call("POST", f"/v1/agreements/{agreement['id']}/sign", airline["api_key"])
    wait_for(lambda: stack.call("GET", f"/v1/agreements/{agreement['id']}", hotel["api_key"])["status"] == "registered")
    member = stack.member(hotel)
    stack.earn_confirmed(hotel, member, 900)

    sign_in_member(page, member)
    page.get_by_label("Agreement").select_option(str(agreement["id"]))
    page.get_by_label("Points to give").fill("300")
    page.get_by_role("button", name="Get a quote").click()
    expect(page.locator("[data-amount-out]")).to_have_text("100")  # 3 : 1, quoted before anything is sent
    no_serious_violations(page)
    page.get_by_role("button", name="Exchange", exact=True).click()
    expect(page.get_by_role("status").first).to_contain_text("Exchanged")
    expect(page.locator(f"[data-program='{miles}'] [data-balance]")).to_have_text("100", timeout=SLOW_MS)
    expect(page.locator("[data-program='1'] [data-balance]")).to_have_text("600")


def test_member_seesItsLeaderboardPosition_andItsWholeHistory(page: Page, stack: Stack):
    brand = stack.partner("Gym")
    member, rival = stack.member(brand), stack.member(brand)
    stack.earn_confirmed(brand, rival, 50)
    stack.earn_confirmed(brand, member, 40)
    board = stack.call("POST", "/v1/leaderboards", brand["api_key"], {"name": "December", "period": "monthly"})
    sign_in_member(page, member)
    expect(page.locator(f"[data-leaderboard='{board['id']}'] [data-rank]")).to_have_text("#2")
    page.goto("/wallet/history")
    expect(page.get_by_role("heading", name="Your history")).to_be_visible()
    expect(page.get_by_role("row", name=re.compile(r"\+40"))).to_be_visible()


def test_aRefusalInAPartOfAPage_showsTheApisReason(page: Page, stack: Stack):
    brand = stack.partner("Refusals")
    member = stack.member(brand)
    sign_in_member(page, member)
    page.get_by_label("Up to").evaluate("input => input.removeAttribute('min')")  # past the browser's own check
    page.get_by_label("Up to").fill("0")
    page.get_by_role("button", name="Make a one-time code").click()
    expect(page.locator("#code").get_by_role("alert")).to_contain_text(
        "max_points: Input should be greater than or equal to 1"
    )


def test_partner_disablesAWebhook_andReadsItsDeliveryLog(page: Page, stack: Stack):
    brand = stack.partner("Hooks")
    hook = stack.call(
        "POST", "/v1/webhooks", brand["api_key"], {"url": "http://127.0.0.1:9/h", "event_types": ["earn.confirmed"]}
    )
    page.context.add_cookies([{"name": "loyalty_console", "value": brand["api_key"], "url": stack.url + "/console"}])
    page.goto("/console/webhooks")
    row = page.get_by_role("row", name="127.0.0.1:9/h")
    row.get_by_role("button", name="Disable").click()
    expect(page.get_by_role("row", name="127.0.0.1:9/h")).to_contain_text("disabled")
    assert stack.call("GET", f"/v1/webhooks/{hook['id']}", brand["api_key"])["status"] == "disabled"
    page.get_by_role("row", name="127.0.0.1:9/h").get_by_role("link", name="Deliveries").click()
    expect(page.get_by_role("heading", name=f"Webhook {hook['id']}: deliveries")).to_be_visible()
