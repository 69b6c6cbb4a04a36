"""The pairs the daemon knows (from models.toml) and the ones it has loaded.

A model file used by two pairs with the same settings is loaded once and counted by reference;
it is freed when the last pair using it is unloaded. Loading is blocking and thread-safe: call
it from a worker thread, never from the socket loop.
"""
from __future__ import annotations

import threading
from typing import Optional

from tokint_local.backend import LlamaModel, ModelSettings
from tokint_local.config import ModelsFile
from tokint_local.pair import ModelPair, pair_from_models, settings_for
from tokint_local.status import PairListing, describe_pair


class Registry:
    def __init__(self, models: ModelsFile):
        self.models = models
        self._lock = threading.Lock()
        self._pairs: dict[str, ModelPair] = {}
        self._loaded: dict[ModelSettings, tuple[LlamaModel, int]] = {}  # model -> (it, pairs using it)

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Optional[ModelPair]:
        return self._pairs.get(name)

    def loaded_names(self) -> list[str]:
        return list(self._pairs)

    def model_bytes(self) -> int:
        return sum(model.memory_bytes() for model, _ in self._loaded.values())

    def listing(self) -> list[PairListing]:
        return [describe_pair(entry, name == self.models.default_pair, name in self._pairs)
                for name, entry in self.models.pairs.items()]

    # -- loading ---------------------------------------------------------------------------
    def load(self, name: Optional[str]) -> ModelPair:
        """The loaded pair ``name`` (default pair if None), loading it first if needed."""
        entry = self.models.pair(name)
        with self._lock:
            pair = self._pairs.get(entry.name)
            if pair is not None:
                return pair
            base_settings = settings_for(entry.base, entry.name)
            reasoning_settings = settings_for(entry.reasoning, entry.name)
            base = self._acquire(base_settings)
            try:
                reasoning = self._acquire(reasoning_settings)
            except BaseException:
                self._release(base_settings)
                raise
            try:
                pair = pair_from_models(entry, base, reasoning)
            except BaseException:
                self._release(base_settings)
                self._release(reasoning_settings)
                raise
            self._pairs[entry.name] = pair
            return pair

    def unload(self, name: str) -> bool:
        """Free a loaded pair (and its models, unless another pair uses them). False if not loaded.

        The caller makes sure no generation is using the pair.
        """
        with self._lock:
            pair = self._pairs.pop(name, None)
            if pair is None:
                return False
            for model in (pair.base, pair.reasoning):
                self._release(model.settings)
            return True

    def close(self) -> None:
        for name in list(self._pairs):
            self.unload(name)

    def _acquire(self, settings: ModelSettings) -> LlamaModel:
        model, users = self._loaded.get(settings, (None, 0))
        if model is None:
            model = LlamaModel(settings)
        self._loaded[settings] = (model, users + 1)
        return model

    def _release(self, settings: ModelSettings) -> None:
        model, users = self._loaded[settings]
        if users <= 1:
            del self._loaded[settings]
            model.close()
        else:
            self._loaded[settings] = (model, users - 1)

