"""What the control gates save by not scoring: tokens/s of each gate on GSM8K prompts, real pair.

    ../shared/llama-lock .venv/bin/python bench/gate_speed.py --divergence T --entropy T --top1 T --random P
        [--prompts 3] [--tokens 256] [--threads 2] [--budget N]

Greedy, chat template, n_ctx 4096, the first GSM8K test problems as asked by `tokint eval`. For
each prompt, in one process: base alone; the divergence gate (block schedule: the reasoning model
scores every drafted token); each control gate in the block schedule (the reasoning model reads
only where the control takes over, one logits row each time); and the entropy control in lockstep
(the reasoning model decodes and scores every position, as a control would without the skip).
Thresholds: from `tokint calibrate --gate G --rate R`. Reports tokens/s (decode time, prompt
excluded), takeovers per response and the ratio to base.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import git_rev, machine, mean, real_pair, require_models, table  # noqa: E402
from tokint_local.datasets import load_gsm8k  # noqa: E402
from tokint_local.engine import generate  # noqa: E402
from tokint_local.events import GenerationRequest  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--prompts", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--budget", type=int, default=None, help="takeover budget (default: unlimited)")
    ap.add_argument("--divergence", type=float, required=True, help="the divergence gate's threshold (KL, nats)")
    ap.add_argument("--entropy", type=float, required=True, help="the entropy gate's threshold (nats)")
    ap.add_argument("--top1", type=float, required=True, help="the top1 gate's threshold (probability)")
    ap.add_argument("--random", type=float, required=True, help="the random gate's probability")
    args = ap.parse_args()
    require_models()
    runs = [
        ("base", dict(mode="base")),
        ("divergence, block", dict(gate="divergence", threshold=args.divergence)),
        ("entropy, block (skips scoring)", dict(gate="entropy", threshold=args.entropy)),
        ("top1, block (skips scoring)", dict(gate="top1", threshold=args.top1)),
        ("random, block (skips scoring)", dict(gate="random", threshold=args.random, seed=0)),
        ("entropy, lockstep (scores every position)", dict(gate="entropy", threshold=args.entropy, schedule="lockstep")),
    ]
    prompts = [item.prompt for item in load_gsm8k(args.prompts)]
    pair = real_pair(args.threads)
    results: dict[str, list] = {name: [] for name, _ in runs}
    try:
        for prompt in prompts:
            for name, params in runs:
                params = {"budget": args.budget, **params} if params.get("mode") != "base" else params
                summary = list(generate(pair, GenerationRequest(prompt=prompt, max_tokens=args.tokens, **params)))[-1]
                results[name].append(summary)
                print(f"  {name}: {summary.n_tokens} tokens, {summary.n_takeovers} takeovers, "
                      f"{summary.tokens_per_second:.1f} tok/s", file=sys.stderr)
    finally:
        pair.close()
    base_speed = mean([s.tokens_per_second for s in results["base"]])
    rows = []
    for name, summaries in results.items():
        speed = mean([s.tokens_per_second for s in summaries])
        rows.append([name, mean([s.n_tokens for s in summaries]), mean([s.n_takeovers for s in summaries]),
                     speed, speed / base_speed])
    budget = "unlimited" if args.budget is None else args.budget
    print(f"{machine()}, {args.threads} threads, git {git_rev()}; {len(prompts)} GSM8K prompts, greedy, "
          f"at most {args.tokens} tokens, budget {budget}")
    print(table(["configuration", "tokens", "takeovers", "tok/s", "x base"], rows))


if __name__ == "__main__":
    main()
