"""Lists page with a cursor (`?limit=&cursor=` → `{data, next_cursor}`), honour their filters,
and show a partner only its own."""

from support.backend import ADMIN_KEY, auth, confirm_all, link, make_member, make_partner, post


def _all(client, path, key, limit):
    """Every row of a list, page by page; and how many pages it took."""
    rows, cursor, pages = [], None, 0
    while True:
        query = f"{path}{'&' if '?' in path else '?'}limit={limit}" + (f"&cursor={cursor}" if cursor else "")
        page = client.get(query, headers=auth(key))
        assert page.status_code == 200, page.text
        rows += page.json()["data"]
        pages += 1
        if (cursor := page.json()["next_cursor"]) is None:
            return rows, pages


def test_members_pageByCursor_andFilter(client):
    a, b = make_partner(client, "A"), make_partner(client, "B")
    at_a = [make_member(client, a["api_key"]) for _ in range(7)]
    at_b = [make_member(client, b["api_key"]) for _ in range(3)]

    rows, pages = _all(client, "/v1/members", a["api_key"], limit=3)
    everyone, _ = _all(client, "/v1/members", ADMIN_KEY, limit=4)
    only_b, _ = _all(client, f"/v1/members?partner_id={b['id']}", ADMIN_KEY, limit=100)
    by_id = client.get(f"/v1/members?external_id={at_b[1]['external_id']}", headers=auth(ADMIN_KEY)).json()["data"]
    by_wallet = client.get(f"/v1/members?wallet_address={at_a[2]['wallet_address'].lower()}", headers=auth(ADMIN_KEY))

    assert [m["id"] for m in rows] == [m["id"] for m in at_a] and pages == 3
    assert [m["id"] for m in everyone] == sorted(m["id"] for m in at_a + at_b)
    assert [m["id"] for m in only_b] == [m["id"] for m in at_b]
    assert [m["id"] for m in by_id] == [at_b[1]["id"]]
    assert [m["id"] for m in by_wallet.json()["data"]] == [at_a[2]["id"]]
    foreign = client.get(f"/v1/members?external_id={at_b[0]['external_id']}", headers=auth(a["api_key"]))
    assert foreign.json()["data"] == []  # partner A cannot find B's member


def test_earnsAndRedemptions_listOnlyTheCallersOwn_withFilters(client, writer):
    a, b = make_partner(client, "A"), make_partner(client, "B")
    member = make_member(client, a["api_key"])
    link(client, member, b)
    for points in (5, 6, 7):
        post(
            client,
            "/v1/earn",
            {"member_id": member["id"], "amount_points": points, "reason": f"order {points}"},
            a["api_key"],
        )
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 9}, b["api_key"])
    confirm_all(writer)
    reward = post(client, "/v1/rewards", {"name": "Mug", "cost_points": 3, "stock": 5}, a["api_key"]).json()
    post(client, "/v1/redemptions", {"member_id": member["id"], "reward_id": reward["id"]}, a["api_key"])

    earns_a, pages = _all(client, "/v1/earn?status=confirmed", a["api_key"], limit=2)
    earns_b, _ = _all(client, f"/v1/earn?member_id={member['id']}", b["api_key"], limit=10)
    asked = client.get("/v1/redemptions?status=awaiting_member", headers=auth(a["api_key"])).json()["data"]
    seen_by_b = client.get("/v1/redemptions", headers=auth(b["api_key"])).json()["data"]

    assert [(e["amount_points"], e["reason"]) for e in earns_a] == [(5, "order 5"), (6, "order 6"), (7, "order 7")]
    assert pages == 2 and all(e["tx_hash"] for e in earns_a)
    assert [e["amount_points"] for e in earns_b] == [9]
    assert [r["reward_id"] for r in asked] == [reward["id"]] and seen_by_b == []


def test_history_pagesInOrderAndHonoursTheLimit(client, writer):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    for points in range(1, 12):
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": points}, partner["api_key"])
    confirm_all(writer)

    first = client.get(f"/v1/members/{member['id']}/history?limit=4", headers=auth(partner["api_key"])).json()
    rows, pages = _all(client, f"/v1/members/{member['id']}/history", partner["api_key"], limit=4)

    assert len(first["data"]) == 4 and first["next_cursor"]
    assert [e["amount_points"] for e in rows] == list(range(1, 12)) and pages == 3


def test_list_refusesAForeignCursorAndTooLargeALimit(client):
    bad = client.get("/v1/members?cursor=not-a-cursor", headers=auth(ADMIN_KEY))
    big = client.get("/v1/members?limit=100000", headers=auth(ADMIN_KEY))
    assert (bad.status_code, bad.json()["code"]) == (422, "invalid_cursor")
    assert (big.status_code, big.json()["code"]) == (422, "validation_error")


def test_partnersAndAuditors_areListedForTheAdmin(client):
    made = [make_partner(client, f"P{i}") for i in range(3)]
    post(client, "/v1/auditors", {"name": "Audit"}, ADMIN_KEY)
    partners, _ = _all(client, "/v1/partners", ADMIN_KEY, limit=2)
    auditors = client.get("/v1/auditors", headers=auth(ADMIN_KEY)).json()["data"]
    assert [(p["name"], p["status"]) for p in partners] == [(p["name"], "provisioning") for p in made]
    assert [a["name"] for a in auditors] == ["Audit"] and "api_key" not in auditors[0]
