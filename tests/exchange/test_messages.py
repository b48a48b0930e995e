"""Commands and events: stable tags, canonical round trips, validation at construction."""

from __future__ import annotations

import pytest

from deltasync.core.errors import CodecError
from deltasync.core.fixed import Amount, Price, Quantity
from deltasync.core.ids import OptionKind
from deltasync.exchange import commands as c
from deltasync.exchange import events as e
from deltasync.exchange.commands import COMMANDS, CommandError, Side
from deltasync.exchange.events import EVENTS, CancelReason, RejectReason

NAME = "BTC_USDC-27NOV26-100000-C"
LEGS = (c.ComboLeg(NAME, Side.BUY, 1), c.ComboLeg("BTC_USDC-27NOV26-105000-C", Side.SELL, 2))

SAMPLE_COMMANDS = [
    c.Deposit(1, Amount.whole(5)),
    c.Withdraw(1, Amount.whole(5)),
    c.PlaceOrder(1, NAME, Side.BUY, Quantity.parse("0.01"), Price.whole(5), label="x"),
    c.PlaceOrder(1, NAME, Side.SELL, Quantity.parse("0.01"), None, c.OrderType.MARKET,
                 c.TimeInForce.FILL_OR_KILL),
    c.PlaceOrder(1, NAME, Side.SELL, Quantity.parse("0.01"), Price.whole(5),
                 time_in_force=c.TimeInForce.GOOD_TIL_TIME, expire_at_ns=7, post_only=True,
                 reduce_only=True),
    c.CancelOrder(1, 99),
    c.CancelByLabel(1, "x", NAME),
    c.CancelByLabel(1, "x"),
    c.CancelAll(1),
    c.CancelAll(1, NAME),
    c.EditOrder(1, 99, Price.whole(6), Quantity.parse("0.02"), True),
    c.PlaceCombo(1, LEGS, Side.SELL, Quantity.parse("0.01"), Price.whole(-50),
                 c.TimeInForce.IMMEDIATE_OR_CANCEL, "combo"),
    c.ListInstruments(1, "BTC", "26MAR27", (Price.whole(90_000),), (OptionKind.PUT,)),
]

SAMPLE_EVENTS = [
    e.Deposited(1, Amount(5), Amount(5)),
    e.Withdrawn(1, Amount(5), Amount(0)),
    e.WithdrawRejected(1, Amount(5), RejectReason.INSUFFICIENT_FUNDS),
    e.DepositRejected(1, Amount(5), RejectReason.DEPOSIT_LIMIT),
    e.OrderAccepted(9, 1, NAME, Side.BUY, c.OrderType.LIMIT, Price(5), Quantity(1),
                    c.TimeInForce.GOOD_TIL_CANCELLED, ""),
    e.OrderRejected(1, NAME, RejectReason.POST_ONLY_WOULD_CROSS, "q"),
    e.Trade(10, NAME, Price(5), Quantity(1), Side.SELL, 9, 8, 1, 2, Amount(1), Amount(1)),
    e.OrderCancelled(9, 1, NAME, Quantity(1), CancelReason.SELF_TRADE),
    e.OrderEdited(9, 1, NAME, Price(5), Quantity(2), Quantity(1), False),
    e.OrderExpired(9, 1, NAME, Quantity(1)),
    e.CancelRejected(1, 9, RejectReason.UNKNOWN_ORDER),
    e.ComboFilled(9, 1, Side.BUY, Quantity(1), Amount(-3), Amount(1), ""),
    e.ComboRejected(1, RejectReason.COMBO_WOULD_NOT_FILL, ""),
    e.InstrumentListed(5, NAME, 1),
    e.InstrumentExpired(5, NAME),
    e.ListingRejected(1, NAME, RejectReason.INSTRUMENT_EXISTS),
]


def test_every_registered_class_has_a_sample() -> None:
    assert {type(x) for x in SAMPLE_COMMANDS} | {c.ComboLeg} == set(COMMANDS.classes())
    assert {type(x) for x in SAMPLE_EVENTS} == set(EVENTS.classes())


@pytest.mark.parametrize("message", SAMPLE_COMMANDS, ids=lambda m: type(m).__name__)
def test_commands_round_trip(message: object) -> None:
    data = COMMANDS.encode(message)
    assert COMMANDS.decode(data, canonical=True) == message


@pytest.mark.parametrize("message", SAMPLE_EVENTS, ids=lambda m: type(m).__name__)
def test_events_round_trip(message: object) -> None:
    assert EVENTS.decode(EVENTS.encode(message), canonical=True) == message


def test_tags_are_stable_and_leave_reserved_ranges_free() -> None:
    tags = {cls.__name__: COMMANDS.tag_of(cls) for cls in COMMANDS.classes()}
    assert tags == {"Deposit": 1, "Withdraw": 2, "PlaceOrder": 10, "CancelOrder": 11,
                    "CancelByLabel": 12, "CancelAll": 13, "EditOrder": 14, "PlaceCombo": 20,
                    "ComboLeg": 21, "ListInstruments": 30}
    for registry in (COMMANDS, EVENTS):
        assert all(registry.tag_of(cls) < 100 for cls in registry.classes())
    assert RejectReason.INSUFFICIENT_FUNDS.value == 1 and RejectReason.INSUFFICIENT_FUNDS.code == "insufficient_funds"
    # The trading core's codes are 1..n without gaps; the oracle's report reasons, merged
    # in later, keep travelling by name.
    codes = [r.value for r in RejectReason if type(r.value) is int]
    assert codes == list(range(1, len(codes) + 1))
    named = [r for r in RejectReason if type(r.value) is not int]
    assert [r.name for r in named] == [
        "UNKNOWN_SOURCE", "SOURCE_NOT_ALLOWED_FOR_UNDERLYING", "BAD_SIGNATURE",
        "NON_POSITIVE_PRICE", "TIMESTAMP_OUT_OF_WINDOW", "NOT_NEWER", "INVALID_VOL_SURFACE",
    ]
    assert all(r.value == r.code for r in named)


@pytest.mark.parametrize(
    "build",
    [
        lambda: c.Deposit(1, Amount(0)),
        lambda: c.Deposit(-1, Amount(1)),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(0), Price(1)),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), None),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), Price(1), c.OrderType.MARKET),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), Price(1), label="x" * 65),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), Price(1),
                             time_in_force=c.TimeInForce.GOOD_TIL_TIME),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), Price(1), expire_at_ns=5),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(1), Price(1),
                             time_in_force=c.TimeInForce.IMMEDIATE_OR_CANCEL, post_only=True),
        lambda: c.PlaceCombo(1, LEGS[:1], Side.BUY, Quantity(1), Price(1)),
        lambda: c.PlaceCombo(1, (LEGS[0], LEGS[0]), Side.BUY, Quantity(1), Price(1)),
        lambda: c.PlaceCombo(1, LEGS, Side.BUY, Quantity(1), Price(1),
                             c.TimeInForce.GOOD_TIL_CANCELLED),
        lambda: c.ComboLeg(NAME, Side.BUY, 11),
        lambda: c.ListInstruments(1, "BTC", "26MAR27", ()),
        lambda: c.PlaceOrder(1, NAME, Side.BUY, Quantity(10**15 + 1), Price(1)),
        lambda: c.PlaceCombo(1, LEGS, Side.BUY, Quantity(10**15 // 2 + 1), Price(1)),
        lambda: c.Deposit(1, Amount(10**17 + 1)),
    ],
)
def test_malformed_commands_are_refused_at_construction(build) -> None:
    with pytest.raises(CommandError):
        build()


def test_malformed_wire_is_a_codec_error() -> None:
    wire = COMMANDS.to_wire(SAMPLE_COMMANDS[2])
    wire[4] = 0  # amount 0
    with pytest.raises(CodecError):
        COMMANDS.from_wire(wire)
