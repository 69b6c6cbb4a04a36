"""Generations in the daemon: a FIFO queue per pair, handed to free slots of the llama.cpp worker.

The worker process (worker.py, supervised by supervisor.py) makes every llama.cpp call; this module
decides what it runs next and routes what it reports to the clients and the history. A pair runs
up to its ``parallel`` generations at once (its slots; the worker decodes them together), pairs run
side by side. The daemon never waits on llama.cpp and never dies with it: when the worker dies,
every generation it was running ends with ``backend_crashed``, queued ones stay queued, and they
run on a fresh worker (which loads its pairs again).

Every generate request ends with exactly one ``summary`` or ``error``; before that it may get
``queued`` (with its place, again whenever the queue moves), ``loading`` and ``started``, then
``token``s. A pair's jobs start in the order they were submitted, and so do each client's.
"""
from __future__ import annotations

import asyncio
import itertools
import logging
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from typing import Any, Callable, Hashable, Optional

from tokint_local.errors import BackendCrashed, TokintError, error_from_code
from tokint_local.events import GenerationRequest, Loading, Queued, Started, Summary
from tokint_local.history import HistoryWriter
from tokint_local.status import ActiveGeneration, LoadedPair, Offload
from tokint_local.wire import Message, error_message

from .supervisor import Crash, WorkerProcess

log = logging.getLogger("tokintd.scheduler")

Send = Callable[[Hashable, Message], None]  # (peer, message), called on the loop thread


@dataclass(eq=False)
class Job:
    id: str
    peer: Hashable
    request: GenerationRequest
    pair_name: str
    submitted: float = field(default_factory=time.monotonic)
    started: Optional[float] = None
    tokens: int = 0
    cancel_reason: Optional[str] = None  # set once a cancel was asked for
    ended: bool = False  # its summary or error has been sent
    order: int = field(default_factory=itertools.count().__next__)  # submission order (ties in time broken)
    handed_at: Optional[float] = None  # wall clock when the worker got it: its start in the history


class PairQueue:
    def __init__(self, name: str):
        self.name = name
        self.waiting: deque[Job] = deque()


class Scheduler:
    """Queues, the worker, and the bookkeeping between them. Every method runs on the daemon's loop."""

    def __init__(self, models_arg: Optional[str], send: Send, history: Optional[HistoryWriter] = None,
                 log_level: str = "info", parallel: int = 1, slots: Optional[Callable[[str], int]] = None):
        self.send = send
        self.history = history
        self.worker = WorkerProcess(models_arg, self._on_worker_message, self._on_crash, log_level, parallel)
        self._slots = slots or (lambda name: parallel)  # a pair's parallel as configured, before it is loaded
        self.queues: dict[str, PairQueue] = {}
        self.jobs: dict[str, Job] = {}  # queued or running generations
        self.running: dict[str, Job] = {}  # the generations the worker is running, by id
        self.loaded: dict[str, dict[str, Any]] = {}  # pair -> what the worker said when it loaded it
        self.model_bytes = 0  # every model the worker holds, once
        self.closing = False
        self._requests: dict[str, asyncio.Future] = {}  # load/unload commands awaiting the worker
        self._wake = asyncio.Event()
        self._dispatcher: Optional[asyncio.Task] = None

    def start(self) -> None:
        self.worker.start()
        self._dispatcher = asyncio.get_running_loop().create_task(self._dispatch(), name="dispatch")

    # -- requests --------------------------------------------------------------------------
    def submit(self, job: Job) -> None:
        if self.worker.failing_to_start:
            crash = self.worker.crashes[-1]
            raise BackendCrashed(f"the llama.cpp worker cannot start (restarting in "
                                 f"{self.worker.status().restart_in_s or 0:.0f} s): {crash.describe()}")
        queue = self.queues.setdefault(job.pair_name, PairQueue(job.pair_name))
        self.jobs[job.id] = job
        queue.waiting.append(job)
        moved = self._start_jobs() or set()
        # a queue that moved announced its places; a job held up only by a worker not ready yet is not told to wait
        if job in queue.waiting and job.pair_name not in moved and not self._startable(job):
            self._event(job, Queued(place=len(queue.waiting)))

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
        elif job.cancel_reason is None:
            job.cancel_reason = reason
            try:
                self.worker.send({"op": "cancel", "job": job.id, "reason": reason})
            except RuntimeError:  # no worker: the crash handler ends the job
                pass
        return True

    async def load(self, pair: str) -> dict[str, Any]:
        """Have the worker load ``pair``; its LoadedPair fields and ``seconds``."""
        return await self._command("load", pair)

    async def unload(self, pair: str) -> bool:
        return bool((await self._command("unload", pair)).get("was_loaded"))

    async def _command(self, op: str, pair: str) -> dict[str, Any]:
        await self.worker.ready.wait()
        request_id = uuid.uuid4().hex
        future = asyncio.get_running_loop().create_future()
        self._requests[request_id] = future
        try:
            self.worker.send({"op": op, "job": request_id, "pair": pair})
        except RuntimeError:
            self._requests.pop(request_id, None)
            raise BackendCrashed("the llama.cpp worker is restarting; try again in a moment") from None
        return await future

    # -- queries ---------------------------------------------------------------------------
    def running_on(self, pair_name: str) -> list[Job]:
        return [job for job in self.running.values() if job.pair_name == pair_name]

    def slots(self, pair_name: str) -> int:
        """How many generations the pair runs at once (what the worker loaded it with, once it has)."""
        loaded = self.loaded.get(pair_name)
        if loaded and loaded.get("parallel"):
            return int(loaded["parallel"])
        try:
            return self._slots(pair_name)
        except TokintError:
            return 1

    def busy(self, pair_name: str) -> bool:
        queue = self.queues.get(pair_name)
        return bool(self.running_on(pair_name)) or (queue is not None and bool(queue.waiting))

    def queue_length(self, pair_name: Optional[str] = None) -> int:
        queues = [self.queues[pair_name]] if pair_name in self.queues else [] if pair_name else self.queues.values()
        return sum(len(q.waiting) for q in queues)

    def active(self, pair_name: str) -> list[ActiveGeneration]:
        """The pair's running generations, the longest-running first."""
        now = time.monotonic()
        return [ActiveGeneration(id=job.id, pair=job.pair_name, mode=job.request.mode, tokens=job.tokens,
                                 elapsed_s=now - (job.started or job.submitted))
                for job in sorted(self.running_on(pair_name), key=lambda j: j.order)]

    def loaded_pairs(self) -> list[LoadedPair]:
        pairs = []
        for name, info in self.loaded.items():
            running = self.active(name)
            pairs.append(LoadedPair(
                name=name, base=info["base"], reasoning=info["reasoning"], model_bytes=info["model_bytes"],
                queue_length=self.queue_length(name), active=running[0] if running else None,
                base_offload=Offload(*info["base_offload"]), reasoning_offload=Offload(*info["reasoning_offload"]),
                parallel=int(info.get("parallel", 1)), running=running, context_bytes=int(info.get("context_bytes", 0)),
            ))
        return pairs

    async def shutdown(self, timeout: float) -> None:
        """End everything with finish reason "shutdown", wait (up to ``timeout``), stop the worker."""
        self.closing = True
        for queue in self.queues.values():
            while queue.waiting:
                self._finish_unstarted(queue.waiting.popleft(), "shutdown")
        for job in list(self.running.values()):
            self.cancel(job.id, "shutdown")
        deadline = time.monotonic() + timeout
        while self.running and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._dispatcher is not None:
            self._dispatcher.cancel()
        await self.worker.stop()

    # -- handing jobs to the worker --------------------------------------------------------
    async def _dispatch(self) -> None:
        while True:
            await self.worker.ready.wait()
            self._wake.clear()
            if self._start_jobs() is None:  # the worker died between ready and now: wait for the next one
                await asyncio.sleep(0.05)
                continue
            await self._wake.wait()

    def _start_jobs(self) -> Optional[set[str]]:
        """Hand every job that can start now to the worker; the pairs whose queues moved (None: no worker)."""
        moved: set[str] = set()
        if not self.worker.ready.is_set() or self.closing:
            return moved
        while (job := self._next_job()) is not None:
            try:
                self.worker.send({"op": "generate", "job": job.id, "pair": job.pair_name, "request": job.request.to_wire()})
            except RuntimeError:
                return None
            self.queues[job.pair_name].waiting.remove(job)
            self.running[job.id] = job
            job.handed_at = time.time()
            moved.add(job.pair_name)
        for name in moved:
            self._announce_places(self.queues[name])
        return moved

    def _next_job(self) -> Optional[Job]:
        """The oldest job that can start now."""
        return min(filter(None, (self._first_startable(q) for q in self.queues.values())),
                   key=lambda job: job.order, default=None)

    def _first_startable(self, queue: PairQueue) -> Optional[Job]:
        """The first job in the pair's queue that may start, if the pair has a slot free: a job waits while
        an earlier one of the same client waits (each client's jobs start in the order it sent them),
        without holding up other clients' jobs behind it."""
        if not queue.waiting or len(self.running_on(queue.name)) >= self.slots(queue.name):
            return None
        first_of_client: dict[Hashable, int] = {}
        for q in self.queues.values():
            for job in q.waiting:
                first_of_client[job.peer] = min(first_of_client.get(job.peer, job.order), job.order)
        return next((job for job in queue.waiting if first_of_client[job.peer] == job.order), None)

    def _startable(self, job: Job) -> bool:
        return self._first_startable(self.queues[job.pair_name]) is job

    # -- what the worker says --------------------------------------------------------------
    def _on_worker_message(self, message: dict[str, Any]) -> None:
        kind, job_id, content = message.get("type"), message.get("job"), message.get("content") or {}
        if kind in ("loaded", "unloaded"):
            self._note_models(kind, content)
        future = self._requests.pop(job_id, None) if job_id is not None else None
        if future is not None:
            if kind == "error":
                future.set_exception(error_from_code(content.get("code", "internal"), content.get("message", "")))
            elif not future.done():
                future.set_result(content)
            return
        job = self.jobs.get(job_id) if job_id is not None else None
        if job is None:
            return  # a pair loaded for a generation (job None), or an event for a job already ended
        if kind == "loading":
            self._event(job, Loading(job.pair_name))
        elif kind == "started":
            job.started = time.monotonic()
            if self.history is not None:
                # a pair's generations run side by side and reach their first token in any order; they started in this one
                self.history.begin(job.id, job.pair_name, job.request.to_wire(), job.handed_at)
            self._event(job, Started(job.pair_name, job.request.mode, job.started - job.submitted))
        elif kind == "token":
            job.tokens += 1
            if self.history is not None:
                self.history.token(job.id, content)
            self.send(job.peer, Message("token", content, parent=job.id))
        elif kind == "summary":
            if content.get("unstarted"):
                self._finish_unstarted(job, content.get("finish_reason") or "cancelled")
            else:
                self._record_end(job, summary=content)
                self._end(job, Message("summary", content, parent=job.id))
        elif kind == "error":
            code, text = content.get("code", "internal"), content.get("message", "")
            self._record_end(job, error=f"{code}: {text}")
            self._end(job, error_message(code, text, job.id))

    def _note_models(self, kind: str, content: dict[str, Any]) -> None:
        name = content.get("pair")
        if kind == "loaded" and name:
            self.loaded[name] = content
        elif kind == "unloaded":
            self.loaded.pop(name, None)
        if "all_model_bytes" in content:
            self.model_bytes = int(content["all_model_bytes"])
        self._wake.set()  # a pair's slots are known now

    def _on_crash(self, crash: Crash) -> None:
        self.loaded.clear()
        self.model_bytes = 0
        error = BackendCrashed(crash.describe())
        for future in self._requests.values():
            if not future.done():
                future.set_exception(error)
        self._requests.clear()
        for job in sorted(self.running.values(), key=lambda j: j.order):
            self._record_end(job, error=f"{error.code}: {crash.how}")
            self._end(job, error_message(error.code, f"{crash.describe()}", job.id))
            log.warning("generation %s ended: %s", job.id, crash.how)
        if self.worker.failing_to_start:  # nobody should wait on a worker that cannot start
            for queue in self.queues.values():
                while queue.waiting:
                    waiting = queue.waiting.popleft()
                    self._end(waiting, error_message(error.code, f"the llama.cpp worker cannot start: {crash.describe()}",
                                                     waiting.id))

    # -- bookkeeping -----------------------------------------------------------------------
    def _end(self, job: Job, message: Message) -> None:
        """The job's last message: it leaves the books before the client can act on it."""
        job.ended = True
        self.jobs.pop(job.id, None)
        if self.running.pop(job.id, None) is not None:
            self._wake.set()
        self.send(job.peer, message)
        log.info("generation %s on %s ended (%s): %d tokens", job.id, job.pair_name, message.type, job.tokens)

    def _record_end(self, job: Job, summary: Optional[dict] = None, error: Optional[str] = None) -> None:
        if self.history is not None and job.started is not None:
            self.history.end(job.id, summary, error)

    def _event(self, job: Job, event) -> None:
        self.send(job.peer, Message(event.type, event.to_wire(), parent=job.id))

    def _announce_places(self, queue: PairQueue) -> None:
        for place, waiting in enumerate(queue.waiting, start=1):
            self._event(waiting, Queued(place=place))

    def _finish_unstarted(self, job: Job, reason: str) -> None:
        waited = time.monotonic() - job.submitted
        self._end(job, Message("summary", Summary(
            n_tokens=0, n_takeovers=0, takeover_positions=(), finish_reason=reason, tokens_per_second=0.0,
            elapsed_s=waited).to_wire(), parent=job.id))
