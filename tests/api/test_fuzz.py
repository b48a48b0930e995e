"""No parameters, however hostile, make a method fail with anything but an ApiError,
and nothing they do breaks the exchange's invariants."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("deltasync.exchange.state", reason="the exchange state machine is not here yet")

from deltasync.api.auth import Authenticator, KeyStore, Principal  # noqa: E402
from deltasync.api.errors import ApiError  # noqa: E402
from deltasync.api.methods import PRIVATE, PUBLIC, Call, Methods  # noqa: E402
from deltasync.api.params import Params  # noqa: E402
from deltasync.api.subscriptions import Hub  # noqa: E402
from deltasync.exchange import invariants
from deltasync.venue.local import LocalVenue  # noqa: E402

from .harness import venue_now_ns  # noqa: E402

CALL = "BTC_USDC-25DEC26-100000-C"
NAMES = [f"public/{name}" for name in sorted(PUBLIC)] + [
    f"private/{name}" for name in sorted(PRIVATE)]
KEYS = ["instrument_name", "amount", "contracts", "price", "type", "time_in_force", "post_only",
        "reduce_only", "label", "order_id", "currency", "kind", "depth", "count", "sorting",
        "index_name", "channels", "trades", "combo_id", "height", "account_id", "deposit",
        "grant_type", "client_id", "client_secret", "timestamp", "nonce", "signature", "data",
        "refresh_token", "linearizable", "request_id", "valid_until", "expired", "interval"]
SPECIAL = ["BTC_USDC-25DEC26-100000-C", "BTC_USDC-CMB-25DEC26.100000.C.B1-25DEC26.110000.C.S1",
           "BTC_USDC-CMB-25DEC26.100000.C.B²", "0.01", "2500", "-1", "1e30", "²", "9" * 5000,
           "limit", "market", "fill_or_kill", "good_til_day", "immediate_or_cancel", "buy",
           "sell", "BTC", "USDC", "any", "btc_usdc", "true", "false", "", "\x00", "💥" * 10]
ATOMS = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70),
    st.decimals(allow_nan=False, allow_infinity=False, places=None),
    st.text(max_size=20), st.sampled_from(SPECIAL),
)
VALUES = st.recursive(ATOMS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.sampled_from(KEYS), inner, max_size=4)),
    max_leaves=8)
PARAMS = st.one_of(st.dictionaries(st.sampled_from(KEYS), VALUES, max_size=8),
                   VALUES)


@pytest.mark.dates
def test_hostile_params_never_crash_a_method() -> None:
    loop = asyncio.new_event_loop()
    venue = LocalVenue(demo_mode=True, block_interval_s=0.0, vol_ppm_default=500_000,
                       clock_ns=venue_now_ns)  # a fixed day: the genesis' expiries stay live
    keys = KeyStore()
    loop.run_until_complete(venue.start())
    try:
        account = loop.run_until_complete(venue.create_account(10**12))
        other = loop.run_until_complete(venue.create_account(10**12))
        key = keys.create(account)
        methods = Methods(venue, Authenticator(keys), keys, Hub(venue), demo_mode=True)
        principal = Principal(key.client_id, account)
        # Some resting liquidity so that fuzzed orders can trade.
        maker = Methods(venue, Authenticator(keys), keys, Hub(venue), demo_mode=True)
        for price in ("2500", "2600"):
            loop.run_until_complete(maker.call(Call("private/sell", Params({
                "instrument_name": CALL, "amount": Decimal("0.5"), "price": Decimal(price),
                "post_only": True}), Principal("maker", other), None)))

        outcomes = {"result": 0, "error": 0}

        @settings(max_examples=400, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        @given(method=st.sampled_from(NAMES), params=PARAMS)
        def run(method: str, params: object) -> None:
            async def one() -> None:
                try:
                    await asyncio.wait_for(
                        methods.call(Call(method, Params(params), principal, None)), 5)
                    outcomes["result"] += 1
                except ApiError:
                    outcomes["error"] += 1
            try:
                loop.run_until_complete(one())
            except ApiError:
                outcomes["error"] += 1  # Params() itself refuses non-objects

        run()
        assert outcomes["result"] > 20 and outcomes["error"] > 20, outcomes
        assert invariants.check_invariants(venue.state) == []
    finally:
        loop.run_until_complete(venue.stop())
        loop.close()


SHORT_CORRUPT = ["²", "9" * 5000, "", "💥" * 10, "BTC_USDC-CMB-25DEC26.100000.C.B²", None, True,
                 -1, 2**70, [], {"a": 1}, Decimal("1e-30"), Decimal("0.0000001")]
FULL_CORRUPT = [*SPECIAL, None, True, -1, 0, 2**70, [], {}, [1], {"a": 1},
                Decimal("1e-30"), Decimal("-1e30"), Decimal("0.0000001")]


@pytest.mark.dates
def test_one_corrupted_field_in_a_valid_request_is_refused_cleanly() -> None:
    _sweep(SHORT_CORRUPT)


@pytest.mark.slow
def test_one_corrupted_field_full_sweep() -> None:
    _sweep(FULL_CORRUPT)


def _sweep(corrupt: list[object]) -> None:
    loop = asyncio.new_event_loop()
    venue = LocalVenue(demo_mode=True, block_interval_s=0.0, clock_ns=venue_now_ns)
    keys = KeyStore()
    loop.run_until_complete(venue.start())
    try:
        account = loop.run_until_complete(venue.create_account(10**12))
        key = keys.create(account)
        methods = Methods(venue, Authenticator(keys), keys, Hub(venue), demo_mode=True)
        principal = Principal(key.client_id, account)
        base = {
            "instrument_name": CALL, "amount": Decimal("0.01"), "price": Decimal(900),
            "order_id": "1", "currency": "BTC", "index_name": "btc_usdc", "label": "x",
            "channels": [f"trades.{CALL}.raw"], "combo_id": SPECIAL[1], "height": 1,
            "account_id": account, "deposit": 1, "grant_type": "client_credentials",
            "client_id": key.client_id, "client_secret": key.client_secret, "interval": 10,
            "trades": [{"instrument_name": CALL, "amount": 1, "direction": "buy"},
                       {"instrument_name": "BTC_USDC-25DEC26-110000-C", "amount": 1,
                        "direction": "sell"}],
        }

        async def sweep() -> int:
            calls = 0
            for method in NAMES:
                for key_name in KEYS:
                    for value in corrupt:
                        params = dict(base)
                        params[key_name] = value
                        try:
                            await asyncio.wait_for(
                                methods.call(Call(method, Params(params), principal, None)), 5)
                        except ApiError:
                            pass
                        except TimeoutError:
                            raise AssertionError(f"{method} hung: {key_name}={value!r:.60}") from None
                        calls += 1
                    await methods.call(Call("private/cancel_all", Params({}), principal, None))
            return calls

        assert loop.run_until_complete(sweep()) >= len(NAMES) * len(KEYS) * len(corrupt)
        assert invariants.check_invariants(venue.state) == []
    finally:
        loop.run_until_complete(venue.stop())
        loop.close()
