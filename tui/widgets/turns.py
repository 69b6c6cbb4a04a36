"""What the conversation view draws around each assistant turn: above it the user's message (after
the system prompt, where that changed), below it the divergence strip and a caption. Transcripts
and a width in, lines out."""
from __future__ import annotations

from typing import Optional

from rich.style import Style

from tokint_local.events import TokenEvent

from ..plain import visible
from ..transcript import Transcript, channel_of
from .stats import stats_text
from .strip import largest, strip_rows
from .wrap import Line, wrap_plain

USER = Style(color="#e8e8ff", bgcolor="#202a3c")
USER_BAR = Style(color="#5f87ff", bgcolor="#202a3c")
SYSTEM = Style(color="#9a9a9a", italic=True)
CAPTION = Style(color="#808080")
HINT = Style(color="#808080")


def hint_lines(hint: str, width: int) -> list[Line]:
    return [Line(deco=[(text, HINT)]) for text in wrap_plain(visible(hint), width)]


def head_lines(t: Transcript, system_before: Optional[str], width: int) -> list[Line]:
    """The lines above turn ``t``'s response, and an open line for it; ``system_before`` is the turn
    before's system prompt (None for the first turn)."""
    out = [] if system_before is None else [Line(deco=[])]
    if t.system != (system_before or ""):
        label = "system: " if system_before is None else "system, from here on: "
        out += [Line(deco=[("┆ ", SYSTEM), (text, SYSTEM)]) for text in wrap_plain(visible(label + (t.system or "(none)")), width - 2)]
        out.append(Line(deco=[]))
    out += [Line(deco=[("▌ ", USER_BAR), (text, USER)], fill=USER) for text in wrap_plain(visible(t.user_text), width - 2)]
    out.append(Line(deco=[]))
    if t.reply_text is not None:  # a turn known only as its text
        out += [Line(deco=[(text, None)]) for text in wrap_plain(visible(t.reply_text), width)]
    return out + [Line()]


def tail_lines(t: Transcript, tokens: list[TokenEvent], width: int) -> list[Line]:
    """The lines under turn ``t``'s response (its ``tokens`` so far): the divergence strip where the
    reasoning model scored it (thinking positions dimmed), and a caption."""
    if t.reply_text is not None:
        return [Line(deco=[("── its text alone: this turn's tokens were not read from the history", CAPTION)])]
    divergences = [token.divergence for token in tokens]
    out = []
    if any(d is not None for d in divergences):
        takeovers = {i for i, token in enumerate(tokens) if token.source == "reasoning" and token.divergence is not None}
        thinking = next((i for i, token in enumerate(tokens) if channel_of(token) != "thinking"), len(tokens))
        bars, marks = strip_rows(divergences, takeovers, t.request.threshold, width, thinking)
        out += [Line(deco=bars), Line(deco=marks)]
    caption = stats_text(t, rate=False)
    top = largest(divergences)
    if top is not None:
        caption += f" · max {t.request.divergence} {top:.2f}"
    return out + [Line(deco=[(text, CAPTION)]) for text in wrap_plain("── " + visible(caption), width)]
