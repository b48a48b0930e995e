"""Majority arithmetic over a set of voters."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from enum import Enum


class VoteResult(Enum):
    PENDING = "pending"
    WON = "won"
    LOST = "lost"


def quorum_size(voter_count: int) -> int:
    return voter_count // 2 + 1


def committed_index(voters: Iterable[int], match_of: Mapping[int, int]) -> int:
    """The highest index held by a majority of ``voters`` (0 with no voters)."""
    matches = sorted((match_of.get(voter, 0) for voter in voters), reverse=True)
    if not matches:
        return 0
    return matches[quorum_size(len(matches)) - 1]


def vote_result(voters: Iterable[int], granted: Mapping[int, bool]) -> VoteResult:
    voter_list = list(voters)
    need = quorum_size(len(voter_list))
    yes = sum(1 for voter in voter_list if granted.get(voter) is True)
    no = sum(1 for voter in voter_list if granted.get(voter) is False)
    if yes >= need:
        return VoteResult.WON
    if len(voter_list) - no < need:
        return VoteResult.LOST
    return VoteResult.PENDING


def has_quorum(voters: Iterable[int], members: Iterable[int]) -> bool:
    """Do ``members`` include a majority of ``voters``?"""
    voter_list = list(voters)
    present = set(members)
    return sum(1 for voter in voter_list if voter in present) >= quorum_size(len(voter_list))
