"""The research commands of ``tokint``: analyze and calibrate here, eval in cli_eval.py; the options of all three."""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from .errors import ConfigError, PromptTooLong
from .events import GenerationRequest, Summary, TokenEvent
from .progress import Progress

DEFAULT_CALIBRATION_PROMPTS = [
    "Write a Python function that checks whether a string is a palindrome.",
    "Explain the difference between a list and a tuple in Python.",
    "Write a function that returns the n-th Fibonacci number.",
    "How do I read a CSV file in Python? Show a short example.",
    "Write a Python function that merges two sorted lists.",
    "What is a closure? Give a small example.",
]


def local_pair(args: argparse.Namespace, entry=None):
    """The pair (``entry``, else --pair of --models), loaded in this process with a slot for each of
    ``--parallel`` generations at once: (its models.toml entry, the open pair)."""
    from .cli_pairs import ensure_pair_files
    from .config import load_models
    from .pair import open_pair

    entry = entry or load_models(args.models).pair(args.pair)
    ensure_pair_files(entry, sys.stderr)
    return entry, open_pair(entry, parallel=getattr(args, "parallel", 1))


def generate_local(pair, prompt: str, fields: dict) -> tuple[list[TokenEvent], Summary]:
    from .engine import generate

    events = list(generate(pair, GenerationRequest(prompt=prompt, **fields)))
    return [e for e in events if isinstance(e, TokenEvent)], events[-1]


def _divergence_threshold(text: str) -> float:
    """A divergence threshold in nats (the divergences are >= 0): refused before any model loads."""
    from .cli import _number  # cli imports this module: at call time, not import time

    value = _number(text)
    if not value >= 0:  # NaN too
        raise argparse.ArgumentTypeError(f"{text!r}: a divergence threshold is a number of nats, 0 or more")
    return value


# -- analyze -----------------------------------------------------------------------------------
def cmd_analyze(args: argparse.Namespace) -> int:
    from .analysis import high_tokens, score_response, summarize
    from .datasets import load_dataset

    if args.dataset is None and args.prompt is None:
        raise ConfigError("give --prompt (with --response, --response-file or --generate) or --dataset")
    if args.from_results and args.dataset is None:
        raise ConfigError("--from-results needs --dataset (the dataset the results file was made from)")
    work: list[tuple[str, Any]] = []  # (prompt, response or None: generate it); read before any model loads
    if args.dataset:
        items = load_dataset(args.dataset, args.limit)
        work = [(item.prompt, None) for item in items]
        if args.from_results:
            work = _responses_from_results(Path(args.from_results), items)
    else:
        response = args.response
        if args.response_file:
            response = Path(args.response_file).read_text(encoding="utf-8")
        if response is None and not args.generate:
            raise ConfigError("with --prompt, give --response TEXT, --response-file FILE or --generate")
        work = [(args.prompt, response)]
    entry, pair = local_pair(args)
    try:
        from .slots import map_on_slots

        scored = []
        progress = Progress("analyze", len(work)) if len(work) > 1 else None

        def score(slot, job: tuple[str, Any]) -> list:
            prompt, response = job
            if response is None:  # the reasoning model's own response, as token ids (exactly what it produced)
                tokens, _ = generate_local(slot, prompt, {"mode": "reasoning", "max_tokens": args.max_tokens,
                                                           "raw": args.raw, "temperature": 0.0})
                response = [t.token_id for t in tokens if not slot.reasoning.is_eog(t.token_id)]
            return score_response(slot, prompt, response, args.divergence, args.raw)

        def done(tokens: list) -> None:
            scored.extend(tokens)
            if progress:
                progress.update(f"{len(scored)} tokens scored")

        map_on_slots(pair, score, work, done)  # --parallel N: N responses at once, in this order
        if progress:
            progress.close()
        summary = summarize(scored, args.threshold)
        summary.update({"pair": entry.name, "divergence": args.divergence, "n_responses": len(work)})
        if args.plots:
            from .plots import position_plot, sparsity_plot

            folder = Path(args.plots)
            folder.mkdir(parents=True, exist_ok=True)
            summary["plots"] = [str(sparsity_plot(summary, folder / "sparsity.png")),
                                str(position_plot(summary, folder / "position_profile.png"))]
        if args.json:
            out = dict(summary)
            out["top_tokens"] = [{"position": t.position, "text": t.text, "divergence": t.divergence,
                                  "base_entropy": t.base_entropy, "planning": t.planning}
                                 for t in high_tokens(scored, args.threshold, args.top)]
            sys.stdout.write(json.dumps(out, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(analysis_text(summary, high_tokens(scored, args.threshold, args.top)) + "\n")
    finally:
        pair.close()
    return 0


def _responses_from_results(path: Path, items: list) -> list[tuple[str, Any]]:
    """The reasoning-mode responses a `tokint eval` results file holds, for the dataset's items, in its order."""
    from .results_file import ResultsFile

    if not path.exists():
        raise ConfigError(f"{path}: no such results file")
    responses = {r["item"]: r["response"] for r in ResultsFile(path).load()
                 if r["mode"] == "reasoning" and isinstance(r.get("response"), str)}
    work = [(item.prompt, responses[item.id]) for item in items if item.id in responses]
    if not work:
        raise ConfigError(f"{path}: no reasoning-mode responses for this dataset's items")
    return work


def analysis_text(s: dict, top: list) -> str:
    if s["n_tokens"] == 0:
        return "no tokens to analyze"
    sp = s["sparsity"]
    profile = " ".join("-" if v is None else f"{v:.2f}" for v in s["position_profile"])
    pl = s["planning"]
    enrich = "n/a" if pl["enrichment"] is None else f"{pl['enrichment']:.1f}x"
    high_share = "n/a" if pl["share_of_high_divergence_tokens"] is None else f"{100 * pl['share_of_high_divergence_tokens']:.0f}%"
    ec = s["entropy_correlation"]
    lines = [
        f"{s['n_tokens']} tokens in {s['n_responses']} response(s), pair {s['pair']}, divergence {s['divergence']}",
        f"mean divergence {s['mean_divergence']:.3f} nats; {100 * s['share_above_threshold']:.1f}% of tokens at or above "
        f"the threshold {s['threshold']:g}",
        f"sparsity: 50% of the total divergence is in {100 * sp['50%']:.1f}% of the tokens, 80% in "
        f"{100 * sp['80%']:.1f}%, 90% in {100 * sp['90%']:.1f}%",
        f"by position (mean divergence in each tenth of a response): {profile}",
        f"planning tokens: {100 * pl['share_of_all_tokens']:.0f}% of all tokens, {high_share} of high-divergence tokens "
        f"({enrich} enriched)",
        f"divergence vs base entropy: Pearson {ec['pearson']:.2f}, Spearman {ec['spearman']:.2f}",
    ]
    if top:
        lines.append("highest-divergence tokens:")
        lines += [f"  position {t.position:5d}  {t.divergence:7.3f}  {t.text!r}{'  (planning)' if t.planning else ''}" for t in top]
    if s.get("plots"):
        lines.append("plots: " + ", ".join(s["plots"]))
    return "\n".join(lines)


# -- calibrate ---------------------------------------------------------------------------------
CALIBRATION_MIN_HITS = 10  # sampled tokens x rate below this: the threshold rests on too few tokens past it


def cmd_calibrate(args: argparse.Namespace) -> int:
    from .datasets import load_dataset
    from .gate import threshold_for_rate

    if not 0 < args.rate < 1:
        raise ConfigError("--rate must be above 0 and below 1 (for example 0.08 for 8% of tokens)")
    prompts = [i.prompt for i in load_dataset(args.dataset, args.limit)] if args.dataset else DEFAULT_CALIBRATION_PROMPTS[: args.limit]
    if args.gate == "random" and not args.verify:  # its threshold is the rate: no model is needed
        from .config import load_models

        entry, pair = load_models(args.models).pair(args.pair), None
    else:
        entry, pair = local_pair(args)
    try:
        values = calibration_signal(pair, prompts, args.gate, args.divergence, args.max_tokens) if pair else []
        threshold = threshold_for_rate(values, args.rate, args.gate)
        result: dict[str, Any] = {"pair": entry.name, "gate": args.gate, "target_rate": args.rate,
                                  "threshold": threshold}
        if pair is not None:  # what was sampled
            result.update({"divergence": args.divergence, "n_tokens": len(values), "n_prompts": len(prompts)})
        if values:  # the share of the sampled tokens the threshold catches: near the target only with enough tokens
            fires = [v < threshold for v in values] if args.gate == "top1" else [v >= threshold for v in values]
            result["sample_rate"] = sum(fires) / len(values)
            if len(values) * args.rate < CALIBRATION_MIN_HITS:
                sys.stderr.write(f"tokint: {len(values)} tokens sampled: at the rate {args.rate:g} that is "
                                 f"{len(values) * args.rate:.1f} takeovers' worth, too few to place the threshold "
                                 f"well (give more prompts, --max-tokens, or a higher rate)\n")
        if args.verify:
            taken = total = 0
            for prompt in prompts:
                _, s = generate_local(pair, prompt, {"mode": "intervene", "gate": args.gate, "threshold": threshold,
                                                      "max_tokens": args.max_tokens, "divergence": args.divergence,
                                                      "temperature": 0.0, "seed": args.seed})
                taken, total = taken + s.n_takeovers, total + s.n_tokens
            result["measured_rate"] = taken / max(total, 1)
    finally:
        if pair is not None:
            pair.close()
    if args.json:
        sys.stdout.write(json.dumps(result) + "\n")
    else:
        rule = {"divergence": f"{args.divergence} divergence at or above it", "entropy": "base entropy at or above it",
                "top1": "a base top-1 probability below it", "random": "a draw below it"}[args.gate]
        line = f"{args.gate} gate: threshold {threshold:.6g} "  # as a configuration's name prints it
        line += (f"catches {100 * result['sample_rate']:.2f}% of {len(values)} base-model tokens ({rule}; target "
                 f"{100 * args.rate:g}%)" if args.gate != "random" else f"takes over at {100 * args.rate:g}% of positions (a probability)")
        if pair is not None:  # what was sampled (the random gate's threshold is its rate: nothing was)
            line += f" (pair {entry.name}, {len(prompts)} prompt{'' if len(prompts) == 1 else 's'})"
        if "measured_rate" in result:
            line += f"; intervening with it took over {100 * result['measured_rate']:.1f}% of tokens"
        sys.stdout.write(line + "\n")
    return 0


def calibration_signal(pair, prompts: list[str], gate: str, divergence: str, max_tokens: int) -> list[float]:
    """What the gate's rule reads at every position of the base model's greedy responses: divergence
    (teacher-forced, both models), base entropy or base top-1 probability; nothing for random."""
    from .analysis import score_response

    if gate == "random":
        return []
    values: list[float] = []
    progress = Progress("calibrate", len(prompts))
    for n, prompt in enumerate(prompts, 1):
        try:
            tokens, _ = generate_local(pair, prompt, {"mode": "base", "max_tokens": max_tokens, "temperature": 0.0,
                                                       "return_top": 1 if gate == "top1" else 0})
            tokens = [t for t in tokens if not pair.base.is_eog(t.token_id)]
            scored = score_response(pair, prompt, [t.token_id for t in tokens], divergence) if gate == "divergence" else []
        except PromptTooLong as exc:  # one prompt too long for the context is left out, not the end of the work
            sys.stderr.write(f"tokint: calibrate: prompt {n} left out: {exc}\n")
            continue
        if gate == "divergence":
            values += [t.divergence for t in scored]
        elif gate == "entropy":
            values += [t.base_entropy for t in tokens]
        else:
            values += [t.top_k["base"][0][2] for t in tokens]
        progress.update(f"{len(values)} tokens scored")
    progress.close()
    return values


def _positive(text: str) -> int:
    try:
        n = int(text)
    except ValueError:
        n = 0
    if n < 1:
        raise argparse.ArgumentTypeError(f"must be a whole number of at least 1, not {text!r}")
    return n


def _parallel(text: str) -> int:
    from .config import MAX_PARALLEL

    try:
        n = int(text)
    except ValueError:
        n = 0
    if not 1 <= n <= MAX_PARALLEL:
        raise argparse.ArgumentTypeError(f"must be a whole number from 1 to {MAX_PARALLEL}")
    return n


def add_parsers(sub: Any) -> None:
    from .divergence import DIVERGENCES
    from .gate import GATES


    def common(p: argparse.ArgumentParser, resumes: bool = False) -> None:
        resumed = "; resuming a results file, the file's" if resumes else ""  # cli_eval._continue_run
        p.add_argument("--models", default=argparse.SUPPRESS, help="models.toml to use")
        p.add_argument("--pair", help=f"model pair (default: the models file's default_pair{resumed})")
        p.add_argument("--divergence", choices=DIVERGENCES, default="kl", help=f"how the two next-token distributions are compared (default kl{resumed})")
        p.add_argument("--json", action="store_true", help="print JSON instead of text")
        p.add_argument("--limit", type=_positive, default=None, help="only the first N items of the dataset")
        p.add_argument("--max-tokens", type=_positive, default=512, help=f"response length limit (default 512{resumed})")

    an = sub.add_parser("analyze", help="where the two models disagree over a response (teacher-forced)")
    common(an)
    an.add_argument("--prompt", help="the prompt")
    an.add_argument("--response", help="the response to analyze")
    an.add_argument("--response-file", help="read the response from this file")
    an.add_argument("--generate", action="store_true", help="analyze the reasoning model's own greedy response")
    an.add_argument("--dataset", help="humaneval, gsm8k, aime2025 or FILE.jsonl: analyze the reasoning model's "
                    "responses to every item")
    an.add_argument("--from-results", metavar="FILE", help="with --dataset: analyze the reasoning-mode responses "
                    "a `tokint eval` results file holds instead of generating them")
    an.add_argument("--threshold", type=_divergence_threshold, default=1.0,
                    help="what counts as high divergence, in nats (default 1.0)")
    an.add_argument("--raw", action="store_true", help="no chat templates")
    an.add_argument("--plots", metavar="DIR", help="write sparsity.png and position_profile.png here")
    an.add_argument("--top", type=int, default=15, help="list this many highest-divergence tokens")
    an.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                    help="with --dataset: score N responses at once (decoded together; default 1)")
    an.set_defaults(func=cmd_analyze)

    ev = sub.add_parser("eval", help="accuracy of base, reasoning and intervene modes on a dataset (resumable)")
    common(ev, resumes=True)
    ev.add_argument("--dataset", help="humaneval, gsm8k, aime2025, or FILE.jsonl (see the README for its format); "
                    "required unless --report")
    ev.add_argument("--gate", choices=GATES, default=None,
                    help="intervene's takeover rule: divergence (default), or the controls entropy, top1, random")
    ev.add_argument("--seed", type=int, default=0, help="the random gate's seed (default 0; each item draws its own "
                    "positions from it and its id; decoding is greedy)")
    ev.add_argument("--modes", help="comma-separated (default: base,reasoning,intervene)")
    ev.add_argument("--budgets", help="intervene budgets, comma-separated, inf for unlimited (default: 4,16,inf)")
    ev.add_argument("--threshold", type=float, default=None,
                    help="the gate's threshold (divergence: default 1.0; entropy, top1 and random need one: "
                         "`tokint calibrate --gate G --rate R` finds it)")
    ev.add_argument("--thresholds", help="several thresholds, comma-separated (overrides --threshold)")
    ev.add_argument("--out", help="results file (JSONL, appended; a run resumes from it; default eval-DATASET-PAIR.jsonl "
                    "in the current folder, PAIR being default without --pair)")
    ev.add_argument("--plot", metavar="FILE.png", help="accuracy against budget, with base and reasoning lines")
    ev.add_argument("--report", action="store_true", help="report every configuration the --out file holds; run "
                    "nothing (with --dataset and --limit N: on the dataset's first N items only)")
    ev.add_argument("--local", action="store_true", help="run in this process instead of through tokintd")
    ev.add_argument("--parallel", type=_parallel, default=1, metavar="N",
                    help="keep N items in flight, decoded together (default 1; through tokintd, the pair's own "
                         "parallel, tokintd --parallel, caps how many run at once); the results file keeps its order")
    ev.add_argument("--connect", metavar="ADDR", default=argparse.SUPPRESS, help="tokintd address")
    ev.add_argument("--no-autostart", action="store_true", default=argparse.SUPPRESS, help="do not start tokintd")
    ev.set_defaults(func=_cmd_eval, divergence=None, max_tokens=None, seed=None,  # cli_eval.RUN_DEFAULTS fills them
                    on_interrupt="; the results file keeps every finished item: run the same command to resume")

    ca = sub.add_parser("calibrate", help="the threshold that gives a target takeover rate")
    common(ca)
    ca.add_argument("--rate", type=float, default=0.08, help="target share of tokens taken over (default 0.08)")
    ca.add_argument("--dataset", help="take the sample prompts from humaneval, gsm8k, aime2025 or FILE.jsonl "
                    "(default: built-in prompts)")
    ca.add_argument("--gate", choices=GATES, default="divergence",
                    help="the rule to calibrate: divergence (default), entropy, top1 or random (its probability is the rate)")
    ca.add_argument("--seed", type=int, default=0, help="the random gate's seed for --verify (default 0)")
    ca.add_argument("--verify", action="store_true", help="then intervene with the threshold and report the rate reached")
    ca.set_defaults(func=cmd_calibrate)


def _cmd_eval(args: argparse.Namespace) -> int:
    from .cli_eval import cmd_eval  # eval's code lives in cli_eval.py, which uses this module's helpers

    return cmd_eval(args)


__all__ = ["add_parsers", "analysis_text", "generate_local", "local_pair"]
