"""Invariants: what must hold after every command, checked from scratch.

``check_invariants`` returns the violations (empty when sound): money is
conserved (``sum(cash) == deposits - withdrawals``), positions net to zero per
instrument, every account's ``locked`` is the sum of its positions' current
requirements, every book is internally consistent and holds exactly the open
orders, the open-order exposure on each position matches its orders, and the
reduce-only index and rule hold. ``check_commitment`` checks that the Merkle
map holds exactly the records the tables imply (a missed dirty mark would
make a live replica's root differ from a restored one's).

The simulator, the demo and the tests call these after every block; they are
not on the apply path.
"""

from __future__ import annotations

from deltasync.exchange.book import BUY
from deltasync.exchange.collateral import SimpleCollateral
from deltasync.exchange.orders import reduce_only_orders
from deltasync.exchange.records import CORE_PREFIXES, commit, expected_records
from deltasync.exchange.tables import Tables


def check_invariants(state: Tables) -> list[str]:
    """Every exchange-wide invariant; returns the violations (empty when sound)."""
    return (
        _money(state) + _accounts(state) + _books(state) + _exposure(state)
        + _reduce_only(state)
    )


def check_commitment(state: Tables) -> list[str]:
    """The committed map holds exactly the records the state implies (first 20 problems)."""
    commit(state)
    expected = expected_records(state)
    committed = {k: v for k, v in state.merkle.items() if k.startswith(CORE_PREFIXES)}
    problems = []
    for key in sorted(set(expected) | set(committed)):
        if expected.get(key) != committed.get(key):
            problems.append(f"record {key!r}: committed {committed.get(key)!r}"
                            f" != state {expected.get(key)!r}")
    return problems[:20]


def _money(state: Tables) -> list[str]:
    cash = sum(account.cash for account in state.accounts.values())
    if cash != state.deposits_total - state.withdrawals_total:
        return [
            f"money not conserved: balances {cash} != deposits {state.deposits_total}"
            f" - withdrawals {state.withdrawals_total}"
        ]
    return []


def _accounts(state: Tables) -> list[str]:
    """Balances, collateral and open-order lists per account; positions net to zero."""
    problems: list[str] = []
    simple = isinstance(state.risk, SimpleCollateral)
    net: dict[int, int] = {}
    for account in state.accounts.values():
        # Under the margin engine a balance may be negative until liquidation and the
        # insurance fund cover it (see docs/risk.md); with simple collateral never.
        if account.cash < 0 and simple:
            problems.append(f"account {account.account_id} has negative cash {account.cash}")
        locked = 0
        for iid, position in account.positions.items():
            net[iid] = net.get(iid, 0) + position.size
            locked += position.requirement
            expected = state.risk.position_requirement(state.instruments[iid], position)
            if expected != position.requirement:
                problems.append(f"account {account.account_id} instrument {iid}: stale requirement")
        if locked != account.locked:
            problems.append(f"account {account.account_id}: locked {account.locked} != {locked}")
        if simple and account.cash < account.locked:
            problems.append(f"account {account.account_id} is under-collateralised")
        for order_id in account.orders:
            order = state.orders.get(order_id)
            if order is None or order.account != account.account_id:
                problems.append(f"account {account.account_id} lists foreign order {order_id}")
    for iid, size in sorted(net.items()):
        if size:
            problems.append(f"instrument {iid}: positions net to {size}, not 0")
    return problems


def _books(state: Tables) -> list[str]:
    """Each book is consistent and the books hold exactly the open orders."""
    problems: list[str] = []
    in_books = 0
    for iid, book in state.books.items():
        for problem in book.check():
            problems.append(f"book {state.instruments[iid].name}: {problem}")
        in_books += len(book.orders)
    if in_books != len(state.orders):
        problems.append(f"{len(state.orders)} open orders but {in_books} in books")
    for order in state.orders.values():
        if state.books[order.instrument_id].orders.get(order.order_id) is not order:
            problems.append(f"order {order.order_id} is not in its book")
    return problems


def _exposure(state: Tables) -> list[str]:
    """Each position's open buy and sell quantities and buy reserve match its orders."""
    problems: list[str] = []
    exposure: dict[tuple[int, int], list[int]] = {}
    for order in state.orders.values():
        instrument = state.instruments[order.instrument_id]
        entry = exposure.setdefault((order.account, order.instrument_id), [0, 0, 0])
        if order.side == BUY:
            entry[0] += order.remaining
            entry[2] += (order.remaining // instrument.contract_size_raw) * (
                instrument.reserve_per_contract(order.price)
            )
        else:
            entry[1] += order.remaining
    for account in state.accounts.values():
        for iid, position in account.positions.items():
            expected = exposure.pop((account.account_id, iid), [0, 0, 0])
            actual = [position.open_buy_quantity, position.open_sell_quantity,
                      position.open_buy_reserve]
            if actual != expected:
                problems.append(
                    f"account {account.account_id} instrument {iid}: open exposure {actual}"
                    f" != orders {expected}"
                )
    for key in sorted(exposure):
        problems.append(f"orders of {key} have no position record")
    return problems


def _reduce_only(state: Tables) -> list[str]:
    """The reduce-only index counts the open reduce-only orders, and they fit the position."""
    problems: list[str] = []
    for account in state.accounts.values():
        counts: dict[int, int] = {}
        for order_id in account.orders:
            order = state.orders[order_id]
            if order.reduce_only:
                counts[order.instrument_id] = counts.get(order.instrument_id, 0) + 1
        if counts != account.reduce_only:
            problems.append(f"account {account.account_id}: reduce-only index {account.reduce_only}")
        for iid in sorted(counts):
            held = account.positions.get(iid)
            size = held.size if held is not None else 0
            orders = reduce_only_orders(state, account, iid)
            if any((o.side == BUY) != (size < 0) for o in orders) or sum(
                o.remaining for o in orders
            ) > abs(size):
                problems.append(
                    f"account {account.account_id} instrument {iid}: reduce-only orders"
                    f" could grow a position of {size}"
                )
    return problems
