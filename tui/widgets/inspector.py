"""Details of the token under the cursor: position, source, divergence, entropy, top candidates."""
from __future__ import annotations

from rich.table import Table
from rich.text import Text
from textual.widgets import Static

from tokint_local.events import TokenEvent

from ..plain import plain


def _fmt(value) -> str:
    return "-" if value is None else f"{value:.3f}"


class TokenInspector(Static):
    def show(self, token: TokenEvent | None) -> None:
        if token is None:
            self.update(Text("Move the cursor onto a token (Ctrl+G, then ← →; [ ] jump between takeovers).", style="#808080"))
            return
        head = Table.grid(padding=(0, 1))
        head.add_row("position", str(token.position))
        head.add_row("token", plain(f"{token.text!r} (id {token.token_id})"))
        head.add_row("source", plain(token.source, style="bold #101010 on #ffc040" if token.source == "reasoning" else ""))
        head.add_row("divergence", _fmt(token.divergence))
        head.add_row("base entropy", _fmt(token.base_entropy))
        head.add_row("budget left", "∞" if token.budget_left is None else str(token.budget_left))
        parts = [head]
        for role in ("base", "reasoning"):
            candidates = (token.top_k or {}).get(role)
            if not candidates:
                continue
            table = Table(title=f"{role} top {len(candidates)}", title_justify="left", show_header=False, box=None, padding=(0, 1))
            for tid, text, prob in candidates:
                mark = "◀" if tid == token.token_id else ""
                table.add_row(plain(repr(text)), f"{prob:.3f}", mark)
            parts.append(table)
        from rich.console import Group

        self.update(Group(*parts))
