"""The numeric heart: log-softmax and the divergences between two next-token distributions.

Pure functions over numpy arrays shaped ``[positions, vocab]`` (a single row ``[vocab]`` works
too). They take raw logits or log-probabilities, never touch I/O, and never return NaN: a
token with probability zero contributes nothing, and mass the reasoning model puts where the
base model has none makes KL infinite, as it should.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

DIVERGENCES = ("kl", "reverse_kl", "js", "tv")


def log_softmax(logits: np.ndarray) -> np.ndarray:
    """Row-wise log-softmax in float32. ``-inf`` logits stay ``-inf``; a row of all ``-inf`` is an error."""
    x = np.asarray(logits, dtype=np.float32)
    peak = x.max(axis=-1, keepdims=True)
    if not np.all(np.isfinite(peak)):
        raise ValueError("every row of logits needs at least one finite value")
    shifted = x - peak
    total = np.exp(shifted).sum(axis=-1, keepdims=True, dtype=np.float64)
    return shifted - np.log(total).astype(np.float32)


def _kl_from_logprobs(lp_p: np.ndarray, lp_q: np.ndarray) -> np.ndarray:
    p = np.exp(lp_p)
    with np.errstate(invalid="ignore"):
        total = (p * (lp_p - lp_q)).sum(axis=-1, dtype=np.float64)
    # NaN only arises from -inf log-probabilities (0 * inf); such rows are redone exactly.
    redo = np.isnan(total)
    if redo.any():
        total = np.where(redo, _kl_exact(lp_p, lp_q), total)
    return np.maximum(total, 0.0)


def _kl_exact(lp_p: np.ndarray, lp_q: np.ndarray) -> np.ndarray:
    support = lp_p > -np.inf  # tokens p can emit, however unlikely (exp may underflow to 0)
    escapes = (support & (lp_q == -np.inf)).any(axis=-1)
    with np.errstate(invalid="ignore"):
        terms = np.where(support & (lp_q > -np.inf), np.exp(lp_p) * (lp_p - lp_q), 0.0)
    return np.where(escapes, np.inf, terms.sum(axis=-1, dtype=np.float64))


def kl(lp_reasoning: np.ndarray, lp_base: np.ndarray) -> np.ndarray:
    """KL(reasoning || base) in nats, per row: how surprised the base model is by the reasoning model."""
    return _kl_from_logprobs(lp_reasoning, lp_base)


def reverse_kl(lp_reasoning: np.ndarray, lp_base: np.ndarray) -> np.ndarray:
    """KL(base || reasoning) in nats, per row."""
    return _kl_from_logprobs(lp_base, lp_reasoning)


def js(lp_reasoning: np.ndarray, lp_base: np.ndarray) -> np.ndarray:
    """Jensen-Shannon divergence in nats, per row; bounded by ln 2."""
    p = np.exp(lp_reasoning.astype(np.float64))
    q = np.exp(lp_base.astype(np.float64))
    m = 0.5 * (p + q)
    with np.errstate(divide="ignore", invalid="ignore"):
        lm = np.log(m)
        tp = np.where(p > 0, p * (lp_reasoning - lm), 0.0)
        tq = np.where(q > 0, q * (lp_base - lm), 0.0)
    return np.clip(0.5 * (tp.sum(axis=-1) + tq.sum(axis=-1)), 0.0, np.log(2.0))


def tv(lp_reasoning: np.ndarray, lp_base: np.ndarray) -> np.ndarray:
    """Total variation distance, per row, in [0, 1]."""
    diff = np.abs(np.exp(lp_reasoning) - np.exp(lp_base))
    return np.clip(0.5 * diff.sum(axis=-1, dtype=np.float64), 0.0, 1.0)


def entropy(lp: np.ndarray) -> np.ndarray:
    """Shannon entropy in nats, per row."""
    p = np.exp(lp)
    with np.errstate(invalid="ignore"):
        total = -(p * lp).sum(axis=-1, dtype=np.float64)
        redo = np.isnan(total)  # -inf log-probabilities: 0 * -inf
        if redo.any():
            exact = -np.where(lp > -np.inf, p * lp, 0.0).sum(axis=-1, dtype=np.float64)
            total = np.where(redo, exact, total)
    return np.maximum(total, 0.0)


def top1(lp: np.ndarray) -> np.ndarray:
    """Probability of the most likely token, per row."""
    return np.exp(lp.max(axis=-1).astype(np.float64))


def top1_from_logits(logits: np.ndarray) -> float:
    """Probability of the most likely token of one row of raw logits (1 / sum exp(x - max))."""
    x = np.asarray(logits, dtype=np.float32)
    peak = x.max()
    if not np.isfinite(peak):
        raise ValueError("a row of logits needs at least one finite value")
    return float(1.0 / np.exp(x - peak).sum(dtype=np.float64))


def _parts(x: np.ndarray) -> tuple[np.ndarray, float, float]:
    """For one row of finite logits: exp(x - max), its sum, and log Z (float64 scalars)."""
    peak = float(x.max())
    e = np.subtract(x, np.float32(peak))
    np.exp(e, out=e)
    total = float(e.sum(dtype=np.float64))
    return e, total, peak + math.log(total)


def position_stats(base: np.ndarray, reasoning: Optional[np.ndarray], name: str) -> tuple[float, Optional[float]]:
    """Base entropy and the divergence ``name`` for one position, from raw logits (1-D rows).

    The engine's hot path: one pass of exp per model and dot products, no log-probability arrays
    (H = log Z - E[x]; KL(r||b) = E_r[x_r - x_b] - log Z_r + log Z_b). Each row is computed on its
    own, so a position gets the same numbers however many positions are scored together. Rows with
    -inf logits take the exact path.
    """
    base = np.asarray(base, dtype=np.float32)
    if reasoning is not None:
        reasoning = np.asarray(reasoning, dtype=np.float32)
    if not (np.isfinite(base.min()) and (reasoning is None or np.isfinite(reasoning.min()))) or name in ("js", "tv"):
        lpb = log_softmax(base)
        ent = float(entropy(lpb))
        if reasoning is None:
            return ent, None
        return ent, float(divergence(name, log_softmax(reasoning), lpb))
    eb, sb, zb = _parts(base)
    ent = max(zb - float(np.dot(eb, base)) / sb, 0.0)
    if reasoning is None:
        return ent, None
    er, sr, zr = _parts(reasoning)
    if name == "kl":
        div = (float(np.dot(er, reasoning)) - float(np.dot(er, base))) / sr - zr + zb
    elif name == "reverse_kl":
        div = (float(np.dot(eb, base)) - float(np.dot(eb, reasoning))) / sb - zb + zr
    else:
        raise ValueError(f"unknown divergence {name!r}; choose one of {', '.join(DIVERGENCES)}")
    return ent, max(div, 0.0)


def top_k(lp: np.ndarray, k: int) -> list[tuple[int, float]]:
    """The k most likely tokens of one row of log-probabilities: (token id, probability), best first."""
    k = min(k, lp.shape[-1])
    ids = np.argpartition(-lp, k - 1)[:k]
    ids = ids[np.lexsort((ids, -lp[ids]))]
    return [(int(i), float(np.exp(lp[i]))) for i in ids]


_BY_NAME: dict[str, Callable[[np.ndarray, np.ndarray], np.ndarray]] = {
    "kl": kl,
    "reverse_kl": reverse_kl,
    "js": js,
    "tv": tv,
}


def divergence(name: str, lp_reasoning: np.ndarray, lp_base: np.ndarray) -> np.ndarray:
    """The divergence called ``name`` (one of DIVERGENCES) between two log-probability blocks."""
    try:
        fn = _BY_NAME[name]
    except KeyError:
        raise ValueError(f"unknown divergence {name!r}; choose one of {', '.join(DIVERGENCES)}") from None
    return fn(lp_reasoning, lp_base)
