"""``BftNode``: the sans-I/O two-chain HotStuff core (Jolteon / DiemBFT v4 / AptosBFT family).

One object per validator. Inputs are calls (``step``, ``tick``, ``propose``,
``payload_verdict``); the output is a ``Ready`` value; ``advance`` acknowledges it.
No clock (rounds time out after ``tick`` calls), no randomness, no I/O. See docs/bft.md
for the protocol and its safety argument; the rules are marked below where they live:

- voting rule: vote once per round, only in the current round, and only if the
  block extends the QC of the previous round, or carries a TC of the previous round
  and extends a QC at least as high as every QC that TC names;
- timeout rule: after timing out in a round, never vote in it again; a timeout
  reports the highest QC known (the lock);
- commit rule: a QC for block B whose parent is one round below B commits the parent
  (a 2-chain), and with it every ancestor.
"""

from __future__ import annotations

from deltasync.consensus.bft.certify import (
    block_problem,
    proposal_signature_ok,
    qc_problem,
    sorted_signatures,
    tc_problem,
)
from deltasync.consensus.bft.crypto import Signer
from deltasync.consensus.bft.messages import (
    Block,
    BlockRequest,
    BlockResponse,
    Evidence,
    EvidenceKind,
    Message,
    Outgoing,
    Proposal,
    QuorumCert,
    Timeout,
    TimeoutCert,
    TimeoutSignature,
    Vote,
    VoteData,
    genesis_qc,
    proposal_as_vote_data,
    proposal_signing_bytes,
    timeout_signing_bytes,
)
from deltasync.consensus.bft.state import (
    BftConfig,
    BftUsageError,
    CommittedBlock,
    Invalid,
    InvalidReason,
    PayloadRequest,
    Ready,
    Recovered,
    Rejected,
    RejectReason,
    SafetyState,
    SafetyViolation,
    SoftState,
    Status,
)
from deltasync.core.errors import ConfigError


class BftNode:
    """The consensus state of one validator. Drive it as ``Ready``'s docstring says."""

    def __init__(self, config: BftConfig, signer: Signer, recovered: Recovered | None = None) -> None:
        validators = config.validators
        own = [v for v in validators.validators if v.validator_id == config.validator_id]
        if own[0].public_key != signer.public_key:
            raise ConfigError(key="signer", reason="public key differs from the validator set's")
        self.config = config
        self._signer = signer
        self._validators = validators
        self._chain = config.chain_id
        self._epoch = validators.epoch
        self._me = config.validator_id
        genesis = genesis_qc(self._chain, self._epoch)
        safety = recovered.safety if recovered else SafetyState(self._epoch, 0, genesis, None)
        if safety.epoch != self._epoch:
            raise ConfigError(key="recovered", reason="safety state of another epoch")
        self._last_voted_round = safety.last_voted_round
        self._high_qc = safety.high_qc
        self._high_tc = safety.high_tc
        self._committed_qc = recovered.committed_qc if recovered else genesis
        self._commit_goal: tuple[bytes, int, QuorumCert] | None = None
        self._blocks: dict[bytes, Block] = {}
        self._pending: Proposal | None = None
        self._verdicts: dict[bytes, bool] = {}
        self._validation_asked: dict[bytes, int] = {}
        self._votes_by_voter: dict[tuple[int, int], Vote] = {}
        self._tally: dict[VoteData, dict[int, bytes]] = {}
        self._proposals_seen: dict[tuple[int, int], tuple[bytes, bytes]] = {}
        self._timeouts: dict[int, dict[int, TimeoutSignature]] = {}
        self._timeout_high_qc: dict[int, QuorumCert] = {}
        self._my_timeout: Timeout | None = None
        self._wanted: dict[bytes, int] = {}
        self._sync_cursor = 0
        self._verified: dict[bytes, int] = {}
        self._evidence_seen: dict[bytes, int] = {}
        self._round = 0
        self._round_ticks = 0
        self._failed_rounds = 0
        self._payload_request: PayloadRequest | None = None
        # outputs gathered for the next Ready
        self._out_messages: list[Outgoing] = []
        self._out_committed: list[CommittedBlock] = []
        self._out_validate: list[Block] = []
        self._out_evidence: list[Evidence] = []
        self._out_payload_request: PayloadRequest | None = None
        self._safety_dirty = False
        self._must_sync = False
        self._reported_soft: SoftState | None = None
        self._outstanding: Ready | None = None
        self._failure: BaseException | None = None
        tc_round = self._high_tc.round if self._high_tc else 0
        first_round = max(self._high_qc.round + 1, tc_round + 1, self._last_voted_round, 1)
        self._enter_round(first_round, by_qc=True)

    # --- inputs ---------------------------------------------------------------

    def step(self, message: Message) -> Invalid | None:
        """Feed one message from the network. Returns why it was refused, or None."""
        self._check_alive()
        try:
            match message:
                case Proposal():
                    return self._on_proposal(message)
                case Vote():
                    return self._on_vote(message)
                case Timeout():
                    return self._on_timeout(message)
                case BlockRequest():
                    return self._on_block_request(message)
                case BlockResponse():
                    return self._on_block_response(message)
        except (AssertionError, SafetyViolation) as exc:
            self._failure = exc
            raise
        raise BftUsageError(reason="not a BFT message", type=type(message).__name__)

    def tick(self) -> None:
        """Advance the logical clock by one tick: round timeouts, block fetch retries."""
        self._check_alive()
        self._round_ticks += 1
        if self._round_ticks >= self._round_timeout_ticks():
            self._round_ticks = 0
            self._local_timeout()
        for block_id in list(self._wanted):
            self._wanted[block_id] += 1
            if self._wanted[block_id] >= self.config.sync_retry_ticks:
                self._wanted[block_id] = 0
                self._request_block(block_id)

    def propose(self, request: PayloadRequest, payload: bytes) -> Block | Rejected:
        """Answer a ``PayloadRequest`` with a payload built on the state after its parent:
        sign and send the block, and vote for it."""
        self._check_alive()
        round_number = request.round
        if round_number != self._round or self._validators.proposer(round_number) != self._me:
            return Rejected(RejectReason.NOT_PROPOSER, f"round {self._round}")
        if round_number <= self._last_voted_round:
            return Rejected(RejectReason.ALREADY_PROPOSED, f"voted in round {self._last_voted_round}")
        if len(payload) > self.config.payload_bytes_max:
            return Rejected(RejectReason.PAYLOAD_TOO_LARGE, f"{len(payload)} bytes")
        qc = self._high_qc
        if request != self._payload_request or request.parent_id != qc.block_id:
            # the parent changed since the request: this payload was built on another state
            self._request_payload()
            return Rejected(RejectReason.STALE_PAYLOAD_REQUEST)
        tc = None
        if qc.round + 1 != round_number:
            tc = self._high_tc
            if tc is None or tc.round + 1 != round_number:
                return Rejected(RejectReason.NO_JUSTIFICATION)
        block = Block(self._epoch, round_number, qc.height + 1, qc.block_id, qc, self._me, payload)
        block_id = block.compute_id(self._chain)
        message = proposal_signing_bytes(self._chain, self._epoch, round_number, block_id)
        proposal = Proposal(block, block_id, tc, self._signer.sign(message))
        self._payload_request = None
        self._proposals_seen[(round_number, self._me)] = (block_id, proposal.signature)
        self._broadcast(proposal)
        self._store_block(block_id, block)
        self._vote(block, block_id)
        return block

    def payload_verdict(self, block_id: bytes, valid: bool) -> None:
        """The node's answer to ``Ready.blocks_to_validate``."""
        self._check_alive()
        if block_id not in self._validation_asked:
            return  # its round is over (or it was never asked): a late verdict changes nothing
        self._verdicts[block_id] = valid
        if valid:
            self._try_vote()

    # --- outputs --------------------------------------------------------------

    def has_ready(self) -> bool:
        return bool(
            self._out_messages
            or self._out_committed
            or self._out_validate
            or self._out_evidence
            or self._out_payload_request
            or self._safety_dirty
            or self._soft_state() != self._reported_soft
        )

    def ready(self) -> Ready:
        self._check_alive()
        if self._outstanding is not None:
            raise BftUsageError(reason="ready() called again before advance()")
        soft = self._soft_state()
        ready = Ready(
            soft_state=soft if soft != self._reported_soft else None,
            safety=self.safety_state() if self._safety_dirty else None,
            must_sync=self._must_sync,
            messages=tuple(self._out_messages),
            committed=tuple(self._out_committed),
            blocks_to_validate=tuple(self._out_validate),
            payload_request=self._out_payload_request,
            evidence=tuple(self._out_evidence),
        )
        self._reported_soft = soft
        self._out_messages, self._out_committed, self._out_validate = [], [], []
        self._out_evidence, self._out_payload_request = [], None
        self._safety_dirty = self._must_sync = False
        self._outstanding = ready
        return ready

    def advance(self, ready: Ready) -> None:
        self._check_alive()
        if ready is not self._outstanding:
            raise BftUsageError(reason="advance() with a Ready that is not the outstanding one")
        self._outstanding = None
        self._try_commit()  # the rest of a commit batch cut by committed_per_ready_max

    def safety_state(self) -> SafetyState:
        return SafetyState(self._epoch, self._last_voted_round, self._high_qc, self._high_tc)

    def status(self) -> Status:
        committed = self._committed_qc
        return Status(
            validator_id=self._me,
            epoch=self._epoch,
            round=self._round,
            proposer=self._validators.proposer(self._round),
            last_voted_round=self._last_voted_round,
            high_qc_round=self._high_qc.round,
            high_tc_round=self._high_tc.round if self._high_tc else 0,
            committed_height=committed.height,
            committed_round=committed.round,
            committed_block_id=committed.block_id,
            blocks_pending=len(self._blocks),
        )

    # --- proposals and votes -------------------------------------------------

    def _on_proposal(self, proposal: Proposal) -> Invalid | None:
        block, block_id = proposal.block, proposal.block_id
        if block.epoch != self._epoch:
            return Invalid(InvalidReason.WRONG_EPOCH)
        if block.proposer != self._validators.proposer(block.round):
            return Invalid(InvalidReason.WRONG_PROPOSER, f"round {block.round}")
        problem = block_problem(block, block_id, self._chain, self.config.payload_bytes_max)
        if problem is not None:
            return Invalid(InvalidReason.MALFORMED_BLOCK, problem)
        if not proposal_signature_ok(self._validators, self._chain, block, block_id, proposal.signature):
            return Invalid(InvalidReason.BAD_SIGNATURE, "proposal")
        tc = proposal.tc
        if block.round != block.qc.round + 1 and (tc is None or tc.round + 1 != block.round):
            return Invalid(InvalidReason.UNJUSTIFIED_ROUND, f"round {block.round}")
        problem = self._qc_problem(block.qc) or (self._tc_problem(tc) if tc else None)
        if problem is not None:
            return Invalid(InvalidReason.BAD_CERTIFICATE, problem)
        # certificates are self-authenticating: learn them from any round, however far
        # ahead (a justified proposal's round is at most ours once they are observed)
        self._observe_qc(block.qc)
        if tc is not None:
            self._observe_tc(tc)
        if block.round < self._round - self.config.evidence_window_rounds:
            return Invalid(InvalidReason.STALE, f"round {block.round}")
        first_of_round = self._record_proposal(block, block_id, proposal.signature)
        if block.height <= self._committed_qc.height:
            return Invalid(InvalidReason.STALE, f"height {block.height} is committed")
        if not first_of_round:
            return None  # an equivocation: reported; kept out of the store (fetched if certified)
        if not self._store_block(block_id, block):
            return Invalid(InvalidReason.LIMIT, "blocks_pending_max")
        if block.round == self._round:
            self._pending = proposal
            self._try_vote()
        return None

    def _record_proposal(self, block: Block, block_id: bytes, signature: bytes) -> bool:
        """Remember the proposer's block of this round; False if it proposed another one."""
        key = (block.round, block.proposer)
        seen = self._proposals_seen.get(key)
        if seen is None:
            self._proposals_seen[key] = (block_id, signature)
            return True
        if seen[0] != block_id:
            first = proposal_as_vote_data(self._epoch, block.round, seen[0])
            second = proposal_as_vote_data(self._epoch, block.round, block_id)
            self._emit_evidence(EvidenceKind.DOUBLE_PROPOSAL, block.proposer, first, seen[1], second, signature)
            return False
        return True

    def _try_vote(self) -> None:
        proposal = self._pending
        if proposal is None:
            return
        block, block_id = proposal.block, proposal.block_id
        if block.round != self._round or block.round <= self._last_voted_round:
            return
        if not self._safe_to_vote(block, proposal.tc):
            return
        if not self._extends_committed(block):
            return
        if self.config.validate_payloads and block.proposer != self._me:
            verdict = self._verdicts.get(block_id)
            if verdict is None and block_id not in self._validation_asked:
                self._validation_asked[block_id] = block.round
                self._out_validate.append(block)
            if verdict is not True:
                return
        self._vote(block, block_id)

    def _safe_to_vote(self, block: Block, tc: TimeoutCert | None) -> bool:
        """The voting rule of two-chain HotStuff (Jolteon, DiemBFT v4)."""
        if block.round == block.qc.round + 1:
            return True
        return tc is not None and block.round == tc.round + 1 and block.qc.round >= tc.max_high_qc_round()

    def _extends_committed(self, block: Block) -> bool:
        """Whether the block's ancestry reaches our committed block (fetching what is missing)."""
        committed = self._committed_qc
        parent_id = block.parent_id
        while parent_id != committed.block_id:
            parent = self._blocks.get(parent_id)
            if parent is None:
                self._want(parent_id)
                return False
            if parent.height <= committed.height:
                return False  # a branch that forks below our committed block
            parent_id = parent.parent_id
        return True

    def _vote(self, block: Block, block_id: bytes) -> None:
        data = VoteData(self._epoch, block.round, block.height, block_id, block.parent_id, block.qc.round)
        assert block.round > self._last_voted_round, "voting rule 1: one vote per round"
        self._last_voted_round = block.round
        self._safety_changed(sync=True)
        vote = Vote(data, self._me, self._signer.sign(data.signing_bytes(self._chain)))
        self._pending = None
        self._broadcast(vote)
        self._on_vote(vote)

    def _on_vote(self, vote: Vote) -> Invalid | None:
        data = vote.vote_data
        if data.epoch != self._epoch:
            return Invalid(InvalidReason.WRONG_EPOCH)
        if not self._validators.is_member(vote.voter):
            return Invalid(InvalidReason.NOT_A_MEMBER, f"voter {vote.voter}")
        if not self._round_in_window(data.round):
            return Invalid(InvalidReason.OUT_OF_WINDOW, f"round {data.round}")
        if not self._validators.signed_by(vote.voter, data.signing_bytes(self._chain), vote.signature):
            return Invalid(InvalidReason.BAD_SIGNATURE, f"vote of {vote.voter}")
        key = (data.round, vote.voter)
        earlier = self._votes_by_voter.get(key)
        if earlier is not None:
            if earlier.vote_data != data:
                self._emit_evidence(
                    EvidenceKind.DOUBLE_VOTE, vote.voter, earlier.vote_data, earlier.signature,
                    data, vote.signature,
                )
            return None
        self._votes_by_voter[key] = vote
        if data.round < self._high_qc.round:
            return None
        tally = self._tally.setdefault(data, {})
        tally[vote.voter] = vote.signature
        if len(tally) == self._certificate_quorum():
            qc = QuorumCert(data, sorted_signatures(tally))
            self._verified[qc.digest()] = qc.round
            self._observe_qc(qc)
        return None

    # --- timeouts --------------------------------------------------------------

    def _round_timeout_ticks(self) -> int:
        exponent = min(self._failed_rounds, self.config.timeout_backoff_exponent_max)
        return self.config.round_timeout_ticks << exponent

    def _local_timeout(self) -> None:
        """Give up on the current round: never vote in it again, tell everyone."""
        if self._my_timeout is not None and self._my_timeout.round == self._round:
            self._broadcast(self._my_timeout)  # retransmit the same signed timeout
            return
        round_number = self._round
        if round_number > self._last_voted_round:
            self._last_voted_round = round_number
            self._safety_changed(sync=True)
        message = timeout_signing_bytes(self._chain, self._epoch, round_number, self._high_qc.round)
        high_tc = self._high_tc
        last_tc = high_tc if high_tc is not None and high_tc.round == round_number - 1 else None
        timeout = Timeout(self._epoch, round_number, self._me, self._high_qc, last_tc, self._signer.sign(message))
        self._my_timeout = timeout
        self._pending = None
        self._broadcast(timeout)
        self._on_timeout(timeout)

    def _on_timeout(self, timeout: Timeout) -> Invalid | None:
        if timeout.epoch != self._epoch:
            return Invalid(InvalidReason.WRONG_EPOCH)
        if not self._validators.is_member(timeout.voter):
            return Invalid(InvalidReason.NOT_A_MEMBER, f"voter {timeout.voter}")
        last_tc = timeout.last_tc
        if timeout.high_qc.round >= timeout.round or (last_tc and last_tc.round >= timeout.round):
            return Invalid(InvalidReason.BAD_CERTIFICATE, "certificate at or above the timeout's round")
        message = timeout_signing_bytes(self._chain, self._epoch, timeout.round, timeout.high_qc.round)
        if not self._validators.signed_by(timeout.voter, message, timeout.signature):
            return Invalid(InvalidReason.BAD_SIGNATURE, f"timeout of {timeout.voter}")
        problem = self._qc_problem(timeout.high_qc) or (self._tc_problem(last_tc) if last_tc else None)
        if problem is not None:
            return Invalid(InvalidReason.BAD_CERTIFICATE, problem)
        self._observe_qc(timeout.high_qc)
        if last_tc is not None:
            self._observe_tc(last_tc)
        if timeout.round > self._round + self.config.round_window_max:
            return Invalid(InvalidReason.OUT_OF_WINDOW, f"round {timeout.round}")
        if timeout.round < self._round:
            return None
        entries = self._timeouts.setdefault(timeout.round, {})
        if timeout.voter in entries:
            return None
        entries[timeout.voter] = TimeoutSignature(timeout.voter, timeout.high_qc.round, timeout.signature)
        best = self._timeout_high_qc.get(timeout.round)
        if best is None or timeout.high_qc.round > best.round:
            self._timeout_high_qc[timeout.round] = timeout.high_qc
        if len(entries) == self._certificate_quorum():
            signatures = tuple(entries[vid] for vid in sorted(entries))
            tc = TimeoutCert(self._epoch, timeout.round, signatures, self._timeout_high_qc[timeout.round])
            self._verified[tc.digest()] = tc.round
            self._observe_tc(tc)
        elif (
            timeout.round == self._round
            and len(entries) > self._validators.faults_tolerated
            and self._my_timeout is None
        ):
            self._local_timeout()  # f + 1 gave up: at least one honest did, so join them
        return None

    # --- certificates, rounds, commits --------------------------------------

    def _certificate_quorum(self) -> int:
        return self._validators.quorum

    def _qc_problem(self, qc: QuorumCert) -> str | None:
        digest = qc.digest()
        if digest in self._verified:
            return None
        def tallied(validator_id: int, signature: bytes) -> bool:
            vote = self._votes_by_voter.get((qc.round, validator_id))
            return vote is not None and vote.signature == signature and vote.vote_data == qc.vote_data

        problem = qc_problem(qc, self._validators, self._chain, self._certificate_quorum(), tallied)
        if problem is None:
            self._verified[digest] = qc.round
        return problem

    def _tc_problem(self, tc: TimeoutCert) -> str | None:
        digest = tc.digest()
        if digest in self._verified:
            return None
        problem = tc_problem(tc, self._validators, self._chain, self._certificate_quorum())
        if problem is None:
            self._verified[digest] = tc.round
        return problem

    def _observe_qc(self, qc: QuorumCert) -> None:
        """Learn a verified QC: raise the lock, move to the next round, commit a 2-chain."""
        if qc.round > self._high_qc.round:
            self._high_qc = qc
            self._safety_changed(sync=False)
            self._refresh_payload_request()
        if qc.round + 1 > self._round:
            self._enter_round(qc.round + 1, by_qc=True)
        committed = self._committed_qc
        if qc.round > 0 and qc.height > committed.height and qc.block_id not in self._blocks:
            self._want(qc.block_id)
        target = self._commit_target(qc)
        if target is not None and target[1] > committed.height:
            if self._commit_goal is None or target[1] > self._commit_goal[1]:
                self._commit_goal = target
            self._try_commit()

    def _commit_target(self, qc: QuorumCert) -> tuple[bytes, int, QuorumCert] | None:
        """The 2-chain commit rule: a QC whose block's parent is one round below commits it."""
        data = qc.vote_data
        if qc.round > 0 and data.parent_round + 1 == data.round:
            return (data.parent_id, data.height - 1, qc)
        return None

    def _observe_tc(self, tc: TimeoutCert) -> None:
        self._observe_qc(tc.high_qc)
        if self._high_tc is None or tc.round > self._high_tc.round:
            self._high_tc = tc
            self._safety_changed(sync=False)
        if tc.round + 1 > self._round:
            self._enter_round(tc.round + 1, by_qc=False)

    def _enter_round(self, round_number: int, *, by_qc: bool) -> None:
        assert round_number > self._round, "rounds only move forward"
        self._round = round_number
        self._round_ticks = 0
        self._failed_rounds = 0 if by_qc else self._failed_rounds + 1
        self._my_timeout = None
        self._pending = None
        self._prune(round_number)
        self._payload_request = None
        self._refresh_payload_request()

    def _refresh_payload_request(self) -> None:
        """Ask the node for a payload when this validator proposes in the current round."""
        if self._validators.proposer(self._round) != self._me or self._round <= self._last_voted_round:
            return
        qc = self._high_qc
        current = self._payload_request
        if current is not None and current.parent_id == qc.block_id:
            return
        self._request_payload()

    def _request_payload(self) -> None:
        qc = self._high_qc
        self._payload_request = PayloadRequest(self._round, qc.height + 1, qc.block_id)
        self._out_payload_request = self._payload_request

    def _try_commit(self) -> None:
        target = self._commit_goal
        committed = self._committed_qc
        if target is None or target[1] <= committed.height:
            return
        tip_id, _, commit_qc = target
        chain: list[tuple[bytes, Block]] = []
        block_id = tip_id
        while block_id != committed.block_id:
            block = self._blocks.get(block_id)
            if block is None:
                self._want(block_id)
                return
            if block.height <= committed.height:
                raise SafetyViolation(
                    reason="a certified 2-chain forks below the committed block",
                    committed_height=committed.height,
                    fork_height=block.height,
                )
            chain.append((block_id, block))
            block_id = block.parent_id
        tip_certificate = self._certificate_of(tip_id, commit_qc)
        if tip_certificate is None:
            return
        chain.reverse()
        room = self.config.committed_per_ready_max - len(self._out_committed)
        for index, (block_id, block) in enumerate(chain[: max(room, 0)]):
            last = index + 1 == len(chain)
            certificate = tip_certificate if last else chain[index + 1][1].qc
            assert certificate.block_id == block_id and certificate.height == block.height
            self._out_committed.append(CommittedBlock(block, block_id, certificate, commit_qc))
            self._committed_qc = certificate
        self._prune_blocks()

    def _certificate_of(self, tip_id: bytes, commit_qc: QuorumCert) -> QuorumCert | None:
        if commit_qc.block_id == tip_id:
            return commit_qc
        child = self._blocks.get(commit_qc.block_id)
        if child is None:
            self._want(commit_qc.block_id)
            return None
        assert child.qc.block_id == tip_id, "the commit QC's block is not the tip's child"
        return child.qc

    # --- block store and fetching -------------------------------------------

    def _store_block(self, block_id: bytes, block: Block) -> bool:
        if block_id in self._blocks:
            return True
        if len(self._blocks) >= self.config.blocks_pending_max:
            return False
        self._blocks[block_id] = block
        self._wanted.pop(block_id, None)
        return True

    def _want(self, block_id: bytes) -> None:
        if block_id in self._wanted or len(self._wanted) >= self.config.round_window_max:
            return
        self._wanted[block_id] = 0
        self._request_block(block_id)

    def _request_block(self, block_id: bytes) -> None:
        peers = [vid for vid in self._validators.ids if vid != self._me]
        if not peers:
            return
        peer = peers[self._sync_cursor % len(peers)]
        self._sync_cursor += 1
        count = self.config.sync_blocks_per_response_max
        self._out_messages.append(Outgoing(peer, BlockRequest(self._me, block_id, count)))

    def _on_block_request(self, request: BlockRequest) -> Invalid | None:
        if not self._validators.is_member(request.sender) or request.sender == self._me:
            return Invalid(InvalidReason.NOT_A_MEMBER, f"sender {request.sender}")
        blocks: list[Block] = []
        size = 0
        block_id = request.block_id
        count = max(1, min(request.count, self.config.sync_blocks_per_response_max))
        while len(blocks) < count and (block := self._blocks.get(block_id)) is not None:
            size += len(block.payload)
            if blocks and size > self.config.sync_bytes_per_response_max:
                break
            blocks.append(block)
            block_id = block.parent_id
        if not blocks:
            return Invalid(InvalidReason.UNKNOWN_BLOCK, "serve it from the committed store")
        self._out_messages.append(Outgoing(request.sender, BlockResponse(self._me, tuple(blocks))))
        return None

    def _on_block_response(self, response: BlockResponse) -> Invalid | None:
        accepted = 0
        expected: bytes | None = None
        for block in response.blocks:
            block_id = block.compute_id(self._chain)
            if block_id not in self._wanted and block_id != expected:
                break
            if block_problem(block, block_id, self._chain, self.config.payload_bytes_max) is not None:
                break
            if self._qc_problem(block.qc) is not None:
                break
            if block.height <= self._committed_qc.height or not self._store_block(block_id, block):
                break
            accepted += 1
            expected = block.parent_id if block.parent_id not in self._blocks else None
            self._observe_qc(block.qc)
        if accepted == 0:
            return Invalid(InvalidReason.UNSOLICITED, "no requested block in the response")
        if expected is not None and expected != self._committed_qc.block_id:
            self._want(expected)
        self._try_commit()
        self._try_vote()
        return None

    def _prune_blocks(self) -> None:
        """Keep a window of committed blocks (to serve peers that lag) and the uncommitted ones."""
        keep_from = self._committed_qc.height - self.config.round_window_max
        for block_id in [bid for bid, b in self._blocks.items() if b.height < keep_from]:
            del self._blocks[block_id]
        for block_id in [bid for bid in self._wanted if bid in self._blocks]:
            del self._wanted[block_id]

    # --- bookkeeping ---------------------------------------------------------

    def _round_in_window(self, round_number: int) -> bool:
        return (
            self._round - self.config.evidence_window_rounds
            <= round_number
            <= self._round + self.config.round_window_max
        )

    def _prune(self, round_number: int) -> None:
        low = round_number - self.config.evidence_window_rounds
        for key in [k for k in self._votes_by_voter if k[0] < low]:
            del self._votes_by_voter[key]
        for key in [k for k in self._proposals_seen if k[0] < low]:
            del self._proposals_seen[key]
        for data in [d for d in self._tally if d.round < round_number - 1]:
            del self._tally[data]
        for old in [r for r in self._timeouts if r < round_number - 1]:
            del self._timeouts[old]
            self._timeout_high_qc.pop(old, None)
        for digest in [d for d, r in self._verified.items() if r < low]:
            del self._verified[digest]
        for ekey in [k for k, r in self._evidence_seen.items() if r < low]:
            del self._evidence_seen[ekey]
        for bid in [b for b, r in self._validation_asked.items() if r < round_number]:
            del self._validation_asked[bid]
            self._verdicts.pop(bid, None)

    def _emit_evidence(
        self, kind: EvidenceKind, validator_id: int,
        first: VoteData, first_signature: bytes, second: VoteData, second_signature: bytes,
    ) -> None:
        evidence = Evidence(
            kind, validator_id, self._epoch, first.round, first, first_signature, second, second_signature
        )
        key = evidence.key()
        if key not in self._evidence_seen:
            self._evidence_seen[key] = first.round
            self._out_evidence.append(evidence)

    def _broadcast(self, message: Message) -> None:
        for vid in self._validators.ids:
            if vid != self._me:
                self._out_messages.append(Outgoing(vid, message))

    def _safety_changed(self, *, sync: bool) -> None:
        self._safety_dirty = True
        self._must_sync = self._must_sync or sync

    def _soft_state(self) -> SoftState:
        return SoftState(self._round, self._validators.proposer(self._round))

    def _check_alive(self) -> None:
        if self._failure is not None:
            raise BftUsageError(reason="the core failed earlier; restart it", failure=repr(self._failure))
