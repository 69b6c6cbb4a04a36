"""A loaded model pair: a base model and a reasoning model that can decode one response together."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Iterator

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
    """Two loaded models and the size of the token-id range they share."""

    name: str
    base: LlamaModel
    reasoning: LlamaModel
    n_shared: int

    @contextlib.contextmanager
    def exclusive(self) -> Iterator["ModelPair"]:
        """Hold both models for one generation (each model has one KV cache; pairs may share a model)."""
        models = sorted({id(self.base): self.base, id(self.reasoning): self.reasoning}.items())
        with contextlib.ExitStack() as stack:
            for _, model in models:
                stack.enter_context(model.lock)
            yield self

    def close(self) -> None:
        self.base.close()
        self.reasoning.close()


def pair_from_models(name: str, base: LlamaModel, reasoning: LlamaModel) -> ModelPair:
    """Pair two loaded models, or raise IncompatiblePair naming the first difference."""
    return ModelPair(name, base, reasoning, shared_vocab_size(base.vocab_info(), reasoning.vocab_info()))


def open_pair(entry: PairEntry) -> ModelPair:
    """Load both models of ``entry`` and check that they can be paired."""
    base = LlamaModel(settings_for(entry.base))
    try:
        reasoning = LlamaModel(settings_for(entry.reasoning))
    except BaseException:
        base.close()
        raise
    try:
        return pair_from_models(entry.name, base, reasoning)
    except BaseException:
        base.close()
        reasoning.close()
        raise
