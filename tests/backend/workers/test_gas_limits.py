"""The gas limits the outbox gives each write cover its worst case, measured here: an earn at an
epoch change (the epoch's first, into members whose older lot moves to a fresh ring slot, or
whose ring holds expired lots), a redemption spending a lot of every live epoch, a sweep of
members whose every lot expired. A doomed out-of-gas transaction costs the partner gas and
stalls the earns in it."""

from pathlib import Path

import pytest
from eth_account import Account
from web3 import HTTPProvider, Web3

from loyalty.chain.client import ChainClient
from loyalty.chain.deploy import TokenParams, deploy_token
from loyalty.chain.devchain import free_port, start_node, stop_node
from loyalty.chain.token import LoyaltyToken
from loyalty.domain.consent import RedeemConsent, redeem_typed_data, sign_typed_data
from loyalty.settings import DEV_OPERATOR_KEY

HOUR = 3_600
VALIDITY = 12


class Bench:
    def __init__(self, url: str, tmp: Path) -> None:
        self.w3 = Web3(HTTPProvider(url))
        deployment, _ = deploy_token(
            self.w3, self.w3.eth.accounts[0], TokenParams(epoch_length_s=HOUR, validity_epochs=VALIDITY), folder=tmp
        )
        self.token = LoyaltyToken(ChainClient(url, Account.from_key(DEV_OPERATOR_KEY)), deployment.token_address)
        self.issuer = Account.create()
        self.ref = 0
        nonce = self.token.client.account_nonce(self.token.client.operator.address)
        for signed in (
            self.token.sign_topup(nonce, self.issuer.address, 0),
            self.token.sign_grant_issuer(nonce + 1, self.issuer.address, 0),
            self.token.sign_set_budget(nonce + 2, self.issuer.address, 2**127, 0),
        ):
            self.mined(signed)

    def mined(self, signed):
        self.token.client.broadcast(signed)
        receipt = self.w3.eth.wait_for_transaction_receipt(signed.tx_hash)
        assert receipt["status"] == 1, self.token.client.revert_of(signed.tx_hash, receipt["gasUsed"])
        return receipt

    def earn(self, members: list[str], amount: int = 1) -> tuple[int, int]:
        """(gas used, gas limit) of one earnBatch sent as the outbox sends it."""
        self.ref += 1
        head = self.token.client.head()
        nonce = self.token.client.account_nonce(self.issuer.address)
        signed = self.token.sign_earn_batch(
            self.issuer, nonce, members, [amount] * len(members), self.ref, head.base_fee
        )
        return self.mined(signed)["gasUsed"], self.token.earn_batch_gas(len(members))

    def next_epoch(self, epochs: int = 1) -> None:
        self.w3.provider.make_request("evm_increaseTime", [epochs * HOUR])
        self.w3.provider.make_request("evm_mine", [])


@pytest.fixture(scope="module")
def bench(tmp_path_factory):
    port = free_port()
    node = start_node("anvil", port, tmp_path_factory.mktemp("gas-anvil"))
    try:
        yield Bench(f"http://127.0.0.1:{port}", tmp_path_factory.mktemp("gas"))
    finally:
        stop_node(node)


def _wallets(n: int) -> list[str]:
    return [Account.create().address for _ in range(n)]


def test_earnBatch_atAnEpochChange_fitsItsGasLimit(bench):
    members = _wallets(100)
    bench.earn(members)
    bench.next_epoch()  # the next earn files the old epoch's supply and moves every lot to the ring
    for batch in (members[:1], members[1:]):
        used, limit = bench.earn(batch)
        assert used <= limit, (len(batch), used, limit)
    most = bench.token.max_batch_size(30_000_000)  # a full batch's worst case fits in a 30M block
    assert bench.token.earn_batch_gas(most) <= 30_000_000 < bench.token.earn_batch_gas(most + 100)


def test_earnBatch_withExpiredLotsInTheWay_fitsItsGasLimit(bench):
    members = _wallets(50)
    for _ in range(VALIDITY):
        bench.earn(members)
        bench.next_epoch()
    bench.next_epoch(VALIDITY - 1)  # the oldest lots expired, their ring slots still marked
    for batch in (members[:1], members[1:]):
        used, limit = bench.earn(batch)
        assert used <= limit


def test_earnBatch_ofNewMembersAtAnEpochChange_fitsItsGasLimit(bench):
    bench.next_epoch()
    for batch in (_wallets(1), _wallets(200)):
        used, limit = bench.earn(batch, amount=2**63 - 1)  # the largest amounts cost the most calldata
        assert used <= limit


def test_redeem_spendingALotOfEveryEpoch_fitsItsGasLimit(bench):
    member = Account.create()
    for epoch in range(VALIDITY):
        bench.earn([member.address], 10)
        if epoch < VALIDITY - 1:
            bench.next_epoch()
    token = bench.token
    balance = token.balance_of(member.address)
    deadline = token.client.head().timestamp + HOUR
    consent = RedeemConsent(
        member.address, bench.issuer.address, balance, 1, 99, token.nonce_of(member.address), deadline
    )
    typed = redeem_typed_data(
        consent, chain_id=token.client.chain_id, token_address=token.contract.address, token_name=token.name
    )
    signed = token.sign_redeem(
        bench.issuer, token.client.account_nonce(bench.issuer.address), 0, member=member.address, amount_points=balance,
        reward_id=1, ref=99, deadline=deadline, signature=sign_typed_data(typed, member.key), validity_epochs=VALIDITY,
    )  # fmt: skip
    used = bench.mined(signed)["gasUsed"]
    assert token.balance_of(member.address) == 0
    assert used <= token.redeem_gas(VALIDITY)


def test_expire_ofMembersWithEveryLotExpired_fitsItsGasLimit(bench):
    members = _wallets(20)
    for _ in range(VALIDITY):
        bench.earn(members)
        bench.next_epoch()
    bench.next_epoch(VALIDITY + 1)
    token = bench.token
    for batch in (members[:1], members[1:]):
        signed = token.sign_expire(token.client.account_nonce(token.client.operator.address), batch, VALIDITY, 0)
        used = bench.mined(signed)["gasUsed"]
        assert used <= token.expire_gas(len(batch), VALIDITY)
    assert all(int(x) == 0 for x in token.expired_balances(members).values())
