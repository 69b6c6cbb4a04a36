"""The results file of `tokint eval`: one JSON line per (item, configuration), appended as each
finishes; what a record holds and the checks that keep one file one run's.

A record (``type`` "item") holds the item's id, its configuration (``config``, the name Config.key
makes from ``mode``, ``budget``, ``threshold`` and ``gate``), the verdict (``passed``, ``why``), the
response and its counts (``n_tokens``, ``n_takeovers``, ``takeover_positions``, ``finish_reason``,
``tokens_per_second``, ``elapsed_s``), a hash of the prompt (``prompt_sha256``) and ``settings``:
what the result depends on beyond the configuration (RUN_SETTINGS, the dataset, for the random gate
the seed). One file holds one run: one pair, divergence, length limit and dataset, each (item,
configuration) once, one threshold (and seed) per configuration name; ``ResultsFile.load`` refuses
anything else, naming the line. The resume checks (whether a run may add to a file) are in
evaluation.py.
"""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Optional

from .errors import ConfigError
from .gate import GATES


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


def configs_in(records: Iterable[dict]) -> list[Config]:
    """Every configuration a results file holds: base, reasoning, then intervene by gate, threshold and budget."""
    found = {Config(r["mode"], r.get("budget"), r.get("threshold"), r.get("gate") or "divergence")
             if r["mode"] == "intervene" else Config(r["mode"]) for r in records}
    order = {"base": 0, "reasoning": 1, "intervene": 2}
    gates = {g: n for n, g in enumerate(GATES)}
    return sorted(found, key=lambda c: (order.get(c.mode, 3), gates.get(c.gate, len(GATES)), c.threshold or 0.0,
                                        math.inf if c.budget is None else c.budget))


RUN_SETTINGS = ("pair", "divergence", "max_tokens")  # one of each per results file: its records compare


# the ids the built-in datasets give their items (datasets.py): what a record written before tokint kept
# the dataset's name says of it
_BUILT_IN_IDS = (("HumanEval/", "humaneval"), ("gsm8k/", "gsm8k"), ("AIME2025-", "aime2025"))


def dataset_of(record: dict) -> Optional[str]:
    """The dataset a record was made from (a built-in's name, or a JSONL file's name without its
    suffix). For a record written before tokint kept it: the built-in dataset its item id is of, else
    None (such records match any dataset whose items they are: check_dataset and check_prompts see to that)."""
    settings = record.get("settings")
    if isinstance(settings, dict) and settings.get("dataset") is not None:
        return settings["dataset"]
    return next((name for prefix, name in _BUILT_IN_IDS if str(record.get("item")).startswith(prefix)), None)


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


