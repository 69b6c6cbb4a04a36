"""One generation as the TUI keeps it: the request, its tokens, how it ended; and its exports."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from tokint_local.events import GenerationRequest, Summary, TokenEvent


@dataclass(eq=False)
class Transcript:
    request: GenerationRequest
    id: str = ""
    tokens: list[TokenEvent] = field(default_factory=list)
    summary: Optional[Summary] = None
    state: str = "waiting"  # waiting, loading pair, queued (N), running, done, cancelled, shutdown, failed
    error: Optional[str] = None
    created: float = field(default_factory=time.time)
    _takeover_count: tuple[int, int] = field(default=(0, 0), repr=False)

    @property
    def text(self) -> str:
        return "".join(t.text for t in self.tokens)

    @property
    def takeovers(self) -> int:
        """Takeovers so far; counted incrementally, since tokens are only ever appended."""
        if self.request.mode != "intervene":
            return 0
        seen, count = self._takeover_count
        for t in self.tokens[seen:]:
            count += t.source == "reasoning"
        self._takeover_count = (len(self.tokens), count)
        return count

    @property
    def running(self) -> bool:
        return self.summary is None and self.error is None and self.state != "cancelled"

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
        first = " ".join(self.request.prompt.split())
        return (first[: width - 1] + "…") if len(first) > width else first

    def to_json(self) -> dict:
        return {
            "request": self.request.to_wire(),
            "state": self.state,
            "error": self.error,
            "created": self.created,
            "tokens": [t.to_wire() for t in self.tokens],
            "summary": self.summary.to_wire() if self.summary else None,
        }

    def to_markdown(self) -> str:
        r = self.request
        budget = "unlimited" if r.budget is None else str(r.budget)
        lines = [
            f"# tokint: {self.title(60)}",
            "",
            f"- pair: {r.pair or '(default)'}; mode: {r.mode}; divergence: {r.divergence}; threshold: {r.threshold}; budget: {budget}",
            f"- temperature: {r.temperature}; max tokens: {r.max_tokens}; seed: {self.summary.seed if self.summary else r.seed}",
        ]
        if self.summary is not None:
            s = self.summary
            lines.append(f"- {s.n_tokens} tokens, {s.n_takeovers} takeovers at {list(s.takeover_positions)}; "
                         f"{s.tokens_per_second:.1f} tok/s; finish: {s.finish_reason}")
        lines += ["", "## Prompt", "", r.prompt, "", "## Response", "",
                  "Tokens the reasoning model took over are in **bold**.", ""]
        out = []
        for t in self.tokens:
            out.append(f"**{t.text}**" if t.source == "reasoning" and r.mode == "intervene" and t.text.strip() else t.text)
        lines.append("".join(out))
        return "\n".join(lines) + "\n"

    def save(self, folder: Path, fmt: str) -> Path:
        folder.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(self.created))
        path = folder / f"tokint-{stamp}-{(self.id or 'local')[:8]}.{'md' if fmt == 'markdown' else 'json'}"
        body = self.to_markdown() if fmt == "markdown" else json.dumps(self.to_json(), indent=2, ensure_ascii=False)
        path.write_text(body, encoding="utf-8")
        return path
