"""The main screen: settings and history on the left; the response, its divergence strip, the
live status line and the prompt on the right."""
from __future__ import annotations

import asyncio
import sqlite3
from pathlib import Path
from typing import Optional

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.screen import Screen
from textual.widgets import Footer, Header, TabbedContent, TabPane, TextArea

from tokint_local.client import AsyncGeneration
from tokint_local.config import tokint_home
from tokint_local.errors import DaemonUnavailable, InvalidParameter, TokintError
from tokint_local.events import GenerationRequest, Loading, Queued, Started, Summary, TokenEvent
from tokint_local.history import list_generations, show_generation

from ..link import DaemonLink
from ..messages import DaemonState, TranscriptFinished, TranscriptUpdated
from ..plain import visible
from ..transcript import Transcript
from ..widgets.history import HistoryList
from ..widgets.inspector import TokenInspector
from ..widgets.prompt import PromptArea
from ..widgets.response import ResponseView
from ..widgets.settings import SettingsPanel
from ..widgets.stats import StatsLine
from ..widgets.strip import DivergenceStrip

FRAME_S = 1 / 30  # streamed tokens reach the screen in batches at most this far apart
HEALTH_S = 2.0  # how often the daemon's health is checked
STORED_HISTORY = 20  # generations read from the daemon's history store when the app connects
INSPECT_TOP = 5  # candidates per model shown in the inspector


async def stream_transcript(owner, link: DaemonLink, transcript: Transcript, on_stream=None) -> None:
    """Fill ``transcript`` from a generation stream, posting TranscriptUpdated at most every
    FRAME_S and TranscriptFinished at the end. Used by every screen that streams."""
    pending: list[TokenEvent] = []

    def flush() -> None:
        if pending or transcript.state:
            owner.post_message(TranscriptUpdated(transcript, list(pending)))
            pending.clear()

    timer = owner.set_interval(FRAME_S, lambda: flush() if pending else None)
    stream: Optional[AsyncGeneration] = None
    try:
        stream = link.generate(transcript.request)
        transcript.id = stream.id
        if on_stream is not None:
            on_stream(stream)
        async for event in stream:
            if isinstance(event, TokenEvent):
                transcript.tokens.append(event)
                pending.append(event)
                continue
            if isinstance(event, Queued):
                transcript.state = f"queued ({event.place})"
            elif isinstance(event, Loading):
                transcript.state = "loading pair"
            elif isinstance(event, Started):
                transcript.state = "running"
            elif isinstance(event, Summary):
                transcript.summary = event
                transcript.state = "done" if event.finish_reason in ("stop", "length") else event.finish_reason
            flush()
    except DaemonUnavailable as exc:
        transcript.state, transcript.error = "failed", f"{exc}; what was generated is kept"
    except TokintError as exc:
        transcript.state, transcript.error = "failed", str(exc)
    except asyncio.CancelledError:
        if stream is not None:
            await asyncio.shield(stream.cancel())
        transcript.state = "cancelled"
        raise
    finally:
        timer.stop()
        flush()
        owner.post_message(TranscriptFinished(transcript))


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("ctrl+c", "cancel", "Cancel", show=False, priority=True),
        Binding("f2", "compare", "Compare"),
        Binding("ctrl+t", "shade", "Shade"),
        Binding("ctrl+g", "inspect", "Inspect"),
        Binding("ctrl+s", "save('markdown')", "Save"),
        Binding("ctrl+o", "save('json')", "JSON"),
        Binding("f3", "copy", "Copy"),
        Binding("ctrl+b", "sidebar", "Sidebar"),
    ]

    def __init__(self, link: Optional[DaemonLink]) -> None:
        super().__init__()
        self.link = link
        self.showing: Optional[Transcript] = None
        self.running: Optional[Transcript] = None
        self._stream: Optional[AsyncGeneration] = None
        self._was_connected: Optional[bool] = None
        self._history_read = False

    def compose(self) -> ComposeResult:
        yield Header()
        with Horizontal(id="body"):
            with Vertical(id="sidebar"):
                with TabbedContent(id="tabs", initial="settings-tab"):
                    with TabPane("Settings", id="settings-tab"):
                        yield SettingsPanel(id="settings")
                    with TabPane("History", id="history-tab"):
                        yield HistoryList(id="history")
                    with TabPane("Token", id="token-tab"):
                        yield TokenInspector(id="inspector")
            with Vertical(id="main"):
                yield ResponseView(id="response")
                yield DivergenceStrip(id="strip")
                yield StatsLine(id="stats")
                yield PromptArea(id="prompt", placeholder="Type a prompt, then Ctrl+R to run it", soft_wrap=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatsLine).show(None)
        self.query_one(TokenInspector).show(None)
        self.query_one("#prompt", TextArea).focus()
        self.sub_title = "tokintd: connecting…" if self.link else "offline"
        if self.link is not None:
            self.connect()
            self.set_interval(HEALTH_S, self.check_health)

    # -- the daemon ------------------------------------------------------------------------
    @work(exclusive=True, group="connect")
    async def connect(self) -> None:
        try:
            said = await self.link.connect()
        except TokintError as exc:
            self.post_message(DaemonState(False, f"{exc}"))
            return
        self.post_message(DaemonState(True, said))

    async def check_health(self) -> None:
        if self.running is not None and self.link.connected:
            return  # the stream itself notices a daemon that goes away
        alive = await self.link.alive()
        if alive != self._was_connected:
            self.post_message(DaemonState(alive, "tokintd is back" if alive else "tokintd is not answering; reconnecting…"))

    @on(DaemonState)
    async def daemon_state(self, message: DaemonState) -> None:
        first = self._was_connected is None
        self._was_connected = message.connected
        self.sub_title = visible(f"tokintd: {'connected' if message.connected else 'disconnected'} · {self.link.address}")
        if message.connected:
            if first or "back" in message.detail or "started" in message.detail:
                self.notify(message.detail, title="tokintd")
            try:
                pairs = await self.link.pairs()
                self.query_one(SettingsPanel).set_pairs(pairs, next((p.name for p in pairs if p.default), None))
                if not self._history_read:
                    status = await self.link.status()
                    self._history_read = True
                    if status.history_path:
                        self.read_history(Path(status.history_path))
            except TokintError as exc:
                self.notify(str(exc), severity="error")
        else:
            self.notify(message.detail, title="tokintd", severity="warning" if not first else "error", timeout=6)

    @work(thread=True, exclusive=True, group="history")
    def read_history(self, path: Path) -> None:
        """The daemon's recent generations from its store (read-only; only where the file is visible, i.e. the
        daemon runs on this machine). Generations still running elsewhere are left out."""
        if not path.exists():
            return
        try:
            records = [r for r in list_generations(STORED_HISTORY, path) if r["state"] != "running"]
            transcripts = [Transcript.from_record(show_generation(r["id"], path)) for r in reversed(records)]
        except (TokintError, sqlite3.Error, KeyError, TypeError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"could not read the history at {path}: {exc}", severity="warning")
            return
        self.app.call_from_thread(self.query_one(HistoryList).add_earlier, transcripts)

    # -- running ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        if action == "cancel":
            return True if self.running is not None else None
        return True

    def _form_request(self) -> Optional[GenerationRequest]:
        """The prompt and the settings as a request; None, after saying what is wrong, if they are not one."""
        prompt = self.query_one("#prompt", TextArea).text
        if not prompt.strip():
            self.notify("type a prompt first", severity="warning")
            return None
        try:
            return self.query_one(SettingsPanel).request(prompt, return_top=INSPECT_TOP)
        except InvalidParameter as exc:
            self.notify(f"{exc}", title="setting", severity="error")
            return None

    def action_run(self) -> None:
        if self.running is not None:
            self.notify("a generation is running; Escape cancels it", severity="warning")
            return
        if self.link is None or not self.link.connected:
            self.notify("tokintd is not connected; waiting for it to come back (your prompt is kept)", severity="error")
            return
        request = self._form_request()
        if request is None:
            return
        transcript = Transcript(request)
        self.running = transcript
        self.query_one(HistoryList).add(transcript)
        self.open(transcript)
        self.refresh_bindings()
        self.generate(transcript)

    @work(exclusive=True, group="generation")
    async def generate(self, transcript: Transcript) -> None:
        await stream_transcript(self, self.link, transcript, on_stream=self._set_stream)

    def _set_stream(self, stream: AsyncGeneration) -> None:
        self._stream = stream

    async def action_cancel(self) -> None:
        if self.running is not None and self._stream is not None:
            await self._stream.cancel()  # the stream ends with a summary; what came is kept

    @on(TranscriptUpdated)
    def transcript_updated(self, message: TranscriptUpdated) -> None:
        if message.transcript is self.showing:
            self.query_one(ResponseView).append(message.new_tokens)
            self.query_one(DivergenceStrip).append(message.new_tokens)
            self.query_one(StatsLine).show(message.transcript)

    @on(TranscriptFinished)
    def transcript_finished(self, message: TranscriptFinished) -> None:
        t = message.transcript
        if t is self.running:
            self.running = None
            self._stream = None
            self.refresh_bindings()
        self.query_one(HistoryList).update_item(t)
        if t is self.showing:
            self.query_one(ResponseView).settle()
            self.query_one(DivergenceStrip).settle()
            self.query_one(StatsLine).show(t)
        if t.error:
            self.notify(t.error, title="generation failed", severity="error", timeout=8)

    # -- viewing ---------------------------------------------------------------------------
    def open(self, transcript: Transcript) -> None:
        self.showing = transcript
        intervene = transcript.request.mode == "intervene"
        self.query_one(ResponseView).show(transcript.tokens, intervene)
        self.query_one(DivergenceStrip).show(transcript.tokens, transcript.request.threshold)
        self.query_one(StatsLine).show(transcript)
        self.query_one(TokenInspector).show(None)

    @on(HistoryList.Open)
    def history_open(self, message: HistoryList.Open) -> None:
        self.open(message.transcript)
        self.query_one("#prompt", TextArea).text = message.transcript.request.prompt

    @on(ResponseView.CursorMoved)
    def cursor_moved(self, message: ResponseView.CursorMoved) -> None:
        self.query_one(TokenInspector).show(message.token)

    def action_inspect(self) -> None:
        view = self.query_one(ResponseView)
        if not view.tokens:
            self.notify("nothing to inspect yet", severity="warning")
            return
        self.query_one("#tabs", TabbedContent).active = "token-tab"
        self.query_one("#sidebar").display = True
        view.focus()
        if view.cursor is None:
            view.set_cursor(len(view.tokens) - 1)

    def action_shade(self) -> None:
        view = self.query_one(ResponseView)
        view.shade = not view.shade
        self.notify("tokens shaded by divergence" if view.shade else "shading off", timeout=2)

    def action_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def action_save(self, fmt: str) -> None:
        if self.showing is None:
            self.notify("nothing to save yet", severity="warning")
            return
        try:
            path = self.showing.save(tokint_home() / "exports", fmt)
        except OSError as exc:
            self.notify(f"could not save: {exc}", severity="error")
            return
        self.notify(f"saved {path}", title="saved")

    def action_copy(self) -> None:
        if self.showing is None or not self.showing.tokens:
            self.notify("nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.showing.text)
        self.notify(f"copied {len(self.showing.text)} characters")

    def action_compare(self) -> None:
        if self.link is None or not self.link.connected:
            self.notify("tokintd is not connected", severity="error")
            return
        request = self._form_request()
        if request is None:
            return
        from .compare import CompareScreen

        self.app.push_screen(CompareScreen(self.link, request))
