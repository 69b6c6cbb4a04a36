"""Turning token bytes into text as they stream: whole UTF-8 characters and stop strings.

A token may end in the middle of a multi-byte character; its text is then empty and the next
token carries the whole character. Stop strings are matched across token boundaries: text that
could be the start of a stop string is held back until it is known not to be one.
"""
from __future__ import annotations

import codecs
from dataclasses import dataclass, field
from typing import Generic, Sequence, TypeVar

T = TypeVar("T")


class Utf8Stream:
    """Incremental UTF-8 decoding of token pieces; invalid bytes become U+FFFD."""

    def __init__(self) -> None:
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")

    def feed(self, piece: bytes) -> str:
        return self._decoder.decode(piece, final=False)

    @property
    def pending(self) -> bool:
        """Whether the bytes fed so far end inside a character."""
        return bool(self._decoder.getstate()[0])

    def flush(self) -> str:
        """The end of the stream: bytes that never became a character are U+FFFD."""
        return self._decoder.decode(b"", final=True)


@dataclass
class StopHold(Generic[T]):
    """Holds back items (token events) whose text might begin a stop string.

    ``push(item, text)`` returns the items that are safe to release and whether a stop string
    was found; when found, the released items end just before the stop string, and the text of
    the last one (which may be cut) is given separately.
    """

    stops: Sequence[str]
    _items: list = field(default_factory=list)
    _texts: list = field(default_factory=list)

    def push(self, item: T, text: str) -> tuple[list[tuple[T, str]], bool]:
        if not self.stops:
            return [(item, text)], False
        self._items.append(item)
        self._texts.append(text)
        pending = "".join(self._texts)
        cut = min((i for i in (pending.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out = self._take_until(cut, trim=True)
            self._items, self._texts = [], []
            return out, True
        held = _longest_stop_prefix_suffix(pending, self.stops)
        return self._take_until(len(pending) - held, trim=False), False

    def drain(self) -> list[tuple[T, str]]:
        """Release whatever is held (the response ended without a stop string)."""
        out = list(zip(self._items, self._texts))
        self._items, self._texts = [], []
        return out

    def _take_until(self, limit: int, trim: bool) -> list[tuple[T, str]]:
        """Release leading items whose text ends at or before ``limit`` characters.

        With ``trim`` the item that straddles ``limit`` is released too, its text cut at ``limit``.
        """
        out: list[tuple[T, str]] = []
        start = 0
        n = 0
        for item, text in zip(self._items, self._texts):
            end = start + len(text)
            if end <= limit:
                out.append((item, text))
                n += 1
            elif trim and start < limit:
                out.append((item, text[: limit - start]))
                n += 1
                break
            else:
                break
            start = end
        if not trim:
            del self._items[:n]
            del self._texts[:n]
        return out


def _longest_stop_prefix_suffix(text: str, stops: Sequence[str]) -> int:
    """Length of the longest suffix of ``text`` that is a proper prefix of some stop string."""
    best = 0
    for stop in stops:
        for n in range(min(len(stop) - 1, len(text)), best, -1):
            if text.endswith(stop[:n]):
                best = n
                break
    return best
