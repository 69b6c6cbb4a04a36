"""The pair-management commands of ``tokint``: pairs, pull, models add."""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any, Optional, TextIO

from .config import ModelEntry, PairEntry, load_models, read_toml, user_models_path
from .errors import ConfigError, IncompatiblePair
from .render import pairs_text, print_json
from .status import PairListing, check_files, describe_pair


def _say(err: TextIO):
    return lambda line: err.write(f"tokint: {line}\n")


def ensure_pair_files(entry: PairEntry, err: TextIO) -> None:
    """Pull the pair's hub models that are not here yet (first use, as `ollama run` does)."""
    from .hub import missing_hub_models, pull_model

    for model in missing_hub_models(entry):
        pull_model(model, _say(err))


def loaded_pairs(address: Optional[str]) -> set[str]:
    """The pairs a running tokintd has loaded (none when no daemon answers quickly)."""
    from .addresses import client_address
    from .client import Client
    from .errors import TokintError

    client = Client(client_address(address))
    try:
        client.hello(timeout=0.3)
        return {p.name for p in client.status().loaded_pairs}
    except TokintError:
        return set()
    finally:
        client.close()


def cmd_pairs(args: argparse.Namespace) -> int:
    models = load_models(args.models)
    loaded = loaded_pairs(args.connect)
    pairs = [describe_pair(e, name == models.default_pair, name in loaded) for name, e in models.pairs.items()]
    if args.json:
        print_json(sys.stdout, [p.to_wire() for p in pairs])
    else:
        sys.stdout.write(pairs_text(pairs) + "\n")
    return 0


def cmd_pull(args: argparse.Namespace) -> int:
    from .hub import pull_pair

    entry = load_models(args.models).pair(args.pair)
    folder = Path(args.from_dir).expanduser() if args.from_dir else None
    base, reasoning = pull_pair(entry, _say(sys.stderr), folder)
    ok, detail = check_files(base, reasoning)
    sys.stderr.write(f"tokint: {entry.name}: base {base}\ntokint: {entry.name}: reasoning {reasoning}\n")
    if not ok:
        raise IncompatiblePair(f"{entry.name} was downloaded but cannot be used: {detail}")
    sys.stderr.write(f"tokint: {entry.name} is ready ({detail})\n")
    return 0


def parse_model_source(text: str, role: str) -> dict[str, Any]:
    """PATH, or REPO:FILE on the hub (REPO is owner/name), into a models.toml model table."""
    path = Path(text).expanduser()
    if path.exists():
        return {"path": str(path.resolve())}
    m = re.fullmatch(r"(?P<repo>[\w.-]+/[\w.-]+):(?P<file>[^:]+\.gguf)(@(?P<rev>[\w./-]+))?", text)
    if m:
        out = {"hf_repo": m.group("repo"), "file": m.group("file")}
        if m.group("rev"):
            out["revision"] = m.group("rev")
        return out
    raise ConfigError(f"--{role} {text!r}: neither an existing file nor OWNER/REPO:FILE.gguf[@REVISION]")


def cmd_models_add(args: argparse.Namespace) -> int:
    from .hub import pull_model

    user_file = user_models_path()
    tables = {role: parse_model_source(getattr(args, role), role) for role in ("base", "reasoning")}
    existing: dict[str, Any] = {}
    if user_file.is_file():
        _, existing = read_toml(user_file)
    if args.name in existing.get("pairs", {}) and not args.force:
        raise ConfigError(f"pair {args.name!r} is already in {user_file}; pass --force to replace it")
    say = _say(sys.stderr)
    paths = []
    for role, table in tables.items():
        entry = ModelEntry(role=role, **{k: (Path(v) if k == "path" else v) for k, v in table.items()})
        paths.append(pull_model(entry, say))  # a hub model is downloaded so that it can be checked
    ok, detail = check_files(*paths)
    if not ok:
        raise IncompatiblePair(f"not added: {detail}")
    pairs = existing.setdefault("pairs", {})
    pairs[args.name] = {**({"description": args.description} if args.description else {}), **tables}
    user_file.parent.mkdir(parents=True, exist_ok=True)
    user_file.write_text(dump_models(existing), encoding="utf-8")
    load_models(args.models)  # what was written must read back cleanly
    say(f"added pair {args.name} to {user_file} ({detail})")
    return 0


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return '"inf"' if v == float("inf") else repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    if v is None:
        return '"unlimited"'
    raise ConfigError(f"cannot write {v!r} to TOML")


def _toml_key(k: str) -> str:
    return k if re.fullmatch(r"[A-Za-z0-9_-]+", k) else _toml_value(k)


def dump_models(doc: dict[str, Any]) -> str:
    """A models.toml for tokint's schema (top-level keys, then [pairs.NAME] tables)."""
    lines = ["# Your model pairs; they add to (and override by name) the shipped models.toml.", ""]
    for key, value in doc.items():
        if key != "pairs":
            lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
    for name, pair in doc.get("pairs", {}).items():
        lines += ["", f"[pairs.{_toml_key(name)}]"]
        defaults = pair.get("defaults")
        for key, value in pair.items():
            if key != "defaults":
                lines.append(f"{_toml_key(key)} = {_toml_value(value)}")
        if defaults:
            lines += ["", f"[pairs.{_toml_key(name)}.defaults]"]
            lines += [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in defaults.items()]
    return "\n".join(lines) + "\n"


def add_parsers(sub: Any) -> None:
    pairs = sub.add_parser("pairs", help="the pairs in models.toml: files, sizes, compatibility, what to pull")
    pairs.add_argument("--json", action="store_true", help="print the pairs as JSON")
    pairs.add_argument("--models", default=argparse.SUPPRESS, help="models.toml to use")
    pairs.set_defaults(func=cmd_pairs)
    pull = sub.add_parser("pull", help="download a pair's models from the Hugging Face hub")
    pull.add_argument("pair", help="a pair from models.toml")
    pull.add_argument("--from", dest="from_dir", metavar="DIR",
                      help="take the files from this folder instead of the hub (checked against sha256)")
    pull.add_argument("--models", default=argparse.SUPPRESS, help="models.toml to use")
    pull.set_defaults(func=cmd_pull)
    models = sub.add_parser("models", help="manage your own pairs (in $TOKINT_HOME/models.toml)")
    msub = models.add_subparsers(dest="models_command", required=True, metavar="ACTION")
    add = msub.add_parser("add", help="add a pair after checking that its models can be paired")
    add.add_argument("name", help="name of the new pair")
    add.add_argument("--base", required=True, metavar="PATH|REPO:FILE", help="the base model")
    add.add_argument("--reasoning", required=True, metavar="PATH|REPO:FILE", help="the reasoning model")
    add.add_argument("--description", default="", help="a line describing the pair")
    add.add_argument("--force", action="store_true", help="replace a pair of that name")
    add.set_defaults(func=cmd_models_add)
