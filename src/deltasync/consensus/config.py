"""Static settings of one Raft node, and the random source it is given."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from deltasync.core import limits
from deltasync.core.errors import ConfigError


class RandomSource(Protocol):
    """The part of ``random.Random`` the core uses; inject a seeded instance."""

    def randrange(self, start: int, stop: int, /) -> int: ...


@dataclass(frozen=True, slots=True)
class RaftConfig:
    """Static settings of one node.

    ``peers``/``learners`` bootstrap a brand-new cluster: they are used only
    when the node starts without a ``RecoveredState``, and every initial member
    must be started with the same lists. A node joining an existing cluster
    starts with both empty and learns its membership from the leader.
    """

    node_id: int
    peers: tuple[int, ...] = ()
    learners: tuple[int, ...] = ()
    election_timeout_ticks: int = 10
    heartbeat_interval_ticks: int = 1
    pre_vote: bool = True
    check_quorum: bool = True
    entries_per_append_max: int = limits.raft_entries_per_append_max
    append_bytes_max: int = limits.raft_append_bytes_max
    inflight_appends_max: int = limits.raft_inflight_appends_max
    inflight_bytes_max: int = limits.raft_inflight_bytes_max
    snapshot_chunk_bytes: int = limits.raft_snapshot_chunk_bytes
    snapshot_bytes_max: int = limits.raft_snapshot_bytes_max
    uncommitted_bytes_max: int = limits.raft_uncommitted_bytes_max
    apply_bytes_per_ready_max: int = limits.raft_apply_bytes_per_ready_max
    read_index_pending_max: int = limits.raft_read_index_pending_max
    applied_index: int = 0  # entries the state machine already holds beyond the snapshot
    # Let a leader ship appends, heartbeats and snapshot chunks before its own disk write
    # (Ready.early_messages), overlapping its fsync with the followers' (thesis 10.2.1).
    send_before_persist: bool = False

    def __post_init__(self) -> None:
        def bad(key: str, reason: str) -> ConfigError:
            return ConfigError(key=key, reason=reason)

        if self.node_id <= 0:
            raise bad("node_id", "must be positive")
        if any(peer <= 0 for peer in self.peers + self.learners):
            raise bad("peers", "node ids must be positive")
        if set(self.peers) & set(self.learners):
            raise bad("learners", "a node cannot be both peer and learner")
        if len(set(self.peers)) != len(self.peers) or len(set(self.learners)) != len(self.learners):
            raise bad("peers", "duplicate node id")
        if self.learners and not self.peers:
            raise bad("learners", "a bootstrap configuration needs voters")
        if self.heartbeat_interval_ticks <= 0:
            raise bad("heartbeat_interval_ticks", "must be positive")
        if self.election_timeout_ticks <= self.heartbeat_interval_ticks:
            raise bad("election_timeout_ticks", "must exceed the heartbeat interval")
        for key in (
            "entries_per_append_max",
            "append_bytes_max",
            "inflight_appends_max",
            "inflight_bytes_max",
            "snapshot_chunk_bytes",
            "uncommitted_bytes_max",
            "apply_bytes_per_ready_max",
            "read_index_pending_max",
        ):
            if getattr(self, key) <= 0:
                raise bad(key, "must be positive")
        if self.snapshot_chunk_bytes + limits.raft_message_overhead_bytes > limits.frame_bytes_max:
            raise bad("snapshot_chunk_bytes", "a chunk must fit one frame")
        if self.append_bytes_max + limits.raft_message_overhead_bytes > limits.frame_bytes_max:
            raise bad("append_bytes_max", "an append must fit one frame")
