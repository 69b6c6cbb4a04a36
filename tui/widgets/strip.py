"""Divergence by position: one bar per position (or per bucket of positions), takeovers marked."""
from __future__ import annotations

import math
import time
from typing import Optional

from rich.text import Text
from textual.widget import Widget

from tokint_local.events import TokenEvent

BARS = " ▁▂▃▄▅▆▇█"
REFRESH_EVERY_S = 0.25  # the strip is an overview: a few repaints a second are enough while streaming


class DivergenceStrip(Widget):
    """Two rows: bars of divergence (scaled to the response's largest finite value; red at or
    above the threshold) and a ▲ under each position the reasoning model took over."""

    def __init__(self, *, id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes)
        self.divergences: list[Optional[float]] = []
        self.takeovers: set[int] = set()
        self.threshold = math.inf
        self._painted_at = 0.0

    def show(self, tokens: list[TokenEvent], threshold: float) -> None:
        self.divergences = [t.divergence for t in tokens]
        self.takeovers = {t.position for t in tokens if t.source == "reasoning" and t.divergence is not None}
        self.threshold = threshold
        self._title()
        self.refresh()

    def append(self, tokens: list[TokenEvent]) -> None:
        for t in tokens:
            self.divergences.append(t.divergence)
            if t.source == "reasoning" and t.divergence is not None:
                self.takeovers.add(t.position)
        if tokens and time.monotonic() - self._painted_at >= REFRESH_EVERY_S:
            self.settle()

    def settle(self) -> None:
        """Repaint now (the stream ended)."""
        self._painted_at = time.monotonic()
        self._title()
        self.refresh()

    def _title(self) -> None:
        finite = [d for d in self.divergences if d is not None and math.isfinite(d)]
        top = max(finite, default=0.0)
        title = f"divergence by position · max {top:.2f} · {len(self.takeovers)} takeovers ▲"
        if title != self.border_title:  # setting a title repaints the screen; only when it changes
            self.border_title = title

    def render(self) -> Text:
        width = max(self.content_size.width, 1)
        n = len(self.divergences)
        if n == 0:
            return Text("no divergences yet", style="#808080")
        per = max(1, math.ceil(n / width))  # positions per column when they outnumber the columns
        cells = max(1, width // n) if n < width else 1  # columns per position when they do not
        finite = [d for d in self.divergences if d is not None and math.isfinite(d)]
        top = max(finite, default=0.0) or 1.0
        bars, marks = Text(), Text()
        for col in range(math.ceil(n / per)):
            lo, hi = col * per, min((col + 1) * per, n)
            values = [d for d in self.divergences[lo:hi] if d is not None]
            d = max(values, default=None)
            if d is None:
                bars.append("·" * cells, "#606060")
            else:
                level = len(BARS) - 1 if not math.isfinite(d) else max(1, round(d / top * (len(BARS) - 1)))
                bars.append(BARS[level] * cells, "#ff5f5f" if d >= self.threshold else "#5fd7ff")
            taken = any(p in self.takeovers for p in range(lo, hi))
            marks.append(("▲" if taken else " ").center(cells), "bold #ffc040")
        return Text("\n").join([bars, marks])
