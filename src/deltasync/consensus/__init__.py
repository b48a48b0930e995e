"""Consensus cores (Raft, later BFT): sans-I/O, payloads are opaque bytes. Imports only `core`.

The stable API of the Raft core: build a ``RaftNode`` from a ``RaftConfig``, a
``RecoveredState`` (or None for a new node) and a seeded random source; feed it
``step``/``tick``/``propose``...; act on each ``Ready`` as its docstring says.
Messages travel with ``RAFT_MESSAGES.encode``/``decode``. See docs/raft.md.
"""

from deltasync.consensus.confchange import apply_change, check_change
from deltasync.consensus.config import RaftConfig, RandomSource
from deltasync.consensus.log_storage import MemoryStorage
from deltasync.consensus.messages import (
    MESSAGE_TYPES,
    NO_NODE,
    RAFT_MESSAGES,
    AppendEntries,
    AppendResponse,
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryType,
    HardState,
    Heartbeat,
    HeartbeatResponse,
    InstallSnapshot,
    Message,
    ReadIndexRequest,
    ReadIndexResponse,
    Snapshot,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_conf_change,
    encode_conf_change,
)
from deltasync.consensus.raft import RaftNode
from deltasync.consensus.readonly import ReadState
from deltasync.consensus.state import (
    ProgressStatus,
    RaftUsageError,
    Ready,
    RecoveredState,
    RecoveryError,
    Rejected,
    RequestRejectReason,
    Role,
    SoftState,
    Status,
)

__all__ = [
    "MESSAGE_TYPES",
    "NO_NODE",
    "RAFT_MESSAGES",
    "AppendEntries",
    "AppendResponse",
    "ConfChange",
    "ConfChangeKind",
    "ConfState",
    "Entry",
    "EntryType",
    "HardState",
    "Heartbeat",
    "HeartbeatResponse",
    "InstallSnapshot",
    "MemoryStorage",
    "Message",
    "ProgressStatus",
    "RaftConfig",
    "RaftNode",
    "RaftUsageError",
    "RandomSource",
    "ReadIndexRequest",
    "ReadIndexResponse",
    "ReadState",
    "Ready",
    "RecoveredState",
    "RecoveryError",
    "Rejected",
    "RequestRejectReason",
    "Role",
    "Snapshot",
    "SnapshotMeta",
    "SnapshotResponse",
    "SoftState",
    "Status",
    "TimeoutNow",
    "VoteRequest",
    "VoteResponse",
    "apply_change",
    "check_change",
    "decode_conf_change",
    "encode_conf_change",
]
