"""The API's group writer (`api/acceptor.py`): a group is one transaction, so a write in it is
kept only with the answer recorded for its Idempotency-Key; and one write that fails does not
fail the others."""

from datetime import UTC, datetime

from support.backend import make_member, make_partner

from loyalty.api import acceptor
from loyalty.api.acceptor import Acceptor, QueuedWrite
from loyalty.api.deps import Principal
from loyalty.db.models import Event
from loyalty.services import events, members
from loyalty.services.uow import UnitOfWork


def _event_write(partner_id: int, member_id: int, event_id: str):
    def run(uow: UnitOfWork):
        member = members.get(uow, member_id, partner_id)
        event, _ = events.record(
            uow, partner_id, member, event_id=event_id, type="review", occurred_at=datetime.now(UTC), properties={}
        )
        return 201, {"id": event.id}

    return run


def _events(client) -> list[str]:
    with client.app.state.runtime.sessions() as session:
        return [e.event_id for e in session.query(Event).order_by(Event.id)]


def test_aGroupThatFailsAfterItsWrites_keepsNoneOfThem(client, monkeypatch):
    """Its only write is in a savepoint: on SQLite the driver would have let that savepoint's
    release commit it on its own, before the idempotency record that answers a retry."""
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    writer = Acceptor(client.app.state.runtime, ttl_s=3_600)
    principal = Principal("partner", f"partner:{partner['id']}", partner["id"])

    def broken(*_args, **_kwargs):
        raise RuntimeError("the disk is full")

    monkeypatch.setattr(acceptor, "remember", broken)
    job = QueuedWrite(principal, "key-1", "digest", _event_write(partner["id"], member["id"], "E-1"))
    writer._commit([job])

    assert isinstance(job.future.exception(), RuntimeError)
    assert _events(client) == []  # a retry of key-1 writes it afresh, and answers as it should


def test_aWriteThatFails_failsAloneInItsGroup(client):
    partner = make_partner(client)
    member = make_member(client, partner["api_key"])
    writer = Acceptor(client.app.state.runtime, ttl_s=3_600)
    principal = Principal("partner", f"partner:{partner['id']}", partner["id"])

    def bug(uow: UnitOfWork):
        _event_write(partner["id"], member["id"], "E-bug")(uow)
        raise ZeroDivisionError("a bug in this write")

    jobs = [
        QueuedWrite(principal, "k-1", "d", _event_write(partner["id"], member["id"], "E-1")),
        QueuedWrite(principal, "k-2", "d", bug),
        QueuedWrite(principal, "k-3", "d", _event_write(partner["id"], member["id"], "E-3")),
    ]
    writer._commit(jobs)

    assert [job.future.exception() is None for job in jobs] == [True, False, True]
    assert isinstance(jobs[1].future.exception(), ZeroDivisionError)
    assert _events(client) == ["E-1", "E-3"]  # the bug's own event rolled back with it
