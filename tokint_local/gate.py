"""The gate: where the reasoning model takes over one token.

The gate's rule (``kind``) decides which positions are eligible, with ``threshold`` as its one
number:

- ``divergence`` (the method): the divergence between the two models is at least the threshold;
- ``entropy`` (a control): the base model's entropy, in nats, is at least the threshold;
- ``top1`` (a control, the rule of Nudging, Fei et al. 2024): the base model's top-1 probability is
  below the threshold;
- ``random`` (a control): the position is drawn with probability ``threshold``, from the number
  ``sampling.position_uniform(seed, position, GATE_DRAW)``: reproducible for a seed, and
  independent of the number that draws the token.

Only ``divergence`` needs the reasoning model's distribution to decide; the controls need it only
for the token they take over (``needs_reasoning``). The optional limits apply to every rule: only
within the first ``max_position`` positions, only where the base model's entropy is at least
``min_base_entropy``. A takeover happens at an eligible position while budget remains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional, Sequence

import numpy as np

from .sampling import position_uniform

GATES = ("divergence", "entropy", "top1", "random")
PROBABILITY_GATES = ("top1", "random")  # their threshold is a probability in [0, 1]
GATE_DRAW = 1  # the random gate's number is the second of a position's stream; the token takes the first


@dataclass(frozen=True)
class Gate:
    threshold: float
    budget: Optional[int] = None  # None: unlimited takeovers
    max_position: Optional[int] = None  # None: anywhere in the response
    min_base_entropy: Optional[float] = None  # None: no entropy floor
    kind: str = "divergence"  # one of GATES
    seed: int = 0  # the random gate's draws

    def __post_init__(self) -> None:
        if self.kind not in GATES:
            raise ValueError(f"unknown gate {self.kind!r}; choose one of {', '.join(GATES)}")

    @property
    def needs_reasoning(self) -> bool:
        """Whether deciding a position needs the reasoning model's distribution there."""
        return self.kind == "divergence"

    @property
    def never(self) -> bool:
        """The rule fires nowhere: an infinite threshold, or probability 0 for top1 and random."""
        if self.kind in PROBABILITY_GATES:
            return self.threshold <= 0.0
        return math.isinf(self.threshold)

    def eligible(self, divergence: Optional[np.ndarray], base_entropy: np.ndarray, positions: np.ndarray,
                 base_top1: Optional[np.ndarray] = None) -> np.ndarray:
        """Boolean mask over a block: which positions the gate would let the reasoning model take.

        ``divergence`` is needed by the divergence rule only, ``base_top1`` (the base model's top-1
        probability) by the top1 rule only."""
        positions = np.asarray(positions)
        if self.never:  # an infinite threshold never fires, even on an infinite KL
            return np.zeros(positions.shape, dtype=bool)
        if self.kind == "divergence":
            mask = np.asarray(divergence) >= self.threshold
        elif self.kind == "entropy":
            mask = np.asarray(base_entropy) >= self.threshold
        elif self.kind == "top1":
            mask = np.asarray(base_top1) < self.threshold
        else:
            mask = np.array([position_uniform(self.seed, int(p), GATE_DRAW) < self.threshold for p in positions.ravel()],
                            dtype=bool).reshape(positions.shape)
        if self.max_position is not None:
            mask &= positions < self.max_position
        if self.min_base_entropy is not None:
            mask &= np.asarray(base_entropy) >= self.min_base_entropy
        return mask

    def can_fire(self, position: int, takeovers: int) -> bool:
        """Whether any takeover is still possible at ``position`` or later, given ``takeovers`` used.

        When it is not, the reasoning model is no longer needed for the rest of the response.
        """
        if self.budget is not None and takeovers >= self.budget:
            return False
        if self.max_position is not None and position >= self.max_position:
            return False
        return not self.never

    def budget_left(self, takeovers: int) -> Optional[int]:
        return None if self.budget is None else max(self.budget - takeovers, 0)


def threshold_for_rate(values: Sequence[float], rate: float, kind: str = "divergence") -> float:
    """The threshold at which the rule ``kind`` fires at ``rate`` of the positions whose signal is
    ``values`` (divergences, base entropies or base top-1 probabilities; ignored for random, whose
    threshold is the rate itself). For `tokint calibrate`."""
    if kind not in GATES:
        raise ValueError(f"unknown gate {kind!r}; choose one of {', '.join(GATES)}")
    if kind == "random":
        return float(rate)
    ordered = np.sort(np.asarray(values, dtype=np.float64))
    n = len(ordered)
    if n == 0:
        raise ValueError("no values to calibrate on")
    if kind == "top1":  # fires below the threshold: the value with `rate` of the positions under it
        k = int(math.ceil(rate * n))
        return float(ordered[k]) if k < n else 1.0  # every position (a top-1 probability of exactly 1 aside)
    k = min(max(int(math.ceil((1 - rate) * n)), 0), n - 1)  # fires at or above it
    return float(ordered[k])
