"""Where tokint keeps things, and the model pairs named in models.toml.

``TOKINT_HOME`` (default ``~/.local/share/tokint``) holds per-user data. The pairs file is
``--models FILE``, else ``$TOKINT_MODELS``, else the ``models.toml`` shipped at the top of the
source tree; ``$TOKINT_HOME/models.toml``, when it exists, adds pairs and overrides pairs of the
same name. Every problem in a file is a ConfigError naming the file, the line and the key.
"""
from __future__ import annotations

import math
import os
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError, InvalidParameter, ModelFileMissing, UnknownPair

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models.toml"
USER_MODELS_NAME = "models.toml"
PROMPT_FORMATS = ("gguf", "raw", "chatml", "llama3")  # gguf: the model's own chat template
_MODEL_KEYS = {
    "path": str, "hf_repo": str, "file": str, "revision": str, "sha256": str,
    "n_ctx": int, "n_threads": int, "n_gpu_layers": int, "n_batch": int, "prompt_format": str,
    "chat_template_kwargs": dict,
}
_PAIR_KEYS = {"base", "reasoning", "description", "defaults", "parallel"}
MAX_PARALLEL = 64  # generations one pair may run at once (llama.cpp allows 256 sequences per context)
DEFAULT_PARALLEL = 4  # tokintd --parallel: measured on the 2-core CPU (docs/PERFORMANCE.md, batched decoding)
DEFAULT_KEYS = ("divergence", "threshold", "budget", "max_tokens", "temperature", "top_k", "top_p",
                "max_position", "min_base_entropy")
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")
_HEADER = re.compile(r"^\s*\[\s*([^\[\]]+?)\s*\]\s*(#.*)?$")


def tokint_home() -> Path:
    env = os.environ.get("TOKINT_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokint"


def user_models_path() -> Path:
    return tokint_home() / USER_MODELS_NAME


def expand(text: str) -> str:
    """Expand ``$VAR``, ``${VAR}``, ``${VAR:-default}`` and a leading ``~``."""

    def sub(m: re.Match[str]) -> str:
        name = m.group("braced") or m.group("plain")
        value = os.environ.get(name)
        if value:
            return value
        default = m.group("default")
        return expand(default) if default is not None else ""

    return os.path.expanduser(_VAR.sub(sub, text))


@dataclass(frozen=True)
class ModelEntry:
    """One model of a pair: a local path, or a file in a Hugging Face hub repo."""

    role: str
    path: Optional[Path] = None
    hf_repo: Optional[str] = None
    file: Optional[str] = None
    revision: Optional[str] = None
    sha256: Optional[str] = None
    n_ctx: int = 4096
    n_threads: Optional[int] = None
    n_gpu_layers: int = 0
    n_batch: int = 512
    prompt_format: str = "gguf"
    # variables for the chat template (e.g. enable_thinking = false); a request's chat_template_kwargs win
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)

    def describe(self) -> str:
        return str(self.path) if self.path else f"{self.hf_repo}:{self.file}"

    def cached_path(self) -> Optional[Path]:
        """The file on disk if it is there (for a hub model: complete in the local cache), else None."""
        if self.path is not None:
            return self.path if self.path.is_file() else None
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(self.hf_repo, self.file, revision=self.revision)
        return Path(cached) if isinstance(cached, str) and Path(cached).is_file() else None

    def local_path(self, pair: str = "PAIR") -> Path:
        """The file on disk, or ModelFileMissing saying how to get it."""
        found = self.cached_path()
        if found is not None:
            return found
        if self.path is not None:
            raise ModelFileMissing(f"{self.role} model file not found: {self.path}")
        raise ModelFileMissing(
            f"{self.role} model {self.hf_repo}:{self.file} is not downloaded; run `tokint pull {pair}`"
        )


@dataclass(frozen=True)
class PairEntry:
    name: str
    base: ModelEntry
    reasoning: ModelEntry
    description: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)  # generation settings for this pair
    source: Optional[Path] = None  # the file that defined it
    parallel: Optional[int] = None  # generations it runs at once; None: the daemon's --parallel

    def local_paths(self) -> tuple[Path, Path]:
        return self.base.local_path(self.name), self.reasoning.local_path(self.name)

    def slots(self, default: int = 1) -> int:
        """How many generations this pair runs at once: its own ``parallel``, else ``default``."""
        return self.parallel or default


@dataclass(frozen=True)
class ModelsFile:
    path: Path
    pairs: dict[str, PairEntry]
    default_pair: Optional[str]
    user_path: Optional[Path] = None  # the user file that was layered on top, if any

    def pair(self, name: Optional[str]) -> PairEntry:
        """The named pair; without a name, default_pair, or the only pair of a one-pair file."""
        name = name or self.default_pair or (next(iter(self.pairs)) if len(self.pairs) == 1 else None)
        if name is None:
            raise UnknownPair(f"no pair given and {self.path} names no default_pair")
        try:
            return self.pairs[name]
        except KeyError:
            known = ", ".join(sorted(self.pairs)) or "none"
            raise UnknownPair(f"unknown pair {name!r} (pairs in {self.path}: {known})") from None


def models_path(explicit: Optional[str | Path] = None) -> Path:
    """The models file to use, as an absolute path."""
    if explicit:
        return Path(expand(str(explicit))).resolve()
    env = os.environ.get("TOKINT_MODELS")
    if env:
        return Path(expand(env)).resolve()
    return SHIPPED_MODELS


def load_models(explicit: Optional[str | Path] = None) -> ModelsFile:
    """The pairs file, with the user's TOKINT_HOME/models.toml layered on top when it exists."""
    path = models_path(explicit)
    default, pairs = _read_file(path, must_exist=True)
    user = user_models_path().resolve()
    used_user = None
    if user != path and user.is_file():
        user_default, user_pairs = _read_file(user, must_exist=False)
        pairs.update(user_pairs)
        default = user_default or default
        used_user = user
    if default is not None and default not in pairs:
        raise ConfigError(f"{path}: default_pair {default!r} is not a pair in this file")
    return ModelsFile(path=path, pairs=pairs, default_pair=default, user_path=used_user)


def read_toml(path: Path) -> tuple[str, dict[str, Any]]:
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"models file not found: {path}") from None
    try:
        return text, tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def _read_file(path: Path, must_exist: bool) -> tuple[Optional[str], dict[str, PairEntry]]:
    text, raw = read_toml(path)
    where = _Locator(path, text)
    unknown = set(raw) - {"pairs", "default_pair"}
    if unknown:
        key = sorted(unknown)[0]
        raise where.error([], key, f"unknown top-level key {key!r} (expected default_pair and [pairs.NAME] tables)")
    pairs_raw = raw.get("pairs", {})
    if not isinstance(pairs_raw, dict):
        raise where.error([], "pairs", "'pairs' must be a table of [pairs.NAME] tables")
    default = raw.get("default_pair")
    if default is not None and not isinstance(default, str):
        raise where.error([], "default_pair", "default_pair must be a pair name (a string)")
    pairs = {name: _parse_pair(where, name, body) for name, body in pairs_raw.items()}
    if default is not None and default not in pairs and must_exist:
        raise where.error([], "default_pair", f"default_pair {default!r} is not a pair in this file")
    return default, pairs


def _parse_pair(where: "_Locator", name: str, body: Any) -> PairEntry:
    table = ["pairs", name]
    if not isinstance(body, dict):
        raise where.error(["pairs"], name, f"pairs.{name} must be a table with 'base' and 'reasoning'")
    unknown = set(body) - _PAIR_KEYS
    if unknown:
        key = sorted(unknown)[0]
        hint = f' (a pair name with a dot must be quoted: [pairs."{name}.{key}"])' if isinstance(body[key], dict) else ""
        raise where.error(table, key, f"pairs.{name}: unknown key {key!r}{hint}")
    for role in ("base", "reasoning"):
        if role not in body:
            raise where.error(table, None, f"pairs.{name}: missing '{role}'")
    parallel = body.get("parallel")
    if parallel is not None and (not isinstance(parallel, int) or isinstance(parallel, bool)
                                 or not 1 <= parallel <= MAX_PARALLEL):
        raise where.error(table, "parallel", f"pairs.{name}.parallel: must be a whole number from 1 to {MAX_PARALLEL}, "
                                             f"not {parallel!r}")
    return PairEntry(
        name=name,
        base=_parse_model(where, table, "base", body["base"]),
        reasoning=_parse_model(where, table, "reasoning", body["reasoning"]),
        description=str(body.get("description", "")),
        defaults=_parse_defaults(where, name, body.get("defaults", {})),
        source=where.path,
        parallel=parallel,
    )


def _parse_model(where: "_Locator", table: list[str], role: str, body: Any) -> ModelEntry:
    label = f"pairs.{table[1]}.{role}"
    if not isinstance(body, dict):
        raise where.error(table, role, f"{label} must be a table like {{ path = \"...\" }} or {{ hf_repo = \"...\", file = \"...\" }}")
    sub = table + [role]
    for key, value in body.items():
        kind = _MODEL_KEYS.get(key)
        if kind is None:
            raise where.error(sub, key, f"{label}: unknown key {key!r} (known: {', '.join(sorted(_MODEL_KEYS))})")
        if kind is dict:
            from .events import check_template_kwargs  # checked exactly as a request's are

            try:
                check_template_kwargs(f"{label}.{key}", value)
            except InvalidParameter as exc:
                raise where.error(sub, key, str(exc)) from None
            continue
        if not isinstance(value, kind) or isinstance(value, bool):
            raise where.error(sub, key, f"{label}.{key}: must be {'an integer' if kind is int else 'a string'}, not {value!r}")
    if ("path" in body) == ("hf_repo" in body):
        raise where.error(sub, None, f"{label}: give exactly one of 'path' or 'hf_repo' (with 'file')")
    if "hf_repo" in body and "file" not in body:
        raise where.error(sub, "hf_repo", f"{label}: 'hf_repo' needs 'file' (the GGUF file name in the repo)")
    if "sha256" in body and not re.fullmatch(r"[0-9a-fA-F]{64}", body["sha256"]):
        raise where.error(sub, "sha256", f"{label}.sha256: must be 64 hexadecimal digits")
    if body.get("n_ctx", 4096) < 16:
        raise where.error(sub, "n_ctx", f"{label}.n_ctx: must be at least 16")
    if body.get("prompt_format", "gguf") not in PROMPT_FORMATS:
        raise where.error(sub, "prompt_format", f"{label}.prompt_format: must be one of {', '.join(PROMPT_FORMATS)}")
    kwargs = dict(body)
    if "path" in body:
        kwargs["path"] = Path(expand(body["path"]))
    if "sha256" in body:
        kwargs["sha256"] = body["sha256"].lower()
    return ModelEntry(role=role, **kwargs)


def _parse_defaults(where: "_Locator", name: str, body: Any) -> dict[str, Any]:
    table = ["pairs", name, "defaults"]
    if not isinstance(body, dict):
        raise where.error(["pairs", name], "defaults", f"pairs.{name}.defaults must be a table")
    out = {}
    for key, value in body.items():
        if key not in DEFAULT_KEYS:
            raise where.error(table, key, f"pairs.{name}.defaults: unknown key {key!r} (known: {', '.join(DEFAULT_KEYS)})")
        if key == "budget" and value == "unlimited":
            value = None
        elif key == "threshold" and value == "inf":
            value = math.inf
        out[key] = value
    from .events import GenerationRequest  # validated exactly as a request is

    try:
        GenerationRequest(prompt="-", **out)
    except InvalidParameter as exc:
        key = str(exc).split(":", 1)[0]
        raise where.error(table, key, f"pairs.{name}.defaults.{exc}") from None
    return out


class _Locator:
    """Finds the line of a key in a TOML file, for error messages (tomllib keeps no positions)."""

    def __init__(self, path: Path, text: str):
        self.path = path
        self.lines = text.splitlines()

    def line(self, table: list[str], key: Optional[str]) -> Optional[int]:
        start, end = 0, len(self.lines)
        for depth in range(len(table), 0, -1):  # the deepest [table] header that exists
            found = self._header(table[:depth])
            if found is not None:
                start = found
                end = next((i for i in range(found + 1, len(self.lines)) if _HEADER.match(self.lines[i])), len(self.lines))
                break
        if key is None:
            return start + 1 if table else None
        pattern = re.compile(rf'(^|[\s{{,.]){re.escape(key)}"?\s*=|(^|[\s{{,.])"{re.escape(key)}"\s*=')
        for i in range(start, end):
            if pattern.search(self.lines[i].split("#", 1)[0]):
                return i + 1
        return start + 1 if table else None

    def _header(self, parts: list[str]) -> Optional[int]:
        for i, text in enumerate(self.lines):
            m = _HEADER.match(text)
            if m and _split_dotted(m.group(1)) == parts:
                return i
        return None

    def error(self, table: list[str], key: Optional[str], message: str) -> ConfigError:
        line = self.line(table, key)
        return ConfigError(f"{self.path}:{line}: {message}" if line else f"{self.path}: {message}")


def _split_dotted(header: str) -> list[str]:
    parts, buf, quote = [], "", None
    for ch in header:
        if quote:
            if ch == quote:
                quote = None
            else:
                buf += ch
        elif ch in "\"'":
            quote = ch
        elif ch == ".":
            parts.append(buf.strip())
            buf = ""
        else:
            buf += ch
    parts.append(buf.strip())
    return parts
