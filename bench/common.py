"""Shared by the benchmarks: the real pair, prompts, and table printing."""
from __future__ import annotations

import os
import platform
import resource
import statistics
import subprocess
from pathlib import Path

MODELS_DIR = Path(os.environ.get("TOKINT_TEST_MODELS", Path.home() / ".cache" / "tokint-test-models"))
BASE = MODELS_DIR / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
REASONING = MODELS_DIR / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"

PROMPTS = [
    "Write a Python function is_prime(n) that returns True when n is prime.",
    "Write a Python function that merges two sorted lists into one sorted list.",
    "Explain what a hash map is and write a tiny one in Python.",
    "Write a Python function that returns the n-th Fibonacci number iteratively, with a docstring.",
    "Write a Python class Stack with push, pop and peek methods and short comments.",
]


def require_models() -> None:
    if not (BASE.is_file() and REASONING.is_file()):
        raise SystemExit(f"real models missing in {MODELS_DIR}; run python3 ../shared/models/fetch_real_models.py")


def real_pair(threads: int, n_ctx: int = 4096, gpu_layers: int = 0):
    """The real pair in this process; ``gpu_layers`` layers of each model on the GPU (-1: all; a
    CPU build of llama.cpp keeps them on the CPU)."""
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    return open_pair(PairEntry(
        "qwen2.5-coder",
        ModelEntry("base", path=BASE, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=gpu_layers),
        ModelEntry("reasoning", path=REASONING, n_ctx=n_ctx, n_threads=threads, n_gpu_layers=gpu_layers),
    ))


def peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        model = next(l.split(":", 1)[1].strip() for l in open("/proc/cpuinfo") if l.startswith("model name"))
        cpu = model
    except (OSError, StopIteration):
        pass
    return f"{cpu}, {os.cpu_count()} cores"


def git_rev() -> str:
    try:
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True).stdout.strip()
    except OSError:
        return "?"


def mean(xs):
    return statistics.fmean(xs) if xs else float("nan")


def table(header: list[str], rows: list[list]) -> str:
    def fmt(v):
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(fmt(v) for v in row) + " |" for row in rows]
    return "\n".join(lines)


def wait_for_preload(proc, address: str, timeout: float) -> None:
    """Wait until the tokintd started as ``proc`` at ``address`` answers with a pair loaded (its
    ``--preload``); after ``timeout`` seconds kill it and exit."""
    import time

    from tokint_local.client import Client
    from tokint_local.errors import DaemonUnavailable

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with Client(address) as c:
            try:
                c.hello(timeout=0.5)
                if c.status().loaded_pairs:
                    return
            except DaemonUnavailable:
                pass
        time.sleep(0.2)
    proc.kill()
    raise SystemExit("tokintd did not start")
