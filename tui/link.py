"""The TUI's connection to tokintd: connect (starting the daemon if allowed), watch its health,
and open generation streams. Screens use this; widgets never touch the socket."""
from __future__ import annotations

import asyncio
import io
from typing import Optional

from tokint_local.addresses import client_address
from tokint_local.client import AsyncClient, AsyncGeneration
from tokint_local.errors import DaemonUnavailable, TokintError
from tokint_local.events import GenerationRequest
from tokint_local.status import DaemonStatus, PairListing


class DaemonLink:
    def __init__(self, address: Optional[str] = None, models: Optional[str] = None, autostart: bool = True):
        self.address = client_address(address)
        self.models = models
        self.autostart = autostart
        self.client = AsyncClient(self.address)
        self.connected = False

    async def connect(self) -> str:
        """Reach the daemon (starting it if allowed); a line for the person saying what happened."""
        try:
            await self.client.hello(timeout=2.0)
            self.connected = True
            return f"connected to tokintd at {self.address}"
        except DaemonUnavailable:
            if not self.autostart:
                raise
        from tokint_local.autostart import start_daemon

        said = io.StringIO()
        await asyncio.to_thread(start_daemon, self.address, self.models, said)
        await self.client.hello(timeout=5.0)
        self.connected = True
        return said.getvalue().strip().removeprefix("tokint: ") or f"started tokintd at {self.address}"

    async def alive(self) -> bool:
        try:
            await self.client.hello(timeout=1.0)
            self.connected = True
        except TokintError:
            self.connected = False
        return self.connected

    async def status(self) -> DaemonStatus:
        return await self.client.status()

    async def pairs(self) -> list[PairListing]:
        return await self.client.list_pairs()

    def generate(self, request: GenerationRequest) -> AsyncGeneration:
        """Start ``request`` (a prompt, or a conversation's messages) with every setting it holds."""
        params = request.to_wire()
        pair = params.pop("pair")
        if request.messages is not None:
            return self.client.chat(params.pop("messages"), pair, **params)
        return self.client.generate(params.pop("prompt"), pair, **params)

    async def close(self) -> None:
        await self.client.close()
