"""`tokint eval`: run a dataset through the configurations asked for (evaluation.py does the work),
or report on a results file; the report's table."""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from pathlib import Path
from typing import Optional

from .cli_research import generate_local, local_pair
from .errors import ConfigError
from .events import CONTROL_THRESHOLDS, DEFAULT_THRESHOLD, MODES, GenerationRequest, Summary, TokenEvent
from .request import flag, from_flags
from .results_file import ResultsFile, configs_in, dataset_of, run_settings


def cmd_eval(args: argparse.Namespace) -> int:
    from .datasets import DATASETS, load_dataset
    from .evaluation import (check_dataset, check_prompts, configs_for, parse_budgets, plan_eval, records_of, run_eval,
                             summarize_results)

    if args.plot is not None:
        _check_plot_path(Path(args.plot))  # before any work, not after it
    if args.report:  # what the results file holds, every configuration; nothing runs, no model loads
        chosen = [flag(name) for name in RUN_DEFAULTS if getattr(args, name) is not None]
        if chosen:
            raise ConfigError(f"--report reports every configuration the results file holds, as it was run: drop "
                              f"{', '.join(chosen)} (what a run is to run)")
        if not args.out:
            raise ConfigError("--report needs --out FILE (the results file to report on)")
        if not Path(args.out).exists():
            raise ConfigError(f"--report: {args.out}: no such results file")
        records = ResultsFile(Path(args.out)).load()
        if not records:
            raise ConfigError(f"--report: {args.out} holds no records of `tokint eval`")
        if args.dataset:  # only the dataset's items (its first --limit), so that every configuration is on the same ones
            chosen = load_dataset(args.dataset, args.limit)
            check_prompts(Path(args.out), records, chosen)
            ids = {item.id for item in chosen}
            held = len(records)
            records = [r for r in records if r["item"] in ids]
            if not records:
                raise ConfigError(f"--report: none of the {held} records in {args.out} is of an item of {args.dataset}"
                                  f"{'' if args.limit is None else f' (its first {args.limit})'}: another dataset's file?")
        elif args.limit is not None:
            raise ConfigError("--report --limit N needs --dataset (whose first N items to report on)")
        configs = configs_in(records)
        _eval_report(args, summarize_results(records, configs), dataset_of(records[0]))
        _warn_uneven(records)
        return 0
    given = {name for name in RUN_DEFAULTS if getattr(args, name) is not None}
    for name, default in RUN_DEFAULTS.items():
        if name not in given:
            setattr(args, name, default)
    if not args.dataset:
        raise ConfigError(f"--dataset is required ({', '.join(DATASETS)} or FILE.jsonl), unless --report")
    modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    bad = [m for m in modes if m not in MODES] or ([] if modes else [args.modes])
    if bad:
        raise ConfigError(f"--modes: unknown mode {bad[0]!r} (choose from {', '.join(MODES)})")
    moot = [flag(name) for name in ("gate", "threshold", "thresholds", "budgets") if name in given]
    if moot and "intervene" not in modes:
        raise ConfigError(f"{', '.join(moot)}: set{'s' if len(moot) == 1 else ''} how intervene takes over, and "
                          f"--modes {args.modes} runs no intervene: drop {'it' if len(moot) == 1 else 'them'} or add intervene")
    if args.gate != "divergence" and args.threshold is None and not args.thresholds:
        raise ConfigError(f"--gate {args.gate} needs --threshold ({CONTROL_THRESHOLDS[args.gate]}); "
                          f"`tokint calibrate --gate {args.gate} --rate R` finds the one for a takeover rate R")
    thresholds = _thresholds(args.thresholds) if args.thresholds else [DEFAULT_THRESHOLD if args.threshold is None else args.threshold]
    configs = configs_for(modes, parse_budgets(args.budgets), thresholds, args.gate)
    for cfg in configs:  # a bad threshold for the gate fails here, before any model loads
        from_flags({"prompt": "", **cfg.params()})
    every_item = load_dataset(args.dataset)  # all of them: a results file of another dataset's items is refused
    items = every_item[:args.limit] if args.limit else every_item
    if args.limit and args.limit > len(every_item):
        sys.stderr.write(f"tokint: --limit {args.limit}: {args.dataset} has {len(every_item)} items; running all of them\n")
    dataset_name = args.dataset if args.dataset in DATASETS else Path(args.dataset).stem
    results = ResultsFile(Path(args.out or f"eval-{dataset_name}-{args.pair or 'default'}.jsonl"))
    held = results.load()
    _check_out_path(results.path)
    check_dataset(results.path, held, every_item, args.dataset)
    _continue_run(args, results.path, held, given)
    configs = [_as_held(cfg, held) for cfg in configs]
    # greedy; the seed only decides the random gate's positions, the same for every item
    base = {"pair": args.pair, "max_tokens": args.max_tokens, "temperature": 0.0, "divergence": args.divergence,
            "seed": args.seed, "dataset": dataset_name}  # "pair" becomes the pair's name below: each record keeps it
    emit = (lambda r: sys.stdout.write(json.dumps(r, ensure_ascii=False) + "\n")) if args.json else (lambda r: None)
    if args.local:
        from .config import load_models

        entry = load_models(args.models).pair(args.pair)
        base["pair"] = entry.name
    pair = client = None
    try:
        if base["pair"] is None:  # tokintd's default pair, known only by asking it
            client = _connect(args)
            base["pair"] = next((p.name for p in client.list_pairs() if p.default), None)
        # a mismatched resume fails here, before a model loads or (with --pair) a tokintd starts
        todo = plan_eval(results.path, held, items, configs, base)
        if not todo:  # nothing to run: no model
            sys.stderr.write(f"tokint: {results.path} holds all {len(items)} items x {len(configs)} configurations\n")
            _eval_report(args, summarize_results(records_of(held, items, configs), configs), dataset_name)
            return 0
        slots = None
        if args.local:
            from .batcher import Batcher
            from .slots import Slots

            entry, pair = local_pair(args, entry)
            slots = Slots(pair, Batcher()) if args.parallel > 1 else None

            def generate(prompt: str, fields: dict) -> tuple[str, Summary]:
                fields = {k: v for k, v in fields.items() if k != "pair"}
                if slots is None:
                    tokens, summary = generate_local(pair, prompt, fields)
                else:
                    events = list(slots.generate(GenerationRequest(prompt=prompt, **fields)))
                    tokens, summary = [e for e in events if isinstance(e, TokenEvent)], events[-1]
                return "".join(t.text for t in tokens), summary
        else:
            client = client or _connect(args)

            def generate(prompt: str, fields: dict) -> tuple[str, Summary]:
                f = dict(fields)
                events = list(client.generate(prompt, f.pop("pair"), **f))
                return "".join(e.text for e in events if isinstance(e, TokenEvent)), events[-1]
        sys.stderr.write(f"tokint: {len(items)} items x {len(configs)} configurations, results in {results.path}\n")
        if any(item.checker == "code" for item in items):
            from .confine import shortfalls, support

            for note in shortfalls(support()):  # what the kernel here cannot confine, said once
                sys.stderr.write(f"tokint: {note}\n")

        def run() -> list[dict]:
            return run_eval(todo, generate, results, base, len(items) * len(configs) - len(todo), sys.stderr, emit,
                            args.parallel)

        if slots is not None:  # every llama.cpp call on this thread, the items on threads of their own
            from .batcher import serve

            records = serve(slots.batcher, run)
        else:
            records = run()
    finally:
        if pair is not None:
            pair.close()
        if client is not None:
            client.close()
    _eval_report(args, summarize_results(records_of(held + records, items, configs), configs), dataset_name)
    return 0


PLOT_FORMATS = (".png", ".pdf", ".svg")
# what a run is to run, and its defaults; --report, which runs nothing, refuses them
RUN_DEFAULTS = {"gate": "divergence", "threshold": None, "thresholds": None, "modes": ",".join(MODES),
                "budgets": "4,16,inf", "pair": None, "divergence": "kl", "max_tokens": 512, "seed": 0}


def _connect(args: argparse.Namespace):
    from .autostart import connect

    return connect(args.connect, args.models, not args.no_autostart, sys.stderr)


def _continue_run(args: argparse.Namespace, path: Path, held: list[dict], given: set[str]) -> None:
    """A resume continues the results file's run: its pair, divergence and length limit stand for
    the flags not given (a flag given must match them: check_resumable)."""
    theirs = run_settings(held[0]) if held else None  # load() saw to it that every record agrees
    taken = {k: v for k, v in (theirs or {}).items() if k not in given and v is not None and getattr(args, k) != v}
    if taken:
        for key, value in taken.items():
            setattr(args, key, value)
        sys.stderr.write(f"tokint: continuing the run in {path}: " + ", ".join(f"{flag(k)} {v}" for k, v in taken.items())
                         + "\n")


def _as_held(cfg, held: list[dict]):
    """``cfg``, at the threshold the results file ran the configuration of its name at: a threshold given
    as the report prints it (6 significant digits) resumes that configuration, not a new one."""
    if cfg.mode != "intervene":
        return cfg
    ran = next((r["threshold"] for r in held if r["config"] == cfg.key), cfg.threshold)
    if ran != cfg.threshold:
        sys.stderr.write(f"tokint: --threshold {cfg.threshold!r} names the configuration {cfg.key}, run at {ran!r}: "
                         f"resuming it at {ran!r}\n")
        return dataclasses.replace(cfg, threshold=ran)
    return cfg


def _check_out_path(path: Path) -> None:
    """That the results file can be appended to, before a model loads (else the first record would fail)."""
    existed = path.exists()
    try:
        with open(path, "a", encoding="utf-8"):
            pass
    except OSError as exc:
        raise ConfigError(f"--out {path}: cannot write the results file ({exc.strerror}); give another") from None
    if not existed:
        path.unlink()  # made only to try: a run that stops before its first record leaves no empty file


def _check_plot_path(path: Path) -> None:
    if path.suffix.lower() not in PLOT_FORMATS:
        raise ConfigError(f"--plot {path}: give a file name ending in {', '.join(PLOT_FORMATS)}")
    if not path.parent.is_dir():
        raise ConfigError(f"--plot {path}: no folder {path.parent}")
    if path.is_dir() or not os.access(path.parent, os.W_OK) or (path.exists() and not os.access(path, os.W_OK)):
        raise ConfigError(f"--plot {path}: {'a folder' if path.is_dir() else 'not writable here'}; give another file")


def _thresholds(text: str) -> list[float]:
    try:
        return [float(t) for t in text.split(",")]
    except ValueError:
        raise ConfigError(f"--thresholds: {text!r} is not a comma-separated list of numbers (e.g. 0.2,0.5,1.0)") from None


def _warn_uneven(records: list[dict]) -> None:
    """Say so on stderr when the configurations do not all hold the same items (their accuracies then
    do not compare), and how to report on the items they share."""
    held: dict[str, set] = {}
    for r in records:
        held.setdefault(r["config"], set()).add(r["item"])
    if len({frozenset(items) for items in held.values()}) > 1:
        shared = set.intersection(*held.values())
        sys.stderr.write(f"tokint: the configurations hold different items ({min(map(len, held.values()))} to "
                         f"{max(map(len, held.values()))}; {len(shared)} held by all): compare them on the same "
                         "items with --dataset D --limit N\n")


def _eval_report(args: argparse.Namespace, summaries: list[dict], dataset: Optional[str]) -> None:
    if args.json:
        for s in summaries:
            sys.stdout.write(json.dumps(s) + "\n")
    else:
        sys.stdout.write(eval_table(summaries) + "\n")
    if args.plot:
        from .plots import accuracy_plot

        sys.stderr.write(f"tokint: plot {accuracy_plot(summaries, Path(args.plot), dataset=dataset)}\n")


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.3f}"


def eval_table(summaries: list[dict]) -> str:
    controls = any("fixed_vs_divergence" in s for s in summaries)
    w = max([48] + [len(s["config"]) for s in summaries])  # the configuration column: its longest name
    head = (f"{'configuration':{w}} {'items':>6} {'accuracy':>9} {'takeovers':>10} {'delegated':>10} {'tok/s':>7}"
            f" {'vs base':>17} {'as reasoning':>13}" + (f" {'vs divergence':>17}" if controls else ""))
    lines = [head, "-" * len(head)]
    for s in summaries:
        vs_base = (f"+{s['fixed_vs_base']}/-{s['broken_vs_base']} {_p(s['p_vs_base'])}"
                   if "fixed_vs_base" in s else "-")
        as_reasoning = (f"{s['agrees_with_reasoning']}/{s['compared_with_reasoning']}"
                        if "agrees_with_reasoning" in s else "-")
        line = (f"{s['config']:{w}} {s['n_items']:6d} {s['accuracy']:9.3f} {s['takeovers_per_response']:10.2f} "
                f"{100 * s['delegated_share']:9.2f}% {s['tokens_per_second']:7.1f} {vs_base:>17} {as_reasoning:>13}")
        if controls:
            line += " " + (f"+{s['fixed_vs_divergence']}/-{s['broken_vs_divergence']} {_p(s['p_vs_divergence'])}"
                           if "fixed_vs_divergence" in s else "-").rjust(17)
        lines.append(line)
    if any("fixed_vs_base" in s for s in summaries):
        lines.append("vs base: items passed where base failed / failed where base passed, and the sign test's p; "
                     "as reasoning: items with the reasoning model's pass or fail")
    if controls:
        compared = sorted({s["divergence_config"] for s in summaries if "divergence_config" in s})
        lines.append(f"vs divergence: the same, against the divergence gate at the budget ({', '.join(compared)})")

    return "\n".join(lines)


__all__ = ["cmd_eval", "eval_table"]
