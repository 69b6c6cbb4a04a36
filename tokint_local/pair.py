"""A loaded model pair: a base model and a reasoning model that can decode one response together."""
from __future__ import annotations

import contextlib
from dataclasses import dataclass
from typing import Any, Iterator

from .backend import LlamaModel, ModelSettings
from .compat import shared_vocab_size
from .config import ModelEntry, PairEntry


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


def pair_from_models(entry: PairEntry, base: LlamaModel, reasoning: LlamaModel) -> ModelPair:
    """Pair two loaded models, or raise IncompatiblePair naming the first difference."""
    n_shared = shared_vocab_size(base.vocab_info(), reasoning.vocab_info())
    return ModelPair(entry.name, base, reasoning, n_shared, (entry.base.prompt_format, entry.reasoning.prompt_format),
                     (dict(entry.base.chat_template_kwargs), dict(entry.reasoning.chat_template_kwargs)))


def open_pair(entry: PairEntry) -> ModelPair:
    """Load both models of ``entry`` and check that they can be paired."""
    base = LlamaModel(settings_for(entry.base, entry.name))
    try:
        reasoning = LlamaModel(settings_for(entry.reasoning, entry.name))
    except BaseException:
        base.close()
        raise
    try:
        return pair_from_models(entry, base, reasoning)
    except BaseException:
        base.close()
        reasoning.close()
        raise
