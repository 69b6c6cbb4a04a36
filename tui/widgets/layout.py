"""ResponseView's layout, apart from Textual: the tokens of one response, or of a conversation's
assistant turns, and the lines they lie on.

A conversation is laid out turn by turn: the user's message (after the system prompt, where that
changed), the response's tokens word-wrapped as they arrive (an append touches only the open last
line), its thinking segment as one fold line while folded, then its divergence strip and caption.
The last turn's strip and caption are the ``tail``, kept apart from the lines because the view
rebuilds them while that turn streams; the next turn moves them into the lines. A response shown
alone is one turn with no user message, strip or caption.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Optional

from tokint_local.events import TokenEvent

from ..plain import visible
from ..transcript import Transcript, channel_of
from .turns import head_lines, hint_lines, tail_lines
from .wrap import Line, wrap_token


@dataclass
class TurnLayout:
    """An assistant turn as the view lays it out."""

    transcript: Optional[Transcript]  # None: a response shown alone
    intervene: bool
    first: int  # its first token's index in ResponseLayout.tokens
    folded: bool = True  # its thinking segment shows as one line
    n_thinking: int = 0
    thinking_takeovers: int = 0
    fold_line: Optional[int] = None
    answering: bool = False  # an answer token came after thinking


class ResponseLayout:
    """The tokens, the turn each belongs to, the lines they lie on and the tail. ``wrap_width`` gives
    the view's width now; it is read while the layout has no width of its own (``rewrap`` sets one)."""

    def __init__(self, conversation: bool, intervene: bool, wrap_width: Callable[[], int]) -> None:
        self.conversation = conversation
        self.wrap_width = wrap_width
        self.tokens: list[TokenEvent] = []
        self.texts: list[str] = []  # each token's text as shown
        self.turn_of: list[int] = []  # each token's turn
        self.turns: list[TurnLayout] = [] if conversation else [TurnLayout(None, intervene, 0)]
        self.lines: list[Line] = [] if conversation else [Line()]
        self.tail: list[Line] = []  # the last turn's strip and caption, drawn after the lines
        self.token_lines: list[tuple[int, int]] = []  # first and last line of each token
        self.width = 0

    # -- content ---------------------------------------------------------------------------
    def show(self, tokens: list[TokenEvent], intervene: bool, folded: bool) -> None:
        """Hold one response's ``tokens`` instead (``rewrap`` lays them out)."""
        self._load([TurnLayout(None, intervene, 0, folded=folded)], list(tokens), [0] * len(tokens))

    def show_conversation(self, turns: list[Transcript], folded: bool) -> None:
        """Hold a conversation's turns instead (``rewrap`` lays them out)."""
        laid, tokens, turn_of = [], [], []
        for k, t in enumerate(turns):
            laid.append(TurnLayout(t, t.request.mode == "intervene", len(tokens), folded=folded))
            tokens += t.tokens
            turn_of += [k] * len(t.tokens)
        self._load(laid, tokens, turn_of)

    def _load(self, turns: list[TurnLayout], tokens: list[TokenEvent], turn_of: list[int]) -> None:
        self.turns = turns
        self.tokens = tokens
        self.turn_of = turn_of
        self.texts = [visible(t.text) for t in tokens]

    def begin_turn(self, transcript: Transcript, folded: bool) -> int:
        """Add a turn at the end: the turn before's tail joins the lines, then come the user's message
        (and the system prompt, where it changed) and an open line for the response. Returns the first
        line that changed; the new turn's tail is ``set_tail``'s to make."""
        if not self.turns:
            self.lines = []  # the hint goes
        first_new = len(self.lines)
        self.lines.extend(self.tail)  # the turn before keeps its strip and caption
        self.turns.append(TurnLayout(transcript, transcript.request.mode == "intervene", len(self.tokens), folded=folded))
        self._add_head(len(self.turns) - 1)
        return first_new

    def append(self, tokens: list[TokenEvent]) -> set[int]:
        """Lay streamed tokens onto the last turn, leaving out those it holds already (the turn was shown
        while its stream had tokens in flight). Returns the lines to draw again (none: nothing added)."""
        if not self.turns:
            return set()
        turn = len(self.turns) - 1
        held = len(self.tokens) - self.turns[turn].first
        tokens = [t for t in tokens if t.position >= held]
        if not tokens:
            return set()
        changed = set()
        first_dirty = len(self.lines) - 1
        for token in tokens:
            self.tokens.append(token)
            self.texts.append(visible(token.text))
            self.turn_of.append(turn)
            fold_line = self._lay(len(self.tokens) - 1)
            if fold_line is not None:
                changed.add(fold_line)
        return changed | set(range(first_dirty, len(self.lines)))

    def shown_text(self) -> str:
        """The response text on display (wrapping aside): what the token lines hold, joined at hard breaks."""
        out = []
        for line in self.lines:
            out.extend(self.texts[i][a:b] for i, a, b in line.pieces)
            if line.hard_break:
                out.append("\n")
        return "".join(out)

    # -- laying out ------------------------------------------------------------------------
    def _width_now(self) -> int:
        return self.width or self.wrap_width()

    def rewrap(self, width: int, hint: str) -> None:
        """Lay everything out anew at ``width``, with ``hint`` in a conversation that has no turns yet.
        Leaves the tail empty (``set_tail`` makes one)."""
        self.width = width
        self.lines = [] if self.conversation else [Line()]
        self.token_lines = []
        for turn in self.turns:
            turn.n_thinking = turn.thinking_takeovers = 0
            turn.fold_line, turn.answering = None, False
        if self.conversation and not self.turns and hint:
            self.lines = hint_lines(hint, width)
        for k in range(len(self.turns)):
            if self.conversation:
                if k:
                    self.lines.extend(self._tail_of(k - 1))
                self._add_head(k)
            for i in range(self.turns[k].first, self.end_of(k)):
                self._lay(i)
        self.tail = []

    def end_of(self, k: int) -> int:
        """One past turn ``k``'s last token."""
        return self.turns[k + 1].first if k + 1 < len(self.turns) else len(self.tokens)

    def _add_head(self, k: int) -> None:
        self.lines += head_lines(self.turns[k].transcript, self.turns[k - 1].transcript.system if k else None, self._width_now())

    def _tail_of(self, k: int) -> list[Line]:
        turn = self.turns[k]
        return tail_lines(turn.transcript, self.tokens[turn.first : self.end_of(k)], self._width_now())

    def set_tail(self, k: int) -> None:
        """Make turn ``k``'s strip and caption, as they stand now, the tail (the last turn's)."""
        self.tail = self._tail_of(k)

    def _lay(self, index: int) -> Optional[int]:
        """Token ``index`` onto the lines: into its turn's fold while that is folded, else wrapped.
        Returns its turn's fold line when the token is thinking (the fold's count changed)."""
        k = self.turn_of[index]
        turn = self.turns[k]
        width = self._width_now()
        self.width = width
        fold_line = None
        if channel_of(self.tokens[index]) == "thinking":
            turn.n_thinking += 1
            turn.thinking_takeovers += self.tokens[index].source == "reasoning" and turn.intervene
            if turn.fold_line is None:
                if self.lines[-1].pieces:
                    self.lines.append(Line())
                turn.fold_line = len(self.lines) - 1
                self.lines[-1].fold = k
                self.lines.append(Line())
            fold_line = turn.fold_line
            if turn.folded:
                self.token_lines.append((fold_line, fold_line))
                return fold_line
        elif turn.fold_line is not None and not turn.answering:
            if any(b > a for _, a, b in self.lines[-1].pieces):
                self.lines.append(Line())  # the answer starts a line of its own
            text = self.texts[index]
            skip = len(text) - len(text.lstrip("\n"))  # the newlines between thinking and answer
            turn.answering = skip < len(text)
            self.token_lines.append(wrap_token(self.lines, self.texts, index, width, skip))
            return None
        self.token_lines.append(wrap_token(self.lines, self.texts, index, width))
        return fold_line

    # -- what lies where -------------------------------------------------------------------
    def folded(self, index: int) -> bool:
        """Whether token ``index`` is folded away (thinking, in a folded turn)."""
        return self.turns[self.turn_of[index]].folded and channel_of(self.tokens[index]) == "thinking"

    def shown(self, index: int, step: int) -> Optional[int]:
        """The first token from ``index`` on, in direction ``step``, that is not folded away."""
        while 0 <= index < len(self.tokens):
            if not self.folded(index):
                return index
            index += step
        return None

    def takeover(self, index: int) -> bool:
        """Whether token ``index`` is a takeover the view marks (the reasoning model's, in an intervene turn)."""
        return self.tokens[index].source == "reasoning" and self.turns[self.turn_of[index]].intervene

    def takeovers(self) -> list[int]:
        return [i for i in range(len(self.tokens)) if self.takeover(i)]
