"""Concurrent redemptions of one member (different keys, different reward) take turns: each
counts the ones before it, so only those the balance covers are reserved (on PostgreSQL too,
where nothing else serializes them)."""

import concurrent.futures

import httpx
from support.backend import auth, confirm_all, funded_member, redemption_code, serving


def test_concurrentRedemptionsOfOneMember_reserveOnlyWhatTheBalanceCovers(client, writer, settings):
    partner, reward, member = funded_member(client, writer, points=130, cost_points=60, stock=50)
    codes = [redemption_code(client, member, partner) for _ in range(10)]
    with serving(settings, outbox=False) as url:

        def redeem(i):
            headers = {**auth(partner["api_key"]), "Idempotency-Key": f"r{i}"}
            body = {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": codes[i]}
            return httpx.post(url + "/v1/redemptions", json=body, headers=headers, timeout=60)

        with concurrent.futures.ThreadPoolExecutor(10) as pool:
            responses = list(pool.map(redeem, range(10)))
    answered = sorted(r.status_code for r in responses)
    assert answered == [201, 201] + [422] * 8, [r.text for r in responses]
    confirm_all(writer)
    ids = [r.json()["id"] for r in responses if r.status_code == 201]
    statuses = [client.get(f"/v1/redemptions/{i}", headers=auth(partner["api_key"])).json()["status"] for i in ids]
    assert statuses == ["posted", "posted"]
