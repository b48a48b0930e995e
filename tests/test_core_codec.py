from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasync.core.codec import Registry, decode, encode
from deltasync.core.errors import CodecError
from deltasync.core.fixed import Amount, Price

atoms = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**63), 2**63 - 1),
    st.text(max_size=20),
    st.binary(max_size=20),
)
trees = st.recursive(
    atoms,
    lambda children: st.one_of(
        st.lists(children, max_size=5),
        st.dictionaries(st.text(max_size=8), children, max_size=5),
    ),
    max_leaves=30,
)


@given(trees)
def test_round_trip_and_canonical(value: object) -> None:
    data = encode(value)
    assert decode(data, canonical=True) == value
    assert encode(decode(data)) == data


def test_map_key_order_does_not_matter() -> None:
    assert encode({"b": 1, "a": 2}) == encode({"a": 2, "b": 1})


def test_refuses_floats_and_big_ints() -> None:
    with pytest.raises(CodecError):
        encode(1.5)
    with pytest.raises(CodecError):
        encode(2**64)


def test_refuses_non_canonical_and_garbage() -> None:
    import msgpack

    unsorted = msgpack.packb({"b": 1, "a": 2})
    assert decode(unsorted) == {"a": 2, "b": 1}
    with pytest.raises(CodecError):
        decode(unsorted, canonical=True)
    with pytest.raises(CodecError):
        decode(b"\xc1")
    with pytest.raises(CodecError):
        decode(b"\x92\x01")  # truncated array


class Side(Enum):
    BUY = 1
    SELL = 2


REG = Registry("test")


@REG.register(1)
@dataclass(frozen=True, slots=True)
class Leg:
    name: str
    ratio: int


@REG.register(2)
@dataclass(frozen=True, slots=True)
class Order:
    side: Side
    price: Price
    cost: Amount | None
    legs: tuple[Leg, ...]
    note: bytes


@given(
    st.sampled_from(Side),
    st.integers(0, 10**12),
    st.one_of(st.none(), st.integers(-(10**12), 10**12)),
    st.lists(st.tuples(st.text(max_size=10), st.integers(1, 10)), max_size=4),
    st.binary(max_size=8),
)
def test_registry_round_trip(side: Side, p: int, c: int | None, legs: list, note: bytes) -> None:
    order = Order(side, Price(p), None if c is None else Amount(c), tuple(Leg(*x) for x in legs), note)
    assert REG.decode(REG.encode(order), canonical=True) == order


def test_registry_rejects_wrong_shapes() -> None:
    with pytest.raises(CodecError):
        REG.from_wire([99])
    with pytest.raises(CodecError):
        REG.from_wire([1, "x"])  # missing field
    with pytest.raises(CodecError):
        REG.from_wire([1, "x", "not an int"])
    with pytest.raises(CodecError):
        REG.from_wire([2, 7, 1, None, [], b""])  # 7 is not a Side
    with pytest.raises(CodecError):
        REG.from_wire("nope")
