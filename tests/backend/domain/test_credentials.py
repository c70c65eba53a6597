"""API keys are random, recognisable by their prefix, and kept only as a hash."""

from loyalty.domain.credentials import hash_api_key, new_api_key


def test_newApiKey_isPrefixedAndFresh() -> None:
    keys = {new_api_key("ptn_") for _ in range(100)}
    assert len(keys) == 100 and all(k.startswith("ptn_") and len(k) == 52 for k in keys)


def test_hashApiKey_isStableAndHidesTheKey() -> None:
    key = new_api_key("aud_")
    assert hash_api_key(key) == hash_api_key(key) != hash_api_key(key + "x")
    assert key not in hash_api_key(key)
