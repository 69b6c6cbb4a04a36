"""Generations in the daemon: a FIFO queue per pair, one generation at a time per pair, run on
the llama thread so the socket loop never waits on llama.cpp.

Every call into llama.cpp (loading, generating, freeing) goes through one dedicated thread. Its
CPU backend uses OpenMP, which gives each calling thread a team of its own; with more OpenMP
threads than cores, libgomp stops spinning and every decode slows down (measured: 45 -> 33
tokens/s on the 0.5B model once a second thread had called llama_decode; docs/PERFORMANCE.md).

Every generate request ends with exactly one ``summary`` or ``error``; before that it may get
``queued`` (with its place, again whenever the queue moves) and ``started``, then ``token``s.
"""
from __future__ import annotations

import asyncio
import logging
import time
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

from tokint_local.engine import Cancel, generate
from tokint_local.errors import TokintError
from tokint_local.history import HistoryWriter
from tokint_local.events import GenerationRequest, Loading, Queued, Started, Summary, TokenEvent
from tokint_local.pair import ModelPair
from tokint_local.status import ActiveGeneration
from tokint_local.wire import Message, error_message

from .registry import Registry

log = logging.getLogger("tokintd.scheduler")

Send = Callable[[Hashable, Message], None]  # (peer, message), called on the loop thread


@dataclass(eq=False)
class Job:
    id: str
    peer: Hashable
    request: GenerationRequest
    pair_name: str
    cancel: Cancel = field(default_factory=Cancel)
    submitted: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    tokens: int = 0
    ended: bool = False  # its summary or error is on the way: the client may act on the pair already


class PairQueue:
    def __init__(self, name: str):
        self.name = name
        self.waiting: deque[Job] = deque()
        self.active: Optional[Job] = None
        self.running: Optional[asyncio.Future] = None  # the worker thread's generation
        self.wake = asyncio.Event()
        self.task: Optional[asyncio.Task] = None

    @property
    def busy(self) -> bool:
        return (self.active is not None and not self.active.ended) or bool(self.waiting)


class Scheduler:
    def __init__(self, registry: Registry, send: Send, history: Optional[HistoryWriter] = None):
        self.registry = registry
        self.send = send
        self.history = history
        self._llama = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llama")
        self.queues: dict[str, PairQueue] = {}
        self.jobs: dict[str, Job] = {}
        self.closing = False

    async def on_llama_thread(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run blocking llama.cpp work (load, unload) on the one thread that does all of it."""
        return await asyncio.get_running_loop().run_in_executor(self._llama, fn, *args)

    def close(self) -> None:
        self._llama.shutdown(wait=False)

    # -- requests --------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        queue = self.queues.get(job.pair_name)
        if queue is None:
            queue = self.queues[job.pair_name] = PairQueue(job.pair_name)
            queue.task = asyncio.get_running_loop().create_task(self._worker(queue), name=f"pair-{job.pair_name}")
        self.jobs[job.id] = job
        queue.waiting.append(job)
        if queue.active is not None or len(queue.waiting) > 1:
            self._event(job, Queued(place=len(queue.waiting)))
        queue.wake.set()

    def cancel(self, job_id: str, reason: str = "cancelled") -> bool:
        """Stop a generation: a waiting one ends at once, a running one at its next token."""
        job = self.jobs.get(job_id)
        if job is None:
            return False
        queue = self.queues[job.pair_name]
        if job in queue.waiting:
            queue.waiting.remove(job)
            self._finish_unstarted(job, reason)
            self._announce_places(queue)
        else:
            job.cancel.cancel(reason)
        return True

    def jobs_of(self, peer: Hashable) -> list[Job]:
        return [job for job in self.jobs.values() if job.peer == peer and not job.ended]

    def busy(self, pair_name: str) -> bool:
        queue = self.queues.get(pair_name)
        return queue is not None and queue.busy

    def queue_length(self, pair_name: Optional[str] = None) -> int:
        queues = [self.queues[pair_name]] if pair_name in self.queues else [] if pair_name else self.queues.values()
        return sum(len(q.waiting) for q in queues)

    def active(self, pair_name: str) -> Optional[ActiveGeneration]:
        queue = self.queues.get(pair_name)
        job = queue.active if queue else None
        if job is None or job.ended:
            return None
        elapsed = time.monotonic() - (job.started or job.submitted)
        return ActiveGeneration(id=job.id, pair=job.pair_name, mode=job.request.mode, tokens=job.tokens, elapsed_s=elapsed)

    async def shutdown(self, timeout: float) -> None:
        """End everything with finish reason "shutdown" and wait (up to ``timeout``) for workers."""
        self.closing = True
        for queue in self.queues.values():
            while queue.waiting:
                self._finish_unstarted(queue.waiting.popleft(), "shutdown")
            if queue.active is not None:
                queue.active.cancel.cancel("shutdown")
        running = [q.running for q in self.queues.values() if q.running is not None]
        for queue in self.queues.values():
            if queue.task is not None:
                queue.task.cancel()
        if running:
            await asyncio.wait(running, timeout=timeout)

    # -- the worker of one pair ------------------------------------------------------------
    async def _worker(self, queue: PairQueue) -> None:
        loop = asyncio.get_running_loop()
        while True:
            if not queue.waiting:
                queue.wake.clear()
                await queue.wake.wait()
                continue
            job = queue.waiting.popleft()
            queue.active = job
            self._announce_places(queue)
            queue.running = loop.run_in_executor(self._llama, self._run_job, job, loop)
            try:
                # shielded: cancelling this task (shutdown) leaves the generation to end by itself
                await asyncio.shield(queue.running)
            finally:
                queue.active = None
                queue.running = None
                self.jobs.pop(job.id, None)

    def _run_job(self, job: Job, loop: asyncio.AbstractEventLoop) -> None:
        """On the llama thread: load the pair if needed, run the generation, post every event."""

        def post(message: Message) -> None:
            if message.type in ("summary", "error"):
                job.ended = True  # before the client can hear of it: an unload it sends next is not "busy"
            loop.call_soon_threadsafe(self.send, job.peer, message)

        try:
            if job.cancel.is_set():
                loop.call_soon_threadsafe(self._finish_unstarted, job, job.cancel.reason)
                return
            if self.registry.get(job.pair_name) is None:
                post(Message("loading", Loading(job.pair_name).to_wire(), parent=job.id))
            pair = self.registry.load(job.pair_name)
            self._generate(job, pair, post)
        except TokintError as exc:
            post(error_message(exc.code, str(exc), job.id))
            self._record_end(job, error=f"{exc.code}: {exc}")
        except Exception as exc:  # a bug must not take the daemon down; the client hears of it
            log.exception("generation %s failed", job.id)
            post(error_message("internal", f"internal error: {type(exc).__name__}: {exc}", job.id))
            self._record_end(job, error=f"internal: {exc}")

    def _record_end(self, job: Job, summary: Optional[dict] = None, error: Optional[str] = None) -> None:
        if self.history is not None and job.started is not None:
            self.history.end(job.id, summary, error)

    def _generate(self, job: Job, pair: ModelPair, post: Callable[[Message], None]) -> None:
        with pair.exclusive():
            events = generate(pair, job.request, job.cancel)
            first = next(events)  # prompt errors (too long, empty) raise here, before "started"
            job.started = time.monotonic()
            if self.history is not None:
                self.history.begin(job.id, pair.name, job.request.to_wire())
            post(Message("started", Started(pair.name, job.request.mode, job.started - job.submitted).to_wire(), parent=job.id))
            for event in _chain(first, events):
                wire = event.to_wire()
                if isinstance(event, TokenEvent):
                    job.tokens += 1
                    if self.history is not None:
                        self.history.token(job.id, wire)
                else:
                    self._record_end(job, summary=wire)
                post(Message(event.type, wire, parent=job.id))
            log.info("generation %s on %s done: %d tokens", job.id, pair.name, job.tokens)

    # -- messages --------------------------------------------------------------------------
    def _event(self, job: Job, event) -> None:
        self.send(job.peer, Message(event.type, event.to_wire(), parent=job.id))

    def _announce_places(self, queue: PairQueue) -> None:
        for place, waiting in enumerate(queue.waiting, start=1):
            self._event(waiting, Queued(place=place))

    def _finish_unstarted(self, job: Job, reason: str) -> None:
        self.jobs.pop(job.id, None)
        waited = time.monotonic() - job.submitted
        self._event(job, Summary(n_tokens=0, n_takeovers=0, takeover_positions=(), finish_reason=reason,
                                 tokens_per_second=0.0, elapsed_s=waited))


def _chain(first, rest):
    yield first
    yield from rest
