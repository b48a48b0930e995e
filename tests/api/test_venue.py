"""The venue below the API: one result channel, one sequencer."""

from __future__ import annotations

import asyncio

from deltasync.venue.local import LocalVenue
from deltasync.venue.views import OrderStatus, OrderType, Side, TimeInForce

from .harness import CALL, venue_now_ns

MILLI = 1_000  # Quantity/Price raw per 0.001


async def _venue() -> LocalVenue:
    venue = LocalVenue(demo_mode=True, block_interval_s=0.0, clock_ns=venue_now_ns)
    await venue.start()
    return venue


def _buy(venue: LocalVenue, account: int, price: int, request_id: str | None = None) -> object:
    return venue.place_order(
        account, instrument_name=CALL, side=Side.BUY, amount_raw=10 * MILLI,
        order_type=OrderType.LIMIT, price_raw=price * 10**6,
        time_in_force=TimeInForce.GOOD_TIL_CANCELLED, post_only=True, request_id=request_id)


def test_a_result_comes_from_its_block_whenever_the_node_answers() -> None:
    """The node's answer may come before the block is folded (here 50 ms before):
    the client still gets the result the block fold made, not a guess from the answer."""
    async def main() -> None:
        venue = await _venue()
        try:
            shell = venue.shell
            shell.remove_block_listener(venue._on_block)
            loop = asyncio.get_running_loop()
            shell.add_block_listener(lambda block: loop.call_later(0.05, venue._on_block, block))
            account = await venue.create_account(10**12)
            placed = await _buy(venue, account, 900)  # type: ignore[misc]
            assert placed.rejection is None and placed.order is not None
            assert placed.order.order_state is OrderStatus.OPEN
            assert placed.order.price_raw == 900 * 10**6 and placed.order.post_only
        finally:
            await venue.stop()

    asyncio.run(main())


def test_a_retry_gets_the_original_result_from_the_session_table() -> None:
    async def main() -> None:
        venue = await _venue()
        try:
            account = await venue.create_account(10**12)
            blocks_before = venue.blocks_applied
            first = await _buy(venue, account, 901, request_id="once")  # type: ignore[misc]
            again = await _buy(venue, account, 901, request_id="once")  # type: ignore[misc]
            assert venue.blocks_applied - blocks_before == 2  # the retry went through the log
            assert again.order is not None and first.order is not None
            assert again.order.order_id == first.order.order_id
            assert again.height == first.height  # the original block's height
            open_orders = await venue.open_orders(account)
            assert [order.order_id for order in open_orders] == [first.order.order_id]
        finally:
            await venue.stop()

    asyncio.run(main())


def test_the_local_venue_is_a_one_node_log() -> None:
    async def main() -> None:
        venue = await _venue()
        try:
            account = await venue.create_account(10**12)
            await _buy(venue, account, 902)
            core = venue.shell.core
            assert core.raft.role.value == "leader" and core.raft.status().conf_state.voters == (1,)
            assert core.tip.height == venue.state.height and core.applied_index > core.tip.height
            root = await venue.state_root()
            assert root is not None and root.state_root == core.tip.state_root.hex()
        finally:
            await venue.stop()

    asyncio.run(main())
