"""What the daemon reports about itself and its pairs: frozen types with to_wire/from_wire."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Optional

from .config import ModelEntry
from .errors import ModelFileMissing


@dataclass(frozen=True)
class ModelFile:
    """One model of a pair as configured: where it comes from and whether its file is here."""

    source: str  # a path, or "owner/repo:file" on the hub
    path: Optional[str]  # the local file, when known
    present: bool
    size_bytes: Optional[int] = None


def describe_model(entry: ModelEntry) -> ModelFile:
    """Where a configured model comes from and whether its file is on this machine."""
    try:
        path = entry.local_path()
    except ModelFileMissing:
        return ModelFile(source=entry.describe(), path=str(entry.path) if entry.path else None, present=False)
    return ModelFile(source=entry.describe(), path=str(path), present=True, size_bytes=path.stat().st_size)


@dataclass(frozen=True)
class PairListing:
    name: str
    description: str
    default: bool
    base: ModelFile
    reasoning: ModelFile
    loaded: bool = False

    def to_wire(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "PairListing":
        return cls(
            name=body["name"],
            description=body.get("description", ""),
            default=bool(body.get("default", False)),
            base=ModelFile(**_known(ModelFile, body["base"])),
            reasoning=ModelFile(**_known(ModelFile, body["reasoning"])),
            loaded=bool(body.get("loaded", False)),
        )


@dataclass(frozen=True)
class ActiveGeneration:
    id: str
    pair: str
    mode: str
    tokens: int
    elapsed_s: float


@dataclass(frozen=True)
class LoadedPair:
    name: str
    base: str
    reasoning: str
    model_bytes: int  # the pair's two model files in memory (shared models counted once per pair)
    queue_length: int
    active: Optional[ActiveGeneration] = None


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
            pairs.append(LoadedPair(**pk))
        kwargs["loaded_pairs"] = pairs
        return cls(**kwargs)


def _known(cls: type, body: dict[str, Any]) -> dict[str, Any]:
    names = cls.__dataclass_fields__.keys()
    return {k: v for k, v in body.items() if k in names}
