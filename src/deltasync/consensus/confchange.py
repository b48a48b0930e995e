"""Membership changes, one server at a time (Raft dissertation, section 4.1).

A node uses the newest configuration in its log, committed or not: a change
takes effect when its entry is appended, and is undone if that entry is
truncated away. Because any two majorities of configurations that differ by one
voter overlap, no two leaders can be elected for one term even while nodes
disagree about the configuration. Safety needs two more rules, enforced by the
leader when it accepts a proposal (``check_change``): at most one change may be
uncommitted at a time, and a new leader accepts none until an entry of its own
term is committed (the fix Ongaro published for the single-server algorithm).

``ConfHistory`` keeps every configuration still needed: the one of the
snapshot, then one per CONF_CHANGE entry in the log, so the configuration in
force at any held index can be found, and truncation can roll back.
"""

from __future__ import annotations

from collections.abc import Iterable

from deltasync.consensus.messages import (
    ConfChange,
    ConfChangeKind,
    ConfState,
    Entry,
    EntryType,
    decode_conf_change,
)


def check_change(conf: ConfState, change: ConfChange) -> str | None:
    """Why ``change`` is not a valid single-server change of ``conf``; None if valid."""
    node = change.node_id
    match change.kind:
        case ConfChangeKind.ADD_VOTER:
            if node in conf.voters:
                return f"node {node} is already a voter"
        case ConfChangeKind.ADD_LEARNER:
            if node in conf.voters:
                return f"node {node} is a voter; demoting voters is not supported"
            if node in conf.learners:
                return f"node {node} is already a learner"
        case ConfChangeKind.REMOVE_NODE:
            if node not in conf.voters and node not in conf.learners:
                return f"node {node} is not a member"
            if conf.voters == (node,):
                return f"removing node {node} would leave no voters"
    return None


def apply_change(conf: ConfState, change: ConfChange) -> ConfState:
    """The configuration after ``change``; an invalid change leaves it as it is.

    Every node applies the same entries through this function, so an invalid
    change that slipped into the log is ignored identically everywhere.
    """
    if check_change(conf, change) is not None:
        return conf
    voters = set(conf.voters)
    learners = set(conf.learners)
    node = change.node_id
    match change.kind:
        case ConfChangeKind.ADD_VOTER:
            learners.discard(node)
            voters.add(node)
        case ConfChangeKind.ADD_LEARNER:
            learners.add(node)
        case ConfChangeKind.REMOVE_NODE:
            voters.discard(node)
            learners.discard(node)
    return ConfState(voters=tuple(sorted(voters)), learners=tuple(sorted(learners)))


class ConfHistory:
    """(index, configuration) pairs in index order; the first is the snapshot's."""

    __slots__ = ("_items",)

    def __init__(self, base_index: int, base: ConfState) -> None:
        self._items: list[tuple[int, ConfState]] = [(base_index, base)]

    def latest(self) -> ConfState:
        return self._items[-1][1]

    def latest_index(self) -> int:
        """The index of the newest CONF_CHANGE entry (or the snapshot's index)."""
        return self._items[-1][0]

    def at(self, index: int) -> ConfState:
        """The configuration in force once the log reaches ``index``."""
        assert index >= self._items[0][0], f"configuration at {index} was compacted"
        found = self._items[0][1]
        for item_index, conf in self._items:
            if item_index > index:
                break
            found = conf
        return found

    def observe(self, entries: Iterable[Entry]) -> bool:
        """Record the changes in newly appended entries; True if the configuration changed."""
        changed = False
        for entry in entries:
            if entry.type is EntryType.CONF_CHANGE:
                self._items.append((entry.index, apply_change(self.latest(), decode_conf_change(entry.data))))
                changed = True
        return changed

    def truncate_from(self, index: int) -> bool:
        """Entries at ``index`` and after were replaced: drop their changes."""
        changed = False
        while len(self._items) > 1 and self._items[-1][0] >= index:
            self._items.pop()
            changed = True
        return changed

    def compact_to(self, index: int) -> None:
        """The snapshot now covers ``index``: forget changes no longer needed."""
        conf = self.at(index)
        self._items = [(index, conf)] + [item for item in self._items if item[0] > index]

    def reset(self, index: int, conf: ConfState) -> None:
        self._items = [(index, conf)]
