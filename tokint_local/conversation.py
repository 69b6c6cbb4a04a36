"""A conversation kept by a client: the system prompt, the turns so far, and the id the daemon's history
files it under. The daemon keeps no conversation state: each turn sends the whole conversation
(``client.chat``), and the daemon's KV caches make that cheap.

    conversation = Conversation(system="Answer briefly.", pair="qwen2.5-coder")
    with Client() as client:
        for event in conversation.send(client, "What is a monad?"):
            ...                                   # the stream of client.chat, recorded as it goes
        for event in conversation.send(client, "Shorter, please."):
            ...
    conversation.turns[-1].answer                 # the response without its thinking segment

``send_async`` does the same with an AsyncClient. A turn joins the conversation when its summary
arrives: a turn that failed (an error) does not, a cancelled one does with what was written (unless
nothing was). ``to_json`` / ``from_json`` save and load it; ``from_history`` reopens one the daemon
recorded.
"""
from __future__ import annotations

import json
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, AsyncIterator, Iterator, Optional, Union

from .errors import InvalidParameter
from .events import ROLES, ChatMessage, GenerationRequest, StreamEvent, Summary, TokenEvent

FORMAT = "tokint-conversation"
FORMAT_VERSION = 1


@dataclass
class Turn:
    """One exchange: what the person said and what the pair wrote (thinking included, as streamed)."""

    user: str
    response: str = ""
    tokens: list[TokenEvent] = field(default_factory=list)  # empty for turns loaded from a file
    summary: Optional[Summary] = None
    generation_id: Optional[str] = None

    @property
    def thinking(self) -> str:
        """The response's thinking segment (markers included), from the token events' channel."""
        return "".join(t.text for t in self.tokens if t.channel == "thinking")

    @property
    def answer(self) -> str:
        """The response without its thinking segment (all of it for turns without token events)."""
        return "".join(t.text for t in self.tokens if t.channel == "answer") if self.tokens else self.response

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"user": self.user, "response": self.response, "generation_id": self.generation_id}
        if self.summary is not None:
            out["summary"] = self.summary.to_wire()
        if self.tokens:
            out["tokens"] = [t.to_wire() for t in self.tokens]
        return out

    @classmethod
    def from_json(cls, body: dict[str, Any]) -> "Turn":
        summary = body.get("summary")
        return cls(user=body["user"], response=body.get("response", ""),
                   tokens=[TokenEvent.from_wire(t) for t in body.get("tokens", [])],
                   summary=Summary.from_wire(summary) if summary else None, generation_id=body.get("generation_id"))


class Conversation:
    """A chat on the client side. ``settings`` are generation parameters (threshold, budget, mode, ...)
    sent with every turn; ``send``'s own parameters override them for one turn."""

    def __init__(self, system: str = "", pair: Optional[str] = None, settings: Optional[dict[str, Any]] = None,
                 id: Optional[str] = None, turns: Optional[list[Turn]] = None):
        self.system = system
        self.pair = pair
        self.settings: dict[str, Any] = dict(settings or {})
        self.id = id or uuid.uuid4().hex
        self.turns: list[Turn] = list(turns or [])

    def messages(self, next_user: Optional[str] = None) -> list[ChatMessage]:
        """The conversation as messages (the system prompt, then each turn), with ``next_user`` appended."""
        out = [ChatMessage("system", self.system)] if self.system else []
        for turn in self.turns:
            out += [ChatMessage("user", turn.user), ChatMessage("assistant", turn.response)]
        if next_user is not None:
            out.append(ChatMessage("user", next_user))
        return out

    def request(self, text: str, **params: Any) -> GenerationRequest:
        """The request for the next turn (checked: bad settings raise InvalidParameter)."""
        return GenerationRequest(messages=tuple(self.messages(text)), pair=self.pair, conversation_id=self.id,
                                 **{**self.settings, **params})

    def reset(self) -> None:
        """Start over: no turns, a new id; the system prompt, pair and settings stay."""
        self.turns = []
        self.id = uuid.uuid4().hex

    def send(self, client: Any, text: str, **params: Any) -> "TurnStream":
        """Ask ``text`` through a blocking Client; iterate the result for the events (cancel() stops it)."""
        fields = self._fields(text, params)
        return TurnStream(self, Turn(user=text), client.chat(**fields))

    def send_async(self, client: Any, text: str, **params: Any) -> "AsyncTurnStream":
        """Ask ``text`` through an AsyncClient; ``async for`` the result (``await cancel()`` stops it)."""
        fields = self._fields(text, params)
        return AsyncTurnStream(self, Turn(user=text), client.chat(**fields))

    def _fields(self, text: str, params: dict[str, Any]) -> dict[str, Any]:
        self.request(text, **params)  # bad values fail here, before anything is sent
        return {"messages": self.messages(text), "pair": self.pair, "conversation_id": self.id, **self.settings, **params}

    def _record(self, turn: Turn, event: StreamEvent, stream_id: str) -> None:
        if isinstance(event, TokenEvent):
            turn.tokens.append(event)
            turn.response += event.text
        elif isinstance(event, Summary):
            turn.summary, turn.generation_id = event, stream_id
            if turn.tokens:
                self.turns.append(turn)

    # -- files -----------------------------------------------------------------------------
    def to_json(self) -> dict[str, Any]:
        """Everything, every turn: the format /save writes (``messages`` is the plain conversation)."""
        return {"format": FORMAT, "version": FORMAT_VERSION, "id": self.id, "pair": self.pair, "system": self.system,
                "settings": self.settings, "messages": [m.to_wire() for m in self.messages()],
                "turns": [t.to_json() for t in self.turns]}

    @classmethod
    def from_json(cls, body: Any) -> "Conversation":
        """A conversation from ``to_json``'s format, or from a plain list of {role, content} messages."""
        if isinstance(body, dict) and body.get("format") == FORMAT:
            return cls(system=body.get("system") or "", pair=body.get("pair"), settings=body.get("settings") or {},
                       id=body.get("id"), turns=[Turn.from_json(t) for t in body.get("turns", [])])
        messages = body.get("messages") if isinstance(body, dict) else body
        return cls.from_messages(messages)

    @classmethod
    def from_messages(cls, messages: Any) -> "Conversation":
        """Turns from messages: a system message first (optional), then user and assistant in turn."""
        if not isinstance(messages, list):
            raise InvalidParameter("a conversation file holds a list of {role, content} messages")
        said = [ChatMessage.of(m, f"messages[{i}]") for i, m in enumerate(messages)]
        system = said.pop(0).content if said and said[0].role == "system" else ""
        turns: list[Turn] = []
        for i, m in enumerate(said):
            expected = ("user", "assistant")[i % 2]
            if m.role != expected:
                raise InvalidParameter(f"messages: expected a {expected} message at {i + bool(system)}, got {m.role!r}"
                                       " (a conversation alternates user and assistant after the system prompt)")
            if m.role == "user":
                turns.append(Turn(user=m.content))
            else:
                turns[-1].response = m.content
        if turns and said[-1].role == "user":
            raise InvalidParameter("messages: the conversation ends with an unanswered user message")
        return cls(system=system, turns=turns)

    def save(self, path: Union[str, Path]) -> Path:
        path = Path(path).expanduser()
        path.write_text(json.dumps(self.to_json(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        return path

    @classmethod
    def load(cls, path: Union[str, Path]) -> "Conversation":
        try:
            body = json.loads(Path(path).expanduser().read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InvalidParameter(f"cannot read a conversation from {path}: {exc}") from None
        return cls.from_json(body)


class TurnStream:
    """One turn's events (client.chat's stream), recorded into its conversation as they come."""

    def __init__(self, conversation: Conversation, turn: Turn, stream: Any):
        self.conversation, self.turn, self.stream = conversation, turn, stream
        self.id = stream.id

    def __iter__(self) -> Iterator[StreamEvent]:
        for event in self.stream:
            self.conversation._record(self.turn, event, self.id)
            yield event

    def cancel(self) -> None:
        """Stop the answer; the stream then ends with a summary (finish reason cancelled)."""
        self.stream.cancel()


class AsyncTurnStream:
    def __init__(self, conversation: Conversation, turn: Turn, stream: Any):
        self.conversation, self.turn, self.stream = conversation, turn, stream
        self.id = stream.id

    async def __aiter__(self) -> AsyncIterator[StreamEvent]:
        async for event in self.stream:
            self.conversation._record(self.turn, event, self.id)
            yield event

    async def cancel(self) -> None:
        await self.stream.cancel()


__all__ = ["Conversation", "Turn", "TurnStream", "AsyncTurnStream", "ROLES"]
