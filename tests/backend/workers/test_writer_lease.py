"""One outbox writer per database: a second writer (another `loyalty worker`, `serve` beside a
worker, a rolling restart) stands by, and takes over when the holder dies."""

import os
import signal
import threading
from collections import Counter

import pytest
from sqlalchemy import func, select
from support.backend import confirm_all, make_member, make_partner, post, start_worker, wait_for

from loyalty.db.models import ChainWrite, Earn, EarnStatus, Partner, WriteKind, WriterLease
from loyalty.workers.lease import Lease
from loyalty.workers.outbox import NotLeaseHolderError, OutboxWriter, drain
from loyalty.workers.writes import Nonces


def _pending(client):
    with client.app.state.runtime.sessions() as session:
        return session.scalar(select(func.count()).where(Earn.status == EarnStatus.PENDING))


def _holder(client):
    with client.app.state.runtime.sessions() as session:
        row = session.get(WriterLease, "outbox")
        return row.holder if row else None


def test_twoWorkers_issueEveryEarnOnce(client, settings):
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(200)]
    workers = [start_worker(settings) for _ in range(2)]
    try:
        expected = Counter()
        for round_ in range(6):
            items = [{"member_id": m["id"], "amount_points": round_ + 1} for m in members]
            assert post(client, "/v1/earn/batch", {"items": items}, partner["api_key"]).status_code == 202
            for m in members:
                expected[m["wallet_address"]] += round_ + 1
        wait_for(lambda: _pending(client) == 0, timeout_s=120)
    finally:
        for worker in workers:
            worker.terminate()
            worker.wait(timeout=30)
    token = client.app.state.runtime.token
    assert {w: token.balance_of(w) for w in expected} == dict(expected)
    batches = token.contract.events.BatchEarned().get_logs(
        from_block=0, argument_filters={"issuer": partner["issuer_address"]}
    )
    assert sum(int(b["args"]["members"]) for b in batches) == 6 * len(members)


def test_lease_isTakenOverWhenTheHolderIsKilled(client, settings):
    partner = make_partner(client, "Acme", 10**9)
    member = make_member(client, partner["api_key"])
    first = start_worker(settings)
    wait_for(lambda: (_holder(client) or "").startswith(f"worker pid {first.pid} "))
    second = start_worker(settings)
    try:
        os.kill(first.pid, signal.SIGKILL)
        first.wait()
        post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 7}, partner["api_key"])
        wait_for(lambda: _pending(client) == 0, timeout_s=60)
        assert _holder(client).startswith(f"worker pid {second.pid} ")
    finally:
        second.terminate()
        second.wait(timeout=30)
    assert client.app.state.runtime.token.balance_of(member["wallet_address"]) == 7


def test_lease_secondWriterStandsByWhileTheFirstHoldsIt(client, writer):
    writer.run_once()
    other = OutboxWriter(client.app.state.runtime)
    try:
        with pytest.raises(NotLeaseHolderError):
            other.run_once()
        writer.close()
        other.run_once()  # free now: takes it
    finally:
        other.close()


def test_withoutTheLease_conditionalUpdatesStillIssueEveryEarnOnce(client, writer, monkeypatch):
    """The lease aside, two writers racing in threads: an earn goes to a write only if still
    unassigned, a receipt is applied only to a write still `sent`, a nonce is recorded once."""
    partner = make_partner(client, "Acme", 10**9)
    members = [make_member(client, partner["api_key"]) for _ in range(50)]
    confirm_all(writer)
    writer.close()
    monkeypatch.setattr(Lease, "acquire", lambda self: True)
    expected = Counter()
    for round_ in range(8):
        items = [{"member_id": m["id"], "amount_points": round_ + 1} for m in members]
        assert post(client, "/v1/earn/batch", {"items": items}, partner["api_key"]).status_code == 202
        expected.update({m["wallet_address"]: round_ + 1 for m in members})
    runtime = client.app.state.runtime
    racers = [OutboxWriter(runtime, poll_s=0.001) for _ in range(2)]
    for racer in racers:  # small batches, so the two race over many of them
        monkeypatch.setattr(racer.token, "max_batch_size", lambda _limit: 20)
    threads = [threading.Thread(target=drain, args=(racer,)) for racer in racers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    confirm_all(racers[0])

    token = runtime.token
    assert {w: token.balance_of(w) for w in expected} == dict(expected)
    batches = token.contract.events.BatchEarned().get_logs(
        from_block=0, argument_filters={"issuer": partner["issuer_address"]}
    )
    assert sum(int(b["args"]["members"]) for b in batches) == 8 * len(members)
    assert _pending(client) == 0


def test_earnsAnotherWriterTookMeanwhile_areNotSentTwice(client, writer, monkeypatch):
    """The interleaving that double-issued: writer B reads the pending earns, writer A records
    them in a batch, then B reads the next nonce and ref (A's are taken, so B gets new ones)
    and records its own batch of the same earns."""
    partner = make_partner(client, "Acme", 10**9)
    member = make_member(client, partner["api_key"])
    confirm_all(writer)
    post(client, "/v1/earn", {"member_id": member["id"], "amount_points": 9}, partner["api_key"])
    runtime = client.app.state.runtime
    with runtime.sessions() as session:
        row = session.get(Partner, partner["id"])
    issuer = runtime.custody.open(row.issuer_address, row.issuer_key_sealed)
    head = runtime.chain.head()
    other = OutboxWriter(runtime)
    real_next = Nonces.next

    def other_writer_first(self, session):
        monkeypatch.setattr(Nonces, "next", real_next)
        assert other._send_earn_batch(row, issuer, head, Nonces(other.chain, row.issuer_address), 0)
        return real_next(self, session)

    monkeypatch.setattr(Nonces, "next", other_writer_first)
    assert writer._send_earn_batch(row, issuer, head, Nonces(writer.chain, row.issuer_address), 0) is False
    confirm_all(writer)

    assert runtime.token.balance_of(member["wallet_address"]) == 9
    with runtime.sessions() as session:
        assert session.scalar(select(func.count()).where(ChainWrite.kind == WriteKind.EARN_BATCH)) == 1
