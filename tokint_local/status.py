"""What the daemon reports about itself and its pairs: frozen types with to_wire/from_wire."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Optional

from .config import ModelEntry, PairEntry
from .errors import TokintError
from .gguf_meta import architecture, can_roll_back


@dataclass(frozen=True)
class ModelFile:
    """One model of a pair as configured: where it comes from and whether its file is here."""

    source: str  # a path, or "owner/repo:file" on the hub
    path: Optional[str]  # the local file, when known
    present: bool
    size_bytes: Optional[int] = None
    damage: Optional[str] = None  # why the file is not whole (wrong size, cut short, not the pinned digest)


def describe_model(entry: ModelEntry) -> ModelFile:
    """Where a configured model comes from, whether its file is on this machine, and whether it is whole."""
    path = entry.cached_path()
    if path is None:
        return ModelFile(source=entry.describe(), path=str(entry.path) if entry.path else None, present=False)
    return ModelFile(source=entry.describe(), path=str(path), present=True, size_bytes=path.stat().st_size,
                     damage=file_damage(entry, path))


def file_damage(entry: ModelEntry, path: Path) -> Optional[str]:
    """Why a model file is damaged, or None, without hashing it: its size against the hub's (as
    recorded when pulled) and its GGUF header's, and a recorded digest against the pinned one."""
    from . import integrity

    wrong_size = integrity.size_problem(path)
    if wrong_size is not None:
        return wrong_size
    digest = integrity.known_sha256(path)
    if entry.sha256 and digest is not None and digest != entry.sha256:
        return f"sha256 {digest} where models.toml pins {entry.sha256}"
    return None


_COMPAT_CACHE: dict[tuple, tuple[Optional[bool], str]] = {}


def check_files(base: Path, reasoning: Path) -> tuple[bool, str]:
    """Whether two GGUF files can be paired, from their metadata alone (weights are not read)."""
    from .compat import shared_vocab_size
    from .gguf_meta import vocab_info

    key = tuple((str(p), p.stat().st_size, p.stat().st_mtime_ns) for p in (base, reasoning))
    if key not in _COMPAT_CACHE:
        try:
            shared = shared_vocab_size(vocab_info(base), vocab_info(reasoning))
            _COMPAT_CACHE[key] = (True, f"compatible ({shared} shared tokens)")
        except TokintError as exc:
            _COMPAT_CACHE[key] = (False, str(exc))
    return _COMPAT_CACHE[key]


@dataclass(frozen=True)
class PairListing:
    name: str
    description: str
    default: bool
    base: ModelFile
    reasoning: ModelFile
    loaded: bool = False
    compatible: Optional[bool] = None  # None: not known until both files are here
    compat_detail: str = ""
    defaults: dict[str, Any] = field(default_factory=dict)
    pull: Optional[str] = None  # the command that fetches what is missing
    lockstep_only: bool = False  # a model's cache cannot be rolled back: the block schedule is not used
    schedule_detail: str = ""  # why, when lockstep_only

    def to_wire(self) -> dict[str, Any]:
        out = asdict(self)
        out["defaults"] = {k: (str(v) if isinstance(v, float) and v == float("inf") else v) for k, v in self.defaults.items()}
        return out

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "PairListing":
        kwargs = _known(cls, body)
        kwargs["base"] = ModelFile(**_known(ModelFile, body["base"]))
        kwargs["reasoning"] = ModelFile(**_known(ModelFile, body["reasoning"]))
        return cls(**kwargs)


def describe_pair(entry: PairEntry, is_default: bool, loaded: bool = False) -> PairListing:
    """A pair as `tokint pairs` and the daemon's list_pairs show it."""
    base, reasoning = describe_model(entry.base), describe_model(entry.reasoning)
    compatible, detail = None, "not checked: a file is missing"
    damaged = [(m, f) for m, f in ((entry.base, base), (entry.reasoning, reasoning)) if f.damage]
    if damaged:
        model, found = damaged[0]
        fix = f"run `tokint pull {entry.name}` to repair it" if model.hf_repo else "replace it"
        compatible, detail = False, f"the {model.role} model's file is damaged ({found.damage}); {fix}"
    elif base.present and reasoning.present:
        compatible, detail = check_files(Path(base.path), Path(reasoning.path))
    to_pull = [m for m, f in ((entry.base, base), (entry.reasoning, reasoning)) if (not f.present or f.damage) and m.hf_repo]
    recurrent = [f"{role} is {arch}" for role, arch in (("base", _architecture(base)), ("reasoning", _architecture(reasoning)))
                 if arch is not None and not can_roll_back(arch)]
    return PairListing(
        name=entry.name, description=entry.description, default=is_default, base=base, reasoning=reasoning,
        loaded=loaded, compatible=compatible, compat_detail=detail, defaults=dict(entry.defaults),
        pull=f"tokint pull {entry.name}" if to_pull else None, lockstep_only=bool(recurrent),
        schedule_detail=f"{', '.join(recurrent)}: a recurrent model's cache cannot be rolled back" if recurrent else "",
    )


def _architecture(model: ModelFile) -> Optional[str]:
    if not model.present:
        return None
    try:
        return architecture(Path(model.path))
    except TokintError:
        return None


@dataclass(frozen=True)
class ActiveGeneration:
    id: str
    pair: str
    mode: str
    tokens: int
    elapsed_s: float


@dataclass(frozen=True)
class Offload:
    backend: str  # "CPU", or the GPU backend of this build (CUDA, Metal, ...)
    gpu_layers: int
    n_layers: int


@dataclass(frozen=True)
class LoadedPair:
    name: str
    base: str
    reasoning: str
    model_bytes: int  # the pair's two model files in memory (shared models counted once per pair)
    queue_length: int
    active: Optional[ActiveGeneration] = None
    base_offload: Optional[Offload] = None
    reasoning_offload: Optional[Offload] = None


@dataclass(frozen=True)
class WorkerStatus:
    """The llama.cpp worker process that tokintd supervises (daemon/supervisor.py)."""

    state: str  # "running", "starting", "backoff" (waiting to restart after repeated crashes), "stopped"
    pid: Optional[int]
    uptime_s: float
    restarts: int  # workers started again after a crash
    crashes: int  # crashes remembered (the most recent 16)
    last_crash: Optional[str] = None  # how the last worker died: "was killed by SIGSEGV", ...
    last_crash_ago_s: Optional[float] = None
    restart_in_s: Optional[float] = None  # in backoff: seconds until the next start
    memory_rss_bytes: int = 0
    # (median, p95) ms from the worker sending a token event to the daemon reading it (last 2,048 tokens)
    token_hop_ms: Optional[tuple[float, float]] = None


@dataclass(frozen=True)
class DaemonStatus:
    version: str
    protocol_version: int
    versions: dict[str, str]
    uptime_s: float
    pid: int
    models_file: str
    addresses: list[str]
    memory_rss_bytes: int
    model_bytes: int  # every loaded model once
    queue_length: int
    loaded_pairs: list[LoadedPair] = field(default_factory=list)
    history_path: Optional[str] = None  # where generations are recorded; None: not recorded
    history_problem: Optional[str] = None  # why recording stopped, if it did
    worker: Optional[WorkerStatus] = None  # None: a daemon without a worker process (protocol 1 daemons)

    @property
    def active(self) -> list[ActiveGeneration]:
        return [p.active for p in self.loaded_pairs if p.active is not None]

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "DaemonStatus":
        kwargs = _known(cls, body)
        pairs = []
        for p in body.get("loaded_pairs", []):
            pk = _known(LoadedPair, p)
            if p.get("active"):
                pk["active"] = ActiveGeneration(**_known(ActiveGeneration, p["active"]))
            for role in ("base_offload", "reasoning_offload"):
                if p.get(role):
                    pk[role] = Offload(**_known(Offload, p[role]))
            pairs.append(LoadedPair(**pk))
        kwargs["loaded_pairs"] = pairs
        if isinstance(body.get("worker"), dict):
            worker = _known(WorkerStatus, body["worker"])
            if worker.get("token_hop_ms") is not None:
                worker["token_hop_ms"] = tuple(worker["token_hop_ms"])
            kwargs["worker"] = WorkerStatus(**worker)
        return cls(**kwargs)


def _known(cls: type, body: dict[str, Any]) -> dict[str, Any]:
    names = cls.__dataclass_fields__.keys()
    return {k: v for k, v in body.items() if k in names}
