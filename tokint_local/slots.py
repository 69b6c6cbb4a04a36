"""A pair's sequences as slots: up to ``pair.parallel`` generations at once, each a sequence of its own.

A pair loaded with ``parallel = N`` has N sequences in each model's context. A slot is one of them
in both models, seen by the engine as a ``ModelPair`` of its own: its two models are
``SequenceModel`` views whose decodes, prefills and rollbacks go through a ``Batcher`` (batcher.py),
so the engine's and the schedules' code runs unchanged on a generation thread while one thread makes
every llama.cpp call and decodes all running generations' rows together.

Vocabulary lookups (tokenize, token pieces, end-of-generation ids, metadata, the chat template) read
only the loaded model, never a context, and are made directly from the generation's thread, as
llama-server makes them from its HTTP threads.
"""
from __future__ import annotations

import contextlib
import threading
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any, Callable, Iterator, Optional, Sequence

import numpy as np

from .backend import LlamaModel
from .batcher import Batcher, serve
from .errors import BackendError, TokintError
from .events import Event, GenerationRequest
from .pair import ModelPair


class SequenceModel:
    """Sequence ``seq`` of a ``LlamaModel``, with the interface of a model of its own."""

    def __init__(self, model: LlamaModel, seq: int, batcher: Batcher):
        self.model, self.seq, self.batcher = model, seq, batcher

    def __getattr__(self, name: str) -> Any:  # vocab, metadata, sizes: the model's own
        return getattr(self.model, name)

    @property
    def n_past(self) -> int:
        return self.model.seq_n_past(self.seq)

    def prefill(self, tokens: Sequence[int], reuse_prefix: bool = False) -> np.ndarray:
        def run() -> tuple[np.ndarray, int]:  # last_reused is the model's: read it in the same call
            return self.model.prefill(tokens, self.seq, reuse_prefix), self.model.last_reused

        logits, self.last_reused = self.batcher.call(run)
        return logits

    def decode(self, tokens: Sequence[int], rows: Optional[Sequence[int]] = None) -> np.ndarray:
        return self.batcher.decode(self.model, self.seq, tokens, rows)

    def truncate(self, n: int) -> None:
        self.batcher.call(self.model.truncate, n, self.seq)


class Slots:
    """The slots of one loaded pair, handed out to generations (thread-safe)."""

    def __init__(self, pair: ModelPair, batcher: Batcher):
        self.pair, self.batcher = pair, batcher
        self._free = list(range(pair.parallel))
        self._lock = threading.Lock()

    @property
    def in_use(self) -> int:
        with self._lock:
            return self.pair.parallel - len(self._free)

    def acquire(self) -> int:
        with self._lock:
            if not self._free:
                raise BackendError(f"pair {self.pair.name!r} runs {self.pair.parallel} generations at once, all busy")
            return self._free.pop(0)

    def release(self, seq: int) -> None:
        with self._lock:
            self._free.append(seq)
            self._free.sort()

    def view(self, seq: int) -> ModelPair:
        """Slot ``seq`` as a pair for the engine."""
        pair = self.pair
        return replace(pair, base=SequenceModel(pair.base, seq, self.batcher),
                       reasoning=SequenceModel(pair.reasoning, seq, self.batcher), lock=threading.Lock())

    @contextlib.contextmanager
    def session(self) -> Iterator[ModelPair]:
        """A free slot as a pair, for the block, from any thread but the Batcher's (BackendError when
        none is free). Every step waits for this thread while the block runs: keep it to model work."""
        seq = self.acquire()
        try:
            with self.batcher.member():
                yield self.view(seq)
        finally:
            self.release(seq)

    def generate(self, request: GenerationRequest, cancel: Optional[threading.Event] = None) -> Iterator[Event]:
        """``engine.generate`` on a free slot, from any thread but the Batcher's: its events, in order.

        The slot is taken when iteration starts and given back when the iterator ends or is closed;
        iterate it to the end or close it, since every step waits for it while it runs.
        """
        from .engine import generate

        def events() -> Iterator[Event]:
            with self.session() as pair:
                yield from generate(pair, request, cancel)

        return events()


def map_on_slots(pair: ModelPair, fn: Callable[[ModelPair, Any], Any], items: Sequence[Any],
                 done: Optional[Callable[[Any], None]] = None) -> list[Any]:
    """``fn(slot, item)`` for every item, ``pair.parallel`` at a time, each on a slot of its own, with
    the llama.cpp calls on this thread; the results in the order of ``items``. ``done(result)`` is
    called for each in that order, as soon as it and those before it are done. A pair with one slot
    runs them one by one on this thread."""
    if pair.parallel <= 1:
        out = []
        for item in items:
            out.append(fn(pair, item))
            if done is not None:
                done(out[-1])
        return out
    batcher = Batcher()
    slots = Slots(pair, batcher)

    def one(item: Any) -> Any:
        with slots.session() as slot:
            return fn(slot, item)

    def run_all() -> list[Any]:
        with ThreadPoolExecutor(pair.parallel, thread_name_prefix="slot") as pool:
            futures = [pool.submit(one, item) for item in items]
            try:
                out = []
                for future in futures:
                    out.append(future.result())
                    if done is not None:
                        done(out[-1])
                return out
            finally:
                for future in futures:
                    future.cancel()

    return serve(batcher, run_all)


def generate_together(pair: ModelPair, requests: Sequence[GenerationRequest],
                      cancels: Optional[Sequence[Optional[threading.Event]]] = None,
                      on_event: Optional[Callable[[int, Event], None]] = None) -> list[list[Event] | TokintError]:
    """Run ``requests`` at once on ``pair`` (loaded with ``parallel`` >= their number), each on a slot
    of its own, with the llama.cpp calls on this thread. Each request's events, or the TokintError it
    raised. ``on_event(i, event)`` is called on request i's thread as each event comes."""
    if len(requests) > pair.parallel:
        raise BackendError(f"{len(requests)} requests, but pair {pair.name!r} runs {pair.parallel} at once")
    batcher = Batcher()
    slots = Slots(pair, batcher)
    results: list[Any] = [None] * len(requests)

    def run(i: int) -> None:
        got: list[Event] = []
        try:
            for event in slots.generate(requests[i], cancels[i] if cancels else None):
                got.append(event)
                if on_event is not None:
                    on_event(i, event)
            results[i] = got
        except TokintError as exc:
            results[i] = exc

    def all_of_them() -> None:
        threads = [threading.Thread(target=run, args=(i,), name=f"generation-{i}", daemon=True)
                   for i in range(len(requests))]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()

    serve(batcher, all_of_them)
    return results
