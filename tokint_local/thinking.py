"""Thinking segments: where a reasoning model's response thinks before it answers.

Models such as Qwen3 and the DeepSeek-R1 distills write ``<think>`` ... ``</think>`` before the
answer, and their chat templates switch it on and off (``enable_thinking``) and leave it out of
earlier assistant turns. This module knows the markers, splits a response's text into its thinking
and its answer, and marks a token stream with the channel each token belongs to.

A response thinks when its text opens with the open marker (whitespace before it allowed), or when
the generation prompt already opened it (the R1 distills' templates end with ``<think>``); the
segment ends with the close marker, which belongs to it. A generation prompt that closes a segment
(Qwen3 with ``enable_thinking = false``) leaves the whole response to the answer.
"""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Optional

from .events import TokenEvent

DEFAULT_MARKERS = ("<think>", "</think>")
# the pairs models in the wild use; a template that mentions a close marker uses that pair
KNOWN_MARKERS = (
    ("<think>", "</think>"),
    ("<thinking>", "</thinking>"),
    ("<|begin_of_thought|>", "<|end_of_thought|>"),
    ("◁think▷", "◁/think▷"),
    ("[THINK]", "[/THINK]"),
)
THINKING, ANSWER = "thinking", "answer"
EITHER = "either"  # the response may open a thinking segment, or answer at once


def markers_of(template: Optional[str]) -> tuple[str, str]:
    """The thinking markers a chat template uses (the default pair when it names none)."""
    for pair in KNOWN_MARKERS:
        if template and pair[1] in template:
            return pair
    return DEFAULT_MARKERS


def template_handles_thinking(template: Optional[str], markers: tuple[str, str]) -> bool:
    """Whether a template takes earlier turns' thinking out itself (it looks for the close marker)."""
    return bool(template) and markers[1] in template


def start_state(generation_prompt: str, markers: tuple[str, str]) -> str:
    """How a response to a prompt ending in ``generation_prompt`` begins: THINKING (the prompt opened the
    segment), ANSWER (the prompt closed one: thinking switched off), or EITHER."""
    opened, closed = generation_prompt.rfind(markers[0]), generation_prompt.rfind(markers[1])
    if opened >= 0 and closed < opened:
        return THINKING
    return ANSWER if closed >= 0 else EITHER


@dataclass(frozen=True)
class Parts:
    """An assistant message cut at its thinking segment: ``before + open + think_pad[0] + thinking +
    think_pad[1] + close + answer_pad + answer`` is the message (``open`` may be empty: the prompt opened it)."""

    before: str
    open: str
    think_pad: tuple[str, str]
    thinking: str
    close: str
    answer_pad: str
    answer: str


def split_message(content: str, markers: tuple[str, str], opened_by_prompt: bool) -> Optional[Parts]:
    """The thinking segment of a response's text, or None when it has none.

    A segment is the open marker at the start (after whitespace) up to the close marker; when the
    generation prompt opened it, the text up to the first close marker.
    """
    open_marker, close_marker = markers
    stripped = content.lstrip()
    before = content[: len(content) - len(stripped)]
    if stripped.startswith(open_marker):
        inner_start = len(before) + len(open_marker)
        used_open = open_marker
    elif opened_by_prompt:
        inner_start, used_open, before = 0, "", ""
    else:
        return None
    end = content.find(close_marker, inner_start)
    if end < 0:
        return None  # never closed (cut off while thinking): nothing to tell apart
    inner = content[inner_start:end]
    thinking = inner.strip()
    lead = inner[: len(inner) - len(inner.lstrip())]
    trail = inner[len(lead) + len(thinking):]
    rest = content[end + len(close_marker):]
    answer = rest.lstrip()
    return Parts(before, used_open, (lead, trail), thinking, close_marker, rest[: len(rest) - len(answer)], answer)


class ChannelMarker:
    """Marks each token event of a response THINKING or ANSWER, as it streams.

    While the response might still be opening a segment (its text so far, whitespace aside, is a
    beginning of the open marker) events are held back; ``push`` returns those that are decided,
    ``drain`` the rest at the end.
    """

    def __init__(self, markers: tuple[str, str], start: str = EITHER):
        self.open, self.close = markers
        self.state = start
        self._held: list[TokenEvent] = []
        self._tail = ""  # the thinking text so far, enough of its end to find the close marker

    def push(self, event: TokenEvent) -> list[TokenEvent]:
        if self.state == EITHER:
            self._held.append(event)
            text = "".join(e.text for e in self._held).lstrip()
            if text.startswith(self.open):
                held, self._held = self._held, []
                self.state = THINKING
                self._inside(text[len(self.open):])
                return [replace(e, channel=THINKING) for e in held]
            if not text or self.open.startswith(text):
                return []  # could still become the open marker
            self.state = ANSWER
            held, self._held = self._held, []
            return [replace(e, channel=ANSWER) for e in held]
        if self.state == THINKING:
            self._inside(event.text)  # the token that completes the close marker belongs to the segment
            return [replace(event, channel=THINKING)]
        return [replace(event, channel=ANSWER)]

    def _inside(self, text: str) -> None:
        seen = self._tail + text
        if self.close in seen:
            self.state = ANSWER
        self._tail = seen[-(len(self.close) - 1):] if len(self.close) > 1 else ""

    def drain(self) -> list[TokenEvent]:
        """The events still held at the end of the response: they never opened a segment."""
        held, self._held = self._held, []
        return [replace(e, channel=ANSWER) for e in held]
