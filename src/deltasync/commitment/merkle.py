"""An authenticated map bytes -> bytes: the state root, proofs and tree diff.

Shape (fixed, so it is part of the protocol): a 16-ary tree of depth 4 above
65,536 buckets. A key lives in the bucket named by the first two bytes of
``sha256(0x03 || key)``; a bucket holds its keys sorted by their raw bytes.
Because the shape does not depend on the contents, the same set of pairs gives
the same root whatever order they were inserted in, and updating a key touches
one bucket and four nodes, whatever the size of the state.

Hashing (SHA-256, domain-separated by a leading tag byte)::

    value digest   vh     = H(0x00 || value)
    bucket         bucket = H(0x01 || entry || entry || ...)   entries sorted by key
                   entry  = u16be(len(key)) || key || vh
    inner node     node   = H(0x02 || child_0 || ... || child_15)
    empty bucket          = H(0x01)

A bucket entry carries the key itself (not only a digest), so a proof for an
absent key shows the whole bucket where the key would be and the verifier sees
that it is not there: inclusion and non-inclusion proofs are the same object.

Cost: ``set``/``delete`` only record the key as dirty; ``root()`` rehashes the
dirty keys' values, their buckets and the nodes above them, so its cost grows
with the number of changed keys (at most 16 x 32 bytes hashed per node), never
with the state size. No Python ``hash()`` order reaches a digest: dirty sets
are iterated only to recompute positions whose hashes depend on the contents
alone.
"""

from __future__ import annotations

import bisect
import hashlib
from collections import deque
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from deltasync.core import codec
from deltasync.core.errors import CodecError, LocalError
from deltasync.core.limits import (
    merkle_diff_keys_max,
    merkle_key_bytes_max,
    merkle_proof_bytes_max,
    merkle_value_bytes_max,
)

FANOUT_BITS = 4
FANOUT = 1 << FANOUT_BITS
DEPTH = 4  # inner levels above the buckets; level 0 is the root
BUCKETS = FANOUT**DEPTH
DIGEST_BYTES = 32
SIBLINGS_PER_LEVEL = FANOUT - 1
PROOF_VERSION = 1

_TAG_VALUE = b"\x00"
_TAG_BUCKET = b"\x01"
_TAG_NODE = b"\x02"
_TAG_SLOT = b"\x03"
_MASK = FANOUT - 1

assert BUCKETS == 1 << (FANOUT_BITS * DEPTH) == 1 << 16, "slot() reads exactly two bytes"
assert merkle_key_bytes_max < 1 << 16, "key length is framed as u16"

_sha256 = hashlib.sha256


class MerkleError(LocalError):
    """A key or value broke the map's limits (fields: reason, size, max)."""


def slot(key: bytes) -> int:
    """The bucket index of ``key`` (0 .. BUCKETS-1)."""
    digest = _sha256(_TAG_SLOT + key).digest()
    return (digest[0] << 8) | digest[1]


def value_digest(value: bytes) -> bytes:
    return _sha256(_TAG_VALUE + value).digest()


def _entry(key: bytes, vh: bytes) -> bytes:
    return _KEY_PREFIX[len(key)] + key + vh


def _empty_hashes() -> list[bytes]:
    """Hash of an empty subtree at each level, index DEPTH being an empty bucket."""
    out = [_sha256(_TAG_BUCKET).digest()]
    for _ in range(DEPTH):
        out.append(_sha256(_TAG_NODE + out[-1] * FANOUT).digest())
    out.reverse()
    return out


_INDEXES = tuple(range(BUCKETS))  # shared int objects for the slot cache
# slice of the children of inner node i (i < BUCKETS // FANOUT), in its child level
_CHILD_SLICES = tuple(
    slice(i << FANOUT_BITS, (i + 1) << FANOUT_BITS) for i in range(BUCKETS // FANOUT)
)
_FANOUT_BITS_INT: int = FANOUT_BITS  # ``_FANOUT_BITS_INT.__rrshift__(i) == i >> FANOUT_BITS``
_digest = type(_sha256()).digest


def _consume(iterator: Iterator[object]) -> None:
    """Run ``iterator`` to its end at C speed (the itertools "consume" recipe)."""
    deque(iterator, maxlen=0)


EMPTY_HASHES: tuple[bytes, ...] = tuple(_empty_hashes())
EMPTY_ROOT: bytes = EMPTY_HASHES[0]
_EMPTY_BUCKET = EMPTY_HASHES[DEPTH]
_KEY_PREFIX = tuple(size.to_bytes(2, "big") for size in range(merkle_key_bytes_max + 1))


@dataclass(frozen=True, slots=True)
class Proof:
    """Inclusion (``value`` is not None) or non-inclusion (``value`` is None) of ``key``.

    ``neighbours`` are the other entries of the key's bucket as (key, value digest),
    sorted by key; ``siblings`` are the 15 other children of each node on the path,
    from the bucket's parent up to the root, in child order with the path's own
    child left out.
    """

    key: bytes
    value: bytes | None
    neighbours: tuple[tuple[bytes, bytes], ...]
    siblings: tuple[bytes, ...]

    @property
    def included(self) -> bool:
        return self.value is not None

    def to_bytes(self) -> bytes:
        return codec.encode(
            [
                PROOF_VERSION,
                self.key,
                self.value,
                [[key, vh] for key, vh in self.neighbours],
                b"".join(self.siblings),
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Proof:
        wire = codec.decode(data, canonical=True, max_bytes=merkle_proof_bytes_max)
        if type(wire) is not list or len(wire) != 5 or wire[0] != PROOF_VERSION:
            raise CodecError(reason="not a version-1 Merkle proof")
        _, key, value, neighbours, siblings = wire
        if type(key) is not bytes or not (value is None or type(value) is bytes):
            raise CodecError(reason="proof key/value must be bytes")
        if type(neighbours) is not list or type(siblings) is not bytes:
            raise CodecError(reason="proof neighbours/siblings malformed")
        if len(siblings) != DEPTH * SIBLINGS_PER_LEVEL * DIGEST_BYTES:
            raise CodecError(reason="wrong sibling bytes", size=len(siblings))
        pairs: list[tuple[bytes, bytes]] = []
        for pair in neighbours:
            if (
                type(pair) is not list
                or len(pair) != 2
                or type(pair[0]) is not bytes
                or type(pair[1]) is not bytes
            ):
                raise CodecError(reason="proof neighbour must be [key, digest]")
            pairs.append((pair[0], pair[1]))
        return cls(
            key=key,
            value=value,
            neighbours=tuple(pairs),
            siblings=tuple(
                siblings[i : i + DIGEST_BYTES] for i in range(0, len(siblings), DIGEST_BYTES)
            ),
        )


def verify_proof(root: bytes, proof: Proof) -> bool:
    """True iff ``proof`` shows ``proof.key`` maps to ``proof.value`` (None: absent) under ``root``.

    Needs nothing but the proof. Malformed proofs return False rather than raise.
    """
    key = proof.key
    if type(root) is not bytes or len(root) != DIGEST_BYTES:
        return False
    if type(key) is not bytes or len(key) > merkle_key_bytes_max:
        return False
    if len(proof.siblings) != DEPTH * SIBLINGS_PER_LEVEL:
        return False
    if any(type(s) is not bytes or len(s) != DIGEST_BYTES for s in proof.siblings):
        return False
    keys: list[bytes] = []
    for other, vh in proof.neighbours:
        if type(other) is not bytes or len(other) > merkle_key_bytes_max:
            return False
        if type(vh) is not bytes or len(vh) != DIGEST_BYTES:
            return False
        if (keys and other <= keys[-1]) or other == key:
            return False  # neighbours must be strictly sorted and must not contain the key
        keys.append(other)
    entries = [_entry(other, vh) for other, vh in proof.neighbours]
    if proof.value is not None:
        if type(proof.value) is not bytes:
            return False
        entries.insert(bisect.bisect_left(keys, key), _entry(key, value_digest(proof.value)))
    digest = _sha256(_TAG_BUCKET + b"".join(entries)).digest()
    index = slot(key)
    siblings = proof.siblings
    for level in range(DEPTH):
        position = index & _MASK
        base = level * SIBLINGS_PER_LEVEL
        children = siblings[base : base + position] + (digest,)
        children += siblings[base + position : base + SIBLINGS_PER_LEVEL]
        digest = _sha256(_TAG_NODE + b"".join(children)).digest()
        index >>= FANOUT_BITS
    return digest == root


class MerkleMap:
    """An authenticated map bytes -> bytes with an incrementally maintained root."""

    __slots__ = (
        "_values",
        "_pending",
        "_deletions",
        "_slots",
        "_buckets",
        "_levels",
        "_last_changed",
    )

    def __init__(self, items: Iterable[tuple[bytes, bytes]] = ()) -> None:
        # the current contents (reads never wait for a flush)
        self._values: dict[bytes, bytes] = {}
        # changes since the last flush: key -> new value, None for a deletion
        self._pending: dict[bytes, bytes | None] = {}
        self._deletions = 0  # deletions recorded in _pending (some may have been set again)
        # flushed keys -> bucket index, so a key is hashed for its slot only once
        self._slots: dict[bytes, int] = {}
        # bucket index -> {key: entry bytes} in ascending key order (None: never used).
        # Updating a key keeps its place, so a bucket's bytes are a join of its values
        # with no sorting; only a key arriving out of order rebuilds its bucket.
        self._buckets: list[dict[bytes, bytes] | None] = [None] * BUCKETS
        self._last_changed: Iterable[bytes] = ()
        self._levels: list[list[bytes]] = [
            [EMPTY_HASHES[level]] * (FANOUT**level) for level in range(DEPTH + 1)
        ]
        for key, value in items:
            self.set(key, value)

    # --- the map ------------------------------------------------------------

    def set(self, key: bytes, value: bytes) -> None:
        if (
            type(key) is not bytes
            or type(value) is not bytes
            or len(key) > merkle_key_bytes_max
            or len(value) > merkle_value_bytes_max
        ):
            raise _invalid(key, value)
        self._values[key] = value
        self._pending[key] = value

    def update(self, items: Iterable[tuple[bytes, bytes]]) -> None:
        for key, value in items:
            self.set(key, value)

    def delete(self, key: bytes) -> None:
        """Remove ``key``; deleting an absent key does nothing."""
        if self._values.pop(key, None) is not None:
            self._pending[key] = None
            self._deletions += 1

    def get(self, key: bytes) -> bytes | None:
        return self._values.get(key)

    def __len__(self) -> int:
        return len(self._values)

    def __contains__(self, key: object) -> bool:
        return key in self._values

    def __iter__(self) -> Iterator[bytes]:
        return iter(sorted(self._values))

    def items(self) -> Iterator[tuple[bytes, bytes]]:
        """Pairs in sorted key order."""
        values = self._values
        for key in sorted(values):
            yield key, values[key]

    def copy(self) -> MerkleMap:
        self._flush()
        other = MerkleMap()
        other._values = dict(self._values)
        other._slots = dict(self._slots)
        other._buckets = [None if bucket is None else dict(bucket) for bucket in self._buckets]
        other._levels = [list(level) for level in self._levels]
        return other

    # --- the commitment ------------------------------------------------------

    def root(self) -> bytes:
        """The 32-byte root; rehashes only what changed since the last call."""
        if self._pending:
            self._flush()
        return self._levels[0][0]

    def last_changed_keys(self) -> list[bytes]:
        """The keys set or deleted between the last two ``root()`` calls, sorted.

        A node whose root diverges at some height names these in its halt report:
        when every earlier root agreed, the divergence lies among them (or among
        the other replica's)."""
        return sorted(self._last_changed)

    @property
    def pending_keys(self) -> int:
        """Keys changed since the last ``root()``."""
        return len(self._pending)

    def _flush(self) -> None:
        """Rehash what changed: value digests, then touched buckets, then nodes up to the root.

        Work per changed key and per touched node runs as chains of ``map`` over
        C-level callables (dict and list access, bytes concatenation and joins,
        SHA-256), so the interpreter loops only over keys that enter or leave the
        map. Sets and dicts are iterated only to recompute positions whose hashes
        depend on the contents alone, never to order bytes that get hashed.
        """
        pending = self._pending
        if not pending:
            return
        self._pending = {}
        self._last_changed = pending.keys()
        slots = self._slots
        buckets = self._buckets
        touched: set[int] = set()

        # Keys that left the map (deleted, or set then deleted since the last flush).
        live: Iterable[bytes] = pending.keys()
        live_values: Iterable[bytes | None] = pending.values()
        if self._deletions:
            self._deletions = 0
            gone = [key for key, value in pending.items() if value is None]
            for key in gone:
                index = slots.pop(key, None)
                bucket = None if index is None else buckets[index]
                if bucket is not None:
                    del bucket[key]
                    touched.add(index)  # type: ignore[arg-type]  # not None with bucket
            if gone:
                live = [key for key, value in pending.items() if value is not None]
                live_values = map(pending.__getitem__, live)

        # Keys that entered the map take their place in their bucket's key order.
        found = list(map(slots.get, live))
        indexes: list[int] = (
            [
                self._place(key) if index is None else index
                for key, index in zip(live, found, strict=True)
            ]
            if None in found
            else found  # type: ignore[assignment]  # no None in it
        )

        # entry = u16be(len(key)) || key || H(0x00 || value), written in place
        framed = map(bytes.__add__, map(_KEY_PREFIX.__getitem__, map(len, live)), live)
        hashes = map(_sha256, map(_TAG_VALUE.__add__, live_values))  # type: ignore[arg-type]
        _consume(
            map(
                dict.__setitem__,  # type: ignore[arg-type]  # live keys have a bucket
                map(buckets.__getitem__, indexes),
                live,
                map(bytes.__add__, framed, map(_digest, hashes)),
            )
        )
        touched.update(indexes)

        # bucket = H(0x01 || its entries in key order); no entries hash as H(0x01)
        indexes = list(touched)
        joined = map(b"".join, map(dict.values, map(buckets.__getitem__, indexes)))  # type: ignore[arg-type]
        hashes = map(_sha256, map(_TAG_BUCKET.__add__, joined))
        _consume(map(self._levels[DEPTH].__setitem__, indexes, map(_digest, hashes)))

        # node = H(0x02 || its 16 children), from the buckets' parents up to the root
        for level in range(DEPTH - 1, -1, -1):
            children = self._levels[level + 1]
            indexes = list(set(map(_FANOUT_BITS_INT.__rrshift__, indexes)))
            joined = map(
                b"".join, map(children.__getitem__, map(_CHILD_SLICES.__getitem__, indexes))
            )
            hashes = map(_sha256, map(_TAG_NODE.__add__, joined))
            _consume(map(self._levels[level].__setitem__, indexes, map(_digest, hashes)))

    def _place(self, key: bytes) -> int:
        """Give a key entering the map its bucket (at its place in key order) and slot."""
        digest = _sha256(_TAG_SLOT + key).digest()
        index = self._slots[key] = _INDEXES[(digest[0] << 8) | digest[1]]
        bucket = self._buckets[index]
        if not bucket:  # never used, or emptied by deletions
            self._buckets[index] = {key: b""}  # the entry is written by the caller
        elif key > next(reversed(bucket)):
            bucket[key] = b""
        else:
            bucket[key] = b""
            self._buckets[index] = dict(sorted(bucket.items()))
        return index

    def prove(self, key: bytes) -> Proof:
        """An inclusion proof if ``key`` is present, else a non-inclusion proof."""
        self._flush()
        index = slot(key)
        bucket = self._buckets[index] or {}
        neighbours = tuple(
            (other, entry[-DIGEST_BYTES:]) for other, entry in bucket.items() if other != key
        )
        siblings: list[bytes] = []
        position = index
        for level in range(DEPTH, 0, -1):
            first = (position >> FANOUT_BITS) << FANOUT_BITS
            group = self._levels[level][first : first + FANOUT]
            del group[position & _MASK]
            siblings.extend(group)
            position >>= FANOUT_BITS
        return Proof(
            key=key, value=self._values.get(key), neighbours=neighbours, siblings=tuple(siblings)
        )

    # --- tree access, for diffing against a remote tree -------------------------

    def node_hash(self, level: int, index: int) -> bytes:
        """Hash of node ``index`` at ``level`` (0 = root, DEPTH = buckets)."""
        self._flush()
        return self._levels[level][index]

    def child_hashes(self, level: int, index: int) -> list[bytes]:
        """The FANOUT child hashes of inner node ``index`` at ``level`` (< DEPTH)."""
        assert 0 <= level < DEPTH
        self._flush()
        first = index << FANOUT_BITS
        return self._levels[level + 1][first : first + FANOUT]

    def bucket_entries(self, index: int) -> list[tuple[bytes, bytes]]:
        """(key, value digest) of bucket ``index``, sorted by key."""
        self._flush()
        bucket = self._buckets[index] or {}
        return [(key, entry[-DIGEST_BYTES:]) for key, entry in bucket.items()]


def _invalid(key: object, value: object) -> MerkleError:
    if type(key) is not bytes or type(value) is not bytes:
        return MerkleError(reason="key and value must be bytes", key=type(key).__name__)
    if len(key) > merkle_key_bytes_max:
        return MerkleError(reason="key too long", size=len(key), max=merkle_key_bytes_max)
    return MerkleError(reason="value too long", size=len(value), max=merkle_value_bytes_max)


def diff_keys(a: MerkleMap, b: MerkleMap, limit: int = 16) -> list[bytes]:
    """Keys whose values differ between ``a`` and ``b`` (present in one only counts), sorted.

    Descends only where subtree hashes differ, visiting buckets in tree order and
    stopping after ``limit`` keys, so the cost grows with the divergence found, not
    with the state size. With more than ``limit`` divergent keys the result is the
    first ``limit`` in tree (hash) order, which is deterministic for given contents.
    """
    assert 0 < limit <= merkle_diff_keys_max, f"limit must be in 1..{merkle_diff_keys_max}"
    if a.root() == b.root():
        return []
    found: list[bytes] = []
    _diff_walk(a, b, 0, 0, limit, found)
    return sorted(found)


def _diff_walk(
    a: MerkleMap, b: MerkleMap, level: int, index: int, limit: int, out: list[bytes]
) -> None:
    if level == DEPTH:
        ours = dict(a.bucket_entries(index))
        theirs = dict(b.bucket_entries(index))
        for key in sorted(ours.keys() | theirs.keys()):
            if ours.get(key) != theirs.get(key):
                out.append(key)
                if len(out) >= limit:
                    return
        return
    ours_children = a.child_hashes(level, index)
    theirs_children = b.child_hashes(level, index)
    first = index << FANOUT_BITS
    for offset in range(FANOUT):
        if ours_children[offset] != theirs_children[offset]:
            _diff_walk(a, b, level + 1, first + offset, limit, out)
            if len(out) >= limit:
                return


def root_of(items: Iterable[tuple[bytes, bytes]]) -> bytes:
    """Root of a map built from scratch (a reference for tests and snapshot checks)."""
    return MerkleMap(items).root()
