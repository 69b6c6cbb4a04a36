"""One generation as the TUI keeps it: the request, its tokens, how it ended. A conversation
(tui/conversation.py) is a list of these, one per assistant turn."""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Optional

from tokint_local.events import GenerationRequest, Summary, TokenEvent


def channel_of(token: TokenEvent) -> str:
    """"thinking" or "answer": where in the response the token lies (tokens from a daemon that does not say are answer)."""
    return getattr(token, "channel", None) or "answer"


@dataclass(eq=False)
class Transcript:
    request: GenerationRequest
    id: str = ""
    tokens: list[TokenEvent] = field(default_factory=list)
    summary: Optional[Summary] = None
    state: str = "waiting"  # waiting, loading pair, queued (N), running, done, cancelled, shutdown, failed, recorded
    error: Optional[str] = None
    created: float = field(default_factory=time.time)
    # an earlier turn known only as text (quoted by a later turn's request; its tokens are not in the history read)
    reply_text: Optional[str] = None
    _takeover_count: tuple[int, int, int] = field(default=(0, 0, 0), repr=False)

    @property
    def text(self) -> str:
        """The response as the next turn sends it back: thinking and answer, as they came."""
        if self.reply_text is not None:
            return self.reply_text
        return "".join(t.text for t in self.tokens)

    @property
    def user_text(self) -> str:
        """The message this response answers."""
        return self.request.user_text

    @property
    def system(self) -> str:
        """The system prompt this turn was sent with ("" for none)."""
        first = self.request.as_messages()[0]
        return first.content if first.role == "system" else ""

    def _count_takeovers(self) -> tuple[int, int]:
        """Takeovers so far, and those inside thinking; counted incrementally, since tokens are only ever appended."""
        if self.request.mode != "intervene":
            return 0, 0
        seen, count, thinking = self._takeover_count
        for t in self.tokens[seen:]:
            if t.source == "reasoning":
                count += 1
                thinking += channel_of(t) == "thinking"
        self._takeover_count = (len(self.tokens), count, thinking)
        return count, thinking

    @property
    def takeovers(self) -> int:
        return self._count_takeovers()[0]

    @property
    def thinking_takeovers(self) -> int:
        """Takeovers inside the thinking segment."""
        return self._count_takeovers()[1]

    @property
    def running(self) -> bool:
        return self.summary is None and self.error is None and self.state not in ("cancelled", "recorded")

    @property
    def tokens_per_second(self) -> float:
        if self.summary is not None:
            return self.summary.tokens_per_second
        if len(self.tokens) < 2:
            return 0.0
        span = self.tokens[-1].t - self.tokens[0].t
        return (len(self.tokens) - 1) / span if span > 0 else 0.0

    @property
    def elapsed(self) -> float:
        if self.summary is not None:
            return self.summary.elapsed_s
        return self.tokens[-1].t if self.tokens else 0.0

    @classmethod
    def from_record(cls, record: dict) -> "Transcript":
        """A generation as the history store keeps it (tokint_local.history.show_generation)."""
        summary = Summary.from_wire(record["summary"]) if record.get("summary") else None
        if record["state"] == "done" and summary is not None:
            state = "done" if summary.finish_reason in ("stop", "length") else summary.finish_reason
        else:
            state = record["state"]  # incomplete (cut off by a daemon that died), failed, running
        return cls(request=GenerationRequest.from_wire(record["request"]), id=record["id"],
                   tokens=[TokenEvent.from_wire(t) for t in record["tokens"]], summary=summary, state=state,
                   error=record.get("error"), created=record["created"])

    def title(self, width: int = 40) -> str:
        first = " ".join(self.user_text.split())
        return (first[: width - 1] + "…") if len(first) > width else first

    def settings_line(self) -> str:
        r = self.request
        budget = "unlimited" if r.budget is None else str(r.budget)
        line = (f"pair: {r.pair or '(default)'}; mode: {r.mode}; divergence: {r.divergence}; threshold: {r.threshold}; "
                f"budget: {budget}; temperature: {r.temperature}; max tokens: {r.max_tokens}; "
                f"seed: {self.summary.seed if self.summary else r.seed}")
        if r.chat_template_kwargs:
            line += "; template: " + ", ".join(f"{k}={v!r}" for k, v in r.chat_template_kwargs.items())
        return line

    def outcome_line(self) -> str:
        if self.summary is None:
            return f"{len(self.tokens)} tokens; {self.error or self.state}"
        s = self.summary
        return (f"{s.n_tokens} tokens, {s.n_takeovers} takeovers at {list(s.takeover_positions)}; "
                f"{s.tokens_per_second:.1f} tok/s; finish: {s.finish_reason}")

    def markdown_reply(self) -> str:
        """The response in Markdown: the thinking segment quoted, takeovers in bold."""
        if self.reply_text is not None or not self.tokens:
            return self.text
        intervene = self.request.mode == "intervene"
        parts: dict[str, list[tuple[str, bool]]] = {"thinking": [], "answer": []}  # runs of (text, taken over)
        for t in self.tokens:
            runs = parts[channel_of(t)]
            taken = intervene and t.source == "reasoning"
            if runs and runs[-1][1] == taken:
                runs[-1] = (runs[-1][0] + t.text, taken)
            else:
                runs.append((t.text, taken))
        thinking, answer = ("".join(f"**{text}**" if taken and text.strip() else text for text, taken in parts[c])
                            for c in ("thinking", "answer"))
        if not thinking:
            return answer
        quoted = "\n".join("> " + line for line in thinking.strip("\n").split("\n"))
        n = sum(channel_of(t) == "thinking" for t in self.tokens)
        return f"> *thinking ({n} tokens)*\n>\n{quoted}\n\n" + answer.lstrip("\n")

    def to_json(self) -> dict:
        return {
            "id": self.id,
            "request": self.request.to_wire(),
            "state": self.state,
            "error": self.error,
            "created": self.created,
            "tokens": [t.to_wire() for t in self.tokens],
            "summary": self.summary.to_wire() if self.summary else None,
            **({"reply_text": self.reply_text} if self.reply_text is not None else {}),
        }
