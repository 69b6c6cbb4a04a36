"""The main screen: settings, history and the token inspector on the left; the conversation (each
assistant turn with its takeovers, thinking fold, divergence strip and caption), the live status
line and the prompt on the right."""
from __future__ import annotations

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
from tokint_local.errors import InvalidParameter, TokintError
from tokint_local.events import ChatMessage, GenerationRequest
from tokint_local.history import list_generations, show_generation

from ..conversation import Conversation, conversations_from
from ..link import DaemonLink
from ..messages import DaemonState, TranscriptFinished, TranscriptUpdated
from ..plain import visible
from ..stream import stream_transcript
from ..transcript import Transcript
from ..widgets.history import HistoryList
from ..widgets.inspector import TokenInspector
from ..widgets.prompt import PromptArea
from ..widgets.response import FOLD_KEY, ResponseView
from ..widgets.settings import SettingsPanel
from ..widgets.stats import StatsLine

HEALTH_S = 2.0  # how often the daemon's health is checked
STORED_HISTORY = 60  # generations read from the daemon's history store when the app connects (grouped into conversations)
INSPECT_TOP = 5  # candidates per model shown in the inspector


class MainScreen(Screen):
    BINDINGS = [
        Binding("ctrl+r", "run", "Run", priority=True),
        Binding("escape", "cancel", "Cancel", priority=True),
        Binding("ctrl+c", "cancel", "Cancel", show=False, priority=True),
        Binding("ctrl+n", "new", "New", priority=True),
        Binding("f4", "edit_last", "Edit last"),
        Binding(FOLD_KEY.lower(), "thinking", "Thinking"),
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
        self.conversation = Conversation()  # the one on display; the next prompt continues it
        self.running: Optional[Transcript] = None
        self._running_in: Optional[Conversation] = None
        self._stream: Optional[AsyncGeneration] = None
        self._was_connected: Optional[bool] = None
        self._history_read = False

    @property
    def showing(self) -> Optional[Transcript]:
        """The latest turn of the conversation on display."""
        return self.conversation.last

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
                yield ResponseView(id="response", conversation=True,
                                   hint="A conversation: type a prompt below, Ctrl+R sends it; each prompt continues "
                                        "the conversation, Ctrl+N starts a new one.")
                yield StatsLine(id="stats")
                yield PromptArea(id="prompt", placeholder="Type a prompt, then Ctrl+R to send it", soft_wrap=True)
        yield Footer(compact=True)

    def on_mount(self) -> None:
        self.query_one(StatsLine).show(None)
        self.query_one(TokenInspector).show(None)
        self.query_one("#prompt", TextArea).focus()
        self.sub_title = "tokintd: connecting…" if self.link else "offline"
        if self.link is None:
            self.query_one(SettingsPanel).disconnected()
        else:
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
            self.query_one(SettingsPanel).disconnected()

    @work(thread=True, exclusive=True, group="history")
    def read_history(self, path: Path) -> None:
        """The daemon's recent conversations from its store (read-only; only where the file is visible, i.e.
        the daemon runs on this machine). Generations still running elsewhere are left out."""
        if not path.exists():
            return
        try:
            records = [r for r in list_generations(STORED_HISTORY, path) if r["state"] != "running"]
            conversations = conversations_from([Transcript.from_record(show_generation(r["id"], path)) for r in records])
        except (TokintError, sqlite3.Error, KeyError, TypeError, ValueError) as exc:
            self.app.call_from_thread(self.notify, f"could not read the history at {path}: {exc}", severity="warning")
            return
        self.app.call_from_thread(self.query_one(HistoryList).add_earlier, conversations)

    # -- running ---------------------------------------------------------------------------
    def check_action(self, action: str, parameters: tuple) -> Optional[bool]:
        if action == "cancel":
            return True if self.running is not None else None
        return True

    def _request(self, messages: tuple[ChatMessage, ...], **overrides) -> Optional[GenerationRequest]:
        """The conversation and the settings as a request; None, after saying what is wrong, if they are not one."""
        try:
            return self.query_one(SettingsPanel).request(messages=messages, return_top=INSPECT_TOP, **overrides)
        except InvalidParameter as exc:
            self.notify(f"{exc}", title="setting", severity="error")
            return None

    def _connected(self, waiting: str = "") -> bool:
        if self.link is None or not self.link.connected:
            self.notify(f"tokintd is not connected{waiting}", severity="error")
            return False
        return True

    def action_run(self) -> None:
        if self.running is not None:
            self.notify("a generation is running; Escape cancels it", severity="warning")
            return
        if not self._connected("; waiting for it to come back (your prompt is kept)"):
            return
        area = self.query_one("#prompt", TextArea)
        if not area.text.strip():
            self.notify("type a prompt first", severity="warning")
            return
        conversation = self.conversation
        system = self.query_one(SettingsPanel).system
        request = self._request(conversation.messages(area.text, system), conversation_id=conversation.id)
        if request is None:
            return
        transcript = Transcript(request)
        conversation.turns.append(transcript)
        self.running, self._running_in = transcript, conversation
        self.query_one(HistoryList).update_item(conversation)
        self.query_one(ResponseView).begin_turn(transcript)
        self.query_one(StatsLine).show(transcript, len(conversation.turns))
        area.text = ""
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
            self.query_one(StatsLine).show(message.transcript, len(self.conversation.turns))

    @on(TranscriptFinished)
    def transcript_finished(self, message: TranscriptFinished) -> None:
        t = message.transcript
        conversation = None
        if t is self.running:
            conversation = self._running_in
            self.running, self._running_in, self._stream = None, None, None
            self.refresh_bindings()
        if t.error:
            self.notify(t.error, title="generation failed", severity="error", timeout=8)
        if conversation is None:
            return
        if not t.tokens and t is conversation.last:
            self._unanswered(conversation, t)
            return
        self.query_one(HistoryList).update_item(conversation)
        if t is self.showing:
            self.query_one(ResponseView).settle()
            self.query_one(StatsLine).show(t, len(conversation.turns))

    def _unanswered(self, conversation: Conversation, t: Transcript) -> None:
        """A turn that failed or was cancelled before its first token leaves the conversation, and its
        prompt goes back into the input (unless something else was typed there meanwhile)."""
        conversation.turns.pop()
        history = self.query_one(HistoryList)
        if conversation.turns:
            history.update_item(conversation)
        else:
            history.forget(conversation)
        if conversation is self.conversation:
            self.open(conversation)
            area = self.query_one("#prompt", TextArea)
            if not area.text.strip():
                area.text = t.user_text
                self.notify("nothing was generated; your prompt is back in the input", timeout=4)

    # -- the conversation ------------------------------------------------------------------
    def open(self, conversation: Conversation) -> None:
        """Show ``conversation``; the next prompt continues it."""
        self.conversation = conversation
        self.query_one(ResponseView).show_conversation(conversation.turns)
        self.query_one(StatsLine).show(conversation.last, len(conversation.turns))
        self.query_one(TokenInspector).show(None)

    def action_new(self) -> None:
        if not self.conversation.turns:
            self.notify("this conversation is new already", timeout=2)
            return
        self.open(Conversation())
        self.query_one("#prompt", TextArea).focus()
        self.notify("new conversation", timeout=2)

    def action_edit_last(self) -> None:
        """Put the last prompt back into the input and drop the last exchange; Ctrl+R resends it."""
        if self.running is not None:
            self.notify("a generation is running; Escape cancels it first", severity="warning")
            return
        conversation = self.conversation
        if not conversation.turns:
            self.notify("nothing to edit yet", severity="warning")
            return
        area = self.query_one("#prompt", TextArea)
        last = conversation.turns[-1]
        if area.text.strip() and area.text != last.user_text:
            self.notify("the input holds text that would be lost; send or clear it first", severity="warning")
            return
        conversation.turns.pop()
        self.open(conversation)
        history = self.query_one(HistoryList)
        if conversation.turns:
            history.update_item(conversation)
        else:
            history.forget(conversation)
        area.text = last.user_text
        area.focus()
        area.move_cursor(area.document.end)
        self.notify("the last exchange is dropped: edit the prompt, then Ctrl+R resends it", timeout=4)

    @on(HistoryList.Open)
    def history_open(self, message: HistoryList.Open) -> None:
        self.open(message.conversation)
        self.query_one(SettingsPanel).system = message.conversation.system  # continuing keeps its system prompt

    # -- viewing ---------------------------------------------------------------------------
    @on(ResponseView.CursorMoved)
    def cursor_moved(self, message: ResponseView.CursorMoved) -> None:
        many = self.query_one(ResponseView).turns > 1
        self.query_one(TokenInspector).show(message.token, message.turn if many else None)

    def action_inspect(self) -> None:
        view = self.query_one(ResponseView)
        if not view.tokens:
            self.notify("nothing to inspect yet", severity="warning")
            return
        self.query_one("#tabs", TabbedContent).active = "token-tab"
        self.query_one("#sidebar").display = True
        view.focus()
        if view.cursor is None:
            view.action_move(-1)

    def action_thinking(self) -> None:
        folded = self.query_one(ResponseView).toggle_thinking()
        self.notify("thinking folded" if folded else "thinking shown", timeout=2)

    def action_shade(self) -> None:
        view = self.query_one(ResponseView)
        view.shade = not view.shade
        self.notify("tokens shaded by divergence" if view.shade else "shading off", timeout=2)

    def action_sidebar(self) -> None:
        sidebar = self.query_one("#sidebar")
        sidebar.display = not sidebar.display

    def action_save(self, fmt: str) -> None:
        if not self.conversation.turns:
            self.notify("nothing to save yet", severity="warning")
            return
        try:
            path = self.conversation.save(tokint_home() / "exports", fmt)
        except OSError as exc:
            self.notify(f"could not save: {exc}", severity="error")
            return
        self.notify(f"saved {path}", title="saved")

    def action_copy(self) -> None:
        if self.showing is None or not self.showing.text:
            self.notify("nothing to copy yet", severity="warning")
            return
        self.app.copy_to_clipboard(self.showing.text)
        self.notify(f"copied {len(self.showing.text)} characters of the last response")

    def action_compare(self) -> None:
        """The next turn (the prompt typed), or else the last prompt again, in each mode on the conversation so far."""
        if not self._connected():
            return
        text = self.query_one("#prompt", TextArea).text
        conversation = self.conversation
        system = self.query_one(SettingsPanel).system
        if text.strip():
            messages = conversation.messages(text, system)
        elif conversation.turns:
            messages = conversation.messages(conversation.turns[-1].user_text, system, upto=len(conversation.turns) - 1)
        else:
            self.notify("type a prompt first", severity="warning")
            return
        request = self._request(messages)
        if request is None:
            return
        from .compare import CompareScreen

        self.app.push_screen(CompareScreen(self.link, request))
