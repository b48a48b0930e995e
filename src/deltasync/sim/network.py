"""The simulated network between nodes: delays, drops, duplicates, reordering, partitions.

Links are directed, so a partition can be one-way (A hears B, B does not hear A).
A message is checked against the partition both when it is sent and when it
would arrive: a partition that starts while a message is in flight eats it,
as a cut cable would. Reordering comes from the delay distribution itself
(independent delays per message) plus rare long spikes.
"""

from __future__ import annotations

import random

from deltasync.sim.config import PPM, SimConfig


class SimNetwork:
    def __init__(self, config: SimConfig, rng: random.Random) -> None:
        self.config = config
        self.rng = rng
        self.blocked: dict[tuple[int, int], None] = {}  # directed (sender, recipient)
        self.faults_on = True
        self.sent = 0
        self.dropped = 0
        self.duplicated = 0

    def delays(self, sender: int, recipient: int) -> list[int]:
        """Delivery delays (ns) for one message: [] when dropped, two when duplicated."""
        self.sent += 1
        if (sender, recipient) in self.blocked:
            self.dropped += 1
            return []
        rng, config = self.rng, self.config
        if self.faults_on and config.drop_ppm and rng.randrange(PPM) < config.drop_ppm:
            self.dropped += 1
            return []
        copies = 1
        if self.faults_on and config.duplicate_ppm and rng.randrange(PPM) < config.duplicate_ppm:
            copies = 2
            self.duplicated += 1
        out = []
        for _ in range(copies):
            delay = config.delay_min_ns + rng.randrange(config.delay_spread_ns)
            if (
                self.faults_on
                and config.delay_spike_ppm
                and rng.randrange(PPM) < config.delay_spike_ppm
            ):
                delay += rng.randrange(config.delay_spike_ns)
            out.append(delay)
        return out

    def can_deliver(self, sender: int, recipient: int) -> bool:
        if (sender, recipient) in self.blocked:
            self.dropped += 1
            return False
        return True

    # --- partitions ---------------------------------------------------------------

    def partition(self, nodes: list[int], rng: random.Random) -> str:
        """Draw a partition: isolate a node, split in two, or cut some links one way."""
        kind = rng.randrange(3)
        if kind == 0:
            lonely = rng.choice(nodes)
            for other in nodes:
                if other != lonely:
                    self.blocked[(lonely, other)] = None
                    self.blocked[(other, lonely)] = None
            return f"isolate {lonely}"
        if kind == 1:
            shuffled = list(nodes)
            rng.shuffle(shuffled)
            cut = rng.randrange(1, len(nodes))
            left, right = sorted(shuffled[:cut]), sorted(shuffled[cut:])
            for a in left:
                for b in right:
                    self.blocked[(a, b)] = None
                    self.blocked[(b, a)] = None
            return f"split {left}|{right}"
        links = [(a, b) for a in nodes for b in nodes if a != b]
        chosen = sorted(rng.sample(links, rng.randrange(1, len(links) // 2 + 1)))
        for link in chosen:
            self.blocked[link] = None
        return "one-way " + ",".join(f"{a}->{b}" for a, b in chosen)

    def heal(self) -> None:
        self.blocked.clear()
