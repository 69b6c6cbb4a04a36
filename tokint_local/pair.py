"""A loaded model pair: a base model and a reasoning model that can decode one response together.

Each role of each pair has a llama.cpp context (a KV cache) of its own; a model file used twice
(both roles, or by several pairs) is in memory once and its weights are shared by reference count.
A pair loaded with ``parallel = N`` has N sequences in each context, one per generation running at
once (slots.py).
"""
from __future__ import annotations

import contextlib
import threading
from dataclasses import dataclass, field
from typing import Any, Callable, Iterator, Optional

from .backend import LlamaModel, LlamaWeights, ModelSettings
from .compat import shared_vocab_size
from .config import ModelEntry, PairEntry

WeightsSource = Callable[[ModelSettings], LlamaWeights]


def settings_for(entry: ModelEntry, pair: str = "PAIR") -> ModelSettings:
    return ModelSettings(
        path=entry.local_path(pair),
        n_ctx=entry.n_ctx,
        n_threads=entry.n_threads,
        n_gpu_layers=entry.n_gpu_layers,
        n_batch=entry.n_batch,
    )


@dataclass
class ModelPair:
    """Two loaded models and the size of the token-id range they share."""

    name: str
    base: LlamaModel
    reasoning: LlamaModel
    n_shared: int
    formats: tuple[str, str] = ("gguf", "gguf")  # prompt format of the base and the reasoning model
    # chat_template_kwargs from models.toml, per model (base, reasoning); a request's are merged over them
    template_kwargs: tuple[dict[str, Any], dict[str, Any]] = ({}, {})
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False, compare=False)

    @property
    def parallel(self) -> int:
        """How many generations can run at once: the sequences each context holds."""
        return min(getattr(self.base, "n_seq", 1), getattr(self.reasoning, "n_seq", 1))

    @property
    def can_roll_back(self) -> bool:
        """Whether both caches can be cut back to a position (the block schedule needs it)."""
        return self.base.can_roll_back and self.reasoning.can_roll_back

    @contextlib.contextmanager
    def exclusive(self) -> Iterator["ModelPair"]:
        """Hold the pair for one generation (its two contexts are its own; weights are read-only)."""
        with self.lock:
            yield self

    def model_bytes(self) -> int:
        """The weights in memory for this pair, a file used by both roles counted once."""
        weights = {id(m.weights): m.weights for m in (self.base, self.reasoning)}
        return sum(w.memory_bytes() for w in weights.values())

    def context_bytes(self) -> int:
        """The two KV caches: parallel x n_ctx cells each."""
        return self.base.context_bytes() + self.reasoning.context_bytes()

    def close(self) -> None:
        self.base.close()
        self.reasoning.close()


def pair_from_models(entry: PairEntry, base: LlamaModel, reasoning: LlamaModel) -> ModelPair:
    """Pair two loaded models, or raise IncompatiblePair naming the first difference."""
    n_shared = shared_vocab_size(base.vocab_info(), reasoning.vocab_info())
    return ModelPair(entry.name, base, reasoning, n_shared, (entry.base.prompt_format, entry.reasoning.prompt_format),
                     (dict(entry.base.chat_template_kwargs), dict(entry.reasoning.chat_template_kwargs)))


def open_pair(entry: PairEntry, weights: Optional[WeightsSource] = None, parallel: int = 1) -> ModelPair:
    """Load both models of ``entry`` and check that they can be paired.

    ``weights`` gives the weights for a model's settings (the daemon's registry shares them
    between pairs); by default a file used for both roles is loaded once for this pair.
    ``parallel``: the generations it can run at once (a sequence for each in each context).
    """
    n_seq = parallel
    if weights is None:
        loaded: dict[tuple[str, int], LlamaWeights] = {}

        def weights(settings: ModelSettings) -> LlamaWeights:
            found = loaded.get(settings.weights_key)
            if found is None or found.closed:
                found = loaded[settings.weights_key] = LlamaWeights(settings.path, settings.n_gpu_layers)
            return found

    base_settings, reasoning_settings = settings_for(entry.base, entry.name), settings_for(entry.reasoning, entry.name)
    base = LlamaModel(base_settings, weights(base_settings), n_seq)
    try:
        reasoning = LlamaModel(reasoning_settings, weights(reasoning_settings), n_seq)
    except BaseException:
        base.close()
        raise
    try:
        return pair_from_models(entry, base, reasoning)
    except BaseException:
        base.close()
        reasoning.close()
        raise
