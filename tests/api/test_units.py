"""Protocol pieces without a server: exact JSON numbers, params, auth, combos, buckets."""

from __future__ import annotations

from decimal import Decimal

import pytest

from deltasync.api import errors
from deltasync.api.auth import Authenticator, KeyStore, hmac_header, sign
from deltasync.api.errors import ApiError, from_venue_error
from deltasync.api.jsonio import JsonError, dumps, loads, money
from deltasync.api.params import Params
from deltasync.api.ratelimit import CreditBuckets, RateLimit
from deltasync.core import limits
from deltasync.venue.combos import make_combo, parse_combo
from deltasync.venue.errors import VenueError
from deltasync.venue.views import ComboLeg


def test_json_numbers_are_exact_both_ways() -> None:
    value = loads('{"amount": 0.1, "price": 123456789.123456, "n": 3}')
    assert value == {"amount": Decimal("0.1"), "price": Decimal("123456789.123456"), "n": 3}
    assert dumps({"a": money(100_000), "b": money(-1), "c": money(123_456_789_012_345_678)}) == (
        '{"a":0.1,"b":-0.000001,"c":123456789012.345678}'
    )
    assert dumps([money(5_000_000), money(0), None, True, "x\n"]) == '[5,0,null,true,"x\\n"]'


@pytest.mark.parametrize("text", ["NaN", '{"a": Infinity}', "{", "[" * 100_000, '{"a":1}x'])
def test_json_refuses_what_is_not_json(text: str) -> None:
    with pytest.raises(JsonError):
        loads(text)


def test_params_convert_money_exactly_and_refuse_lost_precision() -> None:
    params = Params({"amount": Decimal("0.01"), "price": "2500.5", "bad": Decimal("0.0000001"),
                     "flag": "true", "n": "7", "neg": -1})
    assert params.fixed("amount") == 10_000
    assert params.fixed("price") == 2_500_500_000
    assert params.boolean("flag") is True
    assert params.integer("n") == 7
    for name in ("bad", "neg", "missing"):
        with pytest.raises(ApiError) as info:
            params.fixed(name)
        assert info.value.code == errors.INVALID_PARAMS
    with pytest.raises(ApiError):
        Params({"amount": True}).fixed("amount")
    with pytest.raises(ApiError):
        Params({"amount": "1e999999"}).fixed("amount")
    with pytest.raises(ApiError):
        Params([1, 2])


def _auth(now_ms: list[int]) -> tuple[Authenticator, str, str]:
    keys = KeyStore()
    key = keys.create(account_id=42)
    return Authenticator(keys, now_ms=lambda: now_ms[0]), key.client_id, key.client_secret


def test_client_signature_good_bad_replayed_and_stale() -> None:
    clock = [1_000_000_000]
    auth, client_id, secret = _auth(clock)
    ts = clock[0]
    good = {"grant_type": "client_signature", "client_id": client_id, "timestamp": ts,
            "nonce": "abc", "data": "", "signature": sign(secret, ts, "abc", "")}
    grant = auth.grant(good)
    assert grant["token_type"] == "bearer" and grant["expires_in"] > 0
    assert auth.bearer(grant["access_token"]).account_id == 42
    with pytest.raises(ApiError) as replay:
        auth.grant(good)
    assert replay.value.code == errors.INVALID_CREDENTIALS
    bad = dict(good, nonce="n2", signature=sign("wrong", ts, "n2", ""))
    with pytest.raises(ApiError) as wrong:
        auth.grant(bad)
    assert wrong.value.code == errors.INVALID_CREDENTIALS
    stale_ts = ts - auth.window_ms - 1
    stale = dict(good, nonce="n3", timestamp=stale_ts, signature=sign(secret, stale_ts, "n3", ""))
    with pytest.raises(ApiError) as old:
        auth.grant(stale)
    assert old.value.data["reason"] == "timestamp outside the window"


def test_refresh_token_is_single_use_and_access_tokens_expire() -> None:
    now_s = [0.0]
    keys = KeyStore()
    key = keys.create(account_id=7)
    auth = Authenticator(keys, monotonic_s=lambda: now_s[0], token_ttl_s=10)
    grant = auth.grant({"grant_type": "client_credentials", "client_id": key.client_id,
                        "client_secret": key.client_secret})
    again = auth.grant({"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    with pytest.raises(ApiError):
        auth.grant({"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    with pytest.raises(ApiError):  # a refresh token is not an access token
        auth.bearer(again["refresh_token"])
    now_s[0] = 11.0
    with pytest.raises(ApiError) as expired:
        auth.bearer(again["access_token"])
    assert expired.value.code == errors.UNAUTHORIZED


def test_hmac_header_binds_method_uri_and_body() -> None:
    clock = [5_000_000]
    auth, client_id, secret = _auth(clock)
    header = hmac_header(client_id, secret, "POST", "/api/v2", '{"x":1}', clock[0], "n1")
    assert auth.http_header(header, "POST", "/api/v2", '{"x":1}').account_id == 42
    header2 = hmac_header(client_id, secret, "POST", "/api/v2", '{"x":1}', clock[0], "n2")
    with pytest.raises(ApiError):
        auth.http_header(header2, "POST", "/api/v2", '{"x":2}')  # body changed
    with pytest.raises(ApiError):
        auth.http_header("deri-hmac-sha256 id=x", "GET", "/", "")


def test_keystore_round_trips_through_json() -> None:
    keys = KeyStore()
    key = keys.create(account_id=3)
    again = KeyStore.from_json(keys.to_json())
    assert again.get(key.client_id) == key


def test_derived_keys_are_known_to_every_store_with_the_master_secret() -> None:
    master = b"m" * 32
    key = KeyStore(master).create(account_id=1_000_007)
    elsewhere = KeyStore(master).get(key.client_id)
    assert elsewhere == key and key.account_id == 1_000_007
    assert KeyStore(b"x" * 32).get(key.client_id) != key  # another cluster: another secret
    assert KeyStore().get(key.client_id) is None
    assert KeyStore(master).get("ds12kzzzz") is None


def test_signed_tokens_work_on_every_node_of_a_cluster() -> None:
    master = b"k" * 32
    clock = [1_800_000_000_000]
    node_a = Authenticator(KeyStore(master), now_ms=lambda: clock[0], token_ttl_s=60)
    node_b = Authenticator(KeyStore(master), now_ms=lambda: clock[0], token_ttl_s=60)
    key = node_a.keys.create(account_id=2_000_001)
    grant = node_a.grant({"grant_type": "client_credentials", "client_id": key.client_id,
                          "client_secret": key.client_secret})
    assert node_b.bearer(grant["access_token"]).account_id == 2_000_001  # failover keeps it
    body, _, mac = grant["access_token"].rpartition("~")
    forged = body.replace("2000001", "2000002") + "~" + mac
    token = grant["access_token"]
    tampered = token[:-1] + ("1" if token[-1] == "0" else "0")  # always a different MAC
    for bad in (forged, tampered, grant["refresh_token"], "x~y"):
        with pytest.raises(ApiError):
            node_b.bearer(bad)
    again = node_b.grant({"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    with pytest.raises(ApiError):  # single use on the node that saw it
        node_b.grant({"grant_type": "refresh_token", "refresh_token": grant["refresh_token"]})
    node_a.logout(node_a.bearer(again["access_token"]))
    with pytest.raises(ApiError):  # logged out here ...
        node_a.bearer(again["access_token"])
    clock[0] += 1
    fresh = node_a.grant({"grant_type": "client_credentials", "client_id": key.client_id,
                          "client_secret": key.client_secret})
    assert node_a.bearer(fresh["access_token"]).client_id == key.client_id  # ... new ones work
    clock[0] += 61_000
    with pytest.raises(ApiError) as expired:
        node_b.bearer(fresh["access_token"])
    assert expired.value.data["reason"] == "token_expired"


def test_combo_names_are_canonical_and_parse_back() -> None:
    legs = [ComboLeg("BTC_USDC-25DEC26-110000-C", -2), ComboLeg("BTC_USDC-25DEC26-100000-C", 2)]
    name, ordered = make_combo(legs)
    assert name == "BTC_USDC-CMB-25DEC26.100000.C.B1-25DEC26.110000.C.S1"
    assert [leg.ratio for leg in ordered] == [1, -1]
    assert parse_combo(name) == ordered
    for bad in ("BTC_USDC-CMB-x", "BTC_USDC-CMB-25DEC26.110000.C.S1-25DEC26.100000.C.B1",
                "BTC_USDC-CMB-25DEC26.100000.C.B1"):
        with pytest.raises(VenueError) as malformed:
            parse_combo(bad)
        assert from_venue_error(malformed.value).code in (
            errors.INVALID_OR_UNSUPPORTED_INSTRUMENT, errors.INVALID_PARAMS)
    with pytest.raises(VenueError) as mixed:
        make_combo([ComboLeg("BTC_USDC-25DEC26-100000-C", 1),
                    ComboLeg("ETH_USDC-25DEC26-3000-C", -1)])
    assert from_venue_error(mixed.value).code == errors.INVALID_PARAMS


def test_credit_bucket_refuses_then_refills() -> None:
    now = [0.0]
    buckets = CreditBuckets(RateLimit(credits_max=300, refill_per_s=100, request_credits=100),
                            monotonic_s=lambda: now[0])
    assert [buckets.try_spend("k") for _ in range(4)] == [True, True, True, False]
    assert buckets.try_spend("other")
    now[0] = 1.0
    assert buckets.try_spend("k")
    assert not buckets.try_spend("k")


def test_a_signed_refresh_token_is_single_use_until_it_expires(monkeypatch: pytest.MonkeyPatch) -> None:
    """The used refresh tokens were one list for all keys that forgot the oldest after
    10,000 refreshes: a captured refresh token became usable again. Now they are kept per
    key until they expire, and a full memory refuses instead of forgetting."""
    monkeypatch.setattr(limits, "api_refresh_tokens_used_per_key_max", 5)
    clock = [1_800_000_000_000]
    auth = Authenticator(KeyStore(b"k" * 32), now_ms=lambda: clock[0], token_ttl_s=60)
    key = auth.keys.create(account_id=2_000_001)
    grant = auth.grant({"grant_type": "client_credentials", "client_id": key.client_id,
                        "client_secret": key.client_secret})
    first = grant["refresh_token"]
    token = first
    for _ in range(5):
        token = auth.grant({"grant_type": "refresh_token", "refresh_token": token})[
            "refresh_token"]
    with pytest.raises(ApiError) as full:
        auth.grant({"grant_type": "refresh_token", "refresh_token": token})
    assert full.value.code == errors.TOO_MANY_REQUESTS
    with pytest.raises(ApiError) as replay:
        auth.grant({"grant_type": "refresh_token", "refresh_token": first})
    assert replay.value.data["reason"] == "invalid refresh_token"
    clock[0] += 31 * 60 * 1000  # every token used so far has expired
    with pytest.raises(ApiError) as expired:
        auth.grant({"grant_type": "refresh_token", "refresh_token": first})
    assert expired.value.data["reason"] == "token_expired"
