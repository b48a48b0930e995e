"""The asyncio shell around ``NodeCore``: timers, the client gateway, sockets, disk.

Everything that decides anything lives in ``NodeCore``; ``NodeShell`` feeds it
(ticks, client commands, read requests) and carries out what it returns
(messages to send, answers to clients, applied blocks to publish, reads to
serve). ``NodeServer`` is the shell of a node process: it adds peer sockets,
the data dir and status files. The core's ``process`` persists with fsync
before it returns messages, so "persist before send" holds by construction.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import os
import random
import secrets
import signal
import time
from collections.abc import Callable, Coroutine
from typing import Any

from deltasync.core.errors import DeltasyncError
from deltasync.net.transport import Transport
from deltasync.node import machine
from deltasync.node.config import NodeConfig
from deltasync.node.driver import Answer, AppliedBlock, NodeCore, NodeSettings
from deltasync.node.status import NodeStatus, write_status
from deltasync.storage.datadir import DataDir
from deltasync.storage.errors import StorageError

log = logging.getLogger("deltasync.node")

STATUS_INTERVAL_S = 0.2
EXIT_HALTED = 3
EXIT_STORAGE_FAILURE = 4
EXIT_CORE_FAILURE = 5


class NotLeaderError(DeltasyncError):
    pass


class RequestTimeout(DeltasyncError):
    """The command was not answered in time; it may or may not have been applied."""


class NodeShell:
    """The asyncio loop around one ``NodeCore``: ticks, flushes, answers, reads, blocks.

    It feeds the core (ticks, client commands, read requests, and whatever a
    subclass receives from peers) and carries out what ``process`` returns:
    messages go to ``_send``, answers to the callback of their (session,
    request), applied blocks to every block listener, confirmed reads to their
    waiters. ``NodeServer`` adds sockets, a data dir and status files; the
    single-process venue runs a one-node shell on in-memory storage.

    Submissions wait ``batch_window_s`` before the core is flushed, so that
    commands sent together share a block (a replicated leader batches anyway
    while a block is in flight: its window is 0). A failure of the core stops
    the shell loudly and answers every waiting command with ``error="stopped"``.
    """

    def __init__(self, core: NodeCore, *, clock_ns: Callable[[], int] = time.time_ns,
                 tick_s: float = 0.01, batch_window_s: float = 0.0) -> None:
        self.core = core
        self.clock_ns = clock_ns
        self.tick_s = tick_s
        self.batch_window_s = batch_window_s
        self.session = secrets.randbits(62) + 1  # this shell's session for its own requests
        self.stopped = False
        self._next_request = 0
        self._answers: dict[tuple[int, int], list[Callable[[Answer], None]]] = {}
        self._reads: dict[bytes, asyncio.Future[None]] = {}
        self._block_listeners: list[Callable[[AppliedBlock], None]] = []
        self._flush_scheduled = False
        self._tasks: list[asyncio.Task[None]] = []

    # --- driving the core ------------------------------------------------------------

    def start_ticker(self) -> None:
        self.supervise(self._ticker(), "ticker")

    def supervise(self, coroutine: Coroutine[Any, Any, None], name: str) -> asyncio.Task[None]:
        """Start a task the node depends on. Such a task never ends by itself: if it does
        (an exception it did not handle, or a return), the node must not go on half-alive,
        so it stops loudly (``_fatal``). ``stop`` cancels it quietly."""
        task = asyncio.get_running_loop().create_task(coroutine, name=name)
        task.add_done_callback(self._task_ended)
        self._tasks.append(task)
        return task

    def _task_ended(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or self.stopped:
            return
        failure = task.exception() or RuntimeError(f"task {task.get_name()} returned")
        log.error("task %s ended: %r", task.get_name(), failure)
        self._fatal(f"task {task.get_name()} failed", failure)

    async def stop(self) -> None:
        """Stop ticking and answer every waiting command with ``error="stopped"``."""
        await self._stop_tasks()
        self._stop_serving()

    async def _stop_tasks(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []

    def tick(self) -> None:
        """One logical clock tick of the core, then whatever it has to hand out (unless a
        flush is already scheduled: a batching window then runs to its end)."""
        if self.stopped:
            return
        try:
            self.core.tick(self.clock_ns())
        except Exception as exc:  # the ticker must not die quietly and leave a node that
            self._core_failed(exc)  # answers but never campaigns: stop it loudly instead
            return
        if not self._flush_scheduled:
            self._flush()

    async def _ticker(self) -> None:
        next_at = time.monotonic()
        while not self.stopped:
            next_at += self.tick_s
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
            self.tick()

    def _send(self, peer: int, payload: bytes) -> None:
        """A message for a peer (a one-node shell has none)."""
        log.warning("no transport: message for node %d dropped", peer)

    def _schedule_flush(self, delay_s: float = 0.0) -> None:
        if not self._flush_scheduled:
            self._flush_scheduled = True
            loop = asyncio.get_running_loop()
            if delay_s > 0:
                loop.call_later(delay_s, self._flush)
            else:
                loop.call_soon(self._flush)

    def _flush(self) -> None:
        self._flush_scheduled = False
        if self.stopped:
            return
        try:
            out = self.core.process(self.clock_ns())
        except Exception as exc:
            self._core_failed(exc)
            return
        for peer, payload in out.messages:
            self._send(peer, payload)
        # Answers and blocks are independent: a venue resolves its clients' results
        # from the block fold, and takes only failures without a block from answers.
        for answer in out.answers:
            for callback in self._answers.pop((answer.session, answer.request), ()):
                self._call(callback, answer)
        for block in out.blocks:
            for listener in self._block_listeners:
                self._call(listener, block)
        for context in out.reads:
            read = self._reads.pop(context, None)
            if read is not None and not read.done():
                read.set_result(None)
        if out.halted is not None:
            self._halt(out.halted)

    def _core_failed(self, exc: Exception) -> None:
        """An exception escaped the core: its state may be half-updated (a Ready taken but
        not advanced), so it is never driven again. The shell stops loudly; a restart
        recovers from what is durable."""
        if isinstance(exc, (OSError, StorageError)):
            # The disk refused a write or an fsync (full, failing): nothing may be acknowledged.
            self._fatal("storage failure", exc)
            return
        log.exception("the node core failed")  # a bug in the core or the state machine
        self._fatal("node core failed", exc)

    @staticmethod
    def _call(callback: Callable[[Any], None], value: Any) -> None:
        try:
            callback(value)
        except Exception:  # one client's or subscriber's bug must not stop the node
            log.exception("callback %r failed", callback)

    def _stop_serving(self) -> None:
        """Refuse further work and answer every waiting command: nothing more will apply."""
        self.stopped = True
        waiting, self._answers = self._answers, {}
        for (session, request), callbacks in waiting.items():
            for callback in callbacks:
                self._call(callback, Answer(session, request, 0, (), "stopped"))

    def _fatal(self, reason: str, exc: BaseException) -> None:
        log.error("FATAL %s: %s", reason, exc)
        self._stop_serving()

    def _halt(self, report: dict[str, Any]) -> None:
        log.error("HALTED: %s", report.get("reason"))
        self._stop_serving()

    # --- the gateway ------------------------------------------------------------------

    def add_block_listener(self, listener: Callable[[AppliedBlock], None]) -> None:
        self._block_listeners.append(listener)

    def remove_block_listener(self, listener: Callable[[AppliedBlock], None]) -> None:
        self._block_listeners.remove(listener)

    def submit_nowait(
        self, command_wire: list[Any], session: int, request: int,
        callback: Callable[[Answer], None],
    ) -> bool:
        """Put a validated command (wire form) through the log; ``callback`` gets its answer.

        The core answers every accepted request exactly once: with its events, or
        with ``error="timeout"`` after ``request_timeout_ns``. Returns False when the
        node has too many requests pending or has stopped (nothing was accepted).
        """
        if self.stopped:
            return False
        key = (session, request)
        callbacks = self._answers.get(key)
        if callbacks is not None:  # already pending: one more listener
            callbacks.append(callback)
            return True
        if not self.core.submit_wire(command_wire, session, request, self.clock_ns()):
            return False
        self._answers[key] = [callback]
        self._schedule_flush(self.batch_window_s)
        return True

    async def submit(
        self, command: Any, *, session: int | None = None, request: int | None = None,
    ) -> Answer:
        """Put a command through the log; returns its answer once applied here."""
        if session is None or request is None:
            self._next_request += 1
            session, request = self.session, self._next_request
        future: asyncio.Future[Answer] = asyncio.get_running_loop().create_future()

        def done(answer: Answer) -> None:
            if not future.done():
                future.set_result(answer)

        if not self.submit_nowait(self.core.codec.encode(command), session, request, done):
            raise RequestTimeout(reason="too many pending requests")
        answer = await future
        if answer.error in ("timeout", "stopped"):
            raise RequestTimeout(reason=f"not committed ({answer.error})", session=session,
                                 request=request)
        return answer

    async def read_barrier(self, timeout_s: float = 5.0, attempt_s: float = 1.0) -> None:
        """Wait until local state reflects every write committed before this call (ReadIndex).

        A read can be lost (a dropped message, a leader change) and is then never
        answered, and there may be no leader for a moment: both are retried with a fresh
        context until ``timeout_s`` has passed.
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        last_problem = "no attempt"
        while loop.time() < deadline:
            context = self.core.id.to_bytes(8, "big") + secrets.token_bytes(12)
            future: asyncio.Future[None] = loop.create_future()
            self._reads[context] = future
            rejected = self.core.read(context)
            if rejected is not None:
                self._reads.pop(context, None)
                last_problem = str(rejected)
                await asyncio.sleep(0.05)
                continue
            self._schedule_flush()
            try:
                await asyncio.wait_for(future, min(attempt_s, max(0.0, deadline - loop.time())))
                return
            except TimeoutError:
                last_problem = "read index not confirmed in time"
            finally:
                self._reads.pop(context, None)
        if "leader" in last_problem:
            raise NotLeaderError(reason=last_problem)
        raise RequestTimeout(reason=last_problem)


class NodeServer(NodeShell):
    """A node process: its shell plus sockets to peers, a data dir, status files,
    the native gateway and (attached by the process entry) the API."""

    def __init__(self, config: NodeConfig) -> None:
        self.config = config
        self.data_dir = config.data_dir
        self.data_dir.mkdir(parents=True, exist_ok=True)
        genesis = machine.genesis_from(config.genesis)
        self.genesis = genesis
        self.layout = DataDir.init(str(self.data_dir), config.node_id, cluster=_cluster_name(config))
        self.layout.lock()
        storage, recovered = self.layout.open_raft()
        for repair in recovered.repairs:
            log.warning("storage recovery: %s", repair)
        snapshots = self.layout.snapshots()
        settings = NodeSettings(
            election_ticks=config.election_ticks,
            heartbeat_ticks=config.heartbeat_ticks,
            block_commands_max=config.block_commands_max,
            snapshot_every_blocks=config.snapshot_every_blocks,
            block_time_rate=config.block_time_rate,
            block_anchor_ns=config.block_anchor_ns,
            wall_anchor_ns=config.wall_anchor_ns,
        )
        core = NodeCore(
            config.node_id,
            tuple(sorted(config.peers)),
            storage,
            recovered,
            snapshots,
            machine_factory=lambda: machine.new_machine(genesis),
            machine_restore=machine.restore_machine,
            command_codec=machine.command_codec(),
            rng=random.Random(config.seed),
            settings=settings,
        )
        super().__init__(core, tick_s=config.tick_ms / 1000)
        self._stopping = asyncio.Event()
        self.exit_code = 0
        peers = {pid: addr for pid, addr in config.peers.items() if pid != config.node_id}
        self.transport = Transport(
            config.node_id,
            config.raft_address[0],
            config.raft_address[1],
            peers,
            config.cluster_secret,
            self._on_peer_message,
            rng=random.Random(config.seed * 7919 + 1),
        )
        self.gateway: Any = None
        self.core.send_early = self._send_now
        self.api: Any = None  # an object with ``async stop()``, attached by the process entry

    # --- lifecycle -------------------------------------------------------------------

    async def start(self) -> None:
        await self.transport.start()
        self.start_ticker()
        self.supervise(self._status_writer(), "status-writer")
        if self.config.demo_oracle:
            self.supervise(self._demo_oracle(), "demo-oracle")
        if self.config.gateway_address is not None:
            from deltasync.node.gateway import GatewayServer

            self.gateway = GatewayServer(self, *self.config.gateway_address)
            await self.gateway.start()
        log.info("node %d started (height %d)", self.config.node_id, self.core.tip.height)

    async def stop(self) -> None:
        self._stopping.set()
        if self.api is not None:
            await self.api.stop()
        if self.gateway is not None:
            await self.gateway.stop()
        await self._stop_tasks()
        await self.transport.stop()
        try:
            self.core.storage.close()
        except (OSError, StorageError) as exc:
            log.warning("closing storage: %s", exc)
        self._write_status()
        self.layout.unlock()

    async def run_until_stopped(self) -> int:
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, self._stopping.set)
        await self._stopping.wait()
        await self.stop()
        return self.exit_code

    # --- peers -------------------------------------------------------------------------

    def _send(self, peer: int, payload: bytes) -> None:
        self.transport.send(peer, payload)

    def _send_now(self, peer: int, payload: bytes) -> None:
        self.transport.send(peer, payload)
        self.transport.flush(peer)

    def _on_peer_message(self, peer: int, payload: bytes) -> None:
        if self.stopped:
            return
        try:
            self.core.receive(peer, payload, self.clock_ns())
        except Exception as exc:  # receive drops garbage itself; anything else is a bug
            self._core_failed(exc)
            return
        self._schedule_flush()

    def _fatal(self, reason: str, exc: BaseException) -> None:
        super()._fatal(reason, exc)
        try:
            self.layout.write_report(
                f"fatal-{time.time_ns()}.json",
                {"reason": reason, "error": repr(exc)[:2000], "node_id": self.config.node_id,
                 "height": self.core.tip.height},
            )
        except OSError:
            pass  # the disk that failed may not take the report either; the log has it
        self.exit_code = EXIT_STORAGE_FAILURE if reason == "storage failure" else EXIT_CORE_FAILURE
        self._stopping.set()

    def _halt(self, report: dict[str, Any]) -> None:
        super()._halt(report)
        report = {**report, "node_id": self.config.node_id, "wall_time_ns": time.time_ns()}
        path = self.layout.write_report(f"halt-{report.get('height', 0)}.json", report)
        log.error("HALTED: %s (report %s)", report.get("reason"), path)
        self.exit_code = EXIT_HALTED
        self._stopping.set()

    async def _demo_oracle(self) -> None:
        """Demo clusters only: while leader, submit the demo oracle's signed reports every
        second (the genesis reference prices walking slowly), so a quickstart can trade
        at once. They enter the log like any client's commands. A follower's oracle
        keeps walking, so a new leader continues from where prices are."""
        from deltasync.node.demo_oracle import DemoOracle, DemoOracleOptions

        vol_per_sqrt_wall_s = 0.0012  # whatever the block clock's rate
        vol = vol_per_sqrt_wall_s / self.core.settings.block_time_rate**0.5
        oracle = DemoOracle(
            random.Random(self.config.seed),
            {spec.name: spec.reference_price_raw for spec in self.genesis.underlyings},
            DemoOracleOptions(vol_per_sqrt_s=vol),
        )
        while True:
            await asyncio.sleep(1.0)
            now = self.core.settings.block_time(time.time_ns())
            if self.core.raft.role.value != "leader":
                oracle.advance(now)
                continue
            for report in oracle.reports(now):
                try:
                    await self.submit(report)
                except RequestTimeout:
                    log.warning("demo oracle report not committed in time")

    # --- status -----------------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        status = self.core.status()
        status["api"] = self.config.api_peers.get(self.config.node_id)
        status["transport"] = self.transport.metrics()
        return status

    def _write_status(self) -> None:
        core = self.core.status()
        write_status(
            self.data_dir,
            NodeStatus(
                id=self.config.node_id,
                role=core["role"],
                term=core["term"],
                leader=core["leader"],
                commit_index=core["commit_index"],
                applied_index=core["applied_index"],
                height=core["height"],
                state_root=core["state_root"],
                api=self.config.api_peers.get(self.config.node_id),
                pid=os.getpid(),
                updated_ns=time.time_ns(),
                halted=core["halted"],
            ),
        )

    async def _status_writer(self) -> None:
        while True:
            try:
                self._write_status()
            except OSError as exc:  # a full disk must not kill the node's status loop
                log.warning("status write failed: %s", exc)
            await asyncio.sleep(STATUS_INTERVAL_S)


def _cluster_name(config: NodeConfig) -> str:
    """A stable name for the cluster this data dir belongs to (not the secret itself)."""
    return "cluster-" + hashlib.sha256(b"deltasync-cluster-id" + config.cluster_secret).hexdigest()[:16]
