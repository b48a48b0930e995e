from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from deltasync.commitment.merkle import (
    BUCKETS,
    DEPTH,
    EMPTY_ROOT,
    SIBLINGS_PER_LEVEL,
    MerkleError,
    MerkleMap,
    Proof,
    diff_keys,
    root_of,
    slot,
    verify_proof,
)
from deltasync.core.codec import encode
from deltasync.core.errors import CodecError
from deltasync.core.limits import merkle_key_bytes_max, merkle_value_bytes_max

keys = st.binary(min_size=0, max_size=12)
values = st.binary(min_size=0, max_size=24)
pair_maps = st.dictionaries(keys, values, max_size=40)


def _keys_sharing_a_bucket(count: int) -> list[bytes]:
    """``count`` distinct keys that land in one bucket (found by a deterministic search)."""
    by_slot: dict[int, list[bytes]] = {}
    for i in range(BUCKETS * 4):
        key = b"k%d" % i
        group = by_slot.setdefault(slot(key), [])
        group.append(key)
        if len(group) == count:
            return group
    raise AssertionError("no bucket with enough keys")


CROWDED = _keys_sharing_a_bucket(4)


def _flip(data: bytes, index: int) -> bytes:
    return data[:index] + bytes([data[index] ^ 0x01]) + data[index + 1 :]


# --- the map behaves like a dict ------------------------------------------------


def test_empty_map_has_a_defined_root() -> None:
    assert MerkleMap().root() == EMPTY_ROOT
    assert len(EMPTY_ROOT) == 32
    # Pinned: roots are protocol constants; changing the hashing scheme must be deliberate.
    assert EMPTY_ROOT.hex() == "1dc64c17a7980de88c18f12f5c89f73434ae9e6e797f5b6f11f7e533465b861c"
    assert root_of([(b"a", b"1")]) != EMPTY_ROOT


def test_pinned_root_vector() -> None:
    root = root_of([(b"account/1", b"100"), (b"account/2", b"200"), (b"", b"")])
    assert root.hex() == PINNED_ROOT_HEX


PINNED_ROOT_HEX = "71270221bceb46647720e4ce587f3d016dc07886fa7d0a1812747c11f5d2d21f"


def test_map_api() -> None:
    m = MerkleMap()
    m.set(b"b", b"2")
    m.set(b"a", b"1")
    m.set(b"c", b"3")
    m.delete(b"c")
    m.delete(b"missing")  # deleting an absent key is a no-op
    assert len(m) == 2
    assert b"a" in m and b"c" not in m
    assert m.get(b"a") == b"1" and m.get(b"c") is None
    assert list(m.items()) == [(b"a", b"1"), (b"b", b"2")]
    assert list(m) == [b"a", b"b"]


def test_deleting_everything_returns_to_the_empty_root() -> None:
    m = MerkleMap([(key, b"v") for key in CROWDED] + [(b"x", b"y")])
    assert m.root() != EMPTY_ROOT
    for key in [*CROWDED, b"x"]:
        m.delete(key)
    assert m.root() == EMPTY_ROOT
    assert len(m) == 0


def test_limits_are_enforced() -> None:
    m = MerkleMap()
    with pytest.raises(MerkleError):
        m.set(b"k" * (merkle_key_bytes_max + 1), b"")
    with pytest.raises(MerkleError):
        m.set(b"k", b"v" * (merkle_value_bytes_max + 1))
    with pytest.raises(MerkleError):
        m.set("k", b"v")  # type: ignore[arg-type]
    assert len(m) == 0


def test_value_change_and_revert() -> None:
    m = MerkleMap([(b"a", b"1"), (b"b", b"2")])
    before = m.root()
    m.set(b"a", b"changed")
    assert m.root() != before
    m.set(b"a", b"1")
    assert m.root() == before


def test_copy_is_independent() -> None:
    m = MerkleMap([(b"a", b"1")])
    c = m.copy()
    c.set(b"b", b"2")
    assert m.root() == root_of([(b"a", b"1")])
    assert c.root() == root_of([(b"a", b"1"), (b"b", b"2")])


# --- determinism ------------------------------------------------------------------


@given(pair_maps, st.randoms(use_true_random=False))
def test_root_is_independent_of_insertion_order(pairs: dict[bytes, bytes], rng) -> None:  # type: ignore[no-untyped-def]
    items = list(pairs.items())
    shuffled = items[:]
    rng.shuffle(shuffled)
    a = MerkleMap(items)
    b = MerkleMap()
    for key, value in shuffled:
        b.set(key, b"temporary")  # overwritten values and intermediate roots leave no trace
        if rng.random() < 0.3:
            b.root()
        b.set(key, value)
    assert a.root() == b.root()


ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), keys, values),
        st.tuples(st.just("delete"), keys, st.just(b"")),
        st.tuples(st.just("root"), st.just(b""), st.just(b"")),
    ),
    max_size=80,
)


@given(ops)
def test_incremental_root_equals_root_from_scratch(script: list[tuple[str, bytes, bytes]]) -> None:
    m = MerkleMap()
    model: dict[bytes, bytes] = {}
    for op, key, value in script:
        match op:
            case "set":
                m.set(key, value)
                model[key] = value
            case "delete":
                m.delete(key)
                model.pop(key, None)
            case "root":
                assert m.root() == root_of(model.items())
    assert m.root() == root_of(sorted(model.items()))
    assert list(m.items()) == sorted(model.items())
    assert len(m) == len(model)


@given(
    st.lists(st.sampled_from(CROWDED), max_size=12), st.lists(st.sampled_from(CROWDED), max_size=12)
)
def test_crowded_bucket_incremental(first: list[bytes], second: list[bytes]) -> None:
    m = MerkleMap()
    model: dict[bytes, bytes] = {}
    for i, key in enumerate(first):
        m.set(key, b"%d" % i)
        model[key] = b"%d" % i
    m.root()
    for key in second:
        m.delete(key)
        model.pop(key, None)
    assert m.root() == root_of(model.items())


CROWDED_6 = _keys_sharing_a_bucket(6)
crowded_ops = st.lists(
    st.one_of(
        st.tuples(st.just("set"), st.sampled_from(CROWDED_6), values),
        st.tuples(st.just("delete"), st.sampled_from(CROWDED_6), st.just(b"")),
        st.tuples(st.just("root"), st.just(b""), st.just(b"")),
    ),
    max_size=60,
)


@given(crowded_ops)
def test_crowded_bucket_mixed_script(script: list[tuple[str, bytes, bytes]]) -> None:
    """Keys entering, leaving and re-entering one bucket in any order, with roots between."""
    m = MerkleMap()
    model: dict[bytes, bytes] = {}
    changed: set[bytes] = set()
    for op, key, value in script:
        match op:
            case "set":
                m.set(key, value)
                model[key] = value
                changed.add(key)
            case "delete":
                if key in model:
                    changed.add(key)
                m.delete(key)
                model.pop(key, None)
            case "root":
                assert m.pending_keys == len(changed)
                assert m.root() == root_of(model.items())
                if changed:  # a root() with nothing pending keeps the previous report
                    assert m.last_changed_keys() == sorted(changed)
                changed = set()
    assert m.root() == root_of(model.items())
    index = slot(CROWDED_6[0])
    entries = m.bucket_entries(index)
    assert [key for key, _ in entries] == sorted(model)
    for key in CROWDED_6:
        proof = m.prove(key)
        assert proof.value == model.get(key)
        assert verify_proof(m.root(), proof)
    assert m.copy().root() == m.root()


def test_delete_then_set_again_before_the_root() -> None:
    m = MerkleMap([(b"a", b"1"), (b"b", b"2")])
    m.root()
    m.delete(b"a")
    m.set(b"a", b"3")
    m.set(b"c", b"4")
    m.delete(b"c")  # entered and left between two roots: no trace in the tree
    m.delete(b"zz")  # absent: not a change
    assert m.root() == root_of([(b"a", b"3"), (b"b", b"2")])
    assert m.last_changed_keys() == [b"a", b"c"]
    assert verify_proof(m.root(), m.prove(b"c")) and not m.prove(b"c").included


def test_same_root_under_different_hash_seeds() -> None:
    program = (
        "from deltasync.commitment.merkle import MerkleMap\n"
        "m = MerkleMap()\n"
        "for i in range(2000):\n"
        "    m.set(('key-%d' % i).encode(), ('value-%d' % (i * 7)).encode())\n"
        "m.root()\n"
        "for i in range(0, 2000, 3):\n"
        "    m.delete(('key-%d' % i).encode())\n"
        "print(m.root().hex())\n"
    )
    roots = set()
    for seed in ("0", "1", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": seed}
        out = subprocess.run(
            [sys.executable, "-c", program], env=env, capture_output=True, text=True, check=True
        )
        roots.add(out.stdout.strip())
    assert len(roots) == 1


# --- proofs -----------------------------------------------------------------------


@settings(max_examples=60)
@given(pair_maps, keys)
def test_proofs_verify_for_present_and_absent_keys(pairs: dict[bytes, bytes], probe: bytes) -> None:
    m = MerkleMap(pairs.items())
    root = m.root()
    for key, value in pairs.items():
        proof = m.prove(key)
        assert proof.included and proof.value == value
        assert verify_proof(root, proof)
        assert verify_proof(root, Proof.from_bytes(proof.to_bytes()))
    absent = m.prove(probe)
    assert absent.included == (probe in pairs)
    assert verify_proof(root, absent)


def test_proofs_in_a_crowded_bucket() -> None:
    m = MerkleMap([(key, key + b"-v") for key in CROWDED[:3]])
    root = m.root()
    for key in CROWDED[:3]:
        proof = m.prove(key)
        assert len(proof.neighbours) == 2
        assert verify_proof(root, proof)
    absent = m.prove(CROWDED[3])
    assert not absent.included and len(absent.neighbours) == 3
    assert verify_proof(root, absent)
    # Hiding a neighbour, or claiming the absent key is present, must fail.
    assert not verify_proof(root, replace(absent, neighbours=absent.neighbours[1:]))
    assert not verify_proof(root, replace(absent, value=b""))
    # Neighbours out of order, or one repeating the key itself, must fail.
    present = m.prove(CROWDED[0])
    assert not verify_proof(root, replace(present, neighbours=present.neighbours[::-1]))
    twice = ((CROWDED[0], present.neighbours[0][1]), *present.neighbours)
    assert not verify_proof(root, replace(present, neighbours=tuple(sorted(twice))))


def test_tampered_proofs_do_not_verify() -> None:
    m = MerkleMap(
        [(b"acct/%d" % i, b"balance-%d" % i) for i in range(300)]
        + [(key, b"x") for key in CROWDED[:2]]
    )
    root = m.root()
    proof = m.prove(CROWDED[0])
    assert verify_proof(root, proof) and len(proof.neighbours) == 1

    assert not verify_proof(root, replace(proof, value=b"y"))
    assert not verify_proof(root, replace(proof, value=None))
    assert not verify_proof(root, replace(proof, key=CROWDED[2]))  # same bucket, other key
    assert not verify_proof(root, replace(proof, key=b"acct/1"))
    assert not verify_proof(_flip(root, 0), proof)
    assert not verify_proof(root[:31], proof)
    other, digest = proof.neighbours[0]
    assert not verify_proof(root, replace(proof, neighbours=((other, _flip(digest, 5)),)))
    assert not verify_proof(root, replace(proof, neighbours=((other + b"!", digest),)))
    for i in range(len(proof.siblings)):
        siblings = list(proof.siblings)
        siblings[i] = _flip(siblings[i], i % 32)
        assert not verify_proof(root, replace(proof, siblings=tuple(siblings)))
    assert not verify_proof(root, replace(proof, siblings=proof.siblings[:-1]))
    assert not verify_proof(root, replace(proof, siblings=proof.siblings[1:] + proof.siblings[:1]))


def test_every_bit_of_an_encoded_proof_matters() -> None:
    m = MerkleMap([(b"acct/%d" % i, b"%d" % i) for i in range(50)])
    root = m.root()
    data = m.prove(b"acct/7").to_bytes()
    for i in range(len(data)):
        try:
            proof = Proof.from_bytes(_flip(data, i))
        except CodecError:
            continue
        assert not verify_proof(root, proof), f"flipped byte {i} still verifies"


def test_proof_encoding_is_canonical_and_bounded() -> None:
    m = MerkleMap([(b"a", b"1")])
    proof = m.prove(b"a")
    data = proof.to_bytes()
    assert Proof.from_bytes(data) == proof
    assert len(proof.siblings) == DEPTH * SIBLINGS_PER_LEVEL
    with pytest.raises(CodecError):
        Proof.from_bytes(encode([2, b"a", b"1", [], b""]))  # unknown version
    with pytest.raises(CodecError):
        Proof.from_bytes(encode([1, b"a", b"1", [], b"\x00" * 31]))  # wrong sibling bytes
    with pytest.raises(CodecError):
        Proof.from_bytes(encode([1, b"a", b"1", [[b"b"]], b"\x00" * 32 * 60]))
    with pytest.raises(CodecError):
        Proof.from_bytes(data + b"\x00")


# --- diff -------------------------------------------------------------------------


def test_diff_of_equal_maps_is_empty() -> None:
    items = [(b"k%d" % i, b"v") for i in range(100)]
    assert diff_keys(MerkleMap(items), MerkleMap(reversed(items))) == []


@settings(max_examples=60)
@given(pair_maps, pair_maps)
def test_diff_keys_names_exactly_the_divergent_keys(
    a: dict[bytes, bytes], b: dict[bytes, bytes]
) -> None:
    expected = sorted(key for key in a.keys() | b.keys() if a.get(key) != b.get(key))
    found = diff_keys(MerkleMap(a.items()), MerkleMap(b.items()), limit=1000)
    assert found == expected


def test_diff_keys_respects_the_limit_and_is_deterministic() -> None:
    base = [(b"acct/%d" % i, b"0") for i in range(2000)]
    a = MerkleMap(base)
    b = MerkleMap(base)
    divergent = sorted(b"acct/%d" % i for i in range(0, 2000, 37))
    for key in divergent:
        b.set(key, b"1")
    b.set(CROWDED[0], b"only in b")
    divergent = sorted([*divergent, CROWDED[0]])
    assert diff_keys(a, b, limit=1000) == divergent
    first = diff_keys(a, b, limit=5)
    assert len(first) == 5 and set(first) <= set(divergent)
    assert first == sorted(first) == diff_keys(b, a, limit=5)
    only = diff_keys(a, b, limit=1)
    assert len(only) == 1 and only[0] in first
