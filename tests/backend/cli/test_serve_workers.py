"""`loyalty serve --workers N`: N processes on one port, each with its own runtime; together
they take the same writes exactly once (idempotency and the writer lease live in the database)."""

from __future__ import annotations

import json
import uuid
from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner
from support.backend import ADMIN_KEY, serving

from loyalty.cli import main


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_twoWorkers_serveTheApiAndTheUi_andARetriedWriteIsTakenOnce(settings, tmp_path):
    with serving(settings, outbox=True, log=tmp_path / "serve.log", API_WORKERS="2") as url:
        assert len(_children(url.rsplit(":", 1)[1])) == 2
        with httpx.Client(base_url=url, timeout=30) as client:
            assert client.get("/v1/health").status_code == 200
            assert client.get("/").status_code == 200 and "Wallet" in client.get("/").text
            key = {"Authorization": f"Bearer {ADMIN_KEY}", "Idempotency-Key": uuid.uuid4().hex}
            made = [httpx.post(url + "/v1/partners", json={"name": "Twice", "issue_budget_points": 5}, headers=key,
                               timeout=30) for _ in range(6)]  # fmt: skip
            assert {m.status_code for m in made} == {201} and len({m.json()["id"] for m in made}) == 1
            listed = client.get("/v1/partners", headers={"Authorization": f"Bearer {ADMIN_KEY}"}).json()["data"]
            assert [p["name"] for p in listed].count("Twice") == 1
        who = CliRunner().invoke(main, ["whoami", "--api-url", url, "--key", made[0].json()["api_key"]])
        assert who.exit_code == 0 and json.loads(who.output)["partner_id"] == made[0].json()["id"], who.output


def _children(port: str) -> list[int]:
    """The worker processes of the `loyalty serve` listening on `port` (read from /proc)."""
    for cmdline in Path("/proc").glob("[0-9]*/cmdline"):
        try:
            args = cmdline.read_bytes().split(b"\0")
        except OSError:
            continue
        if b"serve" in args and port.encode() in args:
            pid = cmdline.parent.name
            found = [c for task in Path(f"/proc/{pid}/task").iterdir() for c in (task / "children").read_text().split()]
            return [int(c) for c in found if b"resource_tracker" not in Path(f"/proc/{c}/cmdline").read_bytes()]
    return []
