"""Block-verified intervention against lockstep and base-only, side by side, on the real pair.

    python bench/block_speed.py [--tokens 256] [--prompts 5] [--threads 2] [--threshold 1.0]

In one process, for each prompt (greedy, chat template, n_ctx 4096):
  1. unlimited budget: lockstep, then block (adaptive k) -> tokens/s and the ratio;
  2. budgets 4 and 16 in block mode, and base-only: tokens/s over the positions after the budget
     is spent, against base-only over the same positions, and over the whole response;
  3. how often the two schedules give the same tokens, and the largest divergence difference;
then, in a child process each, the peak RSS of an intervene run at n_ctx 4096 against the two
model files plus 1 GiB; and a profile of the engine's own time (everything outside llama.cpp calls)
per token against the base model's decode time.
"""
from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import BASE, PROMPTS, REASONING, git_rev, machine, mean, real_pair, require_models, table  # noqa: E402
from tokint_local.backend import LlamaModel  # noqa: E402
from tokint_local.engine import _Run  # noqa: E402
from tokint_local.events import GenerationRequest, TokenEvent  # noqa: E402


class LlamaClock:
    """Adds up the time spent inside llama.cpp calls (decode and prefill) and counts base decodes."""

    def __init__(self):
        self.seconds = 0.0
        self.base_decodes = 0
        self.base_seconds = 0.0
        self._decode, self._prefill = LlamaModel.decode, LlamaModel.prefill
        clock = self

        def decode(model, tokens, rows=None):
            t = time.perf_counter()
            try:
                return clock._decode(model, tokens, rows)
            finally:
                dt = time.perf_counter() - t
                clock.seconds += dt
                if model.settings.path == BASE and len(tokens) == 1:
                    clock.base_decodes += 1
                    clock.base_seconds += dt

        def prefill(model, tokens, *rest):
            t = time.perf_counter()
            try:
                return clock._prefill(model, tokens, *rest)
            finally:
                clock.seconds += time.perf_counter() - t

        LlamaModel.decode, LlamaModel.prefill = decode, prefill

    def reset(self):
        self.seconds = self.base_seconds = 0.0
        self.base_decodes = 0


def run(pair, prompt: str, n: int, **kw):
    r = _Run(pair, GenerationRequest(prompt=prompt, max_tokens=n, **kw), None)
    events = list(r.events())
    return [e for e in events if isinstance(e, TokenEvent)], events[-1], r


def rate(tokens, start: int) -> float:
    """Tokens/s over the positions from ``start`` on (from the events' own clock)."""
    after = [t for t in tokens if t.position >= start]
    if len(after) < 2:
        return float("nan")
    return (len(after) - 1) / (after[-1].t - after[0].t)


def peak_rss(tokens: int, threads: int) -> dict:
    code = f"""
import json, resource, sys
sys.path.insert(0, {str(ROOT)!r}); sys.path.insert(0, {str(ROOT / 'bench')!r})
from common import real_pair, PROMPTS
from tokint_local.engine import generate
from tokint_local.events import GenerationRequest
pair = real_pair({threads}, n_ctx=4096)
list(generate(pair, GenerationRequest(prompt=PROMPTS[0], max_tokens={tokens}, schedule="block")))
print(json.dumps({{"rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}}))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--prompts", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--threshold", type=float, default=1.0)
    ap.add_argument("--budget-threshold", type=float, default=0.3,
                    help="threshold of the budget runs: low enough that the budget is spent early in the response")
    ap.add_argument("--repeats", type=int, default=2,
                    help="runs of each configuration per prompt, interleaved; the fastest counts (this shared "
                         "machine's speed drifts by up to ~30%% between runs)")
    args = ap.parse_args()
    require_models()
    clock = LlamaClock()
    pair = real_pair(args.threads, n_ctx=4096)
    run(pair, "warm up", 4)
    n, thr = args.tokens, args.threshold
    rows = {k: [] for k in ("lockstep", "block", "base", "b4", "b16", "b4_after", "b16_after", "base_after4", "base_after16")}
    ttft = {k: [] for k in ("lockstep", "block", "base", "b4", "b16")}
    same, div_diffs, engine_share, drafted, rejected = 0, [], [], 0, 0
    def best(results):
        return max(results, key=lambda r: r[1].tokens_per_second)

    for prompt in PROMPTS[: args.prompts]:
        got = {k: [] for k in ("lock", "block", "base", "b4", "b16")}
        for _ in range(args.repeats):
            got["lock"].append(run(pair, prompt, n, threshold=thr, schedule="lockstep"))
            clock.reset()
            got["block"].append(run(pair, prompt, n, threshold=thr, schedule="block"))
            block_s, r = got["block"][-1][1], got["block"][-1][2]
            engine = block_s.elapsed_s - clock.seconds
            base_decode = clock.base_seconds / max(clock.base_decodes, 1)
            engine_share.append((engine / block_s.n_tokens) / base_decode)
            got["base"].append(run(pair, prompt, n, mode="base"))
            got["b4"].append(run(pair, prompt, n, threshold=args.budget_threshold, budget=4, schedule="block"))
            got["b16"].append(run(pair, prompt, n, threshold=args.budget_threshold, budget=16, schedule="block"))
        drafted += r.stepper.drafted
        rejected += r.stepper.rejected
        lock_t, lock_s, _ = best(got["lock"])
        block_t, block_s, _ = best(got["block"])
        base_t, base_s, _ = best(got["base"])
        b4_t, b4_s, _ = best(got["b4"])
        b16_t, b16_s, _ = best(got["b16"])
        rows["lockstep"].append(lock_s.tokens_per_second)
        rows["block"].append(block_s.tokens_per_second)
        rows["base"].append(base_s.tokens_per_second)
        rows["b4"].append(b4_s.tokens_per_second)
        rows["b16"].append(b16_s.tokens_per_second)
        for key, s in (("lockstep", lock_s), ("block", block_s), ("base", base_s), ("b4", b4_s), ("b16", b16_s)):
            ttft[key].append(s.time_to_first_token_s)
        for budget in (4, 16):
            # the positions after the budget is spent, in each run: the fastest of the repeats counts
            after, base_after = [], []
            for toks, summary, _ in got[f"b{budget}"]:
                if summary.n_takeovers >= budget and summary.takeover_positions[budget - 1] + 1 < len(toks) - 8:
                    spent = summary.takeover_positions[budget - 1] + 1
                    after.append(rate(toks, spent))
                    base_after.append(max(rate(t, spent) for t, _, _ in got["base"]))
            if after:
                rows[f"b{budget}_after"].append(max(after))
                rows[f"base_after{budget}"].append(max(base_after))
        ids_l, ids_b = [t.token_id for t in lock_t], [t.token_id for t in block_t]
        same += ids_l == ids_b
        first = next((i for i, (a, b) in enumerate(zip(ids_l, ids_b)) if a != b), len(ids_l))
        div_diffs += [abs(a.divergence - b.divergence) for a, b in zip(lock_t[:first], block_t[:first])
                      if a.divergence is not None and b.divergence is not None]
        print(f"{prompt[:36]!r}: lockstep {lock_s.tokens_per_second:.1f}, block {block_s.tokens_per_second:.1f}, "
              f"base {base_s.tokens_per_second:.1f}, b4 {b4_s.tokens_per_second:.1f} (takeovers {b4_s.n_takeovers}), "
              f"b16 {b16_s.tokens_per_second:.1f} (takeovers {b16_s.n_takeovers}); unlimited took {block_s.n_takeovers}",
              file=sys.stderr, flush=True)
    memory = peak_rss(n, args.threads)
    files_mib = (BASE.stat().st_size + REASONING.stat().st_size) / 2**20
    lk, bl, bs = mean(rows["lockstep"]), mean(rows["block"]), mean(rows["base"])

    def ms(key):
        return 1000 * mean([x for x in ttft[key] if x is not None])

    print(f"\nqwen2.5-coder pair, CPU ({machine()}), {args.threads} threads, greedy, {n} tokens, {args.prompts} prompts, "
          f"threshold {thr} (budget runs: {args.budget_threshold}), n_ctx 4096, best of {args.repeats} interleaved runs, "
          f"commit {git_rev()}\n")
    print(table(["mode", "schedule", "budget", "tokens/s", "ratio", "TTFT ms"], [
        ["intervene", "lockstep", "unlimited", lk, 1.0, ms("lockstep")],
        ["intervene", "block (adaptive k)", "unlimited", bl, bl / lk, ms("block")],
        ["base", "-", "-", bs, bs / lk, ms("base")],
        ["intervene", "block", "4", mean(rows["b4"]), mean(rows["b4"]) / bs, ms("b4")],
        ["intervene", "block", "16", mean(rows["b16"]), mean(rows["b16"]) / bs, ms("b16")],
    ]))
    print("\nratio column: against lockstep for the unlimited rows and base-only, against base-only for the budgets.\n")
    print(table(["budget", "tok/s after the budget is spent", "base-only over the same positions", "ratio", "responses"], [
        [str(b), mean(rows[f"b{b}_after"]), mean(rows[f"base_after{b}"]),
         mean(rows[f"b{b}_after"]) / mean(rows[f"base_after{b}"]), len(rows[f"b{b}_after"])]
        for b in (4, 16)
    ]))
    print(f"\nblock vs lockstep: same tokens on {same}/{args.prompts} prompts; before any difference, "
          f"divergences differ by at most {max(div_diffs, default=0):.4f} nats (median {statistics.median(div_diffs or [0]):.5f})")
    print(f"drafted {drafted} base tokens, {rejected} thrown away after takeovers ({100 * rejected / max(drafted, 1):.1f}%)")
    print(f"engine's own time per token (outside llama.cpp calls), block schedule: "
          f"{100 * mean(engine_share):.1f}% of one base-model decode")
    print(f"peak RSS at n_ctx 4096: {memory['rss_mib']:.0f} MiB; model files {files_mib:.0f} MiB + 1024 = "
          f"{files_mib + 1024:.0f} MiB allowed")


if __name__ == "__main__":
    main()
