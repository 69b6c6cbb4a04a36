"""Generations: the recent ones from the daemon's history store, then this session's; selecting one
reopens it."""
from __future__ import annotations

from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from ..plain import plain
from ..transcript import Transcript


class HistoryItem(ListItem):
    def __init__(self, transcript: Transcript) -> None:
        super().__init__(Label(plain(self.describe(transcript))))
        self.transcript = transcript

    @staticmethod
    def describe(t: Transcript) -> str:
        return f"[{t.request.mode[:3]}] {t.title(22)} · {len(t.tokens)}t {t.state}"

    def refresh_label(self) -> None:
        self.query_one(Label).update(plain(self.describe(self.transcript)))


class HistoryList(ListView):
    class Open(Message):
        def __init__(self, transcript: Transcript) -> None:
            super().__init__()
            self.transcript = transcript

    def add(self, transcript: Transcript) -> None:
        self.append(HistoryItem(transcript))

    def add_earlier(self, transcripts: list[Transcript]) -> int:
        """Put stored generations (oldest first) above this session's, skipping any already listed."""
        listed = {item.transcript.id for item in self.query(HistoryItem) if item.transcript.id}
        fresh = [t for t in transcripts if t.id not in listed]
        if fresh:
            self.insert(0, [HistoryItem(t) for t in fresh])
        return len(fresh)

    def update_item(self, transcript: Transcript) -> None:
        for item in self.query(HistoryItem):
            if item.transcript is transcript:
                item.refresh_label()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, HistoryItem):
            self.post_message(self.Open(event.item.transcript))
