"""Choosing a token from logits: greedy, temperature, top-k, top-p, reproducibly.

Random numbers are consumed one per response position, derived from ``(seed, position)`` alone.
So the token at a position depends only on the distribution it is drawn from, the seed and the
position: whichever model is drawn from, and however the schedule drafts, retries or discards
positions, a seeded run gives the same output.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

_TOP_P_STEPS = (64, 512, 4096)


@dataclass(frozen=True)
class Sampler:
    temperature: float = 0.0  # 0: greedy
    top_k: int = 0  # 0: no top-k cut
    top_p: float = 1.0  # 1: no nucleus cut
    seed: int = 0

    @property
    def greedy(self) -> bool:
        return self.temperature <= 0.0 or self.top_k == 1

    def uniform(self, position: int) -> float:
        """The random number that draws the token at ``position``, in [0, 1)."""
        return position_uniform(self.seed, position)

    def choose(self, logits: np.ndarray, position: int) -> int:
        """The token at ``position`` drawn from a row of raw logits."""
        if self.greedy:
            return int(np.argmax(logits))
        ids, probs = self.candidates(logits)
        cdf = np.cumsum(probs)
        pick = int(np.searchsorted(cdf, self.uniform(position) * cdf[-1], side="right"))
        return int(ids[min(pick, len(ids) - 1)])

    def candidates(self, logits: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Token ids allowed by top-k and top-p, and their renormalised probabilities.

        With a cut, ids come most likely first (ties broken by lower id); without one, in id order.
        """
        scaled = np.asarray(logits, dtype=np.float64) / self.temperature
        n = scaled.shape[-1]
        k = self.top_k if 0 < self.top_k < n else n
        if k == n and self.top_p >= 1.0:
            ids = np.arange(n)
            return ids, _softmax(scaled)
        steps = [s for s in _TOP_P_STEPS if s < k] + [k] if self.top_p < 1.0 else [k]
        full = _softmax(scaled) if self.top_p < 1.0 else None
        for step in steps:
            ids = _top_ids(scaled, step)
            if full is not None and step < k and full[ids].sum() < self.top_p:
                continue  # the nucleus reaches beyond these candidates: widen the search
            break
        probs = _softmax(scaled[ids])
        if self.top_p < 1.0:
            keep = int(np.searchsorted(np.cumsum(probs), self.top_p, side="left")) + 1
            ids, probs = ids[:keep], probs[:keep]
            probs = probs / probs.sum()
        return ids, probs


def position_uniform(seed: int, position: int, index: int = 0) -> float:
    """Number ``index`` of the random stream that belongs to ``(seed, position)``, in [0, 1).

    Number 0 draws the token; the random gate (gate.py) decides with number 1, so that whether a
    position is taken over is independent of which token is drawn there.
    """
    return float(np.random.Generator(np.random.Philox(key=[seed & (2**64 - 1), position])).random(index + 1)[index])


def _softmax(x: np.ndarray) -> np.ndarray:
    e = np.exp(x - x.max())
    return e / e.sum()


def _top_ids(scaled: np.ndarray, k: int) -> np.ndarray:
    """The k highest-scoring ids, most likely first, ties broken by lower id."""
    if k < scaled.shape[-1]:
        part = np.argpartition(-scaled, k - 1)[:k]
    else:
        part = np.arange(scaled.shape[-1])
    order = np.lexsort((part, -scaled[part]))
    return part[order]
