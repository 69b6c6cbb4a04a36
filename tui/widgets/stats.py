"""The live status line: tokens, takeovers used / budget, tokens/s, elapsed time, state."""
from __future__ import annotations

from textual.widgets import Static

from ..plain import plain
from ..transcript import Transcript


def stats_text(t: Transcript, rate: bool = True) -> str:
    """Tokens, takeovers, (tokens/s and elapsed time with ``rate``), and the state."""
    r = t.request
    budget = "∞" if r.budget is None else str(r.budget)
    parts = [f"{len(t.tokens)} tok"]
    if r.mode == "intervene":
        thinking = t.thinking_takeovers
        parts.append(f"{t.takeovers}/{budget} takeovers" + (f" ({thinking} in thinking)" if thinking else ""))
    if rate:
        parts += [f"{t.tokens_per_second:.1f} tok/s", f"{t.elapsed:.1f}s"]
    if t.summary is not None:
        parts.append(t.summary.finish_reason)
    else:
        parts.append("failed" if t.error else t.state)
    return " · ".join(parts)


class StatsLine(Static):
    def show(self, transcript: Transcript | None, turn: int | None = None) -> None:
        """``transcript``'s numbers (as turn ``turn``, 1-based, of a conversation of several)."""
        if transcript is None:
            text = "ready: type a prompt, then Ctrl+R"
        else:
            text = plain((f"turn {turn} · " if turn and turn > 1 else "") + stats_text(transcript))
        # a fixed-size line: no layout pass (which would repaint the whole screen on every frame)
        self.update(text, layout=False)
