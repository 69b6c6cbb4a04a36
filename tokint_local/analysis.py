"""Where a base and a reasoning model disagree: teacher-forced divergences over a response, and the
figures the paper reports.

``score_response`` runs both models over prompt + response (the response is fed, not generated:
teacher forcing), in batches, and gives every response position its divergence and base entropy.
``summarize`` turns scored positions (one response or a whole dataset) into:

- sparsity: the fraction of tokens that hold 50 / 80 / 90% of the total divergence, the curve
  behind it, and the share of tokens at or above the threshold;
- position profile: mean divergence in each tenth of a response (by relative position);
- planning tokens: how much more common they are among high-divergence tokens (at or above the
  threshold) than among all tokens. A planning token is a word token that either starts a line or a
  sentence, or belongs to PLANNING_WORDS (discourse and planning words, case-insensitive);
- the correlation of divergence with the base model's entropy (Pearson and Spearman).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from . import divergence as dv
from .errors import PromptTooLong
from .gate import threshold_for_rate as gate_threshold_for_rate


PLANNING_WORDS = frozenset("""
first firstly second secondly third then next finally lastly so thus therefore hence because since
wait but however although though let lets we need now alternatively actually hmm check verify consider
suppose assume note recall remember step also instead otherwise maybe perhaps okay ok well right
start begin plan approach idea think means given if
""".split())
_WORD = re.compile(r"[A-Za-z][A-Za-z']*")
SPARSITY_LEVELS = (0.5, 0.8, 0.9)


@dataclass(frozen=True)
class ScoredToken:
    position: int
    token_id: int
    text: str
    divergence: float
    base_entropy: float
    planning: bool
    relative_position: float  # position / response length, in [0, 1)


def planning_flags(texts: Sequence[str]) -> list[bool]:
    """Which tokens of a response are planning tokens (see the module docstring)."""
    flags = []
    tail = ""  # the response so far (its end is enough)
    for text in texts:
        stripped = text.lstrip()
        word = _WORD.match(stripped)
        prev = tail + text[: len(text) - len(stripped)]
        if word is None or (prev and prev[-1].isalnum()):  # not a word, or the rest of one
            flags.append(False)
        else:
            line_start = prev.split("\n")[-1].strip() == ""
            before = prev.rstrip()
            sentence_start = bool(before) and before[-1] in ".!?" and prev[-1].isspace()
            flags.append(line_start or sentence_start or word.group(0).lower().replace("'", "") in PLANNING_WORDS)
        tail = (tail + text)[-200:]
    return flags


def score_response(pair, prompt: str, response: str | Sequence[int], divergence: str = "kl", raw: bool = False) -> list[ScoredToken]:
    """Teacher-forced divergence and base entropy at every position of ``response``.

    ``response`` is text (tokenized with the base model's tokenizer) or token ids. Both models read
    their own prompt format, then the same response tokens, in batches of up to n_batch.
    """
    from .engine import prepare_prompt

    base, reasoning = pair.base, pair.reasoning
    ids = list(response) if not isinstance(response, str) else base.tokenize(response, add_special=False, parse_special=False)
    if not ids:
        return []
    rows = []
    for model, role, fmt in ((base, "base", pair.formats[0]), (reasoning, "reasoning", pair.formats[1])):
        prompt_ids = prepare_prompt(model, prompt, raw, role, fmt).tokens
        if len(prompt_ids) + len(ids) > model.n_ctx:
            raise PromptTooLong(f"prompt and response are {len(prompt_ids) + len(ids)} tokens; the {role} model's "
                                f"context holds {model.n_ctx}")
        logits = [model.prefill(prompt_ids)[: pair.n_shared]]
        for start in range(0, len(ids) - 1, model.n_batch):
            chunk = ids[start : min(start + model.n_batch, len(ids) - 1)]
            logits.extend(model.decode(chunk)[:, : pair.n_shared])
        rows.append(logits)
    texts = [base.piece(t).decode("utf-8", "replace") for t in ids]
    planning = planning_flags(texts)
    out = []
    for j, (tid, lb, lr) in enumerate(zip(ids, rows[0], rows[1])):
        ent, div = dv.position_stats(lb, lr, divergence)
        out.append(ScoredToken(j, tid, texts[j], float(div), float(ent), planning[j], j / len(ids)))
    return out


def _spearman(x: np.ndarray, y: np.ndarray) -> float:
    def ranks(a: np.ndarray) -> np.ndarray:
        order = np.argsort(a, kind="mergesort")
        r = np.empty(len(a))
        r[order] = np.arange(len(a))
        # average the ranks of ties
        _, inverse, counts = np.unique(a, return_inverse=True, return_counts=True)
        sums = np.bincount(inverse, weights=r)
        return (sums / counts)[inverse]

    return _pearson(ranks(x), ranks(y))


def _pearson(x: np.ndarray, y: np.ndarray) -> float:
    if len(x) < 2 or x.std() == 0 or y.std() == 0:
        return float("nan")
    return float(np.corrcoef(x, y)[0, 1])


def summarize(tokens: Sequence[ScoredToken], threshold: float, curve_points: int = 101) -> dict:
    """The paper's figures over scored tokens (one response or many). Infinite divergences count as
    the largest finite value in the sparsity figures, so that a total exists."""
    n = len(tokens)
    if n == 0:
        return {"n_tokens": 0}
    div = np.array([t.divergence for t in tokens], dtype=np.float64)
    finite = div[np.isfinite(div)]
    div = np.where(np.isfinite(div), div, finite.max() if len(finite) else 0.0)
    ent = np.array([t.base_entropy for t in tokens], dtype=np.float64)
    planning = np.array([t.planning for t in tokens])
    rel = np.array([t.relative_position for t in tokens])
    ordered = np.sort(div)[::-1]
    total = ordered.sum()
    cumulative = np.cumsum(ordered) / total if total > 0 else np.linspace(0, 1, n)
    sparsity = {f"{int(level * 100)}%": float((np.searchsorted(cumulative, level) + 1) / n) for level in SPARSITY_LEVELS}
    xs = np.linspace(0, 1, curve_points)
    curve = [[float(x), float(np.interp(x * n, np.arange(1, n + 1), cumulative, left=0.0))] for x in xs]
    high = div >= threshold
    decile = np.minimum((rel * 10).astype(int), 9)
    profile = [float(div[decile == d].mean()) if np.any(decile == d) else None for d in range(10)]
    share_all = float(planning.mean())
    share_high = float(planning[high].mean()) if high.any() else None
    return {
        "n_tokens": n,
        "threshold": threshold,
        "mean_divergence": float(div.mean()),
        "share_above_threshold": float(high.mean()),
        "sparsity": sparsity,
        "sparsity_curve": curve,
        "position_profile": profile,
        "planning": {
            "share_of_all_tokens": share_all,
            "share_of_high_divergence_tokens": share_high,
            "enrichment": (share_high / share_all) if share_high is not None and share_all > 0 else None,
        },
        "entropy_correlation": {"pearson": _pearson(div, ent), "spearman": _spearman(div, ent)},
    }


def threshold_for_rate(divergences: Sequence[float], rate: float) -> float:
    """The threshold at or above which ``rate`` of these divergences lie (for `tokint calibrate`)."""
    return gate_threshold_for_rate(divergences, rate, "divergence")


def high_tokens(tokens: Sequence[ScoredToken], threshold: float, limit: int = 15) -> list[ScoredToken]:
    return sorted((t for t in tokens if t.divergence >= threshold), key=lambda t: -t.divergence)[:limit]


__all__ = ["PLANNING_WORDS", "ScoredToken", "high_tokens", "planning_flags", "score_response", "summarize",
           "threshold_for_rate"]
