"""Partners and auditors, authentication and roles, idempotency and problem responses."""

from support.backend import ADMIN_KEY, auth, confirm_all, make_partner, post, token_of

from loyalty.chain.token import ISSUER_ROLE


def test_createPartner_grantsIssuerRoleAndBudgetOnChain(client, writer):
    partner = make_partner(client, "Acme", 5_000)
    confirm_all(writer)
    token = token_of(client)
    assert partner["api_key"].startswith("ptn_")
    assert token.contract.functions.hasRole(ISSUER_ROLE, partner["issuer_address"]).call()
    assert token.issue_budget(partner["issuer_address"]) == 5_000


def test_createPartner_failsForNonAdmin(client):
    partner = make_partner(client)
    response = post(client, "/v1/partners", {"name": "Other", "issue_budget_points": 1}, partner["api_key"])
    assert response.status_code == 403
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["code"] == "forbidden"


def test_request_failsWithoutOrWithUnknownKey(client):
    assert client.get("/v1/rewards").json()["code"] == "unauthorized"
    response = client.get("/v1/rewards", headers=auth("nope"))
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")


def test_post_replaysSameKeyAndBody(client):
    body = {"name": "Acme", "issue_budget_points": 10}
    first = post(client, "/v1/partners", body, ADMIN_KEY, idempotency_key="k1")
    again = post(client, "/v1/partners", body, ADMIN_KEY, idempotency_key="k1")
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json()
    assert again.headers["idempotent-replay"] == "true"


def test_post_sameJsonWithOtherSpacingAndKeyOrder_isAReplay(client):
    headers = {**auth(ADMIN_KEY), "Idempotency-Key": "k1", "Content-Type": "application/json"}
    first = client.post("/v1/partners", content=b'{"name":"Acme","issue_budget_points":10}', headers=headers)
    again = client.post("/v1/partners", content=b'{ "issue_budget_points" : 10,\n  "name": "Acme" }', headers=headers)
    assert first.status_code == again.status_code == 201, again.text
    assert again.json() == first.json() and again.headers["idempotent-replay"] == "true"


def test_post_failsForSameKeyWithOtherBody(client):
    post(client, "/v1/partners", {"name": "Acme", "issue_budget_points": 10}, ADMIN_KEY, idempotency_key="k1")
    response = post(
        client, "/v1/partners", {"name": "Acme", "issue_budget_points": 11}, ADMIN_KEY, idempotency_key="k1"
    )
    assert (response.status_code, response.json()["code"]) == (409, "idempotency_conflict")


def test_post_failsWithoutIdempotencyKey(client):
    response = client.post("/v1/partners", json={"name": "A", "issue_budget_points": 1}, headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (422, "idempotency_key_required")


def test_createPartner_failsForDuplicateName(client):
    make_partner(client, "Acme")
    response = post(client, "/v1/partners", {"name": "Acme", "issue_budget_points": 1}, ADMIN_KEY)
    assert (response.status_code, response.json()["code"]) == (409, "partner_exists")


def test_badInput_isProblemNever500(client):
    cases = [
        {"name": "", "issue_budget_points": 1},
        {"name": "A", "issue_budget_points": -1},
        {"name": "A", "issue_budget_points": "10"},
        {"name": "A"},
        {"name": "A", "issue_budget_points": 1, "extra": True},
    ]
    for body in cases:
        response = post(client, "/v1/partners", body, ADMIN_KEY)
        assert (response.status_code, response.json()["code"]) == (422, "validation_error"), body


def test_oversizedBody_isRefused(client):
    response = client.post(
        "/v1/partners",
        content=b"{" + b" " * 5_000_000 + b"}",
        headers={**auth(ADMIN_KEY), "Idempotency-Key": "x", "Content-Type": "application/json"},
    )
    assert (response.status_code, response.json()["code"]) == (413, "body_too_large")


def test_unknownPath_isProblem(client):
    response = client.get("/v1/nothing", headers=auth(ADMIN_KEY))
    assert (response.status_code, response.json()["code"]) == (404, "not_found")


def test_auditor_readsButCannotWrite(client):
    created = post(client, "/v1/auditors", {"name": "Audit Co"}, ADMIN_KEY)
    assert created.status_code == 201
    key = created.json()["api_key"]
    assert client.get("/v1/rewards", headers=auth(key)).status_code == 200
    response = post(client, "/v1/members", {"external_id": "m"}, key)
    assert (response.status_code, response.json()["code"]) == (403, "forbidden")


def test_chain(client, deployment):
    chain = client.get("/v1/chain").json()
    assert chain["chain_id"] == 31337
    assert chain["token_address"] == deployment.token_address
    assert chain["block_number"] > 0


def test_openapi_docs_served(client):
    assert "/v1/earn/batch" in client.get("/openapi.json").json()["paths"]


def test_docs_workOffline_everyAssetFromTheApp(client):
    """/docs and /redoc load nothing from another host: every script, style and icon they
    name is served by the app itself."""
    import re

    for page in ("/docs", "/redoc"):
        html = client.get(page).text
        urls = re.findall(r'(?:src|href)=["\']([^"\']+)["\']', html) + re.findall(r'url: ?["\']([^"\']+)["\']', html)
        assert urls and all(u.startswith("/") for u in urls), (page, urls)
        for url in urls:
            response = client.get(url)
            assert response.status_code == 200 and len(response.content) > 100, (page, url)


def test_wrongMethod_is405WithEveryMethodThePathHas(client):
    collection = client.delete("/v1/partners", headers=auth(ADMIN_KEY))
    item = client.put("/v1/members/1", headers=auth(ADMIN_KEY))
    assert (collection.status_code, collection.json()["code"]) == (405, "method_not_allowed")
    assert collection.headers["allow"] == "GET, POST"
    assert item.status_code == 405 and item.headers["allow"] == "GET"
