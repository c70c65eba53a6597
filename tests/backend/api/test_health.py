"""`/v1/health` tells the truth: `degraded` with each reason, and `loyalty status` shows it."""

from datetime import timedelta

import httpx
from click.testing import CliRunner
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.cli import main
from loyalty.db.models import ChainWrite, Earn, WriteStatus, utcnow


def test_health_isOkOnceAWriterRuns(client, writer):
    assert "no outbox writer has run" in " ".join(client.get("/v1/health").json()["reasons"])
    confirm_all(writer)

    health = client.get("/v1/health").json()

    assert (health["status"], health["reasons"]) == ("ok", [])
    assert health["chain"]["reachable"] is True and health["chain"]["confirmations"] == 1
    assert health["writer"]["holder"].startswith("writer pid ")
    assert health["outbox"]["pending_earns"] == 0


def test_health_namesOldPendingWritesAndFailedWrites(client, writer):
    partner = make_partner(client, "Acme")
    member = make_member(client, partner["api_key"])
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, partner["api_key"])
    confirm_all(writer)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 5}, partner["api_key"])
    with client.app.state.runtime.sessions() as session:
        session.query(Earn).filter(Earn.status == "pending").update({"created_at": utcnow() - timedelta(minutes=10)})
        session.query(ChainWrite).filter(ChainWrite.kind == "topup").update({"status": WriteStatus.FAILED})
        session.commit()

    health = client.get("/v1/health").json()

    assert health["status"] == "degraded"
    assert any("oldest pending write is 6" in r for r in health["reasons"]), health["reasons"]
    assert any("1 writes failed on-chain" in r for r in health["reasons"]), health["reasons"]
    assert health["outbox"]["pending_earns"] == 1


def test_health_whenTheChainIsDown_isDegradedNot500(client, settings):
    client.app.state.runtime.chain.w3.provider.endpoint_uri = "http://127.0.0.1:9"  # nothing listens there

    response = client.get("/v1/health")

    assert response.status_code == 200
    assert response.json()["chain"]["reachable"] is False
    assert any(r.startswith("chain unavailable") for r in response.json()["reasons"])


def test_status_printsHealthAsOneBlock(client, writer, monkeypatch):
    confirm_all(writer)
    monkeypatch.setattr(httpx, "get", lambda url, **_: client.get(url.removeprefix("http://api")))

    result = CliRunner().invoke(main, ["status", "--api-url", "http://api"])

    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == "status    ok"
    assert [line.split()[0] for line in lines[1:5]] == ["database", "chain", "writer", "outbox"]
