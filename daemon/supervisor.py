"""The daemon's side of the llama.cpp worker: start it, talk to it, notice when it dies, restart it.

The worker (worker.py) is the only process that loads llama.cpp; this module never imports it.
When the worker dies, however it dies (GGML_ASSERT abort, segfault, SIGKILL, the OOM killer),
``on_crash`` is called with a ``Crash`` that says how and with the last lines it wrote, and a new
worker is started: at once after an isolated crash, after a growing pause (1, 2, 4 ... 30 s) when
crashes repeat (``CRASH_WINDOW_S``), so a worker that cannot start is reported, not looped.
"""
from __future__ import annotations

import asyncio
import logging
import os
import signal
import sys
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Awaitable, Callable, Optional

from tokint_local.status import WorkerStatus

from .channel import ChannelClosed, pack, read_frame

log = logging.getLogger("tokintd.supervisor")

LOG_TAIL_LINES = 20  # lines of the worker's log kept for crash reports
CRASH_WINDOW_S = 60.0  # crashes closer together than this count as repeated
FREE_CRASHES = 2  # repeated crashes restarted at once before backing off
MAX_BACKOFF_S = 30.0
READY_TIMEOUT_S = 60.0  # a worker that does not say "ready" in this time is killed
HOP_SAMPLES = 2048  # token hops (worker -> daemon) kept for status


@dataclass(frozen=True)
class Crash:
    pid: int
    how: str  # "killed by SIGSEGV", "exited with status 1", ...
    log_tail: tuple[str, ...]
    at: float  # time.monotonic()
    was_ready: bool = True  # False: it died before it could serve anything (a broken install, a bad models file)

    def describe(self) -> str:
        tail = "\n".join(self.log_tail[-8:])
        return f"the llama.cpp worker (pid {self.pid}) {self.how}" + (f"; its last log lines:\n{tail}" if tail else "")


def describe_exit(returncode: Optional[int]) -> str:
    if returncode is None:
        return "stopped answering"
    if returncode < 0:
        try:
            name = signal.Signals(-returncode).name
        except ValueError:
            return f"was killed by signal {-returncode}"
        if name == "SIGILL":  # it restarts only to die again: say what to do
            return ("was killed by SIGILL: llama.cpp ran an instruction this CPU or virtual machine does not allow "
                    "(see the README's 'Illegal instruction': rebuild llama-cpp-python for this machine)")
        return f"was killed by {name}"
    return f"exited with status {returncode}"


Handler = Callable[[dict[str, Any]], None]


class WorkerProcess:
    """One worker at a time, restarted after every crash. All methods run on the daemon's loop."""

    def __init__(self, models: Optional[str], on_message: Handler, on_crash: Callable[[Crash], None],
                 log_level: str = "info", parallel: int = 1):
        self.models, self.log_level, self.parallel = models, log_level, parallel
        self.on_message, self.on_crash = on_message, on_crash
        self.proc: Optional[asyncio.subprocess.Process] = None
        self.pid: Optional[int] = None
        self.versions: dict[str, str] = {}
        self.ready = asyncio.Event()
        self.started_at: Optional[float] = None
        self.restarts = 0
        self.crashes: deque[Crash] = deque(maxlen=16)
        self.backoff_until: Optional[float] = None
        self.stopping = False
        self._tail: deque[str] = deque(maxlen=LOG_TAIL_LINES)
        self._ready_pid: Optional[int] = None
        self.hops: deque[float] = deque(maxlen=HOP_SAMPLES)  # seconds from the worker's send to our read, per token
        self._task: Optional[asyncio.Task] = None

    # -- lifecycle -------------------------------------------------------------------------
    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._run(), name="llama-worker")

    async def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit (it frees the models), kill it if it does not in ``timeout``."""
        self.stopping = True
        proc = self.proc
        if proc is not None and proc.returncode is None:
            try:
                self.send({"op": "exit"})
                proc.stdin.close()
            except (ConnectionError, RuntimeError):
                pass
            try:
                await asyncio.wait_for(proc.wait(), timeout)
            except asyncio.TimeoutError:
                log.warning("the worker did not exit in %.0f s; killing it", timeout)
                proc.kill()
                await proc.wait()
        if self._task is not None:
            self._task.cancel()
            try:
                await self._task
            except (asyncio.CancelledError, Exception):
                pass

    def send(self, command: dict[str, Any]) -> None:
        """Queue a command for the worker; RuntimeError if none is running."""
        proc = self.proc
        if proc is None or proc.returncode is not None or proc.stdin is None or proc.stdin.is_closing():
            raise RuntimeError("no worker is running")
        proc.stdin.write(pack(command))

    def status(self) -> WorkerStatus:
        now = time.monotonic()
        last = self.crashes[-1] if self.crashes else None
        if self.backoff_until is not None and self.backoff_until > now:
            state = "backoff"
        elif self.ready.is_set():
            state = "running"
        else:
            state = "stopped" if self.stopping else "starting"
        return WorkerStatus(
            pid=self.pid if state == "running" else None, state=state,
            uptime_s=now - self.started_at if self.started_at is not None and state == "running" else 0.0,
            restarts=self.restarts, crashes=len(self.crashes),
            last_crash=last.how if last else None, last_crash_ago_s=now - last.at if last else None,
            restart_in_s=max(0.0, self.backoff_until - now) if state == "backoff" else None,
            memory_rss_bytes=_rss_bytes(self.pid) if state == "running" else 0,
            token_hop_ms=_quantiles_ms(self.hops),
        )

    # -- the loop that keeps a worker running ----------------------------------------------
    async def _run(self) -> None:
        while not self.stopping:
            crash = await self._one_worker()
            if self.stopping or crash is None:
                return
            self.crashes.append(crash)
            log.error("%s", crash.describe())
            delay = self._backoff(crash.at)
            self.backoff_until = time.monotonic() + delay if delay else None
            self.on_crash(crash)
            if delay:
                log.warning("the worker crashed %d times within %.0f s; restarting it in %.0f s",
                            self._recent(crash.at), CRASH_WINDOW_S, delay)
                await asyncio.sleep(delay)
                self.backoff_until = None
            self.restarts += 1

    @property
    def failing_to_start(self) -> bool:
        """The last crashes came before the worker could serve, and restarts are backing off."""
        return self.backoff_until is not None and bool(self.crashes) and not self.crashes[-1].was_ready

    def _recent(self, now: float) -> int:
        return sum(1 for c in self.crashes if now - c.at < CRASH_WINDOW_S)

    def _backoff(self, now: float) -> float:
        extra = self._recent(now) - FREE_CRASHES
        return 0.0 if extra <= 0 else min(MAX_BACKOFF_S, 2.0 ** (extra - 1))

    async def _one_worker(self) -> Optional[Crash]:
        """Run one worker until it ends: None when it was asked to, else how it crashed."""
        self.ready.clear()
        self._tail.clear()
        code_root = str(Path(__file__).resolve().parent.parent)  # the worker runs the daemon's own code
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [code_root, os.environ.get("PYTHONPATH")]))}
        cmd = [sys.executable, "-m", "daemon.worker", "--log-level", self.log_level, "--parallel", str(self.parallel)]
        if self.models:
            cmd += ["--models", self.models]
        self.proc = proc = await asyncio.create_subprocess_exec(
            *cmd, stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
            env=env, limit=1 << 20,
        )
        self.pid = proc.pid
        log.info("started the llama.cpp worker, pid %d", proc.pid)
        stderr = asyncio.get_running_loop().create_task(self._read_log(proc.stderr))
        ready_timer = asyncio.get_running_loop().call_later(READY_TIMEOUT_S, self._kill_if_not_ready, proc)
        try:
            while True:
                try:
                    message = await read_frame(proc.stdout)
                except ChannelClosed as exc:
                    log.debug("worker channel closed: %s", exc)
                    break
                if message.get("type") == "ready":
                    self.versions = dict(message.get("content", {}).get("versions", {}))
                    self.started_at = time.monotonic()
                    self._ready_pid = proc.pid
                    self.ready.set()
                    ready_timer.cancel()
                    continue
                if message.get("type") == "token" and isinstance(message.get("at"), float):
                    self.hops.append(time.monotonic() - message["at"])
                self.on_message(message)
        finally:
            ready_timer.cancel()
            try:  # not kill() at once: Popen.kill() polls, reaping the child before asyncio's watcher can
                returncode = await asyncio.wait_for(proc.wait(), 2.0)
            except asyncio.TimeoutError:  # its channel broke but it lives on: it is no use, end it
                proc.kill()
                returncode = await proc.wait()
            await asyncio.wait([stderr], timeout=1.0)  # the last lines it wrote before dying
            self.ready.clear()
        if self.stopping:
            return None
        return Crash(pid=proc.pid, how=describe_exit(returncode), log_tail=tuple(self._tail), at=time.monotonic(),
                     was_ready=self.started_at is not None and self._ready_pid == proc.pid)

    def _kill_if_not_ready(self, proc: asyncio.subprocess.Process) -> None:
        if not self.ready.is_set() and proc.returncode is None:
            log.error("the worker did not start within %.0f s; killing it", READY_TIMEOUT_S)
            proc.kill()

    async def _read_log(self, stream: asyncio.StreamReader) -> None:
        while True:
            try:
                line = await stream.readline()
            except (ValueError, asyncio.LimitOverrunError):  # a line past the limit: skip it
                continue
            if not line:
                return
            text = line.decode("utf-8", "replace").rstrip()
            self._tail.append(text)
            log.info("worker: %s", text)


def _quantiles_ms(samples: deque[float]) -> Optional[tuple[float, float]]:
    """(median, p95) in milliseconds, or None without samples."""
    if not samples:
        return None
    ordered = sorted(samples)
    return 1000 * ordered[len(ordered) // 2], 1000 * ordered[min(len(ordered) - 1, int(0.95 * len(ordered)))]


def _rss_bytes(pid: Optional[int]) -> int:
    try:
        with open(f"/proc/{pid}/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError, TypeError):
        return 0
