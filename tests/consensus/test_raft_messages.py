"""Every Raft message and durable value survives the canonical codec unchanged."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from deltasync.consensus import (
    MESSAGE_TYPES,
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
    ReadIndexRequest,
    ReadIndexResponse,
    SnapshotMeta,
    SnapshotResponse,
    TimeoutNow,
    VoteRequest,
    VoteResponse,
    decode_conf_change,
    encode_conf_change,
)
from deltasync.core.errors import CodecError

ids = st.integers(1, 1000)
terms = st.integers(0, 2**40)
entries = st.builds(
    Entry,
    index=st.integers(1, 2**40),
    term=st.integers(1, 2**40),
    type=st.sampled_from(EntryType),
    data=st.binary(max_size=64),
)
metas = st.builds(
    SnapshotMeta,
    index=st.integers(0, 2**40),
    term=terms,
    conf_state=st.just(ConfState(voters=(1, 2, 3), learners=(4,))),
)
messages = st.one_of(
    st.builds(
        AppendEntries,
        sender=ids,
        recipient=ids,
        term=terms,
        prev_index=terms,
        prev_term=terms,
        entries=st.lists(entries, max_size=4).map(tuple),
        commit=terms,
    ),
    st.builds(AppendResponse, ids, ids, terms, terms, st.booleans(), terms, terms),
    st.builds(Heartbeat, ids, ids, terms, terms, st.binary(max_size=8)),
    st.builds(HeartbeatResponse, ids, ids, terms, st.binary(max_size=8)),
    st.builds(VoteRequest, ids, ids, terms, terms, terms, st.booleans(), st.booleans()),
    st.builds(VoteResponse, ids, ids, terms, st.booleans(), st.booleans()),
    st.builds(
        InstallSnapshot, ids, ids, terms, metas, terms, terms, st.binary(max_size=32), st.booleans()
    ),
    st.builds(SnapshotResponse, ids, ids, terms, terms, terms),
    st.builds(TimeoutNow, ids, ids, terms),
    st.builds(ReadIndexRequest, ids, ids, terms, st.binary(min_size=1, max_size=8)),
    st.builds(ReadIndexResponse, ids, ids, terms, terms, st.binary(min_size=1, max_size=8)),
)


@given(messages)
def test_messages_round_trip(message: object) -> None:
    data = RAFT_MESSAGES.encode(message)
    assert RAFT_MESSAGES.decode(data, canonical=True) == message


def test_every_message_type_is_registered() -> None:
    registered = set(RAFT_MESSAGES.classes())
    assert set(MESSAGE_TYPES) <= registered
    for value_type in (Entry, HardState, ConfState, ConfChange, SnapshotMeta):
        assert value_type in registered


def test_durable_values_round_trip() -> None:
    for value in (
        HardState(term=7, vote=2, commit=40),
        Entry(5, 3, EntryType.CONF_CHANGE, encode_conf_change(ConfChange(ConfChangeKind.ADD_LEARNER, 9))),
        SnapshotMeta(10, 4, ConfState((1, 2), (3,))),
    ):
        assert RAFT_MESSAGES.decode(RAFT_MESSAGES.encode(value)) == value
    change = ConfChange(ConfChangeKind.REMOVE_NODE, 4)
    assert decode_conf_change(encode_conf_change(change)) == change


def test_invalid_values_are_refused_on_decode() -> None:
    wire = RAFT_MESSAGES.to_wire(Entry(1, 1, EntryType.NORMAL, b"x"))
    wire[1] = 0  # index 0 is not a log position
    from deltasync.core.codec import encode

    with pytest.raises(CodecError):
        RAFT_MESSAGES.decode(encode(wire))
    with pytest.raises(CodecError):
        RAFT_MESSAGES.decode(encode([10, 1, 2]))  # AppendEntries with fields missing


def test_conf_state_must_be_sorted_and_disjoint() -> None:
    with pytest.raises(AssertionError):
        ConfState(voters=(2, 1))
    with pytest.raises(AssertionError):
        ConfState(voters=(1, 2), learners=(2,))
