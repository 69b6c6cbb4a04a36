"""tokint-tui: watch a base and a reasoning model decide, live."""
from __future__ import annotations

from typing import Optional

from textual.app import App
from textual.notifications import SeverityLevel

from .link import DaemonLink
from .plain import visible
from .screens.main import MainScreen


class TokintApp(App):
    TITLE = "tokint"
    ENABLE_COMMAND_PALETTE = False  # every action has its own key in the footer
    CSS_PATH = ["styles/app.tcss", "styles/main.tcss", "styles/compare.tcss"]

    def __init__(self, address: Optional[str] = None, models: Optional[str] = None, autostart: bool = True,
                 offline: bool = False) -> None:
        super().__init__()
        # offline: no daemon at all (screenshots, tests of layout)
        self.link = None if offline else DaemonLink(address, models, autostart)

    def on_mount(self) -> None:
        self.push_screen(MainScreen(self.link))

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: Optional[float] = None, markup: bool = False) -> None:
        """Every notification is plain text: they quote prompts, errors and paths, which are never markup."""
        super().notify(visible(message), title=visible(title), severity=severity, timeout=timeout, markup=False)

    async def on_unmount(self) -> None:
        if self.link is not None:
            await self.link.close()
