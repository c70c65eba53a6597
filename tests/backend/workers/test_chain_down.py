"""The chain going away: the API and the worker start without it and take earns; reads that
need it answer 503 `chain_unavailable`; the writer backs off with one log line per change of
state; when the chain is back, what waited is written."""

import time

import httpx
from support.backend import ADMIN_KEY, auth, redemption_code, serving, wait_for


def _post(url, path, body, key, idem):
    return httpx.post(url + path, json=body, headers={**auth(key), "Idempotency-Key": idem}, timeout=30)


def test_chainDown_apiStartsTakesEarnsAndCatchesUpWhenItIsBack(own_chain, chain_settings, tmp_path):
    log = tmp_path / "serve.log"
    with serving(chain_settings, outbox=True, log=log) as url:
        partner = _post(url, "/v1/partners", {"name": "Acme", "issue_budget_points": 10_000}, ADMIN_KEY, "p").json()
        member = _post(url, "/v1/members", {"external_id": "alice"}, partner["api_key"], "m").json()
        reward = _post(
            url, "/v1/rewards", {"name": "Mug", "cost_points": 5, "stock": 3}, partner["api_key"], "r"
        ).json()
        wait_for(lambda: httpx.get(url + "/v1/health").json()["outbox"]["partners_provisioning"] == 0)
    own_chain.stop()

    with serving(chain_settings, outbox=True, log=log) as url:
        code = redemption_code(httpx.Client(base_url=url), member, partner)  # needs no chain
        earn = _post(url, "/v1/earn", {"member_id": member["id"], "amount_points": 40}, partner["api_key"], "e")
        assert earn.status_code == 202, earn.text
        for response in (
            httpx.get(url + "/v1/chain", headers=auth(ADMIN_KEY)),
            httpx.get(url + f"/v1/members/{member['id']}", headers=auth(ADMIN_KEY)),
            _post(
                url,
                "/v1/redemptions",
                {"member_id": member["id"], "reward_id": reward["id"], "redemption_code": code},
                partner["api_key"],
                "x",
            ),
        ):
            assert (response.status_code, response.json()["code"]) == (503, "chain_unavailable"), response.text
            assert response.headers["content-type"] == "application/problem+json"
        health = httpx.get(url + "/v1/health").json()
        assert health["status"] == "degraded" and not health["chain"]["reachable"]
        time.sleep(3)  # the writer keeps trying meanwhile
        own_chain.start()
        wait_for(
            lambda: (
                httpx.get(url + f"/v1/earn/{earn.json()['id']}", headers=auth(ADMIN_KEY)).json()["status"]
                == "confirmed"
            )
        )
        assert httpx.get(url + f"/v1/members/{member['id']}", headers=auth(ADMIN_KEY)).json()["balance_points"] == 40

    text = log.read_text()
    assert "starting without the chain" in text
    assert text.count("outbox waiting for the chain") == 1  # one line for the whole outage
    assert "Traceback" not in text
    assert "writing again" in text
