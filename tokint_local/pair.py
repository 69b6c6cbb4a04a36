"""A loaded model pair: a base model and a reasoning model that can decode one response together."""
from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Optional

from .backend import LlamaModel, ModelSettings
from .compat import shared_vocab_size
from .config import ModelEntry, PairEntry


def settings_for(entry: ModelEntry) -> ModelSettings:
    return ModelSettings(
        path=entry.local_path(),
        n_ctx=entry.n_ctx,
        n_threads=entry.n_threads,
        n_gpu_layers=entry.n_gpu_layers,
        n_batch=entry.n_batch,
    )


@dataclass
class ModelPair:
    """Two loaded models and the size of the token-id range they share.

    ``lock`` serialises generations: each model has one KV cache, so one response at a time.
    """

    name: str
    base: LlamaModel
    reasoning: LlamaModel
    n_shared: int
    lock: threading.Lock = field(default_factory=threading.Lock)

    def close(self) -> None:
        self.base.close()
        self.reasoning.close()


def open_pair(entry: PairEntry, load: Optional[Callable[[ModelSettings], LlamaModel]] = None) -> ModelPair:
    """Load both models of ``entry`` and check that they can be paired (IncompatiblePair if not).

    ``load`` lets a caller share models between pairs; by default each call loads its own.
    """
    load = load or LlamaModel
    base_settings = settings_for(entry.base)
    reasoning_settings = settings_for(entry.reasoning)
    base = load(base_settings)
    reasoning = load(reasoning_settings)
    try:
        n_shared = shared_vocab_size(base.vocab_info(), reasoning.vocab_info())
    except Exception:
        if load is LlamaModel:
            base.close()
            reasoning.close()
        raise
    return ModelPair(entry.name, base, reasoning, n_shared)
