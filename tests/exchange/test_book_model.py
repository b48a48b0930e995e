"""The book against a naive reference model under random command streams."""

from __future__ import annotations

from dataclasses import dataclass

from hypothesis import given, settings
from hypothesis import strategies as st

from deltasync.exchange.book import BUY, SELL, Book, Order


@dataclass
class RefOrder:
    order_id: int
    account: int
    side: int
    price: int
    remaining: int
    seq: int


class ReferenceBook:
    """A list of orders, sorted from scratch on every question: obviously right, slow."""

    def __init__(self) -> None:
        self.orders: list[RefOrder] = []

    def queue(self, side: int) -> list[RefOrder]:
        mine = [o for o in self.orders if o.side == side]
        if side == BUY:
            return sorted(mine, key=lambda o: (-o.price, o.seq))
        return sorted(mine, key=lambda o: (o.price, o.seq))

    def match(self, side: int, limit: int, quantity: int, account: int, fills_max: int):
        fills, cancelled = [], []
        for maker in self.queue(SELL if side == BUY else BUY):
            if quantity == 0:
                break
            if (maker.price > limit) if side == BUY else (maker.price < limit):
                break
            if maker.account == account:
                self.orders.remove(maker)
                cancelled.append(maker.order_id)
                continue
            if len(fills) == fills_max:
                break
            take = min(quantity, maker.remaining)
            fills.append((maker.order_id, take, maker.price))
            maker.remaining -= take
            quantity -= take
            if maker.remaining == 0:
                self.orders.remove(maker)
        return fills, cancelled, quantity

    def depth(self, side: int) -> list[tuple[int, int, int]]:
        levels: dict[int, list[int]] = {}
        for order in self.queue(side):
            level = levels.setdefault(order.price, [0, 0])
            level[0] += order.remaining
            level[1] += 1
        return [(price, total, count) for price, (total, count) in levels.items()]


ops = st.lists(
    st.one_of(
        st.tuples(
            st.just("place"),
            st.sampled_from((BUY, SELL)),
            st.integers(95, 105),  # price
            st.integers(1, 8),  # quantity
            st.integers(1, 3),  # account
            st.booleans(),  # rest the remainder (GTC) or not (IOC)
        ),
        st.tuples(st.just("cancel"), st.integers(0, 10_000)),
        st.tuples(st.just("reduce"), st.integers(0, 10_000), st.integers(1, 8)),
    ),
    max_size=120,
)


@settings(max_examples=150, deadline=None)
@given(ops, st.integers(1, 6))
def test_book_matches_reference_model(stream: list, fills_max: int) -> None:
    book, reference = Book(), ReferenceBook()
    ids: list[int] = []
    for seq, op in enumerate(stream, start=1):
        if op[0] == "place":
            _, side, price, quantity, account, rests = op
            fillable = book.fillable(side, price, quantity, account, 1000, fills_max)
            fills, cancelled, left = book.match(side, price, quantity, account, fills_max, 1000)
            assert fillable == quantity - left  # what FOK relies on
            expected = reference.match(side, price, quantity, account, fills_max)
            got = (
                [(maker.order_id, take, maker.price) for maker, take in fills],
                [maker.order_id for maker in cancelled or []],
                left,
            )
            assert got == expected
            if left and rests and not book.would_cross(side, price):
                book.rest(Order(seq, account, 1, side, price, left, left, seq))
                reference.orders.append(RefOrder(seq, account, side, price, left, seq))
                ids.append(seq)
        elif op[0] == "cancel" and ids:
            order_id = ids[op[1] % len(ids)]
            removed = book.remove(order_id)
            ref = next((o for o in reference.orders if o.order_id == order_id), None)
            assert (removed is None) == (ref is None)
            if ref is not None:
                assert removed is not None and removed.remaining == ref.remaining
                reference.orders.remove(ref)
        elif op[0] == "reduce" and ids:
            order_id = ids[op[1] % len(ids)]
            order = book.orders.get(order_id)
            ref = next((o for o in reference.orders if o.order_id == order_id), None)
            assert (order is None) == (ref is None)
            if order is not None and ref is not None and op[2] < order.remaining:
                book.reduce(order, op[2])
                ref.remaining = op[2]
        assert book.check() == []
        assert book.depth(BUY, 1000) == reference.depth(BUY)
        assert book.depth(SELL, 1000) == reference.depth(SELL)


@settings(max_examples=100, deadline=None)
@given(ops, st.sampled_from((BUY, SELL)), st.integers(1, 40), st.integers(1, 3))
def test_dry_runs_agree_with_matching(stream: list, side: int, quantity: int, account: int) -> None:
    book = Book()
    for seq, op in enumerate(stream, start=1):
        if op[0] == "place":
            _, order_side, price, amount, owner, _ = op
            if not book.would_cross(order_side, price):
                book.rest(Order(seq, owner, 1, order_side, price, amount, amount, seq))
    # plan_take (skipping own orders) never changes the book and takes best-first
    depth_before = (book.depth(BUY, 1000), book.depth(SELL, 1000))
    plan, left = book.plan_take(side, quantity, account, 1000)
    assert (book.depth(BUY, 1000), book.depth(SELL, 1000)) == depth_before
    assert sum(take for _, take in plan) + left == quantity
    assert all(maker.account != account for maker, _ in plan)
    prices = [maker.price for maker, _ in plan]
    assert prices == sorted(prices, reverse=(side == SELL))
    limit = 10**9 if side == BUY else 0
    assert book.fillable(side, limit, quantity, account, 1000, 10_000) == quantity - left
    book.take_planned(plan)
    assert book.check() == []
