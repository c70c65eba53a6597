"""A crash never loses an accepted earn nor issues one twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections import Counter

import pytest
from sqlalchemy import func, select
from support.backend import confirm_all, make_member, make_partner, post

from loyalty.db.models import ChainWrite, Earn, EarnStatus, WriteKind
from loyalty.workers.outbox import OutboxWriter

EARNS_PER_MEMBER = 3


def _accept(client, partner, members):
    items = [{"member_id": m["id"], "amount_points": 10 + i} for m in members for i in range(EARNS_PER_MEMBER)]
    for start in range(0, len(items), 1_000):
        assert (
            post(client, "/v1/earn/batch", {"items": items[start : start + 1_000]}, partner["api_key"]).status_code
            == 202
        )
    return items


def _assert_on_chain_exactly_once(client, partner, members, items):
    state = client.app.state
    with state.runtime.sessions() as session:
        statuses = Counter(session.scalars(select(Earn.status)))
        assert statuses == {EarnStatus.CONFIRMED: len(items)}
        writes = session.scalar(select(func.count()).where(ChainWrite.kind == WriteKind.EARN_BATCH))
    token = state.runtime.token
    wallet_of = {m["id"]: m["wallet_address"] for m in members}
    expected = Counter()
    for item in items:
        expected[wallet_of[item["member_id"]]] += item["amount_points"]
    assert {w: token.balance_of(w) for w in expected} == dict(expected)
    batches = token.contract.events.BatchEarned().get_logs(
        from_block=0, argument_filters={"issuer": partner["issuer_address"]}
    )
    assert sum(int(b["args"]["members"]) for b in batches) == len(items)
    assert len({int(b["args"]["batchRef"]) for b in batches}) == len(batches) == writes


def test_outbox_workerKilledMidBatch_restartIssuesEachEarnOnce(client, settings, tmp_path):
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(700)]
    items = _accept(client, partner, members)
    env = {
        **os.environ,
        "DATABASE_URL": settings.database_url,
        "RPC_URL": settings.rpc_url,
        "TOKEN_ADDRESS": settings.token_address,
        "ISSUER_PRIVATE_KEY": settings.operator_private_key,
        "LOYALTY_MASTER_KEY": settings.master_key,
        "LOYALTY_ADMIN_KEY": settings.admin_api_key,
    }
    command = [sys.executable, "-m", "loyalty.cli", "worker"]
    worker = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    sessions = client.app.state.runtime.sessions
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        with sessions() as session:
            if session.scalar(select(func.count()).where(ChainWrite.kind == WriteKind.EARN_BATCH)):
                break
        time.sleep(0.002)
    worker.send_signal(signal.SIGKILL)
    worker.wait()
    with sessions() as session:
        assert session.scalar(select(func.count()).where(Earn.status == EarnStatus.PENDING)) > 0, "killed too late"

    restarted = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            with sessions() as session:
                if not session.scalar(select(func.count()).where(Earn.status == EarnStatus.PENDING)):
                    break
            time.sleep(0.1)
    finally:
        restarted.send_signal(signal.SIGTERM)
        restarted.wait(timeout=30)
    _assert_on_chain_exactly_once(client, partner, members, items)


def test_outbox_crashBetweenRecordAndBroadcast_resendsTheStoredTransaction(client, writer, monkeypatch):
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(5)]
    items = _accept(client, partner, members)

    def crash(_signed):
        raise SystemExit("crashed after recording, before broadcasting")

    monkeypatch.setattr(writer.chain, "broadcast", crash)
    with pytest.raises(SystemExit):
        writer.run_once()
    monkeypatch.undo()
    writer.close()  # the crashed process's lease goes with it

    fresh = OutboxWriter(client.app.state.runtime, poll_s=0.01)
    confirm_all(fresh)
    _assert_on_chain_exactly_once(client, partner, members, items)
