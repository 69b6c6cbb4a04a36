"""The pairs the daemon knows (from models.toml) and the ones it has loaded.

Every role of every loaded pair has a llama.cpp context of its own (its own KV cache, with a
sequence per generation it can run at once: the pair's ``parallel``), so pairs never disturb each
other's caches. The weights of a model file are loaded once per
(path, n_gpu_layers), shared by every context made from them, and freed when the last pair using
them is unloaded. Loading is blocking and thread-safe: call it from a worker thread, never from the
socket loop.
"""
from __future__ import annotations

import threading
from typing import Optional

from tokint_local.backend import LlamaWeights, ModelSettings
from tokint_local.config import ModelsFile
from tokint_local.pair import ModelPair, open_pair
from tokint_local.status import PairListing, describe_pair


class Registry:
    def __init__(self, models: ModelsFile, parallel: int = 1):
        self.models = models
        self.parallel = parallel  # generations a pair runs at once where its entry does not say
        self._lock = threading.Lock()
        self._pairs: dict[str, ModelPair] = {}
        self._weights: dict[tuple[str, int], LlamaWeights] = {}  # weights_key -> weights (freed ones are dropped)

    # -- queries ---------------------------------------------------------------------------
    def get(self, name: str) -> Optional[ModelPair]:
        return self._pairs.get(name)

    def loaded_names(self) -> list[str]:
        return list(self._pairs)

    def model_bytes(self) -> int:
        """The weights in memory, each file once however many contexts use it."""
        return sum(w.memory_bytes() for w in self._live_weights())

    def loaded_weights(self) -> list[LlamaWeights]:
        """The model files in memory (each once), with ``users``: the contexts that hold them."""
        return self._live_weights()

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
            try:
                pair = open_pair(entry, self._weights_for, entry.slots(self.parallel))
            finally:
                self._forget_freed()
            self._pairs[entry.name] = pair
            return pair

    def unload(self, name: str) -> bool:
        """Free a loaded pair's contexts (and weights no other pair uses). False if not loaded.

        The caller makes sure no generation is using the pair.
        """
        with self._lock:
            pair = self._pairs.pop(name, None)
            if pair is None:
                return False
            pair.close()
            self._forget_freed()
            return True

    def close(self) -> None:
        for name in list(self._pairs):
            self.unload(name)

    def _weights_for(self, settings: ModelSettings) -> LlamaWeights:
        weights = self._weights.get(settings.weights_key)
        if weights is None or weights.closed:
            weights = self._weights[settings.weights_key] = LlamaWeights(settings.path, settings.n_gpu_layers)
        return weights

    def _forget_freed(self) -> None:
        self._weights = {key: w for key, w in self._weights.items() if not w.closed}

    def _live_weights(self) -> list[LlamaWeights]:
        return [w for w in list(self._weights.values()) if not w.closed]
