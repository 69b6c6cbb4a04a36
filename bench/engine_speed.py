"""Engine speed on the real pair against a bare llama-cpp-python greedy loop, side by side.

    python bench/engine_speed.py [--tokens 128] [--threads 2] [--prompts 5]

For each prompt, in one process and interleaved: a bare greedy loop over llama-cpp-python's
high-level Llama.generate on the base model, then tokint's engine in base, reasoning and
intervene modes. Tokens/s counts response tokens over decode time (prompt processing excluded).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import llama_cpp  # noqa: E402  (the bare baseline; tokint_local keeps llama_cpp in backend/)

from common import BASE, PROMPTS, git_rev, machine, mean, real_pair, require_models, table  # noqa: E402
from tokint_local.engine import generate, prepare_prompt  # noqa: E402
from tokint_local.events import GenerationRequest, Summary, TokenEvent  # noqa: E402


def bare_loop(llm: "llama_cpp.Llama", prompt_tokens: list[int], n: int) -> tuple[float, list[int]]:
    """Greedy decode n tokens with llama-cpp-python's own loop; tokens/s after the first token."""
    llm.reset()
    out = []
    t_first = None
    for tok in llm.generate(prompt_tokens, top_k=1, temp=0.0, reset=True):
        if t_first is None:
            t_first = time.perf_counter()
        out.append(tok)
        if len(out) >= n:
            break
    return (len(out) - 1) / (time.perf_counter() - t_first), out


def engine_run(pair, prompt: str, mode: str, n: int, **kw) -> tuple[Summary, list[TokenEvent]]:
    events = list(generate(pair, GenerationRequest(prompt=prompt, mode=mode, max_tokens=n, **kw)))
    return events[-1], [e for e in events if isinstance(e, TokenEvent)]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompts", type=int, default=5)
    ap.add_argument("--threshold", type=float, default=1.0)
    ap.add_argument("--gpu-layers", type=int, default=0, help="layers of each model on the GPU (-1: all; default 0)")
    args = ap.parse_args()
    require_models()
    pair = real_pair(args.threads, gpu_layers=args.gpu_layers)
    llm = llama_cpp.Llama(str(BASE), n_ctx=4096, n_threads=args.threads, n_threads_batch=args.threads,
                          n_gpu_layers=args.gpu_layers, logits_all=False, verbose=False)
    rows: dict[str, list[float]] = {"bare": [], "base": [], "reasoning": [], "intervene": []}
    takeovers, same_as_bare = [], 0
    for prompt in PROMPTS[: args.prompts]:
        ptoks = prepare_prompt(pair.base, prompt, raw=False, role="base").tokens
        bare_tps, bare_ids = bare_loop(llm, ptoks, args.tokens)
        rows["bare"].append(bare_tps)
        for mode in ("base", "reasoning", "intervene"):
            summary, toks = engine_run(pair, prompt, mode, args.tokens, threshold=args.threshold)
            rows[mode].append(summary.tokens_per_second)
            if mode == "base":
                same_as_bare += [t.token_id for t in toks] == bare_ids[: len(toks)]
            if mode == "intervene":
                takeovers.append(summary.n_takeovers / max(summary.n_tokens, 1))
        print(f"{prompt[:40]!r}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rows.items()), file=sys.stderr)
    bare = mean(rows["bare"])
    body = [
        ["bare llama-cpp-python loop (base model)", mean(rows["bare"]), 1.0],
        ["tokint engine, mode base", mean(rows["base"]), mean(rows["base"]) / bare],
        ["tokint engine, mode reasoning", mean(rows["reasoning"]), mean(rows["reasoning"]) / bare],
        [f"tokint engine, mode intervene (threshold {args.threshold}, unlimited budget, lockstep)",
         mean(rows["intervene"]), mean(rows["intervene"]) / bare],
    ]
    where = "CPU" if args.gpu_layers == 0 else f"{args.gpu_layers} layers on the GPU"
    print(f"\nqwen2.5-coder pair, {where} ({machine()}), {args.threads} threads, greedy, {args.tokens} tokens, "
          f"{args.prompts} prompts, commit {git_rev()}\n")
    print(table(["run", "tokens/s (mean over prompts)", "ratio to bare loop"], body))
    print(f"\nbase-mode output identical to the bare loop on {same_as_bare}/{args.prompts} prompts; "
          f"intervene took over {100 * mean(takeovers):.1f}% of tokens")


if __name__ == "__main__":
    main()
