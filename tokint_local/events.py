"""Types that cross a boundary: the events a generation streams (queued, loading, started, each
token, the summary). The request's types are in request.py and importable from here too.

Frozen dataclasses with ``to_wire()`` / ``from_wire()`` beside them; nothing else builds these
dicts. An event's ``from_wire`` reads what the daemon (or the history store) wrote: it ignores
unknown fields and gives a missing one its default (a version-1 daemon's token has no
``channel``), checking nothing else. Requests, which come from clients, are checked field by field
(request.py: ``InvalidParameter`` naming the field).
"""
from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any, Optional, Union

from .request import (  # noqa: F401  (re-exported: the request's types were here first)
    CHANNELS, CONTROL_THRESHOLDS, DEFAULT_MAX_TOKENS, DEFAULT_THRESHOLD, FINISH_REASONS, MAX_BLOCK_SIZE, MAX_ID_CHARS,
    MAX_RETURN_TOP, MAX_STOP_STRINGS, MODES, RESERVED_TEMPLATE_NAMES, ROLES, SCHEDULES, SOURCES, ChatMessage,
    GenerationRequest, check_template_kwargs, with_pair_defaults,
)


@dataclass(frozen=True)
class TokenEvent:
    """One response token and where it came from."""

    position: int  # 0-based index in the response
    token_id: int
    text: str  # may be empty when the token ends inside a multi-byte character
    source: str  # "base" or "reasoning"
    divergence: Optional[float]  # None where the reasoning model did not run
    base_entropy: Optional[float]  # None where the base model did not run
    budget_left: Optional[int]  # None: unlimited
    t: float  # seconds since the generation began
    # with return_top: {"base": [(token_id, text, probability), ...], "reasoning": [...]}, best first,
    # for the models that ran at this position
    top_k: Optional[dict[str, list[tuple[int, str, float]]]] = None
    channel: str = "answer"  # "thinking": inside the response's thinking segment (markers included)
    # with logprobs (or return_top): log-probability of this token under the model that wrote it
    logprob: Optional[float] = None

    type = "token"

    def to_wire(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        if self.logprob is None:
            del out["logprob"]
        if self.top_k is None:
            del out["top_k"]
        else:
            out["top_k"] = {role: [list(c) for c in cands] for role, cands in self.top_k.items()}
        out["type"] = self.type
        return out

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "TokenEvent":
        kwargs = {f.name: body.get(f.name) for f in fields(cls)}
        kwargs["channel"] = body.get("channel") or "answer"  # a version-1 daemon sends none
        top = kwargs.get("top_k")
        if isinstance(top, dict):
            kwargs["top_k"] = {role: [tuple(c) for c in cands] for role, cands in top.items()}
        return cls(**kwargs)



@dataclass(frozen=True)
class Summary:
    """How a generation ended."""

    n_tokens: int
    n_takeovers: int
    takeover_positions: tuple[int, ...]
    finish_reason: str
    tokens_per_second: float  # response tokens over decode time (prompt processing excluded)
    elapsed_s: float  # the whole generation, prompt processing included
    time_to_first_token_s: Optional[float] = None
    seed: Optional[int] = None
    prompt_tokens: dict[str, int] = field(default_factory=dict)  # per model role
    cached_tokens: dict[str, int] = field(default_factory=dict)  # per model role: prompt tokens reused from its KV cache
    tokens_by_channel: dict[str, int] = field(default_factory=dict)  # "thinking" / "answer": response tokens in each
    takeovers_by_channel: dict[str, int] = field(default_factory=dict)  # takeovers inside the thinking and the answer

    type = "summary"

    def to_wire(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["takeover_positions"] = list(self.takeover_positions)
        out["type"] = self.type
        return out

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "Summary":
        kwargs = {f.name: body[f.name] for f in fields(cls) if f.name in body}
        kwargs["takeover_positions"] = tuple(kwargs.get("takeover_positions", ()))
        return cls(**kwargs)


@dataclass(frozen=True)
class Queued:
    """The daemon holds the request behind others for the same pair; ``place`` 1 is next."""

    place: int

    type = "queued"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "place": self.place}

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "Queued":
        return cls(place=body.get("place", 0))


@dataclass(frozen=True)
class Loading:
    """The daemon is loading the pair's models before it can start (first use only)."""

    pair: str

    type = "loading"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "pair": self.pair}

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "Loading":
        return cls(pair=body.get("pair", ""))


@dataclass(frozen=True)
class Started:
    """The daemon began the generation (models loaded, prompt accepted)."""

    pair: str
    mode: str
    waited_s: float  # time spent queued and loading before the first token

    type = "started"

    def to_wire(self) -> dict[str, Any]:
        return {"type": self.type, "pair": self.pair, "mode": self.mode, "waited_s": self.waited_s}

    @classmethod
    def from_wire(cls, body: dict[str, Any]) -> "Started":
        return cls(pair=body.get("pair", ""), mode=body.get("mode", ""), waited_s=body.get("waited_s", 0.0))


Event = Union[TokenEvent, Summary]
StreamEvent = Union[Queued, Loading, Started, TokenEvent, Summary]
STREAM_TYPES = {cls.type: cls for cls in (Queued, Loading, Started, TokenEvent, Summary)}


def stream_event_from_wire(mtype: str, body: dict[str, Any]) -> Optional[StreamEvent]:
    """A streamed event from its wire type and content; None for a type this side does not know."""
    cls = STREAM_TYPES.get(mtype)
    return cls.from_wire(body) if cls is not None else None
