"""The same command log gives the same state root in processes with different PYTHONHASHSEED."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from deltasync.core.codec import encode
from deltasync.demo.in_process import MarketScenario
from deltasync.exchange.commands import COMMANDS
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.state import ExchangeState

REPLAY = """
import sys
from deltasync.core.codec import decode
from deltasync.exchange.commands import COMMANDS
from deltasync.exchange.genesis import default_genesis
from deltasync.exchange.state import ExchangeState
from deltasync.exchange import invariants

log = decode(open(sys.argv[1], "rb").read(), canonical=True, max_bytes=1 << 30)
state = ExchangeState.from_genesis(default_genesis())
for height, time_ns, wires in log:
    state.apply_block(height, time_ns, [COMMANDS.from_wire(w) for w in wires])
assert invariants.check_invariants(state) == []
print(state.state_root().hex(), ExchangeState.restore(state.snapshot_bytes()).state_root().hex())
"""


def test_replay_in_processes_with_different_hash_seeds(tmp_path: Path) -> None:
    config = default_genesis()
    state = ExchangeState.from_genesis(config)
    scenario = MarketScenario(config, seed=5)
    log = []
    for _ in range(30):
        height, time_ns, commands = scenario.next_block(state)
        state.apply_block(height, time_ns, commands)
        log.append([height, time_ns, [COMMANDS.to_wire(c) for c in commands]])
    assert state.trades_total > 50
    path = tmp_path / "log.bin"
    path.write_bytes(encode(log))
    roots = set()
    for seed in ("0", "1", "12345"):
        env = dict(os.environ, PYTHONHASHSEED=seed)
        out = subprocess.run(
            [sys.executable, "-c", REPLAY, str(path)], env=env, capture_output=True, text=True,
            timeout=120, check=True,
        ).stdout.split()
        assert out[0] == out[1]  # restored from a snapshot: same root
        roots.add(out[0])
    assert roots == {state.state_root().hex()}
