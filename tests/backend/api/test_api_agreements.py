"""Rate agreements through the API: one brand proposes, the other counter-signs, the outbox
registers them on the exchange (or records why the chain refused), either brand revokes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from eth_account import Account
from support.backend import ADMIN_KEY, auth, confirm_all, make_partner, post, second_program
from web3 import HTTPProvider, Web3

from loyalty.chain.artifacts import load_artifact
from loyalty.domain.consent import sign_typed_data

LATER = (datetime.now(UTC) + timedelta(days=365)).isoformat()


def terms(payer: dict[str, Any], payee: dict[str, Any], target: int, **changes: Any) -> dict[str, Any]:
    """Hotel points (program 1) for air miles, 3 : 1 at 2 cents a mile."""
    return {"source_program_id": 1, "target_program_id": target, "payer_id": payer["id"], "payee_id": payee["id"],
            "rate_numerator": 1, "rate_denominator": 3, "minimum_in": 300, "step_in": 3, "price_per_point": 20_000,
            "valid_until": LATER, **changes}  # fmt: skip


def _status(exchange: Any, agreement: dict[str, Any]) -> tuple[bool, bool]:
    registered, revoked = exchange.functions.agreementStatus(bytes.fromhex(agreement["agreement_id"][2:])).call()
    return bool(registered), bool(revoked)


def test_agreement_proposedSignedRegisteredAndRevoked(
    client: Any, writer: Any, rpc_url: str, exchange_deployment: Any, tmp_path: Path
) -> None:
    hotel, airline, other = (
        make_partner(client, "Hotel"),
        make_partner(client, "Airline"),
        make_partner(client, "Other"),
    )
    target = second_program(client, rpc_url, tmp_path)
    proposed = post(client, "/v1/agreements", terms(hotel, airline, target), hotel["api_key"])
    assert proposed.status_code == 201, proposed.text
    agreement = proposed.json()
    assert (agreement["status"], agreement["signed_by_payer"], agreement["signed_by_payee"]) == (
        "proposed",
        True,
        False,
    )
    w3 = Web3(HTTPProvider(rpc_url))
    exchange = w3.eth.contract(address=exchange_deployment.exchange_address, abi=load_artifact("PointsExchange").abi)
    assert (
        "0x" + exchange.functions.agreementId(tuple(agreement["terms"].values())).call().hex()
        == agreement["agreement_id"]
    )
    hidden = client.get(f"/v1/agreements/{agreement['id']}", headers=auth(other["api_key"]))
    assert (hidden.status_code, hidden.json()["code"]) == (404, "agreement_not_found")

    early = client.post(
        "/v1/exchanges/quote", json={"agreement_id": agreement["id"], "amount_in": 900}, headers=auth(hotel["api_key"])
    )
    assert (early.status_code, early.json()["code"]) == (409, "agreement_not_registered")
    signed = client.post(f"/v1/agreements/{agreement['id']}/sign", headers=auth(airline["api_key"]))
    assert signed.json()["status"] == "signed", signed.text
    confirm_all(writer)
    registered = client.get(f"/v1/agreements/{agreement['id']}", headers=auth(airline["api_key"])).json()
    assert registered["status"] == "registered", registered
    assert _status(exchange, agreement) == (True, False)
    quoted = client.post(
        "/v1/exchanges/quote", json={"agreement_id": agreement["id"], "amount_in": 900}, headers=auth(other["api_key"])
    )
    assert quoted.status_code == 200, quoted.text
    assert (quoted.json()["amount_out"], quoted.json()["owed"]) == (300, 300 * 20_000)
    off_step = client.post(
        "/v1/exchanges/quote", json={"agreement_id": agreement["id"], "amount_in": 901}, headers=auth(hotel["api_key"])
    )
    assert (off_step.status_code, off_step.json()["code"]) == (422, "exchange_amount_invalid")

    revoking = client.post(f"/v1/agreements/{agreement['id']}/revoke", headers=auth(airline["api_key"]))
    assert revoking.json()["status"] == "revoking", revoking.text
    confirm_all(writer)
    assert client.get(f"/v1/agreements/{agreement['id']}", headers=auth(hotel["api_key"])).json()["status"] == "revoked"
    assert _status(exchange, agreement) == (True, True)
    listed = client.get("/v1/agreements", headers=auth(other["api_key"])).json()["data"]
    assert listed == []


def test_agreement_aRoundTripTheChainRefusesIsRecordedWithWhy(
    client: Any, writer: Any, rpc_url: str, tmp_path: Path
) -> None:
    hotel, airline = make_partner(client, "Hotel"), make_partner(client, "Airline")
    target = second_program(client, rpc_url, tmp_path)
    there = post(client, "/v1/agreements", terms(hotel, airline, target), hotel["api_key"]).json()
    client.post(f"/v1/agreements/{there['id']}/sign", headers=auth(airline["api_key"]))
    back_terms = terms(
        airline, hotel, 1, source_program_id=target, rate_numerator=3, rate_denominator=1, minimum_in=1, step_in=1
    )
    back = post(client, "/v1/agreements", back_terms, airline["api_key"]).json()
    client.post(f"/v1/agreements/{back['id']}/sign", headers=auth(hotel["api_key"]))
    confirm_all(writer)
    refused = client.get(f"/v1/agreements/{back['id']}", headers=auth(hotel["api_key"])).json()
    assert refused["status"] == "refused" and "ExchangeRoundTripGain" in refused["error"], refused


def test_agreement_refusesTermsTheExchangeWouldAndStrangers(client: Any, rpc_url: str, tmp_path: Path) -> None:
    hotel, airline, other = (
        make_partner(client, "Hotel"),
        make_partner(client, "Airline"),
        make_partner(client, "Other"),
    )
    target = second_program(client, rpc_url, tmp_path)
    for changes in (
        {"target_program_id": 1},
        {"valid_until": "2020-01-01T00:00:00Z"},
        {"bonus_every": 10},
        {"max_in_per_exchange": 3},
    ):
        refused = post(client, "/v1/agreements", terms(hotel, airline, target, **changes), hotel["api_key"])
        assert (refused.status_code, refused.json()["code"]) == (422, "agreement_invalid"), (changes, refused.text)
    stranger = post(client, "/v1/agreements", terms(hotel, airline, target), other["api_key"])
    assert (stranger.status_code, stranger.json()["code"]) == (403, "forbidden")
    deploying = post(client, "/v1/programs", {"name": "Later"}, ADMIN_KEY).json()
    not_yet = post(client, "/v1/agreements", terms(hotel, airline, deploying["id"]), hotel["api_key"])
    assert (not_yet.status_code, not_yet.json()["code"]) == (422, "program_not_active")


def test_cli_agreementProposedSignedAndQuoted(client: Any, settings: Any, rpc_url: str, tmp_path: Path) -> None:
    import httpx
    from click.testing import CliRunner
    from support.backend import serving, wait_for

    from loyalty.cli import main

    hotel, airline = make_partner(client, "Hotel"), make_partner(client, "Airline")
    target = second_program(client, rpc_url, tmp_path)
    with serving(settings, outbox=True) as url:
        as_hotel, as_airline = (
            ["--api-url", url, "--key", hotel["api_key"]],
            ["--api-url", url, "--key", airline["api_key"]],
        )
        proposed = CliRunner().invoke(main, [
            "agreements", "propose", "--target", str(target), "--payer", str(hotel["id"]), "--payee", str(airline["id"]),
            "--rate", "1:3", "--minimum", "300", "--step", "3", "--price", "20000", "--until", LATER, *as_hotel,
        ])  # fmt: skip
        assert proposed.exit_code == 0, proposed.output
        agreement_id = str(json.loads(proposed.output)["id"])
        bad_rate = CliRunner().invoke(main, ["agreements", "propose", "--target", "2", "--payer", "1", "--payee", "2",
                                             "--rate", "three", "--until", LATER, *as_hotel])  # fmt: skip
        assert bad_rate.exit_code == 2 and "is not OUT:IN" in bad_rate.output
        signed = CliRunner().invoke(main, ["agreements", "sign", agreement_id, *as_airline])
        assert signed.exit_code == 0 and '"status": "signed"' in signed.output, signed.output
        wait_for(
            lambda: (
                httpx.get(f"{url}/v1/agreements/{agreement_id}", headers=auth(hotel["api_key"])).json()["status"]
                == "registered"
            )
        )
        quoted = CliRunner().invoke(main, ["exchanges", "quote", agreement_id, "900", *as_hotel])
        refused = CliRunner().invoke(main, ["exchanges", "quote", agreement_id, "901", *as_hotel])
    assert quoted.exit_code == 0 and '"amount_out": 300' in quoted.output, quoted.output
    assert (
        refused.exit_code == 1
        and "exchange_amount_invalid" in refused.output
        and len(refused.output.strip().splitlines()) == 1
    )


def test_agreement_registeredByAnotherFirst_isRegisteredNotRefused(
    client: Any, writer: Any, rpc_url: str, exchange_deployment: Any, tmp_path: Path
) -> None:
    """Registration is open to anyone and the signatures are public once sent: when someone
    registers the agreement first, the outbox's own registration reverts, and the agreement is
    registered all the same (the chain says so), not refused."""
    from loyalty.db.models import RateAgreement

    hotel, airline = make_partner(client, "Hotel"), make_partner(client, "Airline")
    target = second_program(client, rpc_url, tmp_path)
    agreement = post(client, "/v1/agreements", terms(hotel, airline, target), hotel["api_key"]).json()
    client.post(f"/v1/agreements/{agreement['id']}/sign", headers=auth(airline["api_key"]))
    w3 = Web3(HTTPProvider(rpc_url))
    exchange = w3.eth.contract(address=exchange_deployment.exchange_address, abi=load_artifact("PointsExchange").abi)
    with client.app.state.runtime.sessions() as session:  # type: ignore[attr-defined]
        row = session.get(RateAgreement, agreement["id"])
        signatures = bytes.fromhex(row.payer_signature[2:]), bytes.fromhex(row.payee_signature[2:])
    operator = w3.eth.accounts[0]  # the programs' admin, as the outbox would be
    for call in (exchange.functions.setProgramBrand(agreement["terms"]["target"], agreement["terms"]["payee"], True),
                 exchange.functions.registerAgreement(tuple(agreement["terms"].values()), *signatures)):  # fmt: skip
        assert w3.eth.wait_for_transaction_receipt(call.transact({"from": operator}))["status"] == 1
    confirm_all(writer)
    found = client.get(f"/v1/agreements/{agreement['id']}", headers=auth(hotel["api_key"])).json()
    assert (found["status"], found["error"]) == ("registered", None), found


def test_agreement_aBrandWithItsOwnSignerSignsTheTypedDataItself(
    client: Any, writer: Any, rpc_url: str, exchange_deployment: Any, tmp_path: Path
) -> None:
    hotel, airline = make_partner(client, "Hotel"), make_partner(client, "Airline")
    target = second_program(client, rpc_url, tmp_path)
    signer = Account.create()
    path = f"/v1/partners/{airline['id']}/agreement-signer"
    other = client.put(path, json={"address": signer.address}, headers=auth(hotel["api_key"]))
    assert (other.status_code, other.json()["code"]) == (404, "partner_not_found")
    junk = client.put(path, json={"address": "0x1234"}, headers=auth(airline["api_key"]))
    assert junk.status_code == 422
    registered = client.put(path, json={"address": signer.address}, headers=auth(airline["api_key"]))
    assert registered.status_code == 200, registered.text
    assert (registered.json()["address"], registered.json()["onchain"]) == (signer.address, False)
    confirm_all(writer)
    w3 = Web3(HTTPProvider(rpc_url))
    exchange = w3.eth.contract(address=exchange_deployment.exchange_address, abi=load_artifact("PointsExchange").abi)
    assert exchange.functions.signerOf(airline["issuer_address"]).call() == signer.address
    shown = client.get(path, headers=auth(airline["api_key"])).json()
    assert (shown["address"], shown["onchain"]) == (signer.address, True)

    proposed = post(client, "/v1/agreements", terms(hotel, airline, target), hotel["api_key"]).json()
    assert (proposed["signed_by_payer"], proposed["signed_by_payee"]) == (True, False)
    sign = f"/v1/agreements/{proposed['id']}/sign"
    unsigned = post(client, sign, None, airline["api_key"])
    assert (unsigned.status_code, unsigned.json()["code"]) == (422, "agreement_signature_required"), unsigned.text
    forged = "0x" + sign_typed_data(proposed["typed_data"], Account.create().key).hex()
    refused = post(client, sign, {"signature": forged}, airline["api_key"])
    assert (refused.status_code, refused.json()["code"]) == (422, "invalid_signature"), refused.text
    own = "0x" + sign_typed_data(proposed["typed_data"], signer.key).hex()
    not_its = post(client, sign, {"signature": own}, hotel["api_key"])  # the hotel signs with its issuer key
    assert (not_its.status_code, not_its.json()["code"]) == (422, "validation_error"), not_its.text
    signed = post(client, sign, {"signature": own}, airline["api_key"])
    assert signed.json()["status"] == "signed", signed.text
    confirm_all(writer)
    assert (
        client.get(f"/v1/agreements/{proposed['id']}", headers=auth(hotel["api_key"])).json()["status"] == "registered"
    )
    assert _status(exchange, proposed) == (True, False)

    zero = client.put(path, json={"address": "0x" + "00" * 20}, headers=auth(airline["api_key"]))
    assert (zero.status_code, zero.json()["code"]) == (422, "validation_error"), zero.text
    second = post(client, "/v1/agreements", terms(hotel, airline, target), hotel["api_key"]).json()
    signed_before = post(
        client,
        f"/v1/agreements/{second['id']}/sign",
        {"signature": "0x" + sign_typed_data(second["typed_data"], signer.key).hex()},
        airline["api_key"],
    )
    assert signed_before.json()["status"] == "signed", signed_before.text
    rotated = Account.create()  # before it is registered: the old signer's signature would be refused on-chain
    assert client.put(path, json={"address": rotated.address}, headers=auth(airline["api_key"])).status_code == 200
    again = client.get(f"/v1/agreements/{second['id']}", headers=auth(airline["api_key"])).json()
    assert (again["status"], again["signed_by_payer"], again["signed_by_payee"]) == ("proposed", True, False), again
    resigned = post(
        client,
        f"/v1/agreements/{second['id']}/sign",
        {"signature": "0x" + sign_typed_data(second["typed_data"], rotated.key).hex()},
        airline["api_key"],
    )
    assert resigned.json()["status"] == "signed", resigned.text
    confirm_all(writer)
    assert client.get(f"/v1/agreements/{second['id']}", headers=auth(hotel["api_key"])).json()["status"] == "registered"

    back = client.put(path, json={"address": None}, headers=auth(airline["api_key"]))
    assert back.json()["address"] is None, back.text
    confirm_all(writer)
    assert exchange.functions.signerOf(airline["issuer_address"]).call() == airline["issuer_address"]
