"""Everything a simulation run does, drawn from one integer seed.

``SimConfig.from_seed(seed)`` draws the cluster size, the node settings, the
network's delay distribution and fault rates, the nemesis (crashes, partitions,
disk faults), every node's clock skew and drift, and the workload's shape. The
run itself then draws its moment-to-moment choices from ``random.Random``
streams derived from the same seed, one stream per concern, so that changing
how often one concern draws does not reshuffle the others.

Rates are integers in parts per million (``*_ppm``); times are integer
nanoseconds of true (simulated) time unless a name says otherwise.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass, fields, replace
from typing import Any

from deltasync.core import limits

NS_PER_MS = 1_000_000
NS_PER_S = 1_000_000_000
PPM = 1_000_000
CONVERGE_NS = 2 * NS_PER_S  # at the end, running nodes must reach the height of this long before


def stream(seed: int, name: str) -> random.Random:
    """An independent ``random.Random`` for one concern of one run (stable across versions)."""
    digest = hashlib.sha256(f"deltasync-sim/{seed}/{name}".encode()).digest()
    return random.Random(int.from_bytes(digest[:16], "big"))


@dataclass(frozen=True, slots=True)
class SimConfig:
    seed: int
    nodes: int
    # time
    steps: int  # safety-phase length, in ticks of tick_ns
    tick_ns: int  # a node ticks every tick_ns of its own clock
    liveness_bound_ns: int  # after healing, the cluster must commit within this
    settle_ns: int  # workload stops this long before the end; then everything must converge
    # node settings
    election_ticks: int
    heartbeat_ticks: int
    snapshot_every_blocks: int
    idle_block_ns: int
    forward_retry_ns: int
    request_timeout_ns: int
    # network
    delay_min_ns: int
    delay_spread_ns: int
    delay_spike_ppm: int  # a message this often takes up to delay_spike_ns longer (reordering)
    delay_spike_ns: int
    drop_ppm: int
    duplicate_ppm: int
    # nemesis: one draw every nemesis_interval_ns of the safety phase
    nemesis_interval_ns: int
    crash_ppm: int
    restart_ppm: int
    partition_ppm: int
    heal_ppm: int
    torn_write_ppm: int  # at a crash, unsynced appends keep a random prefix
    faulty_disks: tuple[int, ...]  # nodes whose disks may lose fsyncs or rot (at most f)
    lost_fsync_ppm: int
    bit_flip_ppm: int
    disk_error_ppm: int  # an I/O error (EIO) on the next write, fsync or directory fsync of a node
    # clocks (per node, index = node id - 1)
    clock_offset_ns: tuple[int, ...]
    clock_drift_ppm: tuple[int, ...]
    # workload
    funding_clients: int
    funding_accounts: int
    trading_clients: int
    think_ns_max: int
    client_timeout_ns: int
    client_attempts_max: int
    expiry_in_ns: int  # the first expiry happens this long after the start
    # oracle (0 sources: no oracle extension; otherwise signed reports gate trading)
    oracle_sources: int
    oracle_interval_ns: int  # each source reports this often
    oracle_staleness_ns: int
    oracle_stale_ppm: int  # a report carries an old timestamp (replay / lagging source)
    oracle_outlier_ppm: int  # a report is far off the market
    oracle_jump_ppm: int  # the market jumps 5-15 % before a report
    oracle_pause_ppm: int  # nemesis: every source goes quiet for a while (the index goes stale)
    clock_step_ppm: int  # nemesis: a node's clock steps (NTP) by up to +-3 s
    transfer_ppm: int  # nemesis: the leader hands leadership to another voter
    pause_ppm: int  # nemesis: a node freezes for 0.1-4 s (GC pause, SIGSTOP), then carries on

    @property
    def clock_skew_bound_ns(self) -> int:
        """How far any node's clock can be from true time during the run."""
        run_ns = self.safety_ns + self.liveness_bound_ns + self.settle_ns
        offset = max(abs(o) for o in self.clock_offset_ns) + (
            limits.sim_clock_step_ns_max if self.clock_step_ppm else 0
        )
        drift = max(abs(d) for d in self.clock_drift_ppm) * run_ns // PPM
        return offset + drift

    def __post_init__(self) -> None:
        n = self.nodes
        if n not in (3, 5):
            raise ValueError(f"nodes must be 3 or 5, got {n}")
        if len(self.clock_offset_ns) != n or len(self.clock_drift_ppm) != n:
            raise ValueError("clock_offset_ns and clock_drift_ppm need one value per node")
        if (
            not set(self.faulty_disks) <= set(range(1, n + 1))
            or len(self.faulty_disks) > (n - 1) // 2
        ):
            raise ValueError("faulty_disks: at most f = (nodes - 1) // 2 node ids")
        if self.steps < 1 or self.tick_ns < 1 or self.settle_ns <= CONVERGE_NS:
            raise ValueError("steps and tick_ns must be positive, settle_ns above CONVERGE_NS")

    @property
    def quorum(self) -> int:
        return self.nodes // 2 + 1

    @property
    def safety_ns(self) -> int:
        return self.steps * self.tick_ns

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def with_overrides(self, **changes: Any) -> SimConfig:
        return replace(self, **changes)

    @staticmethod
    def from_seed(seed: int, nodes: int | None = None, steps: int | None = None) -> SimConfig:
        rng = stream(seed, "config")
        n = nodes if nodes is not None else rng.choice((3, 3, 5))
        tick_ns = rng.choice((10, 20, 25)) * NS_PER_MS
        election_ticks = max(8, 250 * NS_PER_MS // tick_ns + rng.randrange(0, 10))
        heartbeat_ticks = max(1, election_ticks // rng.choice((5, 8, 10)))
        f = (n - 1) // 2
        faulty = tuple(sorted(rng.sample(range(1, n + 1), rng.randrange(0, f + 1))))
        calm = rng.randrange(PPM) < 150_000  # some seeds run with few faults
        scale = 4 if calm else 1
        return SimConfig(
            seed=seed,
            nodes=n,
            steps=steps if steps is not None else 20 * NS_PER_S // tick_ns,
            tick_ns=tick_ns,
            liveness_bound_ns=15 * NS_PER_S,
            settle_ns=5 * NS_PER_S,
            election_ticks=election_ticks,
            heartbeat_ticks=heartbeat_ticks,
            snapshot_every_blocks=rng.choice((20, 50, 200, 2000)),
            idle_block_ns=rng.choice((100, 250, 500)) * NS_PER_MS,
            forward_retry_ns=rng.choice((200, 300, 600)) * NS_PER_MS,
            request_timeout_ns=rng.choice((3, 5, 10)) * NS_PER_S,
            delay_min_ns=rng.randrange(50_000, 2 * NS_PER_MS),
            delay_spread_ns=rng.randrange(NS_PER_MS, 30 * NS_PER_MS),
            delay_spike_ppm=rng.choice((0, 5_000, 50_000)),
            delay_spike_ns=rng.randrange(50, 800) * NS_PER_MS,
            drop_ppm=rng.choice((0, 2_000, 20_000, 100_000)) // scale,
            duplicate_ppm=rng.choice((0, 5_000, 30_000)) // scale,
            nemesis_interval_ns=rng.choice((200, 500, 1000)) * NS_PER_MS,
            crash_ppm=rng.choice((20_000, 60_000, 150_000)) // scale,
            restart_ppm=rng.choice((200_000, 500_000)),
            partition_ppm=rng.choice((20_000, 60_000, 150_000)) // scale,
            heal_ppm=rng.choice((150_000, 400_000)),
            torn_write_ppm=rng.choice((0, 500_000, PPM)),
            faulty_disks=faulty,
            lost_fsync_ppm=rng.choice((0, 20_000, 80_000)) if faulty else 0,
            bit_flip_ppm=rng.choice((0, 10_000, 40_000)) if faulty else 0,
            disk_error_ppm=rng.choice((0, 0, 10_000, 40_000)) // scale,
            clock_offset_ns=tuple(
                rng.randrange(-2 * NS_PER_S, 2 * NS_PER_S) if rng.randrange(3) else 0
                for _ in range(n)
            ),
            clock_drift_ppm=tuple(rng.randrange(-500, 501) for _ in range(n)),
            funding_clients=rng.randrange(2, 6),
            funding_accounts=rng.randrange(1, 4),
            trading_clients=rng.randrange(1, 5),
            think_ns_max=rng.choice((50, 150, 400)) * NS_PER_MS,
            client_timeout_ns=rng.choice((500, 1000, 2000)) * NS_PER_MS,
            client_attempts_max=rng.randrange(3, 8),
            expiry_in_ns=rng.randrange(3, 60) * NS_PER_S,
            oracle_sources=rng.choice((0, 3, 3, 3)),
            oracle_interval_ns=rng.choice((300, 700, 1500)) * NS_PER_MS,
            oracle_staleness_ns=rng.choice((3, 5, 10)) * NS_PER_S,
            oracle_stale_ppm=rng.choice((0, 30_000, 100_000)),
            oracle_outlier_ppm=rng.choice((0, 30_000, 100_000)),
            oracle_jump_ppm=rng.choice((0, 10_000, 40_000)),
            oracle_pause_ppm=rng.choice((0, 20_000, 60_000)) // scale,
            clock_step_ppm=rng.choice((0, 10_000, 40_000)) // scale,
            transfer_ppm=rng.choice((0, 20_000, 60_000)) // scale,
            pause_ppm=rng.choice((0, 30_000, 80_000)) // scale,
        )
