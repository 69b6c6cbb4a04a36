"""The conversation as it streams: user turns and assistant turns stacked, takeovers standing out,
tokens shaded by divergence on request, a thinking segment dimmed and folded, a divergence strip
and a caption under each assistant turn, and a cursor that moves token by token for inspection.

Built on Textual's line API: tokens are word-wrapped into lines as they arrive (only the open last
line is touched by an append) and only the visible lines are rendered, so a long conversation costs
no more per frame than a short one. The streaming turn's strip and caption (the "tail") are rebuilt
a few times a second. While the view follows the end of a stream it shows the last lines directly
and updates its virtual size (which makes Textual lay out the whole screen) at most every
SIZE_EVERY_S, so streaming repaints this widget alone.

Without ``conversation`` the view shows one response alone (the compare screen's columns).

The lines themselves (which token lies where, the folds, the tail) are laid out by layout.py; this
module draws them and handles the keys, the mouse, scrolling and the pace of updates.
"""
from __future__ import annotations

import time
from typing import Optional

from rich.segment import Segment
from rich.style import Style
from textual import events
from textual.binding import Binding
from textual.geometry import Size
from textual.message import Message
from textual.reactive import reactive
from textual.scroll_view import ScrollView
from textual.strip import Strip

from tokint_local.events import TokenEvent

from ..plain import visible  # noqa: F401  (imported from here by tests)
from ..transcript import Transcript, channel_of
from .layout import ResponseLayout
from .wrap import Line, Run

# Truecolor throughout: named ANSI colours cost a conversion per segment on every frame.
TAKEOVER = Style(bold=True, color="#101010", bgcolor="#ffc040")
THINKING = Style(color="#8a8a8a", italic=True)
THINKING_TAKEOVER = Style(bold=True, italic=True, color="#101010", bgcolor="#a08040")
CURSOR = Style(reverse=True, underline=True)
FOLD = Style(color="#a8a8a8", italic=True)
SIZE_EVERY_S = 0.5
TAIL_EVERY_S = 0.25  # the streaming turn's strip is an overview: a few repaints a second are enough
EMPTY_MARK = "⟨∅⟩"  # where the cursor sits on a token with no text of its own
FOLD_KEY = "F5"
# Backgrounds for divergence shading, by nats: < 0.1, < 0.5, < 1, < 2, < 4, >= 4
SHADES = [None, "#3a3a3a", "#5f1f1f", "#8f2020", "#c02828", "#ff3030"]
SHADE_EDGES = [0.1, 0.5, 1.0, 2.0, 4.0]


def shade_level(divergence: Optional[float]) -> int:
    if divergence is None:
        return 0
    return sum(divergence >= edge for edge in SHADE_EDGES)


class ResponseView(ScrollView, can_focus=True):
    """Left/Right move the cursor; [ and ] jump between takeovers; F5 (or a click on it) folds thinking."""

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
        def __init__(self, index: int, token: TokenEvent, turn: int) -> None:
            super().__init__()
            self.index = index
            self.token = token
            self.turn = turn  # 0-based assistant turn

    def __init__(self, *, intervene: bool = True, conversation: bool = False, hint: str = "",
                 id: Optional[str] = None, classes: Optional[str] = None) -> None:
        super().__init__(id=id, classes=classes)
        self.conversation = conversation
        self.hint = hint  # shown while a conversation has no turns
        self.fold_thinking = True  # how a new turn's thinking starts
        self.cursor: Optional[int] = None
        self._layout = ResponseLayout(conversation, intervene, self._wrap_width)  # not Textual's `layout`
        self._tail_strips: dict[int, Strip] = {}
        self._strips: dict[int, Strip] = {}
        self.follow = True  # showing the end of the conversation, as it grows
        self._sized_at = 0.0
        self._tail_at = 0.0

    @property
    def tokens(self) -> list[TokenEvent]:
        """Every token on display, the turns' one after another."""
        return self._layout.tokens

    @property
    def turns(self) -> int:
        return len(self._layout.turns)

    # -- content ---------------------------------------------------------------------------
    def show(self, tokens: list[TokenEvent], intervene: bool) -> None:
        """Replace the content with one response's ``tokens``."""
        self._layout.show(tokens, intervene, self.fold_thinking)
        self._reload()

    def show_conversation(self, turns: list[Transcript]) -> None:
        """Replace the content with a conversation's turns (each a user message and its response)."""
        self._layout.show_conversation(turns, self.fold_thinking)
        self._reload()

    def _reload(self) -> None:
        self.cursor = None
        self.follow = True
        self._rewrap()
        self.scroll_end(animate=False, immediate=True, x_axis=False)

    def begin_turn(self, transcript: Transcript) -> None:
        """Add a turn at the end: the user's message (and the system prompt, where it changed), then
        the response as ``append`` brings it."""
        first_new = self._layout.begin_turn(transcript, self.fold_thinking)
        self._set_tail(len(self._layout.turns) - 1)
        for y in [y for y in self._strips if y >= first_new]:
            del self._strips[y]
        self.follow = True
        self.settle()

    def append(self, tokens: list[TokenEvent]) -> None:
        """Add streamed tokens to the last turn (the view keeps showing the end if it was). Tokens it
        holds already (the turn was shown while its stream had tokens in flight) are not added twice."""
        changed = self._layout.append(tokens)
        if not changed:
            return
        for y in changed:
            self._strips.pop(y, None)
        now = time.monotonic()
        if now - self._sized_at >= SIZE_EVERY_S:
            self.settle()
            return
        if self.conversation and now - self._tail_at >= TAIL_EVERY_S:
            self._set_tail(len(self._layout.turns) - 1)
        self.refresh()

    def settle(self) -> None:
        """Bring the strip, the caption and the scrollable size up to date now (the stream ended, or a pause)."""
        if self.conversation and self._layout.turns:
            self._set_tail(len(self._layout.turns) - 1)
        self._resize()
        self.refresh()
        if self.follow:
            self.scroll_end(animate=False, immediate=True, x_axis=False)

    def shown_text(self) -> str:
        """The response text on display (wrapping aside): what the token lines hold, joined at hard breaks."""
        return self._layout.shown_text()

    def content_lines(self) -> list[str]:
        """Every line of the view as text, from the top: messages, responses, folds, strips, captions."""
        lines = self._layout.lines + self._layout.tail
        return ["".join(s.text for s in self._segments(line, Style(), y)) for y, line in enumerate(lines)]

    # -- laying out ------------------------------------------------------------------------
    def _wrap_width(self) -> int:
        return max(self.scrollable_content_region.width, 8)

    def _rewrap(self) -> None:
        self._layout.rewrap(self._wrap_width(), self.hint)
        self._strips.clear()
        self._tail_strips = {}
        if self.conversation and self._layout.turns:
            self._set_tail(len(self._layout.turns) - 1)
        self._resize()
        self.refresh()

    def _set_tail(self, k: int) -> None:
        """Draw turn ``k``'s strip and caption (the last turn's) after the lines."""
        self._tail_at = time.monotonic()
        self._layout.set_tail(k)
        self._tail_strips = {}

    def _resize(self) -> None:
        self._sized_at = time.monotonic()
        self.virtual_size = Size(self._layout.width, len(self._layout.lines) + len(self._layout.tail))

    def watch_scroll_y(self, old: float, new: float) -> None:
        super().watch_scroll_y(old, new)
        self.follow = new >= self.max_scroll_y  # scrolled up by the person: stop following

    def on_resize(self) -> None:
        if self._wrap_width() != self._layout.width:
            self._rewrap()

    # -- thinking --------------------------------------------------------------------------
    def toggle_thinking(self, turn: Optional[int] = None) -> bool:
        """Fold or unfold turn ``turn``'s thinking, or every turn's (unfolding all if any is folded).
        Returns whether thinking is now folded."""
        turns = self._layout.turns
        with_thinking = [t for t in turns if t.n_thinking]
        if turn is not None:
            chosen = [turns[turn]]
            folded = not chosen[0].folded
        else:
            chosen = with_thinking
            folded = not any(t.folded for t in with_thinking) if with_thinking else not self.fold_thinking
            self.fold_thinking = folded
        for t in chosen:
            t.folded = folded
        keep = self.scroll_y
        self._rewrap()
        if self.follow and self.cursor is None:
            self.scroll_end(animate=False, immediate=True, x_axis=False)
        else:
            self.scroll_to(y=keep, animate=False, immediate=True)
        return folded

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        index = self._top() + offset.y
        lines = self._layout.lines
        if index < len(lines) and lines[index].fold is not None:
            self.toggle_thinking(lines[index].fold)

    # -- rendering -------------------------------------------------------------------------
    def _style(self, index: int) -> Optional[Style]:
        token = self._layout.tokens[index]
        thinking = channel_of(token) == "thinking"
        if self._layout.takeover(index):
            return THINKING_TAKEOVER if thinking else TAKEOVER
        if self.shade:
            bg = SHADES[shade_level(token.divergence)]
            if bg:
                return Style(bgcolor=bg) + THINKING if thinking else Style(bgcolor=bg)
        return THINKING if thinking else None

    def _fold_runs(self, k: int) -> list[Run]:
        turn = self._layout.turns[k]
        words = f"thinking · {turn.n_thinking} token{'s' if turn.n_thinking != 1 else ''}"
        if turn.thinking_takeovers:
            words += f" · {turn.thinking_takeovers} takeover{'s' if turn.thinking_takeovers != 1 else ''}"
        if turn.folded:
            return [(f"▸ {words}  ({FOLD_KEY} or click: unfold)", FOLD)]
        return [(f"▾ {words}  ({FOLD_KEY} or click: fold)", FOLD)]

    def _segments(self, line: Line, base: Style, index: int) -> list[Segment]:
        if line.fold is not None:
            return [Segment(text, base + style) for text, style in self._fold_runs(line.fold)]
        if line.deco is not None:
            out = [Segment(text, base + style if style else base) for text, style in line.deco]
            if line.fill is not None:
                used = sum(s.cell_length for s in out)
                out.append(Segment(" " * max(self._layout.width - used, 0), base + line.fill))
            return out
        texts = self._layout.texts
        out = []
        for i, a, b in line.pieces:
            style = self._style(i)
            if i == self.cursor:
                style = (style + CURSOR) if style else CURSOR
                piece = texts[i][a:b] or EMPTY_MARK
            elif a == b:
                continue
            else:
                piece = texts[i][a:b]
            out.append(Segment(piece, base + style if style else base))
        return out

    def _top(self) -> int:
        """The first line on display."""
        if self.follow and self.cursor is None:  # the last lines, whatever the (lagging) virtual size says
            return max(len(self._layout.lines) + len(self._layout.tail) - self.scrollable_content_region.height, 0)
        return self.scroll_offset.y

    def render_lines(self, crop):
        # what every line of this pass shares, computed once rather than per line
        self._pass = (self.rich_style, self.size.width, self._top())
        return super().render_lines(crop)

    def render_line(self, y: int) -> Strip:
        base, width, top = getattr(self, "_pass", None) or (self.rich_style, self.size.width, self._top())
        scroll_x = self.scroll_offset.x
        index = top + y
        lines, tail = self._layout.lines, self._layout.tail
        n = len(lines)
        if index >= n + len(tail):
            return Strip.blank(width, base)
        if index >= n:  # the streaming turn's strip: a few lines, rebuilt as it grows
            strip = self._tail_strips.get(index - n)
            if strip is None:
                strip = self._tail_strips[index - n] = Strip(self._segments(tail[index - n], base, index))
        else:
            strip = self._strips.get(index)
            if strip is None:
                strip = Strip(self._segments(lines[index], base, index))
                self._strips[index] = strip
        return strip.crop_extend(scroll_x, scroll_x + width, base).apply_offsets(scroll_x, index)

    def watch_shade(self, _old: bool, _new: bool) -> None:
        self._strips.clear()
        self._tail_strips.clear()
        self.refresh()

    def notify_style_update(self) -> None:
        super().notify_style_update()
        self._strips.clear()
        self._tail_strips.clear()

    # -- cursor ----------------------------------------------------------------------------
    def set_cursor(self, index: Optional[int]) -> None:
        layout = self._layout
        if not layout.tokens:
            self.cursor = None
            return
        old = self.cursor
        self.cursor = None if index is None else max(0, min(index, len(layout.tokens) - 1))
        if self.cursor is not None and layout.folded(self.cursor):
            self.toggle_thinking(layout.turn_of[self.cursor])  # a token inside folded thinking: unfold it to show it
        for i in (old, self.cursor):
            if i is not None:
                first, last = layout.token_lines[i]
                for y in range(first, last + 1):
                    self._strips.pop(y, None)
        self.refresh()
        if self.cursor is not None:
            self.post_message(self.CursorMoved(self.cursor, layout.tokens[self.cursor], layout.turn_of[self.cursor]))
            line = layout.token_lines[self.cursor][0]
            if not (self.scroll_y <= line < self.scroll_y + self.scrollable_content_region.height):
                self.scroll_to(y=max(line - self.scrollable_content_region.height // 2, 0), animate=False, immediate=True)

    def action_move(self, step: int) -> None:
        shown = self._layout.shown
        if self.cursor is None:  # the first move puts the cursor on the last token (or the first)
            target = shown(len(self.tokens) - 1, -1) if step < 0 else shown(0, 1)
        else:
            target = shown(self.cursor + step, step)
        if target is not None:
            self.set_cursor(target)

    def action_jump(self, where: str) -> None:
        shown = self._layout.shown
        target = shown(0, 1) if where == "start" else shown(len(self.tokens) - 1, -1)
        self.set_cursor(target if target is not None else (0 if where == "start" else len(self.tokens) - 1))

    def action_takeover(self, step: int) -> None:
        takeovers = self._layout.takeovers()
        if not takeovers:
            self.notify("no takeovers in this response", severity="warning")
            return
        here = self.cursor if self.cursor is not None else (-1 if step > 0 else len(self.tokens))
        ahead = [i for i in takeovers if (i > here if step > 0 else i < here)]
        self.set_cursor((ahead[0] if step > 0 else ahead[-1]) if ahead else (takeovers[0] if step > 0 else takeovers[-1]))
