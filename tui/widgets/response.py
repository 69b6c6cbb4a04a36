"""The response as it streams: takeovers stand out, tokens can be shaded by divergence, and a
cursor moves token by token for inspection."""
from __future__ import annotations

from typing import Optional

from rich.style import Style
from rich.text import Text
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.reactive import reactive
from textual.widgets import Static

from tokint_local.events import TokenEvent

TAKEOVER = Style(bold=True, color="black", bgcolor="yellow")
CURSOR = Style(reverse=True, underline=True)
# Backgrounds for divergence shading, by nats: < 0.1, < 0.5, < 1, < 2, < 4, >= 4
SHADES = [None, "grey23", "dark_red", "red3", "red1", "bright_red"]
SHADE_EDGES = [0.1, 0.5, 1.0, 2.0, 4.0]


_CONTROL_PICTURES = {c: chr(0x2400 + c) for c in range(32) if chr(c) not in "\n\t"}
_CONTROL_PICTURES[0x7F] = "\u2421"


def visible(text: str) -> str:
    """Control characters (other than newline and tab) as their visible Unicode pictures."""
    return text.translate(_CONTROL_PICTURES)


def shade_level(divergence: Optional[float]) -> int:
    if divergence is None:
        return 0
    return sum(divergence >= edge for edge in SHADE_EDGES)


class ResponseView(VerticalScroll, can_focus=True):
    """Shows one transcript's tokens. Left/Right move the cursor; [ and ] jump between takeovers."""

    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "jump('start')", "First", show=False),
        Binding("end", "jump('end')", "Last", show=False),
        Binding("left_square_bracket", "takeover(-1)", "Prev takeover"),
        Binding("right_square_bracket", "takeover(1)", "Next takeover"),
    ]

    shade = reactive(False)

    class CursorMoved(Message):
        def __init__(self, index: int, token: TokenEvent) -> None:
            super().__init__()
            self.index = index
            self.token = token

    def __init__(self, *, intervene: bool = True, id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes)
        self.tokens: list[TokenEvent] = []
        self.intervene = intervene
        self.cursor: Optional[int] = None
        self._text = Text()
        self._spans: list[tuple[int, int]] = []
        self._body = Static(self._text, classes="response-body")

    def compose(self):
        yield self._body

    # -- content ---------------------------------------------------------------------------
    def show(self, tokens: list[TokenEvent], intervene: bool) -> None:
        """Replace the content with ``tokens``."""
        self.tokens = list(tokens)
        self.intervene = intervene
        self.cursor = None
        self._rebuild()

    def append(self, tokens: list[TokenEvent]) -> None:
        """Add streamed tokens at the end, keeping the view at the bottom if it was there."""
        if not tokens:
            return
        follow = self.cursor is None and self.scroll_y >= self.max_scroll_y - 1
        for token in tokens:
            self.tokens.append(token)
            self._add(token)
        self._refresh_body()
        if follow:
            self.call_after_refresh(self.scroll_end, animate=False)

    def _style(self, token: TokenEvent) -> Optional[Style]:
        if token.source == "reasoning" and self.intervene:
            return TAKEOVER
        if self.shade:
            bg = SHADES[shade_level(token.divergence)]
            return Style(bgcolor=bg) if bg else None
        return None

    def _add(self, token: TokenEvent) -> None:
        start = len(self._text)
        self._text.append(visible(token.text), self._style(token))
        self._spans.append((start, len(self._text)))

    def _rebuild(self) -> None:
        self._text = Text()
        self._spans = []
        for token in self.tokens:
            self._add(token)
        self._refresh_body()

    def _refresh_body(self) -> None:
        if self.cursor is None or not self.tokens:
            self._body.update(self._text)
            return
        start, end = self._spans[self.cursor]
        shown = self._text[:start]
        if end > start:
            piece = self._text[start:end]
            piece.stylize(CURSOR)
            shown.append_text(piece)
        else:  # a token with no text of its own (end of turn, half a character): show where it is
            shown.append("⟨∅⟩", CURSOR)
        shown.append_text(self._text[end:])
        self._body.update(shown)

    def watch_shade(self, _old: bool, _new: bool) -> None:
        self._rebuild()

    # -- cursor ----------------------------------------------------------------------------
    def set_cursor(self, index: Optional[int]) -> None:
        if not self.tokens:
            self.cursor = None
            return
        self.cursor = None if index is None else max(0, min(index, len(self.tokens) - 1))
        self._refresh_body()
        if self.cursor is not None:
            self.post_message(self.CursorMoved(self.cursor, self.tokens[self.cursor]))
            self._scroll_to_cursor()

    def _scroll_to_cursor(self) -> None:
        if self.cursor is None:
            return
        before = self._text.plain[: self._spans[self.cursor][0]]
        width = max(self._body.size.width, 1)
        line = sum(len(row) // width + 1 for row in before.split("\n")) - 1
        if not (self.scroll_y <= line < self.scroll_y + self.size.height):
            self.scroll_to(y=max(line - self.size.height // 2, 0), animate=False)

    def action_move(self, step: int) -> None:
        if self.cursor is None:  # the first move puts the cursor on the last token (or the first)
            self.set_cursor(len(self.tokens) - 1 if step < 0 else 0)
        else:
            self.set_cursor(self.cursor + step)

    def action_jump(self, where: str) -> None:
        self.set_cursor(0 if where == "start" else len(self.tokens) - 1)

    def action_takeover(self, step: int) -> None:
        takeovers = [i for i, t in enumerate(self.tokens) if t.source == "reasoning"]
        if not takeovers:
            self.notify("no takeovers in this response", severity="warning")
            return
        here = self.cursor if self.cursor is not None else (-1 if step > 0 else len(self.tokens))
        ahead = [i for i in takeovers if (i > here if step > 0 else i < here)]
        self.set_cursor((ahead[0] if step > 0 else ahead[-1]) if ahead else (takeovers[0] if step > 0 else takeovers[-1]))
