"""Divergence by position, as two rows of cells: bars of divergence (scaled to the response's largest
finite value; red at or above the threshold) and a ▲ under each position the reasoning model took
over. ResponseView draws these under each assistant turn."""
from __future__ import annotations

import math
from typing import Optional

from rich.style import Style

BARS = " ▁▂▃▄▅▆▇█"
BELOW = Style(color="#5fd7ff")
ABOVE = Style(color="#ff5f5f")
THINKING_BELOW = Style(color="#3a7f96")  # positions inside a thinking segment: the same colours, dimmed
THINKING_ABOVE = Style(color="#a04545")
UNSCORED = Style(color="#606060")
MARK = Style(bold=True, color="#ffc040")

Run = tuple[str, Style]


def strip_rows(divergences: list[Optional[float]], takeovers: set[int], threshold: float, width: int,
               thinking: int = 0) -> tuple[list[Run], list[Run]]:
    """The bars row and the marks row at ``width`` cells: one column per position, or per bucket of
    positions when they outnumber the columns (a bucket shows its largest divergence). The first
    ``thinking`` positions (a thinking segment) are dimmed."""
    width = max(width, 1)
    n = len(divergences)
    if n == 0:
        return [], []
    per = max(1, math.ceil(n / width))  # positions per column when they outnumber the columns
    cells = max(1, width // n) if n < width else 1  # columns per position when they do not
    top = largest(divergences) or 1.0
    taken = {p // per for p in takeovers}
    bars: list[Run] = []
    for col in range(math.ceil(n / per)):
        lo, hi = col * per, min((col + 1) * per, n)
        d = max((d for d in divergences[lo:hi] if d is not None), default=None)
        if d is None:
            bar, style = "·", UNSCORED
        else:
            bar = BARS[len(BARS) - 1 if not math.isfinite(d) else max(1, round(d / top * (len(BARS) - 1)))]
            dim = hi <= thinking
            style = (THINKING_ABOVE if dim else ABOVE) if d >= threshold else (THINKING_BELOW if dim else BELOW)
        if bars and bars[-1][1] is style:  # one run per colour: fewer segments to draw on every frame
            bars[-1] = (bars[-1][0] + bar * cells, style)
        else:
            bars.append((bar * cells, style))
    marks = "".join(("▲" if col in taken else " ").center(cells) for col in range(math.ceil(n / per)))
    return bars, [(marks, MARK)]


def largest(divergences: list[Optional[float]]) -> Optional[float]:
    """The largest finite divergence, None when there is none."""
    return max((d for d in divergences if d is not None and math.isfinite(d)), default=None)
