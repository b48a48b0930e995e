"""The log, storage, quorum and flow-control pieces against naive reference models."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from deltasync.consensus import ConfChange, ConfChangeKind, ConfState, Entry, EntryType
from deltasync.consensus.confchange import ConfHistory, apply_change, check_change
from deltasync.consensus.log import RaftLog
from deltasync.consensus.log_storage import MemoryStorage
from deltasync.consensus.progress import Inflights
from deltasync.consensus.quorum import VoteResult, committed_index, vote_result


def log_of(terms: list[int]) -> list[Entry]:
    return [Entry(i + 1, t, EntryType.NORMAL, b"%d" % i) for i, t in enumerate(terms)]


nondecreasing_terms = st.lists(st.integers(1, 4), max_size=12).map(sorted)


@given(nondecreasing_terms, nondecreasing_terms, st.integers(0, 12), st.integers(0, 12))
def test_maybe_append_matches_a_naive_model(
    ours: list[int], leaders: list[int], prev_index: int, commit: int
) -> None:
    """The follower's log after an append equals: the leader's entries (prev, ...] over ours
    if we agree at prev, else unchanged."""
    prev_index = min(prev_index, len(leaders))
    leader_entries = log_of(leaders)
    prev_term = leader_entries[prev_index - 1].term if prev_index else 0
    sent = tuple(leader_entries[prev_index:])
    storage = MemoryStorage(entries=tuple(log_of(ours)))
    log = RaftLog(storage, 0, 0)
    naive = list(log_of(ours))
    agrees = prev_index == 0 or (prev_index <= len(naive) and naive[prev_index - 1].term == prev_term)
    result = log.maybe_append(prev_index, prev_term, min(commit, len(leaders)), sent)
    if not agrees:
        assert result is None and storage.entries == naive
        return
    for entry in sent:  # naive: replace from the first disagreement on
        position = entry.index - 1
        if position < len(naive) and naive[position].term != entry.term:
            del naive[position:]
        if position >= len(naive):
            naive.append(entry)
    assert result is not None and result[0] == prev_index + len(sent)
    assert storage.entries == naive
    assert log.committed == min(commit, len(leaders), prev_index + len(sent))


@given(st.lists(st.binary(max_size=30), min_size=1, max_size=20), st.integers(1, 100))
def test_slices_respect_bytes_but_always_make_progress(payloads: list[bytes], bytes_max: int) -> None:
    entries = tuple(Entry(i + 1, 1, EntryType.NORMAL, p) for i, p in enumerate(payloads))
    storage = MemoryStorage(entries=entries)
    chunk = storage.slice(1, len(entries) + 1, bytes_max)
    assert chunk and chunk == list(entries[: len(chunk)])
    assert len(chunk) == 1 or sum(len(e.data) for e in chunk) <= bytes_max
    if len(chunk) < len(entries):
        assert sum(len(e.data) for e in entries[: len(chunk) + 1]) > bytes_max


@given(st.lists(st.integers(0, 20), min_size=1, max_size=7))
def test_committed_index_is_the_highest_index_a_majority_holds(matches: list[int]) -> None:
    voters = list(range(1, len(matches) + 1))
    match_of = dict(zip(voters, matches, strict=True))
    quorum = len(voters) // 2 + 1
    naive = max(i for i in range(0, 21) if sum(m >= i for m in matches) >= quorum)
    assert committed_index(voters, match_of) == naive


@given(st.lists(st.sampled_from([True, False, None]), min_size=1, max_size=7))
def test_vote_result(answers: list[bool | None]) -> None:
    voters = list(range(1, len(answers) + 1))
    granted = {v: a for v, a in zip(voters, answers, strict=True) if a is not None}
    yes = sum(1 for a in answers if a is True)
    undecided = sum(1 for a in answers if a is None)
    quorum = len(voters) // 2 + 1
    expected = (
        VoteResult.WON if yes >= quorum else VoteResult.LOST if yes + undecided < quorum else VoteResult.PENDING
    )
    assert vote_result(voters, granted) is expected


@given(st.lists(st.tuples(st.integers(1, 50), st.booleans()), max_size=60))
def test_inflights_never_exceed_their_bounds(operations: list[tuple[int, bool]]) -> None:
    window = Inflights(count_max=4, bytes_max=100)
    last = 0
    for size, acknowledge in operations:
        if acknowledge:
            window.free_to(last - 1)
        elif not window.full():
            last += 1
            window.add(last, size)
        assert window.count() <= 4
        assert window.size_bytes() < 100 + 50  # may cross the byte bound by one append only


changes = st.builds(
    ConfChange, kind=st.sampled_from(list(ConfChangeKind)), node_id=st.integers(1, 5)
)


@given(st.lists(changes, max_size=12), st.integers(0, 12))
def test_conf_history_rolls_back_on_truncation(sequence: list[ConfChange], cut: int) -> None:
    from deltasync.consensus import encode_conf_change

    base = ConfState(voters=(1,))
    history = ConfHistory(0, base)
    entries = [
        Entry(i + 1, 1, EntryType.CONF_CHANGE, encode_conf_change(change))
        for i, change in enumerate(sequence)
    ]
    history.observe(entries)
    expected = base
    states = [base]
    for change in sequence:
        reason = check_change(expected, change)
        expected = apply_change(expected, change)
        # A valid change changes the membership; an invalid one leaves it as it was.
        assert (expected != states[-1]) == (reason is None)
        assert expected.voters, "never left without voters"
        states.append(expected)
    assert history.latest() == states[-1]
    for index, state in enumerate(states):
        assert history.at(index) == state
    cut = min(cut, len(sequence))
    history.truncate_from(cut + 1)
    assert history.latest() == states[cut]
