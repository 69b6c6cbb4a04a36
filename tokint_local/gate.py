"""The gate: where the reasoning model takes over one token.

A position is eligible when its divergence reaches the threshold and the optional limits allow
it (only within the first ``max_position`` positions; only where the base model's entropy is at
least ``min_base_entropy``). A takeover happens at an eligible position while budget remains.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Optional

import numpy as np


@dataclass(frozen=True)
class Gate:
    threshold: float
    budget: Optional[int] = None  # None: unlimited takeovers
    max_position: Optional[int] = None  # None: anywhere in the response
    min_base_entropy: Optional[float] = None  # None: no entropy floor

    def eligible(self, divergence: np.ndarray, base_entropy: np.ndarray, positions: np.ndarray) -> np.ndarray:
        """Boolean mask over a block: which positions the gate would let the reasoning model take."""
        if math.isinf(self.threshold):  # an infinite threshold never fires, even on an infinite KL
            return np.zeros(np.shape(divergence), dtype=bool)
        mask = np.asarray(divergence) >= self.threshold
        if self.max_position is not None:
            mask &= np.asarray(positions) < self.max_position
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
        return not math.isinf(self.threshold)

    def budget_left(self, takeovers: int) -> Optional[int]:
        return None if self.budget is None else max(self.budget - takeovers, 0)
