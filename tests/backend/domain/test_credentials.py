"""API keys are random, recognisable by their prefix, and kept only as a hash."""

from loyalty.domain.credentials import hash_secret, new_secret


def test_newApiKey_isPrefixedAndFresh() -> None:
    keys = {new_secret("ptn_") for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("ptn_") and len(k) == 52 for k in keys)


def test_hashApiKey_isStableAndHidesTheKey() -> None:
    key = new_secret("aud_")
    assert hash_secret(key) == hash_secret(key) != hash_secret(key + "x")
    assert key not in hash_secret(key)
