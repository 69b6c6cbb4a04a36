"""`tokint eval`: a dataset through base, reasoning and intervene modes, resumable.

Every finished (item, configuration) is appended to the results file as one JSON line and flushed
to disk before the next starts, so a run that is killed loses at most the item in flight (with
``--parallel N``, the at most 2N started since the last one written); run the same command again
and it does only what is missing.

A record holds what its result depends on beyond its configuration: the dataset, the pair, the
divergence, the length limit and, for the random gate, the seed (``settings``), and a hash of the item's
prompt. A results file holds one run's records (load refuses a mix). A run
that would resume from records made differently (another seed, pair or dataset, a threshold that
prints the same but is not) stops with a ConfigError instead of mixing them; so does one from records
that do not say how they were made (no ``settings``: written before tokint kept them), since nothing
tells whether they match.
"""
from __future__ import annotations

import hashlib
import itertools
import math
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Callable, Iterable, Optional, TextIO

from .datasets import Item, check
from .errors import ConfigError, PromptTooLong
from .events import Summary
from .progress import Progress
from .request import flag
from .results_file import RUN_SETTINGS, Config, ResultsFile, dataset_of, run_settings

Generate = Callable[[str, dict], tuple[str, Summary]]  # (prompt, request fields) -> (response, summary)


def configs_for(modes: Iterable[str], budgets: Iterable[Optional[int]], thresholds: Iterable[float],
                gate: str = "divergence") -> list[Config]:
    """Every configuration asked for, each once, in order. Raises ConfigError for two thresholds
    whose configurations would share a name (they differ past the 6th significant digit)."""
    out = []
    for mode in modes:
        if mode == "intervene":
            out += [Config("intervene", b, t, gate) for t in thresholds for b in budgets]
        else:
            out.append(Config(mode))
    out = list(dict.fromkeys(out))
    seen: dict[str, Config] = {}
    for cfg in out:
        other = seen.setdefault(cfg.key, cfg)
        if other != cfg:
            raise ConfigError(f"thresholds {other.threshold!r} and {cfg.threshold!r} both name the configuration "
                              f"{cfg.key}: make them differ in the first 6 significant digits")
    return out


def settings_of(base_params: dict, cfg: Config) -> dict:
    """What a configuration's result depends on beyond the configuration itself (kept in each record).
    For the random gate: the run's seed, and ``item_seeds``: each item draws its own positions."""
    out = {k: base_params.get(k) for k in RUN_SETTINGS}
    if base_params.get("dataset") is not None:
        out["dataset"] = base_params["dataset"]
    if cfg.random_gate:
        out["seed"] = base_params.get("seed")
        out["item_seeds"] = True
    return out


def item_seed(seed: Optional[int], item_id: str) -> int:
    """The random gate's seed for one item: drawn from the run's seed and the item's id, so that each
    item's takeover positions are a draw of their own (one seed for all would put every response's
    takeovers at the same positions), and the same in every run with that seed."""
    digest = hashlib.sha256(f"{seed or 0}/{item_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:8], "big") >> 1  # in [0, 2**63)


def prompt_hash(prompt: str) -> str:
    return hashlib.sha256(prompt.encode("utf-8", "surrogatepass")).hexdigest()[:16]


def check_dataset(path: Path, records: list[dict], every_item: list[Item], dataset: str) -> None:
    """Raise ConfigError where the results file holds a record of an item ``dataset`` (all of its
    items: ``every_item``) does not have: another dataset's results."""
    ids = {item.id for item in every_item}
    foreign = next((r["item"] for r in records if r["item"] not in ids), None)
    if foreign is not None:
        raise ConfigError(f"{path} holds records of items that are not {dataset}'s (e.g. {foreign!r}): another "
                          "dataset's results; give another --out")


def check_prompts(path: Path, records: list[dict], items: list[Item]) -> None:
    """Raise ConfigError where a record of one of ``items`` was made from another prompt (its
    ``prompt_sha256`` differs): another dataset's item under the same id."""
    digests = {item.id: prompt_hash(item.prompt) for item in items}
    for r in records:
        if r["item"] in digests and r.get("prompt_sha256") not in (None, digests[r["item"]]):
            raise ConfigError(f"{path} holds another item under the id {r['item']!r} (made from another dataset?): "
                              "give another --out, or the dataset it was made from")


def check_resumable(path: Path, records: list[dict], items: list[Item], configs: list[Config],
                    base_params: dict) -> None:
    """Raise ConfigError where a record (of ``records``, what the results file holds) this run would
    resume from was made differently (see the module docstring); say what differs and what to do."""
    held = {(r["item"], r["config"]): r for r in records}
    ours = {k: base_params.get(k) for k in RUN_SETTINGS}
    theirs = run_settings(records[0]) if records else {}  # load() saw to it that every record agrees
    if theirs is None:
        raise ConfigError(f"{path} holds records with no record of how they were made (pair, divergence, length "
                          "limit; written by an older tokint): resuming could mix them with this run's; give another --out")
    made_from = next((dataset_of(r) for r in records if dataset_of(r) is not None), None)
    if made_from is not None and base_params.get("dataset") not in (None, made_from):
        raise ConfigError(f"{path} holds results of the dataset {made_from!r}, this run's is {base_params['dataset']!r}: "
                          "a results file holds one dataset's; give another --out")
    for key in theirs:
        if theirs[key] != ours[key]:
            raise ConfigError(f"{path} holds a run made with {key} {theirs[key]!r}, this run asks {ours[key]!r}: a "
                              "results file holds one run's (one pair, divergence and length limit); give another "
                              f"--out (or {flag(key)} {theirs[key]})")
    check_prompts(path, records, items)
    for item in items:
        for cfg in configs:
            r = held.get((item.id, cfg.key))
            if r is None:
                continue
            if cfg.mode == "intervene" and isinstance(r.get("threshold"), (int, float)) and \
                    not math.isclose(r["threshold"], cfg.threshold, rel_tol=1e-12):
                raise ConfigError(f"{path} holds {cfg.key} at threshold {r['threshold']!r}, this run asks "
                                  f"{cfg.threshold!r}: give the threshold as before, or another --out")
            for key, value in settings_of(base_params, cfg).items():
                old = r["settings"].get(key, value if key != "item_seeds" else False)
                if old != value and key == "item_seeds":
                    raise ConfigError(f"{path} holds {item.id} {cfg.key} made with one seed for every item (its "
                                      "takeover positions shared by all items, as before tokint drew them per item): "
                                      "delete the file's records of that configuration, or give another --out")
                if old != value:
                    raise ConfigError(f"{path} holds {item.id} {cfg.key} made with {key} {old!r}, this run asks "
                                      f"{value!r}: resuming would mix them; give another --out (or {flag(key)} {old})")


def plan_eval(path: Path, records: list[dict], items: list[Item], configs: list[Config],
              base_params: dict) -> list[tuple[Item, Config]]:
    """The (item, configuration) runs the results file at ``path`` (holding ``records``) lacks, item by
    item in ``configs`` order: what run_eval is to run. Raises ConfigError where adding them would mix
    two runs in one file (check_resumable)."""
    check_resumable(path, records, items, configs, base_params)
    held = {(r["item"], r["config"]) for r in records}
    return [(item, cfg) for item in items for cfg in configs if (item.id, cfg.key) not in held]


def records_of(records: list[dict], items: list[Item], configs: list[Config]) -> list[dict]:
    """Those of ``records`` that are of ``items`` in ``configs``, in order: what a run reports on."""
    wanted = {(item.id, cfg.key) for item in items for cfg in configs}
    return [r for r in records if (r["item"], r["config"]) in wanted]


def run_eval(todo: list[tuple[Item, Config]], generate: Generate, results: ResultsFile, base_params: dict,
             done: int = 0, progress_out: Optional[TextIO] = None,
             on_record: Callable[[dict], None] = lambda r: None, parallel: int = 1) -> list[dict]:
    """Run ``todo`` (plan_eval's), appending each record to ``results`` as it finishes; return the
    new records in the order written. ``done``: the runs the file already holds, for the progress line.

    ``parallel`` > 1 keeps that many (item, configuration) runs in flight, ``generate`` being called
    from that many threads at once; records are still written in the order a one-at-a-time run
    writes them, each as soon as those before it are written.
    """
    records: list[dict] = []
    progress = Progress("eval", done + len(todo), done, progress_out)

    def run_one(item: Item, cfg: Config) -> dict:
        record = {
            "type": "item", "item": item.id, "config": cfg.key, "mode": cfg.mode, "budget": cfg.budget,
            "threshold": cfg.threshold, "gate": cfg.gate if cfg.mode == "intervene" else None,
            "settings": settings_of(base_params, cfg), "prompt_sha256": prompt_hash(item.prompt),
        }
        fields = {**{k: v for k, v in base_params.items() if k != "dataset"}, **cfg.params()}  # a record's, not a request's
        if cfg.random_gate:
            fields["seed"] = item_seed(base_params.get("seed"), item.id)
        try:
            response, summary = generate(item.prompt, fields)
        except PromptTooLong as exc:  # the item fails; the run goes on to the next
            return {**record, "passed": False, "why": str(exc), "n_tokens": 0, "n_takeovers": 0,
                    "takeover_positions": [], "finish_reason": "prompt_too_long", "tokens_per_second": 0.0,
                    "elapsed_s": 0.0, "response": ""}
        passed, why = check(item, response, cut_off=summary.finish_reason == "length")
        return {
            **record, "passed": passed, "why": why, "n_tokens": summary.n_tokens,
            "n_takeovers": summary.n_takeovers, "takeover_positions": list(summary.takeover_positions),
            "finish_reason": summary.finish_reason, "tokens_per_second": summary.tokens_per_second,
            "elapsed_s": summary.elapsed_s, "response": response,
        }

    def keep(record: dict) -> None:
        results.append(record)
        records.append(record)
        on_record(record)
        progress.update(f"{record['item']} {record['config']}: {'pass' if record['passed'] else 'fail'}")

    if parallel <= 1:
        for item, cfg in todo:
            keep(run_one(item, cfg))
    else:
        # started runs are at most 2 x parallel ahead of the last one written: a killed run loses no more
        pool = ThreadPoolExecutor(parallel, thread_name_prefix="eval")
        pending: deque = deque()
        waiting = iter(todo)
        try:
            for item, cfg in itertools.islice(waiting, 2 * parallel):
                pending.append(pool.submit(run_one, item, cfg))
            while pending:
                keep(pending.popleft().result())
                for item, cfg in itertools.islice(waiting, 1):
                    pending.append(pool.submit(run_one, item, cfg))
        finally:
            pool.shutdown(wait=True, cancel_futures=True)  # a failure stops what has not started
    progress.close()
    return records


def summarize_results(records: list[dict], configs: list[Config]) -> list[dict]:
    """Per configuration: accuracy, items, takeovers per response, delegated share, tokens/s.

    Where the same items were run in base or reasoning mode too, each summary also compares item by
    item: `fixed_vs_base` / `broken_vs_base` (passes where base fails / fails where base passes),
    `agrees_with_reasoning` (same pass or fail) and `same_response_as_reasoning` (identical text),
    each counted over the items both hold, with the count in `compared_with_base` /
    `compared_with_reasoning`. `p_vs_base` is the exact two-sided sign test (McNemar) on fixed against
    broken: how likely a difference at least that large is if the configuration were no better or
    worse than base. `early_takeover_share` is the share of takeovers made in the first
    tenth of their response. A control gate's configuration is compared the same way with the
    divergence gate at its budget (`divergence_config`: of several thresholds, the one run on the
    most of the same items, then the nearest in takeovers per response): `fixed_vs_divergence`,
    `broken_vs_divergence`, `p_vs_divergence`, over `compared_with_divergence` items.
    """
    by_config: dict[str, dict[str, dict]] = {}
    for r in records:
        by_config.setdefault(r["config"], {})[r["item"]] = r
    base, reasoning = by_config.get("base", {}), by_config.get("reasoning", {})
    out = []
    for cfg in configs:
        rs = list(by_config.get(cfg.key, {}).values())
        if not rs:
            continue
        tokens = sum(r["n_tokens"] for r in rs)
        takeovers = sum(r["n_takeovers"] for r in rs)
        summary = {
            "type": "summary", "config": cfg.key, "mode": cfg.mode, "budget": cfg.budget, "threshold": cfg.threshold,
            "gate": cfg.gate if cfg.mode == "intervene" else None,
            "n_items": len(rs), "accuracy": sum(r["passed"] for r in rs) / len(rs),
            "takeovers_per_response": takeovers / len(rs),
            "delegated_share": takeovers / tokens if tokens else 0.0,
            "tokens_per_second": sum(r["tokens_per_second"] for r in rs) / max(sum(1 for r in rs if r["n_tokens"]), 1),
            "mean_tokens": tokens / len(rs),
        }
        positions = [(p, r["n_tokens"]) for r in rs for p in r.get("takeover_positions", ())]
        if positions:
            summary["early_takeover_share"] = sum(10 * p < n for p, n in positions) / len(positions)
        if cfg.mode != "base" and base:
            pairs = [(r["passed"], base[r["item"]]["passed"]) for r in rs if r["item"] in base]
            summary["compared_with_base"] = len(pairs)
            summary["fixed_vs_base"] = sum(mine and not theirs for mine, theirs in pairs)
            summary["broken_vs_base"] = sum(theirs and not mine for mine, theirs in pairs)
            summary["p_vs_base"] = sign_test(summary["fixed_vs_base"], summary["broken_vs_base"])
        if cfg.mode == "intervene" and reasoning:
            both = [(r, reasoning[r["item"]]) for r in rs if r["item"] in reasoning]
            summary["compared_with_reasoning"] = len(both)
            summary["agrees_with_reasoning"] = sum(mine["passed"] == theirs["passed"] for mine, theirs in both)
            summary["same_response_as_reasoning"] = sum(mine.get("response") == theirs.get("response")
                                                        for mine, theirs in both)
        if cfg.mode == "intervene" and cfg.gate != "divergence":
            summary.update(_versus_divergence(cfg, by_config, summary["takeovers_per_response"]))
        out.append(summary)
    return out


def _versus_divergence(cfg: Config, by_config: dict[str, dict[str, dict]], takeovers: float) -> dict:
    """A control gate's item-by-item comparison with the divergence gate at the same budget."""
    mine = by_config[cfg.key]
    best = None
    for key, records in by_config.items():
        sample = next(iter(records.values()))
        if sample["mode"] != "intervene" or (sample.get("gate") or "divergence") != "divergence" \
                or sample.get("budget") != cfg.budget:
            continue
        shared = [item for item in mine if item in records]
        rate = sum(r["n_takeovers"] for r in records.values()) / len(records)
        rank = (len(shared), -abs(rate - takeovers))
        if shared and (best is None or rank > best[0]):
            best = (rank, key, shared)
    if best is None:
        return {}
    _, key, shared = best
    fixed = sum(mine[i]["passed"] and not by_config[key][i]["passed"] for i in shared)
    broken = sum(by_config[key][i]["passed"] and not mine[i]["passed"] for i in shared)
    return {"divergence_config": key, "compared_with_divergence": len(shared), "fixed_vs_divergence": fixed,
            "broken_vs_divergence": broken, "p_vs_divergence": sign_test(fixed, broken)}



def sign_test(wins: int, losses: int) -> float:
    """Exact two-sided sign test: P(a split at least this uneven | wins and losses equally likely)."""
    n, k = wins + losses, min(wins, losses)
    if n == 0:
        return 1.0
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2 ** n)


def parse_budgets(text: str) -> list[Optional[int]]:
    out: list[Optional[int]] = []
    for part in text.split(","):
        part = part.strip().lower()
        if part in ("inf", "unlimited", "none"):
            out.append(None)
        elif part.isdigit():
            out.append(int(part))
        else:
            raise ConfigError(f"--budgets: {part!r} is no budget: give a whole number of takeovers (0 or more) "
                              "or inf, comma-separated (e.g. 4,16,inf)")
    return out
