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
import json
import math
import os
from collections import deque
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Iterable, Optional, TextIO

from .datasets import Item, check
from .errors import ConfigError, PromptTooLong
from .events import Summary
from .gate import GATES
from .progress import Progress

Generate = Callable[[str, dict], tuple[str, Summary]]  # (prompt, request fields) -> (response, summary)


@dataclass(frozen=True)
class Config:
    mode: str
    budget: Optional[int] = None  # intervene only; None: unlimited
    threshold: Optional[float] = None  # intervene only
    gate: str = "divergence"  # intervene only: the takeover rule (gate.py)

    @property
    def key(self) -> str:
        if self.mode != "intervene":
            return self.mode
        budget = "inf" if self.budget is None else str(self.budget)
        key = f"intervene/budget={budget}/threshold={self.threshold:g}"
        return key if self.gate == "divergence" else f"{key}/gate={self.gate}"

    @property
    def random_gate(self) -> bool:
        """Whether the takeover positions are drawn (the random control): then the seed matters."""
        return self.mode == "intervene" and self.gate == "random"

    def params(self) -> dict:
        if self.mode != "intervene":
            return {"mode": self.mode}
        return {"mode": "intervene", "budget": self.budget, "threshold": self.threshold, "gate": self.gate}


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


RUN_SETTINGS = ("pair", "divergence", "max_tokens")  # one of each per results file: its records compare


def dataset_of(record: dict) -> Optional[str]:
    """The dataset a record was made from (a built-in's name, or a JSONL file's name without its
    suffix); None for a record written before tokint kept it (such records match any dataset whose
    items they are: check_dataset and check_prompts see to that)."""
    settings = record.get("settings")
    return settings.get("dataset") if isinstance(settings, dict) else None


def run_settings(record: dict) -> Optional[dict]:
    """The record's RUN_SETTINGS, or None for a record that does not say (written before tokint kept them)."""
    settings = record.get("settings")
    return {k: settings.get(k) for k in RUN_SETTINGS} if isinstance(settings, dict) else None


def _made_as(record: dict) -> str:
    """What a configuration's records must share beyond its name: the exact threshold, and for the
    random gate the seed and whether each item drew its own positions."""
    settings = record.get("settings") if isinstance(record.get("settings"), dict) else {}
    made = f"threshold {record.get('threshold')!r}"
    return made if record.get("gate") != "random" else \
        f"{made}, seed {settings.get('seed')!r}, item_seeds {settings.get('item_seeds', False)!r}"


def _describe(settings: Optional[dict]) -> str:
    return "no record of its settings" if settings is None else ", ".join(f"{k} {v!r}" for k, v in settings.items())


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
                              f"--out (or --{key.replace('_', '-')} {theirs[key]})")
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
                                      f"{value!r}: resuming would mix them; give another --out (or --{key} {old})")


def configs_in(records: Iterable[dict]) -> list[Config]:
    """Every configuration a results file holds: base, reasoning, then intervene by gate, threshold and budget."""
    found = {Config(r["mode"], r.get("budget"), r.get("threshold"), r.get("gate") or "divergence")
             if r["mode"] == "intervene" else Config(r["mode"]) for r in records}
    order = {"base": 0, "reasoning": 1, "intervene": 2}
    gates = {g: n for n, g in enumerate(GATES)}
    return sorted(found, key=lambda c: (order.get(c.mode, 3), gates.get(c.gate, len(GATES)), c.threshold or 0.0,
                                        math.inf if c.budget is None else c.budget))


class ResultsFile:
    """The append-only JSONL record of a run. ``load`` ignores a torn last line (a kill mid-write: no
    newline after it) and raises ConfigError, naming the line, for anything else that is no record;
    ``append`` cuts the torn line off before it writes."""

    def __init__(self, path: Path):
        self.path = Path(path)

    def load(self) -> list[dict]:
        """The file's item records, in order; [] if there is no file. Raises ConfigError, naming the
        line, for a line that is no record, an (item, configuration) held twice, or records of two
        runs (RUN_SETTINGS differ): a results file holds one run's."""
        if self.path.is_dir():
            raise ConfigError(f"{self.path} is a folder; a results file is a JSONL file (e.g. --out results.jsonl)")
        if not self.path.exists():
            return []
        data = self.path.read_bytes()
        end = len(data) if data.endswith(b"\n") else data.rfind(b"\n") + 1  # past it: a torn last line, if any
        try:
            text = data[:end].decode("utf-8-sig")
        except UnicodeDecodeError as exc:
            line = data[: exc.start].count(b"\n") + 1
            raise ConfigError(f"{self.path}:{line}: not UTF-8 text (byte {exc.start}): not a results file, or "
                              "damaged there") from None
        lines = text.splitlines()
        try:  # a kill mid-write leaves a torn line (cut anywhere, even inside a character) or a whole record
            lines.append(json.dumps(json.loads(data[end:])) if data[end:].strip() else "")
        except ValueError:
            pass
        records: list[dict] = []
        where: dict[tuple[str, str], int] = {}
        made_as: dict[str, tuple[str, int]] = {}
        datasets: dict[str, int] = {}  # the dataset named first, and its line
        for n, line in enumerate(lines, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                record = None
            if not isinstance(record, dict):
                raise ConfigError(f"{self.path}:{n}: not a JSON record of `tokint eval`: not a results file, or "
                                  "edited by hand?")
            if record.get("type") == "summary" and "item" not in record:  # a report's line (`--json`, older files)
                continue
            if record.get("type") != "item":
                raise ConfigError(f"{self.path}:{n}: not a record of `tokint eval` (its type is "
                                  f"{record.get('type')!r}, not 'item'): edited by hand?")
            _check_record(record, f"{self.path}:{n}")
            key = (record["item"], record["config"])
            if key in where:
                raise ConfigError(f"{self.path}:{n}: {key[0]} {key[1]} again (line {where[key]} holds it too): "
                                  "two runs wrote to the file at once, or it was edited by hand; keep one of them")
            where[key] = n
            made = _made_as(record)  # one configuration name, one threshold (and seed): else the report counts twice
            first_made = made_as.setdefault(record["config"], (made, n))
            if first_made[0] != made:
                raise ConfigError(f"{self.path}:{n}: {record['config']} made with {made}, line {first_made[1]} with "
                                  f"{first_made[0]}: two runs under one configuration name; split them")
            if dataset_of(record) is not None:
                datasets.setdefault(dataset_of(record), n)
                if len(datasets) > 1:
                    (a, line_a), (b, line_b) = datasets.items()
                    raise ConfigError(f"{self.path}:{line_b}: a record of dataset {b!r}, line {line_a} of {a!r}: a "
                                      "results file holds one dataset's; split it")
            if records and run_settings(record) != run_settings(records[0]):
                first = records[0]
                raise ConfigError(f"{self.path}:{n}: made with {_describe(run_settings(record))}, line "
                                  f"{where[(first['item'], first['config'])]} with {_describe(run_settings(first))}: "
                                  "a results file holds one run's (one pair, divergence and length limit); split it")
            records.append(record)
        return records

    def append(self, record: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._mend_torn_end()
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
            f.flush()
            os.fsync(f.fileno())


    def _mend_torn_end(self) -> None:
        """A last line with no newline after it (a kill mid-write): cut off, or, if the record is whole
        (the kill fell between the record and its newline), given its newline."""
        if not self.path.exists() or self.path.stat().st_size == 0:
            return
        with open(self.path, "rb+") as f:
            data = f.read()
            if data.endswith(b"\n"):
                return
            start = data.rfind(b"\n") + 1
            try:
                json.loads(data[start:])
                f.write(b"\n")
            except ValueError:  # JSONDecodeError, or bytes that are not UTF-8
                f.truncate(start)


_RECORD_FIELDS = {"item": str, "config": str, "mode": str, "passed": bool, "n_tokens": int, "n_takeovers": int,
                  "tokens_per_second": (int, float)}


def _check_record(record: dict, where: str) -> None:
    """Raise ConfigError, naming the line, for an item record that lacks what a report reads."""
    for key, kind in _RECORD_FIELDS.items():
        if not isinstance(record.get(key), kind):
            raise ConfigError(f"{where}: an item record needs {key!r} ({getattr(kind, '__name__', 'a number')}); "
                              "was the file edited by hand?")
    budget = record.get("budget") if record["mode"] == "intervene" else 0
    if budget is not None and (not isinstance(budget, int) or isinstance(budget, bool) or budget < 0):
        raise ConfigError(f"{where}: budget {budget!r} is no budget; was the file edited by hand?")
    if record["n_tokens"] < 0 or not 0 <= record["n_takeovers"] <= (math.inf if budget is None else budget) \
            or not math.isfinite(record["tokens_per_second"]) or record["tokens_per_second"] < 0:
        raise ConfigError(f"{where}: n_tokens {record['n_tokens']}, n_takeovers {record['n_takeovers']} (budget "
                          f"{budget}), tokens_per_second {record['tokens_per_second']} cannot be; was the file edited by hand?")
    if record["mode"] not in ("base", "reasoning", "intervene"):
        raise ConfigError(f"{where}: mode {record['mode']!r} is none of base, reasoning, intervene; was the file edited by hand?")
    if record["mode"] == "intervene" and not isinstance(record.get("threshold"), (int, float)):
        raise ConfigError(f"{where}: an intervene record needs a numeric 'threshold'; was the file edited by hand?")
    cfg = Config("intervene", record.get("budget"), record["threshold"], record.get("gate") or "divergence") \
        if record["mode"] == "intervene" else Config(record["mode"])
    if cfg.key != record["config"]:  # the report groups by the fields; the name would say otherwise
        raise ConfigError(f"{where}: config {record['config']!r} is not what its fields make ({cfg.key}); was the "
                          "file edited by hand?")


def run_eval(items: list[Item], configs: list[Config], generate: Generate, results: ResultsFile,
             base_params: dict, progress_out: Optional[TextIO] = None,
             on_record: Callable[[dict], None] = lambda r: None, parallel: int = 1,
             held_records: Optional[list[dict]] = None) -> list[dict]:
    """Run what the results file does not hold yet; return every record of these items and configs.

    ``held_records``: what ``results`` holds, if the caller has read it (``results.load()``); it is
    checked again here (check_resumable) either way.

    ``parallel`` > 1 keeps that many (item, configuration) runs in flight, ``generate`` being called
    from that many threads at once; records are still written in the order a one-at-a-time run
    writes them, each as soon as those before it are written.
    """
    records = results.load() if held_records is None else list(held_records)
    held = {(r["item"], r["config"]): r for r in records}
    check_resumable(results.path, records, items, configs, base_params)
    todo = [(item, cfg) for item in items for cfg in configs if (item.id, cfg.key) not in held]
    progress = Progress("eval", len(items) * len(configs), len(items) * len(configs) - len(todo), progress_out)

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
        passed, why = check(item, response)
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
    wanted = {(item.id, cfg.key) for item in items for cfg in configs}
    return [r for r in records if (r["item"], r["config"]) in wanted]


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
