"""The same prompt in base, reasoning and intervene modes, side by side; on a conversation, each mode
continues the same history.

The three requests go out together; a daemon whose pair has three slots free runs them at once,
decoded together (docs/ARCHITECTURE.md), one with fewer runs the rest as slots free up."""
from __future__ import annotations

from dataclasses import replace

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, Label

from tokint_local.events import MODES, GenerationRequest

from ..link import DaemonLink
from ..messages import TranscriptFinished, TranscriptUpdated
from ..plain import plain
from ..stream import stream_transcript
from ..transcript import Transcript
from ..widgets.response import FOLD_KEY, ResponseView
from ..widgets.stats import StatsLine


class CompareScreen(Screen):
    BINDINGS = [
        Binding("escape", "cancel_or_close", "Cancel / back", priority=True),
        Binding("ctrl+t", "shade", "Shade"),
        Binding(FOLD_KEY.lower(), "thinking", "Thinking"),
    ]

    def __init__(self, link: DaemonLink, request: GenerationRequest) -> None:
        super().__init__()
        self.link = link
        self.transcripts = {mode: Transcript(replace(request, mode=mode)) for mode in MODES}
        self._streams: dict[str, object] = {}

    @property
    def earlier_turns(self) -> int:
        """How many exchanges of the conversation come before the prompt compared."""
        request = next(iter(self.transcripts.values())).request
        return sum(m.role == "assistant" for m in request.as_messages())

    def compose(self) -> ComposeResult:
        yield Header()
        request = next(iter(self.transcripts.values())).request
        earlier = self.earlier_turns
        context = f"after {earlier} earlier turn{'s' if earlier != 1 else ''}: " if earlier else ""
        yield Label(plain(context + request.user_text), id="compare-prompt")
        with Horizontal(id="columns"):
            for mode in MODES:
                with Vertical(classes="column", id=f"col-{mode}"):
                    yield Label(mode, classes="column-title")
                    yield ResponseView(intervene=mode == "intervene", id=f"response-{mode}")
                    yield StatsLine(id=f"stats-{mode}")
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.sub_title = ("the conversation so far, continued in each mode, at once" if self.earlier_turns
                          else "the same prompt in each mode, at once")
        for mode, transcript in self.transcripts.items():
            self.query_one(f"#stats-{mode}", StatsLine).show(transcript)
            self.run_worker(self._run(mode, transcript), group="compare", name=f"compare-{mode}")

    async def _run(self, mode: str, transcript: Transcript) -> None:
        await stream_transcript(self, self.link, transcript, on_stream=lambda s: self._streams.__setitem__(mode, s))

    def _mode_of(self, transcript: Transcript) -> str:
        return transcript.request.mode

    @on(TranscriptUpdated)
    def updated(self, message: TranscriptUpdated) -> None:
        mode = self._mode_of(message.transcript)
        self.query_one(f"#response-{mode}", ResponseView).append(message.new_tokens)
        self.query_one(f"#stats-{mode}", StatsLine).show(message.transcript)

    @on(TranscriptFinished)
    def finished(self, message: TranscriptFinished) -> None:
        mode = self._mode_of(message.transcript)
        self.query_one(f"#response-{mode}", ResponseView).settle()
        self.query_one(f"#stats-{mode}", StatsLine).show(message.transcript)
        if message.transcript.error:
            self.notify(f"{mode}: {message.transcript.error}", severity="error")

    async def action_cancel_or_close(self) -> None:
        running = [m for m, t in self.transcripts.items() if t.running and m in self._streams]
        if running:
            for mode in running:
                await self._streams[mode].cancel()
            self.notify("cancelled; Escape again to go back")
            return
        self.app.pop_screen()

    def action_shade(self) -> None:
        for view in self.query(ResponseView):
            view.shade = not view.shade

    def action_thinking(self) -> None:
        for view in self.query(ResponseView):
            view.toggle_thinking()
