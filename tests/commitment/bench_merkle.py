"""Micro-benchmark of the state root (not collected by pytest; no timing assertions).

    .venv/bin/python -m tests.commitment.bench_merkle

``bench_root_us_per_key`` is the recipe behind the official ``state_root_us_per_key``:
fill a map with ``n_keys`` keys and take one root (untimed), then for each round
change ``n_changed`` existing keys and time ``root()`` alone; report the median
round time divided by ``n_changed``.
"""

from __future__ import annotations

import statistics
import time

from deltasync.commitment.merkle import MerkleMap


def bench_root_us_per_key(n_keys: int = 100_000, n_changed: int = 1_000, rounds: int = 20) -> float:
    m = MerkleMap()
    for i in range(n_keys):
        m.set(b"acct/%010d" % i, b"%0120d" % i)
    m.root()
    samples = []
    stride = 7919  # prime: rounds touch keys spread over the whole state
    for round_index in range(rounds):
        for j in range(n_changed):
            index = (round_index * n_changed + j) * stride % n_keys
            m.set(b"acct/%010d" % index, b"%0120d" % (index + round_index + 1))
        start = time.perf_counter()
        m.root()
        samples.append(time.perf_counter() - start)
    return statistics.median(samples) / n_changed * 1e6


if __name__ == "__main__":
    for n_changed in (10, 100, 1_000, 10_000):
        figure = bench_root_us_per_key(100_000, n_changed, rounds=10)
        print(f"n_keys=100000 n_changed={n_changed}: {figure:.2f} us/key")
