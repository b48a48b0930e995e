"""A deterministic in-memory cluster of BFT cores, its Byzantine doubles and its checkers.

Each ``Process`` plays the node's part of the ``Ready`` contract: persist the safety
state, then send, then apply committed blocks, answer validation and payload requests.
``crash`` throws the core away; ``restart`` rebuilds it from ``Durable`` alone. Two
processes may share one validator key (twins): a message for that validator reaches
every process holding it that the partition lets through.

The scheduler draws everything from one seeded ``random.Random``: message delays,
drops, reordering, crash points. The ``Checker`` watches the wire and every commit:

- agreement: no two honest processes commit different blocks at one height;
- certificates: every committed block is certified by a quorum of valid signatures
  (checked with the true quorum, whatever the cores believe), its parent is the block
  committed below it, and a valid commit QC proves a 2-chain above it;
- honest signers: no honest validator signs two different votes in one round, and no
  evidence ever names an honest validator.
"""

from __future__ import annotations

import hashlib
import random
from collections.abc import Callable
from dataclasses import dataclass, field

from deltasync.consensus.bft import (
    BFT_MESSAGES,
    BftConfig,
    BftNode,
    Block,
    BlockRequest,
    BlockResponse,
    CommittedBlock,
    Ed25519Signer,
    Evidence,
    InvalidReason,
    Message,
    PayloadRequest,
    Proposal,
    QuorumCert,
    Recovered,
    SafetyState,
    Timeout,
    Validator,
    ValidatorSet,
    Vote,
    VoteData,
    evidence_valid,
    genesis_block_id,
    genesis_qc,
    qc_problem,
)
from deltasync.consensus.bft.messages import (
    ValidatorSignature,
    proposal_signing_bytes,
    timeout_signing_bytes,
)
from deltasync.core.codec import encode

CHAIN_ID = "bft-test"


class CheckFailed(AssertionError):
    pass


def signer_for(validator_id: int) -> Ed25519Signer:
    return Ed25519Signer(hashlib.sha256(b"bft-test-validator-%d" % validator_id).digest())


def validator_set(size: int, epoch: int = 0) -> ValidatorSet:
    members = tuple(Validator(i, signer_for(i).public_key) for i in range(1, size + 1))
    return ValidatorSet(epoch, members)


def payload_for(round_number: int, process_id: int) -> bytes:
    return b"round-%d-by-process-%d" % (round_number, process_id)


INVALID_PAYLOAD = b"invalid"


@dataclass
class Durable:
    """What survives a crash: the safety state and the application's applied blocks."""

    safety: SafetyState | None = None
    committed: list[CommittedBlock] = field(default_factory=list)


@dataclass
class Behaviour:
    """Test doubles for a Byzantine process (all off: an honest process)."""

    equivocate: bool = False  # as proposer, send a second, conflicting block to half the peers
    double_vote: bool = False  # vote for every proposal seen, ignoring the voting rules
    withhold: bool = False  # send no proposals and no votes
    replay: bool = False  # re-send old messages recorded from the wire
    invalid_payloads: bool = False  # propose payloads honest validators refuse
    forge: bool = False  # send timeouts carrying certificates signed by itself alone

    @property
    def honest(self) -> bool:
        return not (
            self.equivocate
            or self.double_vote
            or self.withhold
            or self.replay
            or self.invalid_payloads
            or self.forge
        )


NodeFactory = Callable[[BftConfig, Ed25519Signer, Recovered | None], BftNode]


def honest_core(config: BftConfig, signer: Ed25519Signer, recovered: Recovered | None) -> BftNode:
    return BftNode(config, signer, recovered)


class Process:
    def __init__(
        self,
        cluster: Cluster,
        process_id: int,
        validator_id: int,
        behaviour: Behaviour,
        factory: NodeFactory,
    ) -> None:
        self.cluster = cluster
        self.process_id = process_id
        self.validator_id = validator_id
        self.behaviour = behaviour
        self.factory = factory
        self.signer = signer_for(validator_id)
        self.config = BftConfig(
            validator_id,
            CHAIN_ID,
            cluster.validators,
            round_timeout_ticks=cluster.round_timeout_ticks,
            **cluster.core_options,  # type: ignore[arg-type]
        )
        self.durable = Durable()
        self.core: BftNode | None = None
        self.twin = False
        self.restart()

    @property
    def honest(self) -> bool:
        return self.behaviour.honest and not self.twin

    @property
    def alive(self) -> bool:
        return self.core is not None

    def restart(self) -> None:
        recovered = None
        if self.durable.safety is not None:
            committed = self.durable.committed
            committed_qc = committed[-1].certificate if committed else genesis_qc(CHAIN_ID, 0)
            recovered = Recovered(self.durable.safety, committed_qc)
        self.core = self.factory(self.config, self.signer, recovered)
        self.drain()

    def crash(self) -> None:
        self.core = None

    def deliver(self, message: Message) -> None:
        if self.core is None:
            return
        if self.behaviour.double_vote and isinstance(message, Proposal):
            self._vote_regardless(message)
        if self.honest and isinstance(message, Proposal):
            self.cluster.checker.on_proposal_delivered(self, message)
        refused = self.core.step(message)
        if refused is not None and refused.reason is InvalidReason.UNKNOWN_BLOCK:
            assert isinstance(message, BlockRequest)
            self._serve_from_store(message)
        elif refused is not None and self.honest:
            reasons = self.cluster.refused
            reasons[refused.reason.name] = reasons.get(refused.reason.name, 0) + 1
        self.drain()

    def tick(self) -> None:
        if self.core is None:
            return
        self.core.tick()
        self.drain()

    def drain(self) -> None:
        """Act on every Ready as the contract says (or as a planted bug does)."""
        while self.core is not None and self.core.has_ready():
            core = self.core
            ready = core.ready()
            # crashes strike between persisting and sending a vote or timeout: the worst moment
            if self.cluster.send_before_persist:
                self._send(ready.messages)
                if ready.must_sync and self.cluster.maybe_crash(self):
                    return
                self._persist(ready.safety)
            else:
                self._persist(ready.safety)
                if ready.must_sync and self.cluster.maybe_crash(self):
                    return
                self._send(ready.messages)
            for committed in ready.committed:
                self.durable.committed.append(committed)
                self.cluster.checker.on_commit(self, committed)
            for block in ready.blocks_to_validate:
                core.payload_verdict(block.compute_id(CHAIN_ID), block.payload != INVALID_PAYLOAD)
            for evidence in ready.evidence:
                self.cluster.checker.on_evidence(self, evidence)
            core.advance(ready)
            if ready.payload_request is not None:
                self._propose(core, ready.payload_request)

    def _serve_from_store(self, request: BlockRequest) -> None:
        """The node's part of block sync: committed blocks the core no longer holds."""
        heights = {c.block_id: c.block.height for c in self.durable.committed}
        height = heights.get(request.block_id)
        if height is None:
            return
        low = max(height - min(request.count, 64), 0)
        blocks = tuple(c.block for c in reversed(self.durable.committed[low:height]))
        self.cluster.send(self, request.sender, BlockResponse(self.validator_id, blocks))

    def _persist(self, safety: SafetyState | None) -> None:
        if safety is not None:
            self.durable.safety = safety

    def _propose(self, core: BftNode, request: PayloadRequest) -> None:
        if self.behaviour.withhold:
            return
        payload = INVALID_PAYLOAD if self.behaviour.invalid_payloads else payload_for(request.round, self.process_id)
        core.propose(request, payload)

    def _send(self, outgoing: tuple) -> None:
        equivocation: dict[int, Proposal] = {}
        for item in outgoing:
            message = item.message
            if self.behaviour.withhold and isinstance(message, Proposal | Vote):
                continue
            self.cluster.send(self, item.recipient, message)
            if self.behaviour.equivocate and isinstance(message, Proposal):
                other = equivocation.get(message.block.round)
                if other is None:
                    other = equivocation[message.block.round] = self._conflicting(message)
                    if self.behaviour.double_vote:
                        self._vote_regardless(other)  # and vote for both of its blocks
                self.cluster.send(self, item.recipient, other)  # the network decides which lands first

    def _conflicting(self, proposal: Proposal) -> Proposal:
        block = proposal.block
        other = Block(block.epoch, block.round, block.height, block.parent_id, block.qc,
                      block.proposer, block.payload + b"-equivocated")
        other_id = other.compute_id(CHAIN_ID)
        signature = self.signer.sign(proposal_signing_bytes(CHAIN_ID, block.epoch, block.round, other_id))
        return Proposal(other, other_id, proposal.tc, signature)

    def forged_timeout(self) -> Timeout | None:
        """A timeout whose high QC is short: alternately 2f real votes it received (for the
        highest block it saw them for), or its own signature on a made-up block."""
        if self.core is None:
            return None
        forged_qc = self._short_qc_from_real_votes() if self.cluster.rng.random() < 0.5 else None
        if forged_qc is None:
            round_number = self.core.status().round
            data = VoteData(0, round_number, 999, b"\x66" * 32, b"\x66" * 32, max(round_number - 1, 0))
            own = ValidatorSignature(self.validator_id, self.signer.sign(data.signing_bytes(CHAIN_ID)))
            forged_qc = QuorumCert(data, (own,))
        round_number = forged_qc.round + 1
        message = timeout_signing_bytes(CHAIN_ID, 0, round_number, forged_qc.round)
        return Timeout(0, round_number, self.validator_id, forged_qc, None, self.signer.sign(message))

    def _short_qc_from_real_votes(self) -> QuorumCert | None:
        assert self.core is not None
        short = self.cluster.validators.quorum - 1
        tallies = [(data, sigs) for data, sigs in self.core._tally.items() if len(sigs) >= short]
        if not tallies:
            return None
        data, signatures = max(tallies, key=lambda item: item[0].round)
        chosen = sorted(signatures)[:short]
        return QuorumCert(data, tuple(ValidatorSignature(vid, signatures[vid]) for vid in chosen))

    def _vote_regardless(self, proposal: Proposal) -> None:
        block = proposal.block
        data = VoteData(block.epoch, block.round, block.height, proposal.block_id, block.parent_id, block.qc.round)
        vote = Vote(data, self.validator_id, self.signer.sign(data.signing_bytes(CHAIN_ID)))
        for vid in self.cluster.validators.ids:
            if vid != self.validator_id:
                self.cluster.send(self, vid, vote)


@dataclass(order=True)
class InFlight:
    deliver_at: int
    sequence: int
    source: int = field(compare=False)
    recipient: int = field(compare=False)
    message: Message = field(compare=False)


class Cluster:
    """Processes, a seeded network between them, and the checker."""

    def __init__(
        self,
        seed: int,
        size: int,
        *,
        behaviours: dict[int, Behaviour] | None = None,
        twins: tuple[int, ...] = (),
        factory: NodeFactory = honest_core,
        drop_rate: float = 0.0,
        delay_max: int = 3,
        crash_rate: float = 0.0,
        send_before_persist: bool = False,
        round_timeout_ticks: int = 12,
        check_certificates: bool = True,
        restart_delay_max: int = 10,
        trace: bool = False,
        core_options: dict[str, int] | None = None,
    ) -> None:
        self.seed = seed
        self.rng = random.Random(seed)
        self.validators = validator_set(size)
        self.round_timeout_ticks = round_timeout_ticks
        self.drop_rate = drop_rate
        self.delay_max = delay_max
        self.crash_rate = crash_rate
        self.restart_delay_max = restart_delay_max
        self.trace = hashlib.sha256() if trace else None  # every message sent, in order
        self.core_options = core_options or {}  # extra BftConfig fields for every core
        self.send_before_persist = send_before_persist
        self.now = 0
        self.sequence = 0
        self.in_flight: list[InFlight] = []
        self.sent_log: list[Message] = []
        self.partition: list[set[int]] | None = None
        self.crashed: dict[int, int] = {}  # process id -> restart time
        self.refused: dict[str, int] = {}  # why honest cores refused messages, by reason
        self.checker = Checker(self, check_certificates=check_certificates)
        self.steps_to_progress_after_heal = -1
        self.rounds_to_progress_after_heal = -1
        behaviours = behaviours or {}
        self.processes: list[Process] = []
        for vid in self.validators.ids:
            self._add(vid, behaviours.get(vid, Behaviour()), factory)
        for vid in twins:
            twin = self._add(vid, behaviours.get(vid, Behaviour()), factory)
            for process in self.processes:
                if process.validator_id == vid:
                    process.twin = True
            assert twin.twin

    def _add(self, vid: int, behaviour: Behaviour, factory: NodeFactory) -> Process:
        process = Process(self, len(self.processes) + 1, vid, behaviour, factory)
        self.processes.append(process)
        return process

    # --- network ------------------------------------------------------------

    def send(self, source: Process, recipient: int, message: Message) -> None:
        self.sequence += 1
        delay = self.rng.randint(1, self.delay_max)
        self.in_flight.append(InFlight(self.now + delay, self.sequence, source.process_id, recipient, message))
        self.checker.on_send(source, message)
        if self.trace is not None:
            self.trace.update(encode([self.now, delay, source.process_id, recipient]))
            self.trace.update(BFT_MESSAGES.encode(message))
        if isinstance(message, Proposal | Vote | Timeout) and len(self.sent_log) < 5_000:
            self.sent_log.append(message)

    def connected(self, source: int, target: int) -> bool:
        if self.partition is None:
            return True
        return any(source in group and target in group for group in self.partition)

    def maybe_crash(self, process: Process) -> bool:
        if self.crash_rate and self.rng.random() < self.crash_rate:
            process.crash()
            self.crashed[process.process_id] = self.now + self.rng.randint(1, self.restart_delay_max)
            return True
        return False

    # --- scheduler ----------------------------------------------------------

    def step(self) -> None:
        """One unit of time: deliver what is due (shuffled), tick every live process."""
        self.now += 1
        due = [m for m in self.in_flight if m.deliver_at <= self.now]
        self.in_flight = [m for m in self.in_flight if m.deliver_at > self.now]
        self.rng.shuffle(due)
        for item in due:
            if self.drop_rate and self.rng.random() < self.drop_rate:
                continue
            for process in self.processes:
                if process.validator_id == item.recipient and self.connected(item.source, process.process_id):
                    process.deliver(item.message)
        for process in self.processes:
            if process.process_id in self.crashed and self.crashed[process.process_id] <= self.now:
                del self.crashed[process.process_id]
                process.restart()
        for process in self.processes:
            process.tick()
            if process.behaviour.replay and self.sent_log and self.rng.random() < 0.3:
                old = self.sent_log[self.rng.randrange(len(self.sent_log))]
                self._inject(process, old)
            if process.behaviour.forge and (forged := process.forged_timeout()) is not None:
                self._inject(process, forged)

    def _inject(self, source: Process, message: Message) -> None:
        self.sequence += 1
        target = self.rng.choice(self.validators.ids)
        self.in_flight.append(InFlight(self.now + 1, self.sequence, source.process_id, target, message))

    def run(self, steps: int) -> None:
        for _ in range(steps):
            self.step()

    def heal(self) -> None:
        self.partition = None
        self.drop_rate = 0.0
        self.crash_rate = 0.0
        for process in self.processes:
            if not process.alive:
                self.crashed.pop(process.process_id, None)
                process.restart()

    def honest(self) -> list[Process]:
        return [p for p in self.processes if p.honest]

    def committed_heights(self) -> dict[int, int]:
        return {p.process_id: len(p.durable.committed) for p in self.honest()}


class Checker:
    """Safety checks on every commit and every message an honest process sends."""

    def __init__(self, cluster: Cluster, *, check_certificates: bool = True) -> None:
        self.cluster = cluster
        self.check_certificates = check_certificates
        self.by_height: dict[int, tuple[bytes, int]] = {}
        self.honest_votes: dict[tuple[int, int], VoteData] = {}
        self.evidence: list[Evidence] = []
        self.valid_certificates: dict[QuorumCert, bool] = {}  # checked with the true quorum
        self.proposals_seen: dict[tuple[int, int], set[bytes]] = {}  # (proposer, round) -> ids
        self.proposed_at: dict[bytes, int] = {}  # block id -> step its proposal was first sent
        self.finality_steps: list[int] = []  # per honest commit: steps from proposal to commit

    def fail(self, reason: str) -> None:
        raise CheckFailed(f"seed {self.cluster.seed}: {reason}")

    def on_send(self, process: Process, message: Message) -> None:
        if isinstance(message, Proposal):
            self.proposed_at.setdefault(message.block_id, self.cluster.now)
        if not process.honest or not isinstance(message, Vote):
            return
        key = (message.vote_data.round, message.voter)
        earlier = self.honest_votes.setdefault(key, message.vote_data)
        if earlier != message.vote_data:
            self.fail(f"honest validator {message.voter} voted twice in round {key[0]}")

    def on_proposal_delivered(self, process: Process, proposal: Proposal) -> None:
        block = proposal.block
        seen = self.proposals_seen.setdefault((block.proposer, block.round), set())
        seen.add(proposal.block_id)

    def check_every_equivocation_reported(self) -> None:
        """Every proposer that honest validators saw sign two blocks of a round is accused."""
        reported = {(e.validator_id, e.round) for e in self.evidence if e.kind.name == "DOUBLE_PROPOSAL"}
        for key, block_ids in sorted(self.proposals_seen.items()):
            if len(block_ids) > 1 and key not in reported:
                self.fail(f"validator {key[0]} proposed {len(block_ids)} blocks in round {key[1]}: no evidence")

    def on_evidence(self, process: Process, evidence: Evidence) -> None:
        validators = self.cluster.validators
        if not evidence_valid(evidence, validators, CHAIN_ID):
            self.fail(f"process {process.process_id} produced invalid evidence")
        accused = [p for p in self.cluster.processes if p.validator_id == evidence.validator_id]
        if all(p.honest for p in accused):
            self.fail(f"evidence names honest validator {evidence.validator_id}")
        self.evidence.append(evidence)

    def on_commit(self, process: Process, committed: CommittedBlock) -> None:
        if not process.honest:
            return
        chain = process.durable.committed
        height = len(chain)
        block = committed.block
        if self.check_certificates:
            self._check_certificates(chain, committed, height)
        if committed.block_id in self.proposed_at:
            self.finality_steps.append(self.cluster.now - self.proposed_at[committed.block_id])
        seen = self.by_height.setdefault(height, (committed.block_id, process.process_id))
        if seen[0] != committed.block_id:
            self.fail(
                f"processes {seen[1]} and {process.process_id} committed different blocks at height {height}"
            )
        assert block.height == height

    def _check_certificates(self, chain: list[CommittedBlock], committed: CommittedBlock, height: int) -> None:
        validators = self.cluster.validators
        quorum = validators.quorum
        block = committed.block
        if block.height != height or block.compute_id(CHAIN_ID) != committed.block_id:
            self.fail(f"committed block at height {height} is not what it claims")
        parent = chain[-2].block_id if len(chain) >= 2 else genesis_block_id(CHAIN_ID)
        if block.parent_id != parent:
            self.fail(f"block at height {height} does not extend the block committed below it")
        for name, qc in (("certificate", committed.certificate), ("commit QC", committed.commit_qc)):
            if qc in self.valid_certificates:
                continue
            problem = qc_problem(qc, validators, CHAIN_ID, quorum)
            if problem is not None:
                self.fail(f"{name} of height {height}: {problem}")
            self.valid_certificates[qc] = True
        if committed.certificate.block_id != committed.block_id:
            self.fail(f"certificate of height {height} certifies another block")
        self._check_two_chain(chain, committed.commit_qc, height)

    def _check_two_chain(self, chain: list[CommittedBlock], commit_qc: QuorumCert, height: int) -> None:
        data = commit_qc.vote_data
        if data.parent_round + 1 != data.round:
            self.fail(f"height {height} committed without a 2-chain (QC round {data.round})")
        tip_height = data.height - 1
        if tip_height < height:
            self.fail(f"height {height} committed by a QC of height {data.height}: a one-chain")
        if tip_height <= len(chain) and chain[tip_height - 1].block_id != data.parent_id:
            self.fail(f"commit QC of height {height} certifies a child of another block")


def run_faulty(seed: int, size: int, *, steps: int = 300, **options: object) -> Cluster:
    """Safety only: faults throughout (no healing, no liveness requirement)."""
    cluster = Cluster(seed, size, **options)  # type: ignore[arg-type]
    cluster.run(steps)
    return cluster


def run_chaos(
    seed: int,
    size: int,
    *,
    steps: int = 400,
    heal_steps: int = 300,
    progress_after_heal: int = 3,
    **options: object,
) -> Cluster:
    """Faults for ``steps`` (drops, delays, a partition in the middle), then healed.

    After healing every honest live process must commit ``progress_after_heal`` more
    blocks within ``heal_steps``.
    """
    rng = random.Random(seed ^ 0x5EED)
    cluster = Cluster(seed, size, drop_rate=rng.choice([0.0, 0.05, 0.15]), **options)  # type: ignore[arg-type]
    partition_from = steps // 4
    cluster.run(partition_from)
    ids = [p.process_id for p in cluster.processes]
    rng.shuffle(ids)
    cut = rng.randint(1, len(ids) - 1)
    cluster.partition = [set(ids[:cut]), set(ids[cut:])]
    cluster.run(steps // 2)
    cluster.partition = None
    cluster.run(steps - partition_from - steps // 2)
    cluster.heal()
    before = cluster.committed_heights()
    round_at_heal = max(p.core.status().round for p in cluster.honest() if p.core)
    for taken in range(1, heal_steps + 1):
        cluster.step()
        after = cluster.committed_heights()
        if all(after[p] >= before[p] + progress_after_heal for p in after):
            cluster.steps_to_progress_after_heal = taken
            round_now = max(p.core.status().round for p in cluster.honest() if p.core)
            cluster.rounds_to_progress_after_heal = round_now - round_at_heal
            return cluster
    raise CheckFailed(f"seed {seed}: no progress within {heal_steps} steps after healing: {before} -> {after}")
