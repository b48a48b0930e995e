"""Scripted Raft scenarios in the style of etcd's datadriven tests.

A scenario file is a list of blocks::

    # comments and blank lines between blocks are kept as they are
    command arg arg key=value
    ----
    expected output (one or more lines; "ok" when the command prints nothing)

Commands (node ids are integers):

    add-nodes N [pre-vote=false] [check-quorum=false] [election=T] [heartbeat=T]
                [chunk=BYTES] [inflight=N] [entries-per-append=N] [seed=N]
                [send-before-persist=true]
    campaign ID                       start an election on ID now
    tick ID [N] | tick-all [N]        advance logical clocks (then run Ready loops)
    run N [quiet]                     N times: tick every node, then stabilize
    deliver [from=ID] [to=ID] [quiet] [hold]
                                      deliver the messages in flight now (one round);
                                      with hold, the receivers' Readys are not processed yet
    drop [from=ID] [to=ID]            lose messages in flight
    stabilize [quiet]                 deliver rounds until no message is in flight
    network                           list the messages in flight
    partition 1 2 / 3                 only nodes in one group talk; heal ends it
    propose ID DATA                   prints the index or why it was refused
    crash ID | restart ID             lose the core (unpersisted state too) / rebuild it from disk
    crash-in-next-ready ID            crash ID during its next Ready: after its early
                                      messages left, before it persisted anything
    compact ID INDEX                  snapshot ID's state machine at INDEX and drop its log prefix
    add-node [LEADER] ID | add-learner [LEADER] ID | promote [LEADER] ID | remove-node [LEADER] ID
                                      one membership change, proposed on LEADER (default:
                                      the current leader); a new node starts empty
    transfer LEADER TO                leadership transfer
    read-index ID CONTEXT             a ReadIndex read; "ID read ctx=... index=..." when served
    status [ID ...] | log ID          inspect nodes

``DELTASYNC_REWRITE=1`` rewrites the expected outputs with what the run printed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from raft_harness import Cluster, describe_entries, describe_message

from deltasync.consensus import ConfChangeKind, Message, Rejected, Role

SEPARATOR = "----"


@dataclass
class Block:
    preamble: list[str]  # comment and blank lines before the command
    command: str
    expected: list[str]


def parse(text: str) -> tuple[list[Block], list[str]]:
    lines = text.splitlines()
    blocks: list[Block] = []
    preamble: list[str] = []
    position = 0
    while position < len(lines):
        line = lines[position]
        if not line.strip() or line.startswith("#"):
            preamble.append(line)
            position += 1
            continue
        command = line
        position += 1
        if position >= len(lines) or lines[position] != SEPARATOR:
            raise ValueError(f"line {position}: expected {SEPARATOR!r} after {command!r}")
        position += 1
        expected: list[str] = []
        while position < len(lines) and lines[position].strip():
            expected.append(lines[position])
            position += 1
        blocks.append(Block(preamble, command, expected))
        preamble = []
    return blocks, preamble


def render(blocks: list[Block], outputs: list[list[str]], trailer: list[str]) -> str:
    out: list[str] = []
    for block, output in zip(blocks, outputs, strict=True):
        out += block.preamble
        out += [block.command, SEPARATOR]
        out += output or ["ok"]
    out += trailer
    return "\n".join(out).rstrip("\n") + "\n"


_CONFIG_KEYS = {
    "pre-vote": ("pre_vote", lambda v: v == "true"),
    "check-quorum": ("check_quorum", lambda v: v == "true"),
    "election": ("election_timeout_ticks", int),
    "heartbeat": ("heartbeat_interval_ticks", int),
    "chunk": ("snapshot_chunk_bytes", int),
    "inflight": ("inflight_appends_max", int),
    "entries-per-append": ("entries_per_append_max", int),
    "send-before-persist": ("send_before_persist", lambda v: v == "true"),
}


class Interpreter:
    def __init__(self) -> None:
        self.cluster: Cluster | None = None
        self.output: list[str] = []
        self.command = ""

    @property
    def c(self) -> Cluster:
        assert self.cluster is not None, "add-nodes first"
        return self.cluster

    def run(self, command: str) -> list[str]:
        self.output = []
        self.command = command
        words = command.split()
        name, args = words[0], words[1:]
        flags = {arg.split("=", 1)[0]: arg.split("=", 1)[1] for arg in args if "=" in arg}
        plain = [arg for arg in args if "=" not in arg]
        handler = getattr(self, "cmd_" + name.replace("-", "_"), None)
        if handler is None:
            raise ValueError(f"unknown command {name!r}")
        handler(plain, flags)
        return self.output

    def emit(self, line: str) -> None:
        self.output.append(line)

    # --- commands -----------------------------------------------------------

    def cmd_add_nodes(self, args: list[str], flags: dict[str, str]) -> None:
        overrides: dict[str, object] = {}
        for key, value in flags.items():
            if key == "seed":
                continue
            field, convert = _CONFIG_KEYS[key]
            overrides[field] = convert(value)
        if self.cluster is None:
            self.cluster = Cluster(seed=int(flags.get("seed", "0")), printer=self.emit, **overrides)
        self.c.add_nodes(int(args[0]))
        self.c.process()

    def cmd_campaign(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.raft(int(args[0])).campaign()
        self.c.process()

    def cmd_tick(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.tick(int(args[0]), int(args[1]) if len(args) > 1 else 1)

    def cmd_tick_all(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.tick_all(int(args[0]) if args else 1)

    def _selector(self, flags: dict[str, str]):  # type: ignore[no-untyped-def]
        sender = int(flags["from"]) if "from" in flags else None
        recipient = int(flags["to"]) if "to" in flags else None

        def select(message: Message) -> bool:
            return (sender is None or message.sender == sender) and (
                recipient is None or message.recipient == recipient
            )

        return select

    def cmd_run(self, args: list[str], flags: dict[str, str]) -> None:
        """N rounds of: tick every live node once, then stabilize (time passing, network up)."""
        for _ in range(int(args[0])):
            self.c.tick_all(1)
            self.c.stabilize(verbose="quiet" not in args)

    def cmd_deliver(self, args: list[str], flags: dict[str, str]) -> None:
        if "hold" in args:
            # Step the messages but do not run the Ready loops: nothing is persisted
            # or sent until the next command (a crash now loses it all).
            select = self._selector(flags)
            batch = [m for m in self.c.network if select(m)]
            self.c.network = [m for m in self.c.network if not select(m)]
            for message in batch:
                self.c.deliver_one(message, verbose="quiet" not in args)
            return
        self.c.deliver(self._selector(flags), verbose="quiet" not in args)

    def cmd_drop(self, args: list[str], flags: dict[str, str]) -> None:
        select = self._selector(flags)
        for message in self.c.network:
            if select(message):
                self.emit(f"{describe_message(message)} (dropped)")
        self.c.network = [m for m in self.c.network if not select(m)]

    def cmd_stabilize(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.stabilize(verbose="quiet" not in args)

    def cmd_network(self, args: list[str], flags: dict[str, str]) -> None:
        for message in self.c.network:
            self.emit(describe_message(message))

    def cmd_partition(self, args: list[str], flags: dict[str, str]) -> None:
        groups: list[set[int]] = [set()]
        for arg in args:
            if arg == "/":
                groups.append(set())
            else:
                groups[-1].add(int(arg))
        self.c.partition(groups)

    def cmd_heal(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.heal()

    def _result(self, node_id: int, what: str, result: int | Rejected | None) -> None:
        if isinstance(result, Rejected):
            self.emit(f"{node_id} {what}: {result}")
        elif isinstance(result, int):
            self.emit(f"{node_id} {what}: index {result}")
        else:
            self.emit(f"{node_id} {what}: started")
        self.c.process()

    def cmd_propose(self, args: list[str], flags: dict[str, str]) -> None:
        node_id = int(args[0])
        data = self.command.split(maxsplit=2)[2] if len(self.command.split()) > 2 else ""
        self._result(node_id, "propose", self.c.raft(node_id).propose(data.encode()))

    def cmd_crash(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.crash(int(args[0]))

    def cmd_crash_in_next_ready(self, args: list[str], flags: dict[str, str]) -> None:
        self.c.crash_during_persist.add(int(args[0]))

    def cmd_restart(self, args: list[str], flags: dict[str, str]) -> None:
        node_id = int(args[0])
        self.c.restart(node_id)
        self.c.process()

    def cmd_compact(self, args: list[str], flags: dict[str, str]) -> None:
        node_id, index = int(args[0]), int(args[1])
        self.c.nodes[node_id].compact(index)
        self.emit(f"{node_id} snapshot at {index}, log {self._log_range(node_id)}")

    def _conf(self, args: list[str], kind: ConfChangeKind, label: str) -> None:
        if len(args) == 1:  # no leader named: ask the current one
            leader = self.c.leader()
            assert leader is not None, f"{label}: no leader"
            node_id = int(args[0])
        else:
            leader, node_id = int(args[0]), int(args[1])
        if kind is not ConfChangeKind.REMOVE_NODE:
            self.c.start_joining(node_id)
        self._result(leader, f"{label} {node_id}", self.c.conf_change(leader, kind, node_id))

    def cmd_add_node(self, args: list[str], flags: dict[str, str]) -> None:
        self._conf(args, ConfChangeKind.ADD_VOTER, "add-node")

    def cmd_add_learner(self, args: list[str], flags: dict[str, str]) -> None:
        self._conf(args, ConfChangeKind.ADD_LEARNER, "add-learner")

    def cmd_promote(self, args: list[str], flags: dict[str, str]) -> None:
        self._conf(args, ConfChangeKind.ADD_VOTER, "promote")

    def cmd_remove_node(self, args: list[str], flags: dict[str, str]) -> None:
        self._conf(args, ConfChangeKind.REMOVE_NODE, "remove-node")

    def cmd_transfer(self, args: list[str], flags: dict[str, str]) -> None:
        leader, to = int(args[0]), int(args[1])
        self._result(leader, f"transfer to {to}", self.c.raft(leader).transfer_leadership(to))

    def cmd_read_index(self, args: list[str], flags: dict[str, str]) -> None:
        node_id = int(args[0])
        self._result(node_id, "read-index", self.c.read_index(node_id, args[1].encode()))

    def cmd_status(self, args: list[str], flags: dict[str, str]) -> None:
        ids = [int(arg) for arg in args] or sorted(self.c.nodes)
        for node_id in ids:
            if not self.c.nodes[node_id].alive:
                self.emit(f"{node_id} down")
                continue
            status = self.c.raft(node_id).status()
            conf = status.conf_state
            line = (
                f"{node_id} {status.role.value} term={status.term} lead={status.leader_id} "
                f"commit={status.commit_index} applied={status.applied_index} "
                f"log={self._log_range(node_id)} voters={list(conf.voters)}"
            )
            if conf.learners:
                line += f" learners={list(conf.learners)}"
            self.emit(line)
            if status.role is Role.LEADER:
                for pr in status.progress:
                    if pr.node_id != node_id:
                        self.emit(f"  {pr.node_id}: {self.c.raft(node_id).progress[pr.node_id].describe()}")

    def _log_range(self, node_id: int) -> str:
        storage = self.c.raft(node_id).log.storage
        return f"{storage.first_index()}..{storage.last_index()}" + (
            f" (snapshot {storage.offset}/{storage.snapshot.meta.term})" if storage.offset else ""
        )

    def cmd_log(self, args: list[str], flags: dict[str, str]) -> None:
        node_id = int(args[0])
        storage = self.c.raft(node_id).log.storage
        if storage.offset:
            self.emit(f"snapshot {storage.offset}/{storage.snapshot.meta.term}")
        self.emit(describe_entries(storage.entries))


def run_file(path: Path) -> tuple[str, str]:
    """(expected text, actual text) of one scenario file."""
    text = path.read_text()
    blocks, trailer = parse(text)
    interpreter = Interpreter()
    outputs = []
    for block in blocks:
        try:
            outputs.append(interpreter.run(block.command))
        except Exception as exc:
            raise AssertionError(f"{path.name}: command {block.command!r} failed: {exc!r}") from exc
    return text, render(blocks, outputs, trailer)
