"""Word wrapping for ResponseView: tokens into lines as they arrive (only the open last line is
touched by a token), and plain text (messages, captions) into lines at once."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Optional

from rich.cells import cell_len
from rich.style import Style

Run = tuple[str, Optional[Style]]


@dataclass
class Line:
    """One line of the view: token pieces, or (``deco``) a line of the view's own."""

    pieces: list[tuple[int, int, int]] = field(default_factory=list)  # (token index, start, end) in its text
    cells: int = 0
    hard_break: bool = False  # ended by a newline in the text (not by wrapping)
    deco: Optional[list[Run]] = None  # a message, a strip row, a caption: drawn as these runs
    fill: Optional[Style] = None  # a deco line's style for the rest of the line
    fold: Optional[int] = None  # this line stands for that turn's thinking segment (folded or not)

    @property
    def is_text(self) -> bool:
        return self.deco is None and self.fold is None


def fit(text: str, room: int) -> int:
    """How many leading characters of ``text`` fit in ``room`` cells."""
    if text.isascii():
        return min(len(text), room)
    used = 0
    for i, ch in enumerate(text):
        used += cell_len(ch)
        if used > room:
            return i
    return len(text)


def _ends_word(line: Line, texts: list[str]) -> bool:
    i, a, b = line.pieces[-1]
    return b > a and texts[i][b - 1] in " \t"


def wrap_token(lines: list[Line], texts: list[str], index: int, width: int, skip: int = 0) -> tuple[int, int]:
    """Lay token ``index`` (its text is ``texts[index]``, less the first ``skip`` characters) onto the
    end of ``lines``, breaking after the last space that fits, moving a token that starts a word to
    the next line whole, and cutting only a word longer than a line. Returns the first and last line
    it lies on."""
    text = texts[index]
    first = len(lines) - 1
    if len(text) == skip:
        lines[-1].pieces.append((index, skip, skip))
    offset = skip
    for k, chunk in enumerate(text[skip:].split("\n")):
        if k:  # a newline in the text closes the line
            lines[-1].hard_break = True
            lines.append(Line())
        start = offset
        while start < offset + len(chunk):
            line = lines[-1]
            rest = text[start : offset + len(chunk)]
            n = fit(rest, width - line.cells)
            if n == len(rest):
                line.pieces.append((index, start, start + n))
                line.cells += cell_len(rest)
                break
            space = rest.rfind(" ", 0, n + 1)
            if space >= 0:  # break after the last space that fits
                n = space + 1
            elif line.cells > 0 and _ends_word(line, texts):
                n = 0  # this token starts a new word: move it to the next line whole
            elif line.cells == 0 and n == 0:
                n = 1  # a character wider than the whole line: let it overflow
            if n:
                line.pieces.append((index, start, start + n))
                line.cells += cell_len(text[start : start + n])
                start += n
            lines.append(Line())
        offset += len(chunk) + 1
    return first, len(lines) - 1


def wrap_plain(text: str, width: int) -> list[str]:
    """``text`` (already made visible) as lines of at most ``width`` cells, broken at spaces where it can be."""
    width = max(width, 1)
    out: list[str] = []
    for paragraph in text.split("\n"):
        while cell_len(paragraph) > width:
            n = fit(paragraph, width)
            space = paragraph.rfind(" ", 0, n + 1)
            cut = space + 1 if space > 0 else max(n, 1)
            out.append(paragraph[:cut].rstrip(" "))
            paragraph = paragraph[cut:]
        out.append(paragraph)
    return out
