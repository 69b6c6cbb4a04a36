"""Would pipelining pay on this machine? An upper bound, measured.

    python bench/pipeline_experiment.py [--seconds 10]

Pipelined block decoding would have the base model draft block n+1 while the reasoning model scores
block n, on two threads. Its best case (no takeover ever discards a speculative draft) is the slower
of the two loops running side by side. This measures exactly that on the real pair, each model on
one thread of its own (two threads each would oversubscribe the 2 cores), against the sequential
block schedule's best case with both models on 2 threads: 1 / (1/base rate + 1/scoring rate).
"""
from __future__ import annotations

import argparse
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BASE, REASONING, git_rev, machine, require_models, table  # noqa: E402
from tokint_local.backend import LlamaModel, ModelSettings  # noqa: E402

K = 16


def load(path, threads):
    m = LlamaModel(ModelSettings(path=path, n_ctx=4096, n_threads=threads))
    toks = m.tokenize("def quicksort(arr):\n    if len(arr) <= 1:\n        return arr\n" * 8, False, False)
    return m, toks


def draft_loop(model, toks, stop, out):
    n = 0
    model.prefill(toks[:40])
    t0 = time.perf_counter()
    while not stop.is_set():
        if model.n_past > 3000:
            model.truncate(40)
        model.decode([toks[n % len(toks)]], [0])
        n += 1
    out["rate"] = n / (time.perf_counter() - t0)


def score_loop(model, toks, stop, out):
    n = 0
    model.prefill(toks[:40])
    t0 = time.perf_counter()
    while not stop.is_set():
        model.truncate(40)
        model.decode(toks[40 : 40 + K])
        n += K
    out["rate"] = n / (time.perf_counter() - t0)


def alone(loop, model, toks, seconds):
    stop, out = threading.Event(), {}
    t = threading.Thread(target=loop, args=(model, toks, stop, out))
    t.start()
    time.sleep(seconds)
    stop.set()
    t.join()
    return out["rate"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=10.0)
    args = ap.parse_args()
    require_models()
    results = {}
    for threads in (2, 1):
        base, btoks = load(BASE, threads)
        reasoning, rtoks = load(REASONING, threads)
        results[f"base drafting alone, {threads} threads"] = alone(draft_loop, base, btoks, args.seconds)
        results[f"reasoning scoring {K}-token blocks alone, {threads} threads"] = alone(score_loop, reasoning, rtoks, args.seconds)
        if threads == 1:
            stop, outs = threading.Event(), ({}, {})
            threads_ = [threading.Thread(target=draft_loop, args=(base, btoks, stop, outs[0])),
                        threading.Thread(target=score_loop, args=(reasoning, rtoks, stop, outs[1]))]
            for t in threads_:
                t.start()
            time.sleep(args.seconds)
            stop.set()
            for t in threads_:
                t.join()
            results["base drafting, side by side, 1 thread"] = outs[0]["rate"]
            results["reasoning scoring, side by side, 1 thread"] = outs[1]["rate"]
        base.close()
        reasoning.close()
    b2 = results["base drafting alone, 2 threads"]
    r2 = results[f"reasoning scoring {K}-token blocks alone, 2 threads"]
    sequential = 1 / (1 / b2 + 1 / r2)
    pipelined = min(results["base drafting, side by side, 1 thread"], results["reasoning scoring, side by side, 1 thread"])
    print(f"\nqwen2.5-coder pair, CPU ({machine()}), commit {git_rev()}\n")
    print(table(["loop", "tokens/s"], [[k, v] for k, v in results.items()]))
    print(f"\nbest case, sequential block schedule (2 threads): {sequential:.1f} tok/s")
    print(f"best case, pipelined (1 thread per model, no draft ever discarded): {pipelined:.1f} tok/s "
          f"({pipelined / sequential:.2f}x)")


if __name__ == "__main__":
    main()
