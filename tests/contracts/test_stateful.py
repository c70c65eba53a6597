"""Any sequence of earns, batches, redemptions, transfers, time jumps and sweeps keeps the token
equal to a small Python model of lots and expiry.

Hypothesis drives the machine directly: brownie 1.22's `state_machine` wrapper is compiled with
mypyc and rejects generated machine classes, so each example rewinds the chain itself.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, ClassVar

import brownie
from eth_account import Account
from eth_account.signers.local import LocalAccount
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from support.contracts import EPOCH_S, VALIDITY_EPOCHS

MEMBERS = 4
DEADLINE = 2**40
member_index = st.integers(min_value=0, max_value=MEMBERS - 1)
amount = st.integers(min_value=1, max_value=1_000)


class LoyaltyStateMachine(RuleBasedStateMachine):
    """Rules act on the chain and on the model; invariants compare them after every step."""

    token: ClassVar[Any]
    issuer: ClassVar[Any]
    sign: ClassVar[Any]
    members: ClassVar[list[LocalAccount]]

    def __init__(self) -> None:
        super().__init__()
        brownie.chain.revert()
        self.lots: dict[str, dict[int, int]] = defaultdict(lambda: defaultdict(int))
        self.used_refs: list[int] = []
        self.next_ref = 1

    # --------------------------------------------------------------------------- model
    def _epoch(self) -> int:
        return int(self.token.currentEpoch())

    def _live(self, member: str) -> dict[int, int]:
        first_live = self._epoch() - VALIDITY_EPOCHS + 1
        return {e: a for e, a in sorted(self.lots[member].items()) if e >= first_live and a > 0}

    def _balance(self, member: str) -> int:
        return sum(self._live(member).values())

    def _take_oldest(self, member: str, amount: int) -> list[tuple[int, int]]:
        taken = []
        for epoch, available in self._live(member).items():
            part = min(available, amount)
            self.lots[member][epoch] -= part
            taken.append((epoch, part))
            amount -= part
            if amount == 0:
                break
        return taken

    def _ref(self) -> int:
        self.next_ref += 1
        self.used_refs.append(self.next_ref)
        return self.next_ref

    # --------------------------------------------------------------------------- rules
    @rule(member_index=member_index, amount=amount)
    def earn(self, member_index: int, amount: int) -> None:
        member = self.members[member_index].address
        tx = self.token.earn(member, amount, self._ref(), {"from": self.issuer})
        self.lots[member][self._epoch_of(tx)] += amount

    @rule(amounts=st.lists(st.integers(min_value=1, max_value=500), min_size=1, max_size=MEMBERS))
    def earn_batch(self, amounts: list[int]) -> None:
        members = [m.address for m in self.members[: len(amounts)]]
        tx = self.token.earnBatch(members, amounts, self._ref(), {"from": self.issuer})
        for member, amount in zip(members, amounts, strict=True):
            self.lots[member][self._epoch_of(tx)] += amount

    @rule(member_index=member_index, amount=amount)
    def redeem(self, member_index: int, amount: int) -> None:
        member = self.members[member_index]
        if self._balance(member.address) < amount:
            return
        ref = self.next_ref  # a label: redemptions do not spend refs (the consent's nonce does)
        signature = self.sign(member, amount, ref=ref, deadline=DEADLINE)
        self.token.redeem(member.address, amount, 1, ref, DEADLINE, signature, {"from": self.issuer})
        self._take_oldest(member.address, amount)

    @rule(member_index=member_index, other_index=member_index, amount=amount)
    def transfer(self, member_index: int, other_index: int, amount: int) -> None:
        sender, receiver = self.members[member_index], self.members[other_index]
        if self._balance(sender.address) < amount or sender == receiver:
            return
        self.token.transfer(receiver.address, amount, {"from": sender.address})
        for epoch, part in self._take_oldest(sender.address, amount):
            self.lots[receiver.address][epoch] += part

    @rule(epochs=st.integers(min_value=0, max_value=VALIDITY_EPOCHS))
    def time_passes(self, epochs: int) -> None:
        brownie.chain.sleep(epochs * EPOCH_S + 1)
        brownie.chain.mine()

    @rule()
    def expire(self) -> None:
        self.token.expire([m.address for m in self.members], {"from": self.issuer})
        first_live = self._epoch() - VALIDITY_EPOCHS + 1
        for member in self.members:
            for epoch in list(self.lots[member.address]):
                if epoch < first_live:
                    del self.lots[member.address][epoch]

    @rule(member_index=member_index)
    def reuse_ref(self, member_index: int) -> None:
        if not self.used_refs:
            return
        ref = self.used_refs[-1]
        with brownie.reverts():
            self.token.earn(self.members[member_index].address, 1, ref, {"from": self.issuer})

    # --------------------------------------------------------------------------- invariants
    @invariant()
    def balances_match_model(self) -> None:
        for member in self.members:
            assert self.token.balanceOf(member.address) == self._balance(member.address)

    @invariant()
    def supply_is_sum_of_balances(self) -> None:
        balances = sum(self.token.balanceOf(m.address) for m in self.members)
        assert self.token.totalSupply() == balances

    @invariant()
    def used_refs_stay_used(self) -> None:
        assert all(self.token.isRefUsed(self.issuer, ref) for ref in self.used_refs[-5:])

    def _epoch_of(self, tx: Any) -> int:
        return (tx.timestamp - int(self.token.startTime())) // EPOCH_S


def test_token_matchesModel(token, admin, issuer, sign_redeem):
    token.setTransfersEnabled(True, {"from": admin})
    members = [Account.create() for _ in range(MEMBERS)]
    for member in members:
        brownie.accounts.add(member.key)  # transfers are sent by members themselves here
        admin.transfer(member.address, "1 ether", silent=True)
    brownie.chain.snapshot()
    LoyaltyStateMachine.token, LoyaltyStateMachine.issuer = token, issuer
    LoyaltyStateMachine.sign, LoyaltyStateMachine.members = staticmethod(sign_redeem), members
    run_state_machine_as_test(
        LoyaltyStateMachine, settings=settings(max_examples=30, stateful_step_count=20, deadline=None)
    )
