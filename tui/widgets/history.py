"""Conversations: the recent ones from the daemon's history store, then this session's; selecting one
reopens it, and the next prompt continues it."""
from __future__ import annotations

from textual.message import Message
from textual.widgets import Label, ListItem, ListView

from ..conversation import Conversation
from ..plain import plain


class HistoryItem(ListItem):
    def __init__(self, conversation: Conversation) -> None:
        super().__init__(Label(plain(self.describe(conversation))))
        self.conversation = conversation

    @staticmethod
    def describe(c: Conversation) -> str:
        last = c.last
        if last is None:
            return "(new conversation)"
        turns = f"{len(c.turns)} turns · " if len(c.turns) > 1 else ""
        return f"[{last.request.mode[:3]}] {c.title(22)} · {turns}{len(last.tokens)}t {last.state}"

    def refresh_label(self) -> None:
        self.query_one(Label).update(plain(self.describe(self.conversation)))


class HistoryList(ListView):
    class Open(Message):
        def __init__(self, conversation: Conversation) -> None:
            super().__init__()
            self.conversation = conversation

    def add(self, conversation: Conversation) -> None:
        self.append(HistoryItem(conversation))

    def add_earlier(self, conversations: list[Conversation]) -> int:
        """Put stored conversations (oldest first) above this session's, skipping any already listed."""
        listed = {item.conversation.id for item in self.query(HistoryItem)}
        fresh = [c for c in conversations if c.id not in listed]
        if fresh:
            self.insert(0, [HistoryItem(c) for c in fresh])
        return len(fresh)

    def update_item(self, conversation: Conversation) -> None:
        """Relabel ``conversation``'s item, listing it if it is not listed yet."""
        for item in self.query(HistoryItem):
            if item.conversation is conversation:
                item.refresh_label()
                return
        self.add(conversation)

    def forget(self, conversation: Conversation) -> None:
        """Take ``conversation`` off the list (it has no turns left)."""
        for item in self.query(HistoryItem):
            if item.conversation is conversation:
                item.remove()

    def on_list_view_selected(self, event: ListView.Selected) -> None:
        event.stop()
        if isinstance(event.item, HistoryItem):
            self.post_message(self.Open(event.item.conversation))
