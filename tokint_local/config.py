"""Where tokint keeps things, and the model pairs named in models.toml.

``TOKINT_HOME`` (default ``~/.local/share/tokint``) holds per-user data. The pairs file is
``--models FILE``, else ``$TOKINT_MODELS``, else the ``models.toml`` shipped at the top of the
source tree.
"""
from __future__ import annotations

import os
import re
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

from .errors import ConfigError, ModelFileMissing, UnknownPair

SHIPPED_MODELS = Path(__file__).resolve().parent.parent / "models.toml"
_MODEL_KEYS = {"path", "hf_repo", "file", "revision", "sha256", "n_ctx", "n_threads", "n_gpu_layers", "n_batch"}
_PAIR_KEYS = {"base", "reasoning", "description"}
_VAR = re.compile(r"\$(?:\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>[^}]*))?\}|(?P<plain>[A-Za-z_][A-Za-z0-9_]*))")


def tokint_home() -> Path:
    env = os.environ.get("TOKINT_HOME")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "tokint"


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

    def describe(self) -> str:
        return str(self.path) if self.path else f"{self.hf_repo}:{self.file}"

    def local_path(self) -> Path:
        """The file on disk, or ModelFileMissing saying how to get it."""
        if self.path is not None:
            if not self.path.is_file():
                raise ModelFileMissing(f"{self.role} model file not found: {self.path}")
            return self.path
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(self.hf_repo, self.file, revision=self.revision)
        if isinstance(cached, str) and Path(cached).is_file():
            return Path(cached)
        raise ModelFileMissing(
            f"{self.role} model {self.hf_repo}:{self.file} is not downloaded; download it with "
            f"`hf download {self.hf_repo} {self.file}`, or point the pair at a local file "
            f'with `{self.role} = {{ path = "/path/to/model.gguf" }}` in models.toml'
        )


@dataclass(frozen=True)
class PairEntry:
    name: str
    base: ModelEntry
    reasoning: ModelEntry
    description: str = ""


@dataclass(frozen=True)
class ModelsFile:
    path: Path
    pairs: dict[str, PairEntry]
    default_pair: Optional[str]

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
    """Read and check a models.toml; every problem is a ConfigError naming the file and key."""
    path = models_path(explicit)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"models file not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    unknown = set(raw) - {"pairs", "default_pair"}
    if unknown:
        raise ConfigError(f"{path}: unknown top-level key {sorted(unknown)[0]!r}")
    pairs_raw = raw.get("pairs", {})
    if not isinstance(pairs_raw, dict):
        raise ConfigError(f"{path}: 'pairs' must be a table of [pairs.NAME] tables")
    pairs = {name: _parse_pair(path, name, body) for name, body in pairs_raw.items()}
    default = raw.get("default_pair")
    if default is not None and default not in pairs:
        raise ConfigError(f"{path}: default_pair {default!r} is not a pair in this file")
    return ModelsFile(path=path, pairs=pairs, default_pair=default)


def _parse_pair(path: Path, name: str, body: Any) -> PairEntry:
    where = f"{path}: pairs.{name}"
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a table with 'base' and 'reasoning'")
    unknown = set(body) - _PAIR_KEYS
    if unknown:
        key = sorted(unknown)[0]
        hint = ""
        if isinstance(body[key], dict):
            hint = f' (a pair name with a dot must be quoted: [pairs."{name}.{key}"])'
        raise ConfigError(f"{where}: unknown key {key!r}{hint}")
    for role in ("base", "reasoning"):
        if role not in body:
            raise ConfigError(f"{where}: missing '{role}'")
    return PairEntry(
        name=name,
        base=_parse_model(f"{where}.base", "base", body["base"]),
        reasoning=_parse_model(f"{where}.reasoning", "reasoning", body["reasoning"]),
        description=str(body.get("description", "")),
    )


def _parse_model(where: str, role: str, body: Any) -> ModelEntry:
    if not isinstance(body, dict):
        raise ConfigError(f"{where}: must be a table like {{ path = \"...\" }} or {{ hf_repo = \"...\", file = \"...\" }}")
    unknown = set(body) - _MODEL_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key {sorted(unknown)[0]!r}")
    for key in ("path", "hf_repo", "file", "revision", "sha256"):
        if key in body and not isinstance(body[key], str):
            raise ConfigError(f"{where}.{key}: must be a string")
    for key in ("n_ctx", "n_threads", "n_gpu_layers", "n_batch"):
        if key in body and (not isinstance(body[key], int) or isinstance(body[key], bool)):
            raise ConfigError(f"{where}.{key}: must be an integer")
    if ("path" in body) == ("hf_repo" in body):
        raise ConfigError(f"{where}: give exactly one of 'path' or 'hf_repo' (with 'file')")
    if "hf_repo" in body and "file" not in body:
        raise ConfigError(f"{where}: 'hf_repo' needs 'file' (the GGUF file name in the repo)")
    if body.get("n_ctx", 4096) < 16:
        raise ConfigError(f"{where}.n_ctx: must be at least 16")
    kwargs = {k: v for k, v in body.items() if k not in ("path",)}
    if "path" in body:
        kwargs["path"] = Path(expand(body["path"]))
    return ModelEntry(role=role, **kwargs)
