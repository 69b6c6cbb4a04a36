"""The response as it streams: takeovers stand out, tokens can be shaded by divergence, and a
cursor moves token by token for inspection.

Built on Textual's line API: tokens are word-wrapped into lines as they arrive (only the open last
line is touched by an append) and only the visible lines are rendered, so a long response costs
no more per frame than a short one. While the view follows the end of a stream it shows the last
lines directly and updates its virtual size (which makes Textual lay out the whole screen) at most
every SIZE_EVERY_S, so streaming repaints this widget alone.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tokint_local.events import TokenEvent

from ..plain import visible

# Truecolor throughout: named ANSI colours cost a conversion per segment on every frame.
TAKEOVER = Style(bold=True, color="#101010", bgcolor="#ffc040")
CURSOR = Style(reverse=True, underline=True)
SIZE_EVERY_S = 0.5
EMPTY_MARK = "⟨∅⟩"  # where the cursor sits on a token with no text of its own
# Backgrounds for divergence shading, by nats: < 0.1, < 0.5, < 1, < 2, < 4, >= 4
SHADES = [None, "#3a3a3a", "#5f1f1f", "#8f2020", "#c02828", "#ff3030"]
SHADE_EDGES = [0.1, 0.5, 1.0, 2.0, 4.0]
def shade_level(divergence: Optional[float]) -> int:
    if divergence is None:
        return 0
    return sum(divergence >= edge for edge in SHADE_EDGES)


@dataclass
class _Line:
    pieces: list[tuple[int, int, int]] = field(default_factory=list)  # (token index, start, end) in its text
    cells: int = 0
    hard_break: bool = False  # ended by a newline in the text (not by wrapping)


def _fit(text: str, room: int) -> int:
    """How many leading characters of ``text`` fit in ``room`` cells."""
    if text.isascii():
        return min(len(text), room)
    used = 0
    for i, ch in enumerate(text):
        used += cell_len(ch)
        if used > room:
            return i
    return len(text)


class ResponseView(ScrollView, can_focus=True):
    """Shows one transcript's tokens. Left/Right move the cursor; [ and ] jump between takeovers."""

    BINDINGS = [
        Binding("left", "move(-1)", "Prev token", show=False),
        Binding("right", "move(1)", "Next token", show=False),
        Binding("home", "jump('start')", "First", show=False),
        Binding("end", "jump('end')", "Last", show=False),
        Binding("left_square_bracket", "takeover(-1)", "Prev takeover", show=False),
        Binding("right_square_bracket", "takeover(1)", "Takeover ([ back)"),
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
        self._texts: list[str] = []
        self._lines: list[_Line] = [_Line()]
        self._token_lines: list[tuple[int, int]] = []  # first and last line of each token
        self._width = 0
        self._strips: dict[int, Strip] = {}
        self.follow = True  # showing the end of the response, as it grows
        self._sized_at = 0.0

    # -- content ---------------------------------------------------------------------------
    def show(self, tokens: list[TokenEvent], intervene: bool) -> None:
        """Replace the content with ``tokens``."""
        self.tokens = list(tokens)
        self.intervene = intervene
        self.cursor = None
        self._texts = [visible(t.text) for t in self.tokens]
        self.follow = True
        self._rewrap()
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def append(self, tokens: list[TokenEvent]) -> None:
        """Add streamed tokens at the end (the view keeps showing the end if it was)."""
        if not tokens:
            return
        first_dirty = len(self._lines) - 1
        for token in tokens:
            self.tokens.append(token)
            self._texts.append(visible(token.text))
            self._wrap_token(len(self.tokens) - 1)
        for y in range(first_dirty, len(self._lines)):
            self._strips.pop(y, None)
        if time.monotonic() - self._sized_at >= SIZE_EVERY_S:
            self.settle()
        else:
            self.refresh()

    def settle(self) -> None:
        """Bring the scrollable size up to date now (the stream ended, or a pause)."""
        self._resize()
        self.refresh()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def shown_text(self) -> str:
        """The text on display (wrapping aside): what the lines hold, joined at hard breaks."""
        out = []
        for line in self._lines:
            out.extend(self._texts[i][a:b] for i, a, b in line.pieces)
            if line.hard_break:
                out.append("\n")
        return "".join(out)

    # -- wrapping --------------------------------------------------------------------------
    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width, 8)

    def _rewrap(self) -> None:
        self._width = self._wrap_width()
        self._lines = [_Line()]
        self._token_lines = []
        self._strips.clear()
        for i in range(len(self.tokens)):
            self._wrap_token(i)
        self._resize()
        self.refresh()

    def _resize(self) -> None:
        self._sized_at = time.monotonic()
        self.virtual_size = Size(self._width, len(self._lines))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.follow = new >= self.max_scroll_y  # scrolled up by the person: stop following

    def _wrap_token(self, index: int) -> None:
        text = self._texts[index]
        first = len(self._lines) - 1
        width = self._width or self._wrap_width()
        self._width = width
        if not text:
            self._lines[-1].pieces.append((index, 0, 0))
        offset = 0
        for k, chunk in enumerate(text.split("\n")):
            if k:  # a newline in the text closes the line
                self._lines[-1].hard_break = True
                self._lines.append(_Line())
            start = offset
            while start < offset + len(chunk):
                line = self._lines[-1]
                rest = text[start : offset + len(chunk)]
                room = width - line.cells
                n = _fit(rest, room)
                if n == len(rest):
                    line.pieces.append((index, start, start + n))
                    line.cells += cell_len(rest)
                    start += n
                    break
                space = rest.rfind(" ", 0, n + 1)
                if space >= 0:  # break after the last space that fits
                    n = space + 1
                elif line.cells > 0 and self._ends_word(line):
                    n = 0  # this token starts a new word: move it to the next line whole
                elif line.cells == 0 and n == 0:
                    n = 1  # a character wider than the whole line: let it overflow
                if n:
                    line.pieces.append((index, start, start + n))
                    line.cells += cell_len(text[start : start + n])
                    start += n
                self._lines.append(_Line())
            offset += len(chunk) + 1
        self._token_lines.append((first, len(self._lines) - 1))

    def _ends_word(self, line: _Line) -> bool:
        i, a, b = line.pieces[-1]
        return b > a and self._texts[i][b - 1] in " \t"

    def on_resize(self) -> None:
        if self._wrap_width() != self._width:
            self._rewrap()

    # -- rendering -------------------------------------------------------------------------
    def _style(self, index: int) -> Optional[Style]:
        token = self.tokens[index]
        if token.source == "reasoning" and self.intervene:
            return TAKEOVER
        if self.shade:
            bg = SHADES[shade_level(token.divergence)]
            return Style(bgcolor=bg) if bg else None
        return None

    def render_lines(self, crop):
        # what every line of this pass shares, computed once rather than per line
        self._pass = (self.rich_style, self.size.width, self.scrollable_content_region.height)
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        base, width, height = getattr(self, "_pass", None) or (self.rich_style, self.size.width, self.size.height)
        scroll_x, scroll_y = self.scroll_offset
        if self.follow and self.cursor is None:  # the last lines, whatever the (lagging) virtual size says
            scroll_y = max(len(self._lines) - height, 0)
        index = scroll_y + y
        if index >= len(self._lines):
            return Strip.blank(width, base)
        strip = self._strips.get(index)
        if strip is None:
            segments = []
            for i, a, b in self._lines[index].pieces:
                style = self._style(i)
                if i == self.cursor:
                    style = (style + CURSOR) if style else CURSOR
                    piece = self._texts[i][a:b] or EMPTY_MARK
                elif a == b:
                    continue
                else:
                    piece = self._texts[i][a:b]
                segments.append(Segment(piece, base + style if style else base))
            strip = Strip(segments)
            self._strips[index] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)

    def watch_shade(self, _old: bool, _new: bool) -> None:
        self._strips.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()

    # -- cursor ----------------------------------------------------------------------------
    def set_cursor(self, index: Optional[int]) -> None:
        if not self.tokens:
            self.cursor = None
            return
        old = self.cursor
        self.cursor = None if index is None else max(0, min(index, len(self.tokens) - 1))
        for i in (old, self.cursor):
            if i is not None:
                first, last = self._token_lines[i]
                for y in range(first, last + 1):
                    self._strips.pop(y, None)
        self.refresh()
        if self.cursor is not None:
            self.post_message(self.CursorMoved(self.cursor, self.tokens[self.cursor]))
            line = self._token_lines[self.cursor][0]
            if not (self.scroll_y <= line < self.scroll_y + self.scrollable_content_region.height):
                self.scroll_to(y=max(line - self.scrollable_content_region.height // 2, 0), animate=False)

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
