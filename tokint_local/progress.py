"""A progress line for long runs (eval, analyze, calibrate): done/total, elapsed and time left.

On a terminal the line is redrawn in place; otherwise (a log file, CI) each update is its own line.
"""
from __future__ import annotations

import sys
import time
from typing import Optional, TextIO


class Progress:
    """Items done, elapsed time and an estimate of the time left, on one line."""

    def __init__(self, tag: str, total: int, already: int = 0, out: Optional[TextIO] = None):
        self.tag, self.total, self.done = tag, total, already
        self.out = out or sys.stderr  # looked up now, not at import, so a replaced sys.stderr is followed
        self.started, self.new = time.monotonic(), 0
        self.tty = self.out.isatty()

    def update(self, label: str = "") -> None:
        self.done += 1
        self.new += 1
        elapsed = time.monotonic() - self.started
        left = (self.total - self.done) * elapsed / self.new
        line = (f"[{self.tag}] {self.done}/{self.total} ({100 * self.done / max(self.total, 1):.1f}%) "
                f"elapsed {_clock(elapsed)}, ETA {_clock(left)}" + (f" - {label}" if label else ""))
        self.out.write(("\r" + line[:150].ljust(150)) if self.tty else line + "\n")
        self.out.flush()

    def close(self) -> None:
        if self.tty:
            self.out.write("\n")


def _clock(seconds: float) -> str:
    s = int(seconds)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
