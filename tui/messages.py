"""Messages that cross widgets (messages owned by one widget are nested in its class)."""
from __future__ import annotations

from textual.message import Message

from tokint_local.events import TokenEvent

from .transcript import Transcript


class DaemonState(Message):
    """Whether tokintd answers; ``detail`` says what happened, for a person."""

    def __init__(self, connected: bool, detail: str) -> None:
        super().__init__()
        self.connected = connected
        self.detail = detail


class TranscriptUpdated(Message):
    """A generation moved on: new tokens (possibly none) or a new state."""

    def __init__(self, transcript: Transcript, new_tokens: list[TokenEvent]) -> None:
        super().__init__()
        self.transcript = transcript
        self.new_tokens = new_tokens


class TranscriptFinished(Message):
    """A generation ended (done, cancelled or failed); its transcript is complete."""

    def __init__(self, transcript: Transcript) -> None:
        super().__init__()
        self.transcript = transcript
