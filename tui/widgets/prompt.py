"""The prompt editor: a TextArea that draws control characters visibly.

The document keeps every character (a prompt reopened from the history runs again as it was);
only drawing changes, one cell for one character, so the cursor stays in step with the text.
"""
from __future__ import annotations

from rich.text import Text
from textual.widgets import TextArea

# C0 controls but tab and newline as their Unicode pictures (ESC as ␛), DEL as ␡, C1 controls as
# U+FFFD: never sent to the terminal, which would act on them
_ONE_CELL = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
_ONE_CELL[0x7F] = "\u2421"
_ONE_CELL.update({c: "\ufffd" for c in range(0x80, 0xA0)})


class PromptArea(TextArea):
    def get_line(self, line_index: int) -> Text:
        return Text(self.document.get_line(line_index).translate(_ONE_CELL), end="", no_wrap=True)
