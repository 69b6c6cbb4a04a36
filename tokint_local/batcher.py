"""Several generations at once, with every llama.cpp call on one thread: the Batcher.

Each generation runs the engine's own code on a thread of its own. Its models are sequence views
(slots.py) that never call llama.cpp themselves: they hand each call to the Batcher and wait. The
thread that runs ``Batcher.run`` makes every call (OpenMP gives each calling thread a team of its
own, and two teams on the same cores slow decoding: docs/PERFORMANCE.md):

- a ``decode`` waits for the next *step*. Once every member thread waits on a decode, the step
  groups the waiting decodes by model and makes one ``llama_decode`` per model holding every
  sequence's rows (more than one only when their tokens together pass the model's n_batch), hands
  each thread its logits rows and lets it go on;
- anything else (``call``: a prefill, a rollback, loading a pair) runs as soon as it arrives,
  between steps, in the order it arrived.

Threads join and leave between steps (``member``), so a generation that starts or ends never holds
up the others for more than a step. A member must not wait on anything but the Batcher while it is
a member (a step waits for every member), so consumers of a generation's events should be quick.
"""
from __future__ import annotations

import contextlib
import queue
import signal
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .errors import BackendError

_JOIN, _LEAVE, _STOP, _ABORT = "join", "leave", "stop", "abort"


@dataclass(eq=False)
class _Work:
    """A call to run on the Batcher's thread (``fn``), or a decode for the next step (``model``)."""

    fn: Optional[Callable[..., Any]] = None
    args: tuple = ()
    model: Any = None
    seq: int = 0
    tokens: Sequence[int] = ()
    rows: Optional[Sequence[int]] = None
    done: threading.Event = field(default_factory=threading.Event)
    result: Any = None
    error: Optional[BaseException] = None

    def finish(self, result: Any = None, error: Optional[BaseException] = None) -> None:
        self.result, self.error = result, error
        self.done.set()

    def outcome(self) -> Any:
        self.done.wait()
        if self.error is not None:
            raise self.error
        return self.result


@dataclass
class BatchStats:
    """What the steps did, for measurements: steps, llama_decode calls and the rows they held."""

    steps: int = 0
    decodes: int = 0
    rows: int = 0
    widest: int = 0  # the most rows one decode held


class Batcher:
    def __init__(self) -> None:
        self._inbox: queue.SimpleQueue = queue.SimpleQueue()
        self._members = 0  # threads taking part in steps (changed only on the Batcher's thread)
        self._waiting: list[_Work] = []  # decodes for the next step
        self._local = threading.local()
        self._owner: Optional[int] = None  # the thread running run()
        self._lock = threading.Lock()  # orders _send against run()'s closing: no work slips in after it
        self._closed = False  # run() has ended (stop, or an exception such as Ctrl+C): no work is taken
        self._stepping: list[_Work] = []  # the decodes of the step under way
        self.stats = BatchStats()

    # -- any thread ------------------------------------------------------------------------
    def call(self, fn: Callable[..., Any], *args: Any) -> Any:
        """Run ``fn(*args)`` on the Batcher's thread between steps; its result, or its exception."""
        if self._on_owner():
            return fn(*args)
        work = _Work(fn=fn, args=args)
        self._send(work)
        return work.outcome()

    def post(self, fn: Callable[..., Any], *args: Any) -> None:
        """Run ``fn(*args)`` on the Batcher's thread, without waiting for it (exceptions propagate from run);
        dropped once ``run`` has ended."""
        with contextlib.suppress(BackendError):
            self._send(_Work(fn=fn, args=args, done=_NO_WAITER))

    def decode(self, model: Any, seq: int, tokens: Sequence[int], rows: Optional[Sequence[int]] = None) -> np.ndarray:
        """``model.decode(tokens, rows, seq)`` in the next step, batched with every other member's decodes."""
        if self._on_owner():
            return model.decode(tokens, rows, seq)
        work = _Work(model=model, seq=seq, tokens=tuple(tokens), rows=None if rows is None else tuple(rows))
        if getattr(self._local, "member", False):
            self._send(work)
            return work.outcome()
        with self.member():  # a thread that did not join takes part in this one step
            self._send(work)
            return work.outcome()

    @contextlib.contextmanager
    def member(self) -> Iterator[None]:
        """Take part in steps for the block: no step runs while this thread is busy elsewhere."""
        if getattr(self._local, "member", False):
            yield
            return
        self._inbox.put(_JOIN)
        self._local.member = True
        try:
            yield
        finally:
            self._local.member = False
            self._inbox.put(_LEAVE)

    def _send(self, work: _Work) -> None:
        """Queue ``work`` for the Batcher's thread; BackendError once ``run`` has ended (nobody would serve it)."""
        with self._lock:
            if self._closed:
                raise BackendError("the batcher stopped")
            self._inbox.put(work)

    def stop(self) -> None:
        """Make ``run`` return once everything sent before this is done."""
        self._inbox.put(_STOP)

    def abort(self) -> None:
        """Make ``run`` raise KeyboardInterrupt between two calls or steps, everything still waiting failing
        with BackendError. Safe in a signal handler (``SimpleQueue.put`` is reentrant), unlike a
        KeyboardInterrupt raised wherever the Batcher's thread happens to be (mid-step, mid-``Event.set``)."""
        self._inbox.put(_ABORT)

    # -- the Batcher's thread --------------------------------------------------------------
    def run(self) -> None:
        """Serve calls and steps on this thread until ``stop``."""
        self._owner = threading.get_ident()
        with self._lock:
            self._closed = False
        try:
            while True:
                if self._take(self._inbox.get()):
                    return
                while True:
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if self._take(item):
                        return
                if self._waiting and len(self._waiting) >= self._members:
                    self._step()
        finally:
            # Nobody is left to serve the work queued, waiting for a step or in the step an exception (Ctrl+C)
            # cut short: its threads get an error, not a wait forever, and later work is refused in _send.
            self._owner = None
            with self._lock:
                self._closed = True
                left = self._stepping + self._waiting
                self._stepping, self._waiting = [], []
                while True:
                    try:
                        item = self._inbox.get_nowait()
                    except queue.Empty:
                        break
                    if isinstance(item, _Work):
                        left.append(item)
            for work in left:
                if not work.done.is_set():
                    work.finish(error=BackendError("the batcher stopped"))

    def _on_owner(self) -> bool:
        return self._owner == threading.get_ident()

    def _take(self, item: Any) -> bool:
        """Handle one inbox item; True to stop."""
        if item is _STOP:
            return True
        if item is _ABORT:
            raise KeyboardInterrupt
        if item is _JOIN:
            self._members += 1
        elif item is _LEAVE:
            self._members -= 1
        elif item.fn is not None:
            try:
                result = item.fn(*item.args)
            except BaseException as exc:  # the caller gets it
                if item.done is _NO_WAITER:
                    raise
                item.finish(error=exc)
            else:
                item.finish(result)
        else:
            self._waiting.append(item)
        return False

    def _step(self) -> None:
        """One llama_decode per model for every waiting decode (split only past n_batch)."""
        waiting, self._waiting = self._waiting, []
        self._stepping = waiting
        self.stats.steps += 1
        by_model: dict[int, list[_Work]] = {}
        for work in waiting:
            by_model.setdefault(id(work.model), []).append(work)
        for works in by_model.values():
            model = works[0].model
            ready = []
            for work in works:  # a bad request fails alone
                try:
                    model.check(work.seq, work.tokens, work.rows)
                except BackendError as exc:
                    work.finish(error=exc)
                else:
                    ready.append(work)
            for group in _fill(ready, model.n_batch):
                rows = sum(len(w.tokens) for w in group)
                self.stats.decodes += 1
                self.stats.rows += rows
                self.stats.widest = max(self.stats.widest, rows)
                try:
                    results = model.decode_batch([(w.seq, w.tokens, w.rows) for w in group])
                except BackendError as exc:
                    for work in group:
                        work.finish(error=exc)
                else:
                    for work, logits in zip(group, results):
                        work.finish(logits)
        self._stepping = []


class _NoWaiter(threading.Event):
    """The ``done`` of posted work: nobody waits on it."""


_NO_WAITER = _NoWaiter()


def _fill(works: list[_Work], n_batch: int) -> Iterator[list[_Work]]:
    """Consecutive groups of decodes whose tokens together fit in one batch of ``n_batch``."""
    group: list[_Work] = []
    size = 0
    for work in works:
        if group and size + len(work.tokens) > n_batch:
            yield group
            group, size = [], 0
        group.append(work)
        size += len(work.tokens)
    if group:
        yield group


def serve(batcher: Batcher, fn: Callable[[], Any]) -> Any:
    """Run ``fn`` on a new thread while this thread runs ``batcher``; ``fn``'s result or exception."""
    outcome: dict[str, Any] = {}

    def target() -> None:
        try:
            outcome["value"] = fn()
        except BaseException as exc:
            outcome["error"] = exc
        finally:
            batcher.stop()

    thread = threading.Thread(target=target, name="batched-driver", daemon=True)
    # Ctrl+C makes the batcher stop at a clean point (abort) rather than wherever the signal lands; not where
    # SIGINT is ignored (a background job) or handled by someone else, and only on the main thread (Python's rule)
    sigint = threading.current_thread() is threading.main_thread() and \
        signal.getsignal(signal.SIGINT) is signal.default_int_handler
    if sigint:
        signal.signal(signal.SIGINT, lambda signum, frame: batcher.abort())
    thread.start()
    try:
        batcher.run()
    finally:
        if sigint:
            signal.signal(signal.SIGINT, signal.default_int_handler)
        # Also after an exception here (Ctrl+C): ``fn``'s threads still run until their calls fail (run() has
        # closed the batcher), and the caller must not free the models under them (a use after free: SIGSEGV).
        thread.join()
    if "error" in outcome:
        raise outcome["error"]
    return outcome.get("value")
