"""The live status line: tokens, takeovers used / budget, tokens/s, elapsed time, state."""
from __future__ import annotations

from textual.widgets import Static

from ..plain import plain
from ..transcript import Transcript


def stats_text(t: Transcript) -> str:
    r = t.request
    budget = "∞" if r.budget is None else str(r.budget)
    parts = [f"{len(t.tokens)} tok"]
    if r.mode == "intervene":
        parts.append(f"{t.takeovers}/{budget} takeovers")
    parts += [f"{t.tokens_per_second:.1f} tok/s", f"{t.elapsed:.1f}s"]
    if t.summary is not None:
        parts.append(t.summary.finish_reason)
    else:
        parts.append("failed" if t.error else t.state)
    return " · ".join(parts)


class StatsLine(Static):
    def show(self, transcript: Transcript | None) -> None:
        # a fixed-size line: no layout pass (which would repaint the whole screen on every frame)
        self.update(plain(stats_text(transcript)) if transcript else "ready: type a prompt, then Ctrl+R", layout=False)
