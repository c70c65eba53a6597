"""Rate agreements: registered once with both brands' signatures, refused when a round trip
could gain, revoked by either side."""

import brownie
from support.contracts import custom_error

ZERO = "0x0000000000000000000000000000000000000000"


def test_registerAgreement_recordsTheTermsUnderTheirDigest(world):
    terms = world.terms()
    tx = world.register(terms)

    id_ = world.agreement_id(terms)
    event = tx.events["AgreementRegistered"]
    assert bytes(event["id"]) == id_
    assert (event["source"], event["target"]) == (world.source.address, world.target.address)
    assert tuple(event["agreement"]) == terms.as_tuple()
    assert world.exchange.agreementStatus(id_) == (True, False)


def test_registerAgreement_failsIfABrandDidNotSign(world):
    terms = world.terms()
    stranger = world.brand()
    with brownie.reverts(custom_error("ExchangeInvalidSignature", world.airline, stranger, world.airline)):
        world.register(terms, payee_signer=stranger)


def test_registerAgreement_failsIfSignedForOtherTerms(world):
    terms = world.terms()
    other = world.terms(rate_numerator=2)
    signature = world.sign(other, world.hotel)
    with brownie.reverts(revert_pattern=r"ExchangeInvalidSignature: 0x[0-9a-f]{40}, 0x[0-9a-f]{40}, 0x[0-9a-f]{40}"):
        world.exchange.registerAgreement(
            terms.as_tuple(), signature, world.sign(terms, world.airline), {"from": world.admin}
        )


def test_registerAgreement_failsIfRegisteredTwice(world):
    terms = world.terms()
    world.register(terms)
    with brownie.reverts(custom_error("ExchangeAgreementExists", world.agreement_id(terms))):
        world.register(terms)


def test_registerAgreement_acceptsADelegatedSigner(world):
    signer = world.brand()
    tx = world.exchange.setAgreementSigner(signer, {"from": world.airline})
    assert tx.events["AgreementSignerSet"]["signer"] == signer.address
    assert world.exchange.signerOf(world.airline) == signer.address
    terms = world.terms()
    with brownie.reverts(custom_error("ExchangeInvalidSignature", world.airline, world.airline, signer)):
        world.register(terms)
    world.register(terms, payee_signer=signer)

    world.exchange.setAgreementSigner(ZERO, {"from": world.airline})
    assert world.exchange.signerOf(world.airline) == world.airline.address


def test_registerAgreement_failsOnTermsThatMakeNoSense(world):
    now = brownie.chain.time()
    cases = [
        (dict(target=world.source.address), custom_error("ExchangeInvalidPrograms", world.source, world.source)),
        (dict(payee=world.hotel.address), custom_error("ExchangeInvalidBrands", world.hotel, world.hotel)),
        (dict(rate_denominator=0), custom_error("ExchangeInvalidRate", 1, 0)),
        (dict(step_in=0), custom_error("ExchangeInvalidAmounts", 300, 0, 0, 0)),
        (dict(max_in_per_exchange=299), custom_error("ExchangeInvalidAmounts", 300, 3, 299, 0)),
        (dict(bonus_every=60_000), custom_error("ExchangeInvalidBonus", 60_000, 0)),
        (dict(valid_from=now + 10, valid_until=now + 10), None),
        (dict(valid_from=now - 100, valid_until=now - 50), None),
    ]
    for changes, error in cases:
        terms = world.terms(**changes)
        pattern = error or rf"ExchangeInvalidValidity: {terms.valid_from}, {terms.valid_until}, \d+"
        with brownie.reverts(revert_pattern=pattern) if error is None else brownie.reverts(error):
            world.register(terms)


def test_registerAgreement_refusesARoundTripThatGivesBackAsMuch(world):
    there = world.terms(rate_numerator=1, rate_denominator=3)
    world.register(there)
    back = world.terms(source=world.target.address, target=world.source.address, rate_numerator=3, rate_denominator=1,
                       minimum_in=1, step_in=1)  # fmt: skip
    with brownie.reverts(custom_error("ExchangeRoundTripGain", world.agreement_id(back), world.agreement_id(there))):
        world.register(back)
    # the bonus counts at its own rate: 1/3 * (5/2 + 1/2) = 1, as much back
    losing = world.terms(source=world.target.address, target=world.source.address, rate_numerator=5,
                         rate_denominator=2, bonus_every=2, bonus_out=1, minimum_in=2, step_in=2)  # fmt: skip
    with brownie.reverts(custom_error("ExchangeRoundTripGain", world.agreement_id(losing), world.agreement_id(there))):
        world.register(losing)
    fair = world.terms(source=world.target.address, target=world.source.address, rate_numerator=5,
                       rate_denominator=2, bonus_every=4, bonus_out=1, minimum_in=4, step_in=4)  # fmt: skip
    world.register(fair)  # 1/3 * (5/2 + 1/4) < 1


def test_registerAgreement_ignoresRevokedOrEndedReverseAgreements(world):
    there = world.terms()
    world.register(there)
    world.exchange.revokeAgreement(there.as_tuple(), {"from": world.hotel})
    back = world.terms(source=world.target.address, target=world.source.address, rate_numerator=3, rate_denominator=1,
                       minimum_in=1, step_in=1)  # fmt: skip
    world.register(back)
    now = brownie.chain.time()
    short = world.terms(valid_until=now + 100, salt=2, rate_numerator=1, rate_denominator=2)
    with brownie.reverts(custom_error("ExchangeRoundTripGain", world.agreement_id(short), world.agreement_id(back))):
        world.register(short)
    world.exchange.revokeAgreement(back.as_tuple(), {"from": world.airline})
    world.register(short)


def test_revokeAgreement_stopsFutureExchanges(world):
    terms = world.terms()
    world.register(terms)
    member = world.member(3_000)
    world.exchange_points(terms, member, 300)

    tx = world.exchange.revokeAgreement(terms.as_tuple(), {"from": world.airline})
    id_ = world.agreement_id(terms)
    assert tx.events["AgreementRevoked"]["by"] == world.airline.address
    assert world.exchange.agreementStatus(id_) == (True, True)
    with brownie.reverts(custom_error("ExchangeAgreementRevoked", id_)):
        world.exchange_points(terms, member, 300)
    with brownie.reverts(custom_error("ExchangeAgreementRevoked", id_)):
        world.exchange.revokeAgreement(terms.as_tuple(), {"from": world.hotel})


def test_revokeAgreement_failsForOthers(world):
    terms = world.terms()
    world.register(terms)
    with brownie.reverts(custom_error("ExchangeNotParty", world.agreement_id(terms), world.relayer)):
        world.exchange.revokeAgreement(terms.as_tuple(), {"from": world.relayer})
    unknown = world.terms(salt=99)
    with brownie.reverts(custom_error("ExchangeUnknownAgreement", world.agreement_id(unknown))):
        world.exchange.revokeAgreement(unknown.as_tuple(), {"from": world.hotel})


def test_agreementId_isTheEip712DigestBrandsSign(world):
    from eth_account import Account
    from eth_account.messages import encode_typed_data

    from loyalty.domain.consent import typed_data_digest
    from loyalty.domain.exchange import agreement_typed_data

    terms = world.terms()
    data = agreement_typed_data(terms, chain_id=brownie.chain.id, exchange_address=world.exchange.address)
    assert world.agreement_id(terms) == typed_data_digest(data)
    signer = Account.recover_message(encode_typed_data(full_message=data), signature=world.sign(terms, world.hotel))
    assert signer == world.hotel.address


def test_registerAgreement_failsUnlessTheTargetsAdminAllowedThePayee(world):
    outsider = world.brand(allowed=False)
    terms = world.terms(payee=outsider.address)
    with brownie.reverts(custom_error("ExchangeNotProgramBrand", world.target, outsider)):
        world.register(terms)
    with brownie.reverts(custom_error("ExchangeNotProgramAdmin", world.target, outsider)):
        world.exchange.setProgramBrand(world.target, outsider, True, {"from": outsider})
    tx = world.exchange.setProgramBrand(world.target, outsider, True, {"from": world.admin})
    assert tx.events["ProgramBrandSet"]["allowed"] is True
    assert world.exchange.isProgramBrand(world.target, outsider)
    world.register(terms)


def test_registerAgreement_dropsEndedRoutesAndCapsLiveOnes(world):
    now = brownie.chain[-1].timestamp
    cap = world.exchange.MAX_ROUTES()
    for salt in range(cap):
        world.register(world.terms(salt=100 + salt, valid_until=now + 3_600 if salt == 0 else now + 10**8))
    with brownie.reverts(custom_error("ExchangeTooManyRoutes", world.source, world.target, cap)):
        world.register(world.terms(salt=999))
    brownie.chain.sleep(7_200)
    brownie.chain.mine()
    world.register(world.terms(salt=999))  # the first ended: its place is free
