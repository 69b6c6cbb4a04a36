"""Text a person typed or a model wrote, ready for a widget: never markup, control characters visible.

Every string of that kind reaches the screen through here (or as Segments in ResponseView), so a
prompt holding ``[/quote]`` or ``[@click=app.quit]`` shows those characters and an escape sequence in
a response shows as ␛ instead of reaching the terminal.
"""
from __future__ import annotations

from rich.text import Text

from tokint_local.render import CONTROL_SIGNS

_SIGNS = {**CONTROL_SIGNS, ord("\t"): "    "}


def visible(text: str) -> str:
    """Control characters (other than newline) as visible signs (ESC as ␛); tabs as four spaces."""
    return text.translate(_SIGNS)


def plain(text: str, style: str = "") -> Text:
    """``text`` as a widget's content: plain text whatever it looks like, its control characters visible."""
    return Text(visible(text), style=style)
