"""tokintd's llama.cpp worker: a process of its own that owns the models and runs generations.

llama.cpp can end a process at any moment (GGML_ASSERT aborts, segfaults, the OOM killer), so it
runs here and not in the daemon, as Ollama runs its model runners. The daemon (supervisor.py)
starts this module as ``python -m daemon.worker``, writes commands to its stdin and reads events
from a copy of its original stdout (fd 1 itself is pointed at stderr so that nothing llama.cpp
prints can corrupt the channel). Framing: channel.py.

Every llama.cpp call happens on this process's main thread (OpenMP gives each calling thread its
own team; docs/PERFORMANCE.md), which runs a ``Batcher`` (tokint_local/batcher.py). Each generation
runs the engine on a thread of its own, on a free slot of its pair (a sequence in each model's
context), and streams its own events; the main thread loads pairs and decodes the rows of every
running generation together, one llama_decode per model per step. A reader thread only parses
commands: it sets the Cancel of a generation at once and hands everything else to the main thread.
When stdin closes (the daemon is gone) every generation is cancelled and the worker exits once they
have ended.
"""
from __future__ import annotations

import argparse
import logging
import itertools
import os
import signal
import sys
import threading
import time
from typing import Any, Optional, Sequence

from tokint_local.backend import versions
from tokint_local.batcher import Batcher
from tokint_local.config import load_models
from tokint_local.engine import Cancel
from tokint_local.errors import TokintError
from tokint_local.events import GenerationRequest, TokenEvent
from tokint_local.slots import Slots

from .channel import ChannelClosed, job_message, read_frame_fd, write_frame_fd
from .registry import Registry

log = logging.getLogger("tokintd.worker")


class Worker:
    def __init__(self, registry: Registry, out_fd: int, in_fd: int):
        self.registry = registry
        self.out_fd, self.in_fd = out_fd, in_fd
        self.batcher = Batcher()
        self.slots: dict[str, Slots] = {}  # loaded pair -> its slots
        self.cancels: dict[str, Cancel] = {}
        self.running: dict[str, threading.Thread] = {}  # job -> its generation thread (main thread only)
        self.exiting = False
        self._lock = threading.Lock()
        self._send_lock = threading.Lock()  # generation threads write whole frames, one at a time

    def send(self, kind: str, job: Optional[str] = None, content: Optional[dict[str, Any]] = None) -> None:
        with self._send_lock:
            write_frame_fd(self.out_fd, job_message(kind, job, content))

    # -- the reader thread -----------------------------------------------------------------
    def read_commands(self) -> None:
        try:
            while True:
                command = read_frame_fd(self.in_fd)
                op, job = command.get("op"), command.get("job")
                if op == "cancel":
                    self._cancel_of(job).cancel(command.get("reason") or "cancelled")
                    continue
                if op == "generate":
                    self._cancel_of(job)  # a cancel may arrive before the main thread gets to it
                self.batcher.post(self.handle, command)
        except (ChannelClosed, OSError) as exc:
            log.info("the daemon's channel closed (%s); stopping", exc)
        self.batcher.post(self.handle, {"op": "exit"})

    def _cancel_of(self, job: str) -> Cancel:
        with self._lock:
            return self.cancels.setdefault(job, Cancel())

    # -- the main thread -------------------------------------------------------------------
    def serve(self) -> None:
        self.send("ready", content={"pid": os.getpid(), "versions": versions()})
        try:
            self.batcher.run()
        finally:
            self.registry.close()

    def handle(self, command: dict[str, Any]) -> None:
        """One command, on the main thread; its errors go back to the daemon, never up."""
        op, job = command.get("op"), command.get("job")
        try:
            if op == "exit":
                self.exit()
            elif op == "generate":
                self.start(job, command["pair"], command["request"])
            elif op == "load":
                self.send("loaded", job, self.load(command.get("pair")))
            elif op == "unload":
                self.send("unloaded", job, self.unload(command["pair"]))
            else:
                self.send("error", job, {"code": "internal", "message": f"worker: unknown op {op!r}"})
        except TokintError as exc:
            self._forget(job)
            self.send("error", job, {"code": exc.code, "message": str(exc)})
        except (BrokenPipeError, ChannelClosed):
            raise  # the daemon is gone: nobody to tell
        except Exception as exc:  # a bug in one request must not end the worker
            log.exception("%s %s failed", op, job)
            self._forget(job)
            self.send("error", job, {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"})

    def exit(self) -> None:
        """Cancel every generation; stop once they have all ended."""
        self.exiting = True
        with self._lock:
            for cancel in self.cancels.values():
                cancel.cancel("shutdown")
        if not self.running:
            self.batcher.stop()

    def load(self, name: Optional[str]) -> dict[str, Any]:
        started = time.monotonic()
        pair = self.registry.load(name)
        return {**loaded_pair_info(self.registry, pair.name), "seconds": time.monotonic() - started}

    def unload(self, name: str) -> dict[str, Any]:
        slots = self.slots.get(name)
        if slots is not None and slots.in_use:
            raise _Busy(f"pair {name!r} has generations running")
        self.slots.pop(name, None)
        was_loaded = self.registry.unload(name)
        return {"pair": name, "was_loaded": was_loaded, "all_model_bytes": self.registry.model_bytes()}

    def start(self, job: str, pair_name: str, wire: dict[str, Any]) -> None:
        """Start a generation on a thread of its own (the pair is loaded first if need be)."""
        cancel = self._cancel_of(job)
        if cancel.is_set() or self.exiting:
            self._forget(job)
            self.send("summary", job, {"unstarted": True, "finish_reason": cancel.reason if cancel.is_set() else "shutdown"})
            return
        request = GenerationRequest.from_wire(wire)
        if self.registry.get(pair_name) is None:
            self.send("loading", job, {"pair": pair_name})
            self.send("loaded", None, self.load(pair_name))
        pair = self.registry.get(pair_name) or self.registry.load(pair_name)
        slots = self.slots.get(pair_name)
        if slots is None or slots.pair is not pair:
            slots = self.slots[pair_name] = Slots(pair, self.batcher)
        thread = threading.Thread(target=self._generate, args=(job, slots, request, cancel), name=f"generation-{job[:8]}",
                                  daemon=True)
        self.running[job] = thread
        thread.start()

    # -- a generation's thread -------------------------------------------------------------
    def _generate(self, job: str, slots: Slots, request: GenerationRequest, cancel: Cancel) -> None:
        try:
            events = slots.generate(request, cancel)
            summary = None
            try:
                first = next(events)  # prompt errors (too long, empty) raise here, before "started"
                self.send("started", job)
                for event in itertools.chain([first], events):
                    if isinstance(event, TokenEvent):
                        self._event(job, event)
                    else:
                        summary = event
            finally:
                events.close()
            # The summary goes once the slot is free again: on reading it the daemon may start the
            # next job on this pair at once, and that job must find a free slot.
            if summary is not None:
                self._event(job, summary)
        except TokintError as exc:
            self._send_quietly("error", job, {"code": exc.code, "message": str(exc)})
        except (BrokenPipeError, ChannelClosed, OSError):
            pass  # the daemon is gone; the reader thread notices and the worker exits
        except Exception as exc:  # a bug in one generation must not end the others
            log.exception("generation %s failed", job)
            self._send_quietly("error", job, {"code": "internal", "message": f"internal error: {type(exc).__name__}: {exc}"})
        finally:
            self.batcher.post(self._ended, job)

    def _send_quietly(self, kind: str, job: str, content: dict[str, Any]) -> None:
        try:
            self.send(kind, job, content)
        except (BrokenPipeError, ChannelClosed, OSError):
            pass

    def _event(self, job: str, event: Any) -> None:
        self.send("token" if isinstance(event, TokenEvent) else "summary", job, event.to_wire())

    def _ended(self, job: str) -> None:
        """On the main thread, once a generation's thread is done."""
        self.running.pop(job, None)
        self._forget(job)
        if self.exiting and not self.running:
            self.batcher.stop()

    def _forget(self, job: Optional[str]) -> None:
        with self._lock:
            self.cancels.pop(job, None)


class _Busy(TokintError):
    code = "busy"


def loaded_pair_info(registry: Registry, name: str) -> dict[str, Any]:
    """What the daemon's status reports about a loaded pair (status.LoadedPair's fields)."""
    pair = registry.get(name)
    return {
        "pair": name, "base": str(pair.base.settings.path), "reasoning": str(pair.reasoning.settings.path),
        "model_bytes": pair.model_bytes(), "all_model_bytes": registry.model_bytes(),
        "base_offload": list(pair.base.offload()), "reasoning_offload": list(pair.reasoning.offload()),
        "parallel": pair.parallel, "context_bytes": pair.context_bytes(), "n_ctx": pair.base.n_ctx,
    }


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="tokintd-worker", description="tokintd's llama.cpp worker (started by tokintd).")
    p.add_argument("--models", help="models.toml, as tokintd was given it")
    p.add_argument("--log-level", default="info")
    p.add_argument("--parallel", type=int, default=1, help="generations a pair runs at once, unless its models.toml entry says")
    args = p.parse_args(argv)
    # Ctrl+C in tokintd's terminal signals its whole process group, this worker too: the daemon owns the
    # shutdown (it ends the generations, then tells the worker to exit), so the worker ignores SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    # The channel is the stdout we were given; fd 1 becomes stderr so stray prints cannot corrupt it.
    out_fd = os.dup(1)
    os.dup2(2, 1)
    sys.stdout = sys.stderr
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        models = load_models(args.models)
    except TokintError as exc:  # one line for the daemon's crash report, not a traceback
        sys.stderr.write(f"tokintd worker: error: {exc}\n")
        return 1
    worker = Worker(Registry(models, args.parallel), out_fd, 0)
    threading.Thread(target=worker.read_commands, name="commands", daemon=True).start()
    try:
        worker.serve()
    except (BrokenPipeError, ChannelClosed):  # the daemon is gone; nobody to tell
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
