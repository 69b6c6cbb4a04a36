"""A conversation as the TUI keeps it: its turns (one Transcript per assistant turn, in order), the
messages the next turn sends, its exports, and conversations rebuilt from the daemon's history."""
from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Optional

from tokint_local.events import ChatMessage

from .transcript import Transcript


def new_conversation_id() -> str:
    return uuid.uuid4().hex


@dataclass(eq=False)
class Conversation:
    id: str = field(default_factory=new_conversation_id)  # the request's conversation_id: names it in the history
    turns: list[Transcript] = field(default_factory=list)
    created: float = field(default_factory=time.time)

    @property
    def last(self) -> Optional[Transcript]:
        return self.turns[-1] if self.turns else None

    @property
    def system(self) -> str:
        """The system prompt the latest turn was sent with."""
        return self.turns[-1].system if self.turns else ""

    def messages(self, user_text: str, system: str = "", upto: Optional[int] = None) -> tuple[ChatMessage, ...]:
        """The conversation so far (the first ``upto`` turns, all by default) and ``user_text`` after it.

        Earlier responses go back as they came, thinking included: each model's chat template decides
        what of them it shows (Qwen3's drops earlier thinking)."""
        out = [ChatMessage("system", system)] if system else []
        for t in self.turns[:upto]:
            out += [ChatMessage("user", t.user_text), ChatMessage("assistant", t.text)]
        out.append(ChatMessage("user", user_text))
        return tuple(out)

    def title(self, width: int = 40) -> str:
        return self.turns[0].title(width) if self.turns else "(new conversation)"

    # -- exports ---------------------------------------------------------------------------
    def to_json(self) -> dict:
        """The format of ``tokint chat``'s /save (``tokint-conversation``; /load and ``tokint_local.conversation``
        read it), each turn also holding the request it was sent with, its state and every token."""
        last = self.last.request if self.last else None
        return {"format": "tokint-conversation", "version": 1, "id": self.id, "pair": last.pair if last else None,
                "system": self.system, "created": self.created,
                "messages": [m.to_wire() for m in self.messages("", self.system)[:-1]],
                "turns": [{"user": t.user_text, "response": t.text, "generation_id": t.id or None, **t.to_json()}
                          for t in self.turns]}

    def to_markdown(self) -> str:
        lines = [f"# tokint: {self.title(60)}", "",
                 f"- conversation {self.id}; {len(self.turns)} turn{'s' if len(self.turns) != 1 else ''}",
                 "- tokens the reasoning model took over are in **bold**; a thinking segment is quoted", ""]
        system = ""
        for k, t in enumerate(self.turns, 1):
            if t.system != system:
                system = t.system
                lines += [f"## System{f' (from turn {k})' if k > 1 else ''}", "", system or "(none)", ""]
            lines += [f"## Turn {k}", "", f"- {t.settings_line()}", f"- {t.outcome_line()}", "",
                      "### You", "", t.user_text, "", "### Response", "", t.markdown_reply(), ""]
        return "\n".join(lines)

    def save(self, folder: Path, fmt: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.created))
        path = folder / f"tokint-{stamp}-{self.id[:8]}.{'md' if fmt == 'markdown' else 'json'}"
        body = self.to_markdown() if fmt == "markdown" else json.dumps(self.to_json(), indent=2, ensure_ascii=False)
        path.write_text(body, encoding="utf-8")
        return path


def _turn_index(t: Transcript) -> int:
    return sum(m.role == "user" for m in t.request.as_messages()) - 1


def conversation_of(generations: list[Transcript]) -> Conversation:
    """One conversation from its recorded generations (any order): the latest one's request holds the
    conversation up to it; each earlier turn is the latest generation that answered it with that text
    (an edited and resent turn replaces the one before), or, where none was read, that text alone."""
    generations = sorted(generations, key=lambda t: t.created)
    last = generations[-1]
    before = last.request.as_messages()[:-1]
    turns: list[Transcript] = []
    user: Optional[str] = None
    for n, m in enumerate(before):
        if m.role == "user":
            user = m.content
        elif m.role == "assistant":
            k = len(turns)
            found = [g for g in generations[:-1] if _turn_index(g) == k and g.user_text == (user or "") and g.text == m.content]
            if found:
                turns.append(found[-1])
            else:
                asked = before[:n] if n and before[n - 1].role == "user" else (*before[:n], ChatMessage("user", ""))
                request = replace(last.request, messages=asked, prompt=None)
                turns.append(Transcript(request, reply_text=m.content, state="recorded", created=last.created))
            user = None
    turns.append(last)
    return Conversation(id=last.request.conversation_id or new_conversation_id(), turns=turns, created=turns[0].created)


def conversations_from(generations: list[Transcript]) -> list[Conversation]:
    """Recorded generations grouped into conversations by their conversation_id (one without is a
    conversation of its own), ordered by their latest turn, oldest first."""
    groups: dict[str, list[Transcript]] = {}
    for g in generations:
        groups.setdefault(g.request.conversation_id or f"generation:{g.id}", []).append(g)
    conversations = [conversation_of(group) for group in groups.values()]
    return sorted(conversations, key=lambda c: c.turns[-1].created)
