"""Schemathesis against the real app (a `loyalty serve` process on SQLite and Anvil), as every
role and as nobody: no server errors, every status code and content type as the OpenAPI
declares them (problem+json errors, the Idempotency-Key header, the bearer scheme), 405s with
`Allow`. About 3,000 generated requests in all (the coverage phase makes most)."""

import re
import secrets
import subprocess

import httpx
import pytest
from support.backend import ADMIN_KEY, auth, serving, wait_for

from loyalty.paths import ROOT
from loyalty.settings import DEV_OPERATOR_KEY, Settings

SCHEMATHESIS = ROOT / ".venv-checks" / "bin" / "schemathesis"
CHECKS = ["--checks", "all", "--exclude-checks", "positive_data_acceptance"]  # valid-looking ids may not exist


@pytest.fixture
def api(rpc_url, deployment, exchange_deployment, tmp_path):
    settings = Settings(
        database_url=f"sqlite:///{tmp_path / 'loyalty.db'}", rpc_url=rpc_url, token_address=deployment.token_address,
        operator_private_key=DEV_OPERATOR_KEY, admin_api_key=ADMIN_KEY, master_key=secrets.token_hex(32),
        exchange_address=exchange_deployment.exchange_address,
    )  # fmt: skip
    with serving(settings, outbox=True, log=tmp_path / "serve.log") as url:

        def post(path, body, key):
            headers = {**auth(key), "Idempotency-Key": secrets.token_hex(8)}
            response = httpx.post(url + path, json=body, headers=headers, timeout=30)
            assert response.status_code < 300, response.text
            return response.json()

        partner = post("/v1/partners", {"name": "Acme", "issue_budget_points": 10**9}, ADMIN_KEY)
        auditor = post("/v1/auditors", {"name": "Audit"}, ADMIN_KEY)
        member = post("/v1/members", {"external_id": "m1"}, partner["api_key"])
        reset = post(f"/v1/members/{member['id']}/passphrase-resets", None, ADMIN_KEY)
        session = httpx.post(url + "/v1/auth/passphrase", json={"token": reset["token"], "passphrase": "p" * 12})
        post("/v1/rewards", {"name": "Mug", "cost_points": 1, "stock": 10**6}, partner["api_key"])
        post("/v1/earn", {"member_id": member["id"], "amount_points": 10**6}, partner["api_key"])
        wait_for(lambda: httpx.get(url + "/v1/earn/1", headers=auth(ADMIN_KEY)).json()["status"] == "confirmed")
        keys = {"admin": ADMIN_KEY, "partner": partner["api_key"], "auditor": auditor["api_key"]}
        yield url, {**keys, "member": session.json()["token"], "nobody": "none"}
    assert "Traceback" not in (tmp_path / "serve.log").read_text()


def test_schemathesis_asEveryRole_findsNoServerErrorAndNoMismatch(api, tmp_path):
    assert SCHEMATHESIS.exists(), "run `make install`: it puts schemathesis in .venv-checks"
    url, keys = api
    generated = 0
    for role, key in keys.items():
        command = [str(SCHEMATHESIS), "run", f"{url}/openapi.json", "-H", f"Authorization: Bearer {key}",
                   "--max-examples", "5", "--seed", "8", "--generation-database", "none", *CHECKS, "--no-color"]  # fmt: skip
        result = subprocess.run(command, capture_output=True, text=True, timeout=600, cwd=tmp_path)
        assert result.returncode == 0, f"as {role}:\n{result.stdout[-6000:]}"
        generated += int(re.search(r"(\d+) generated", result.stdout).group(1))
    print(f"schemathesis: {generated} generated requests as {', '.join(keys)}, all passed")
    assert generated >= 1_000
