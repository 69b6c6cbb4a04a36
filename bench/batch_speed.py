"""Several generations at once (batched decoding) against one at a time, on the real pair.

    python bench/batch_speed.py [--tokens 64] [--prompts 8] [--threads 2] [--concurrency 1,2,4,8]

In one process, greedy, chat template, the same prompts every time:
  1. per-row costs: one llama_decode holding R sequences' single-token rows (R = 1, 2, 4, 8), and
     S sequences' 16-row scoring blocks, for each model; with llama.cpp's per-sequence KV streams
     (what tokint uses) and with one unified KV buffer;
  2. for base and intervene mode (block schedule, threshold 1.0): the prompts one at a time on a
     pair of its own (parallel 1, the engine as before), then with N generations in flight on a pair
     with 8 slots (a new one starts as soon as one ends): aggregate tokens/s (every response token
     over the wall time), per-generation tokens/s and time to first token (means), and how many
     responses differ from the one-at-a-time run. Each configuration runs ``--runs`` times,
     interleaved, and its fastest run counts.
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BASE, PROMPTS, REASONING, git_rev, machine, mean, require_models, table  # noqa: E402
import tokint_local.backend.context as backend_context  # noqa: E402  (its KV_UNIFIED is set below)
from tokint_local.backend import LlamaModel, ModelSettings  # noqa: E402
from tokint_local.batcher import Batcher, serve  # noqa: E402
from tokint_local.config import ModelEntry, PairEntry  # noqa: E402
from tokint_local.engine import generate  # noqa: E402
from tokint_local.events import GenerationRequest, TokenEvent  # noqa: E402
from tokint_local.pair import open_pair  # noqa: E402
from tokint_local.slots import Slots  # noqa: E402

MORE_PROMPTS = [
    "Write a Python function that reverses the words of a sentence.",
    "Write a Python function that counts the vowels in a string.",
    "Write a Python function that flattens a nested list.",
    "Write a Python function that checks whether two strings are anagrams.",
    "Write a Python generator that yields the prime numbers below n.",
    "Write a Python function that returns the longest common prefix of a list of strings.",
]


def per_row_costs(weights: dict, threads: int, repeats: int) -> list[list]:
    """Milliseconds per llama_decode for a few batch shapes, per model and KV layout."""
    rows = []
    for unified in (False, True):
        backend_context.KV_UNIFIED = unified
        for role, path in (("base", BASE), ("reasoning", REASONING)):
            model = LlamaModel(ModelSettings(path=path, n_ctx=512, n_threads=threads), weights[path], n_seq=8)
            prompt = model.tokenize("def f(x):\n    return x * 2\n" * 6, False, False)
            for seq in range(8):
                model.prefill(prompt, seq)
            for seqs, per_seq in ((1, 1), (2, 1), (4, 1), (8, 1), (1, 16), (2, 16), (4, 16)):
                times = []
                for _ in range(repeats):
                    parts = [(s, [100 + j for j in range(per_seq)], None) for s in range(seqs)]
                    t = time.perf_counter()
                    model.decode_batch(parts)
                    times.append(time.perf_counter() - t)
                    for s in range(seqs):
                        model.truncate(len(prompt), s)
                ms = 1000 * statistics.median(times)
                n = seqs * per_seq
                rows.append(["per-sequence" if not unified else "unified", role, f"{seqs} x {per_seq}", n, ms, ms / n,
                             1000 * n / ms])
            model.close()
    backend_context.KV_UNIFIED = False
    return rows


def one_at_a_time(pair, requests):
    out = []
    t = time.perf_counter()
    for request in requests:
        out.append(list(generate(pair, request)))
    return time.perf_counter() - t, out


def in_flight(pair, requests, concurrency: int):
    """Every request through the pair's slots, ``concurrency`` at a time; (wall time, events, stats)."""
    batcher = Batcher()
    slots = Slots(pair, batcher)

    def run_all():
        with ThreadPoolExecutor(concurrency) as pool:
            return list(pool.map(lambda r: list(slots.generate(r)), requests))

    t = time.perf_counter()
    out = serve(batcher, run_all)
    return time.perf_counter() - t, out, batcher.stats


def summarize(label, concurrency, wall, results, reference, base_rate):
    summaries = [r[-1] for r in results]
    tokens = sum(s.n_tokens for s in summaries)
    differ = sum([e.token_id for e in r if isinstance(e, TokenEvent)] != [e.token_id for e in ref if isinstance(e, TokenEvent)]
                 for r, ref in zip(results, reference))
    rate = tokens / wall
    return [label, concurrency, tokens, wall, rate, rate / base_rate if base_rate else 1.0,
            mean([s.tokens_per_second for s in summaries]), 1000 * mean([s.time_to_first_token_s for s in summaries]),
            differ]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--prompts", type=int, default=8)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=1.0)
    ap.add_argument("--concurrency", default="1,2,4,8")
    ap.add_argument("--modes", default="base,intervene")
    ap.add_argument("--repeats", type=int, default=5, help="decodes timed per shape in the per-row table")
    ap.add_argument("--skip-rows", action="store_true", help="skip the per-row cost table")
    ap.add_argument("--runs", type=int, default=2, help="runs of each configuration, interleaved; the fastest counts")
    args = ap.parse_args()
    require_models()
    levels = [int(c) for c in args.concurrency.split(",")]
    entry = PairEntry("qwen2.5-coder", ModelEntry("base", path=BASE, n_ctx=1024, n_threads=args.threads),
                      ModelEntry("reasoning", path=REASONING, n_ctx=1024, n_threads=args.threads))
    solo = open_pair(entry)
    weights = {BASE: solo.base.weights, REASONING: solo.reasoning.weights}
    multi = open_pair(entry, lambda s: weights[Path(s.path)], parallel=max(levels))
    prompts = (PROMPTS + MORE_PROMPTS)[: args.prompts]
    print(f"qwen2.5-coder pair, CPU ({machine()}), {args.threads} threads, greedy, {args.tokens} tokens, "
          f"{len(prompts)} prompts, n_ctx 1024 per sequence, commit {git_rev()}", flush=True)
    if not args.skip_rows:
        print(f"\nper-row costs (median of {args.repeats} decodes, after the same prompt in each sequence)\n", flush=True)
        print(table(["KV layout", "model", "sequences x rows", "rows", "ms per decode", "ms per row", "rows/s"],
                    per_row_costs(weights, args.threads, args.repeats)), flush=True)
    list(generate(solo, GenerationRequest(prompt="warm up", max_tokens=4)))
    out = []
    for mode in args.modes.split(","):
        requests = [GenerationRequest(prompt=p, mode=mode, max_tokens=args.tokens, threshold=args.threshold, stop=["\x00"])
                    for p in prompts]
        runs: dict = {}  # configuration -> (wall, results) of its fastest run
        for rep in range(args.runs):  # interleaved, the fastest counting: this shared machine's speed drifts
            for c in ["one"] + levels:
                if c == "one":
                    wall, results = one_at_a_time(solo, requests)
                    note = ""
                else:
                    wall, results, stats = in_flight(multi, requests, c)
                    note = (f" ({stats.decodes} decodes in {stats.steps} steps, "
                            f"{stats.rows / max(stats.decodes, 1):.1f} rows per decode)")
                tokens = sum(r[-1].n_tokens for r in results)
                print(f"{mode}, {c} at a time, run {rep + 1}: {tokens / wall:.2f} tok/s{note}", file=sys.stderr, flush=True)
                if c not in runs or wall < runs[c][0]:
                    runs[c] = (wall, results)
        reference = runs["one"][1]
        base_row = summarize(mode, "one at a time", *runs["one"], reference, 0)
        out.append(base_row)
        out += [summarize(mode, c, *runs[c], reference, base_row[4]) for c in levels]
    print()
    print(table(["mode", "concurrent", "tokens", "wall s", "aggregate tok/s", "ratio", "per-generation tok/s",
                 "TTFT ms", "responses differing"], out))
    print(f"\nKV cache at 8 slots x n_ctx 1024: {multi.context_bytes() / 2**20:.0f} MiB "
          f"(one slot: {solo.context_bytes() / 2**20:.0f} MiB)")


if __name__ == "__main__":
    main()
