"""What a client asks for: a generation request (GenerationRequest), a chat message, and the rules
that check them; the events a generation streams back are in events.py.

Frozen dataclasses with ``to_wire()`` / ``from_wire()`` beside them; nothing else builds these
dicts. ``from_wire`` ignores unknown fields and turns a missing, mistyped or out-of-range field
into ``InvalidParameter`` naming the field.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any, Optional

from .divergence import DIVERGENCES
from .errors import InvalidParameter
from .gate import GATES, PROBABILITY_GATES

MODES = ("base", "reasoning", "intervene")
SCHEDULES = ("lockstep", "block")
MAX_BLOCK_SIZE = 64
SOURCES = ("base", "reasoning")
FINISH_REASONS = ("stop", "length", "cancelled", "shutdown")
DEFAULT_THRESHOLD = 1.0
DEFAULT_MAX_TOKENS = 256
MAX_STOP_STRINGS = 16
MAX_RETURN_TOP = 20
ROLES = ("system", "user", "assistant")
CHANNELS = ("thinking", "answer")
MAX_ID_CHARS = 128
# names a chat template is always given by tokint; chat_template_kwargs may not replace them
RESERVED_TEMPLATE_NAMES = ("messages", "add_generation_prompt", "bos_token", "eos_token", "tools", "documents")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, (int, float))) and not isinstance(v, bool)


def _check_text(name: str, value: Any) -> None:
    """A string that cannot be UTF-8 (it holds a lone surrogate) is not text: InvalidParameter, not a crash later."""
    if isinstance(value, str):
        try:
            value.encode("utf-8")
        except UnicodeEncodeError as exc:
            raise InvalidParameter(
                f"{name}: not valid text: a lone surrogate U+{ord(value[exc.start]):04X} at index {exc.start} "
                "(decode bytes with errors='replace' first)"
            ) from None


def _plain_value(value: Any, depth: int = 0) -> bool:
    """A value a chat template may be given: text, numbers, booleans, null, and lists and maps of them."""
    if depth > 8:
        return False
    if value is None or isinstance(value, (str, bool, int, float)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain_value(v, depth + 1) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain_value(v, depth + 1) for k, v in value.items())
    return False


CONTROL_THRESHOLDS = {"entropy": "the base model's entropy in nats at or above which it takes over",
                      "top1": "the base model's top-1 probability below which it takes over",
                      "random": "the probability of a takeover at each position"}


def with_pair_defaults(defaults: dict[str, Any], given: dict[str, Any]) -> dict[str, Any]:
    """A request's fields: those ``given`` over its pair's ``defaults`` (models.toml).

    A control gate's threshold is in a unit of its own (CONTROL_THRESHOLDS) while a pair's default
    threshold, and DEFAULT_THRESHOLD, are divergences: an intervene request with a control gate must
    give its threshold. InvalidParameter if it does not."""
    gate, mode = given.get("gate"), given.get("mode", defaults.get("mode", "intervene"))
    if gate in CONTROL_THRESHOLDS and given.get("threshold") is None and mode == "intervene":
        raise InvalidParameter(f"threshold: the {gate} gate needs one of its own ({CONTROL_THRESHOLDS[gate]}); the "
                               f"default is a divergence's. `tokint calibrate --gate {gate} --rate R` finds the one "
                               "for a takeover rate R")
    return {**defaults, **given}


# the request fields a command line sets with a flag of the same name (max_tokens: --max-tokens)
FLAG_FIELDS = ("mode", "divergence", "threshold", "budget", "max_position", "min_base_entropy", "max_tokens",
               "temperature", "top_k", "top_p", "seed", "stop", "raw", "return_top", "schedule", "block_size", "gate")


def flag(name: str) -> str:
    """The command-line flag that sets the request field ``name``: ``max_tokens`` -> ``--max-tokens``."""
    return "--" + name.replace("_", "-")


def from_flags(fields: dict[str, Any], defaults: Optional[dict[str, Any]] = None) -> "GenerationRequest":
    """The request a command line's ``fields`` make (over its pair's ``defaults`` where given, as
    with_pair_defaults), checked before any model loads. Where a field is bad the InvalidParameter
    names the command-line flag (``--max-tokens: ...``), not the wire field (``max_tokens: ...``)."""
    try:
        return GenerationRequest(**(fields if defaults is None else with_pair_defaults(defaults, fields)))
    except InvalidParameter as exc:
        name, sep, why = str(exc).partition(": ")
        if sep and name in FLAG_FIELDS:
            raise InvalidParameter(f"{flag(name)}: {why}") from None
        raise


def check_template_kwargs(name: str, value: Any) -> dict[str, Any]:
    """``value`` as chat-template keyword arguments, or InvalidParameter naming ``name``."""
    if not isinstance(value, dict):
        raise InvalidParameter(f"{name}: must be a map of names to plain values, e.g. {{enable_thinking: false}} (got {value!r})")
    for key, item in value.items():
        if not isinstance(key, str) or not key.isidentifier():
            raise InvalidParameter(f"{name}: {key!r} is not a name a template can use")
        if key in RESERVED_TEMPLATE_NAMES:
            raise InvalidParameter(f"{name}: {key!r} is set by tokint itself and cannot be given")
        if not _plain_value(item):
            raise InvalidParameter(f"{name}.{key}: must be text, a number, true/false, null, or a list or map of those")
        _check_text(f"{name}.{key}", item if isinstance(item, str) else None)
    return dict(value)


@dataclass(frozen=True)
class ChatMessage:
    """One message of a conversation. An assistant message holds the response as it was written,
    its thinking segment included: each model's chat template decides what of it the next turn sees."""

    role: str  # "system", "user" or "assistant"
    content: str

    def to_wire(self) -> dict[str, Any]:
        return {"role": self.role, "content": self.content}

    @classmethod
    def of(cls, value: Any, where: str = "messages[0]") -> "ChatMessage":
        """A ChatMessage from one, or from a map {role, content}; InvalidParameter naming ``where``."""
        if isinstance(value, ChatMessage):
            return value
        if not isinstance(value, dict):
            raise InvalidParameter(f"{where}: must be a map with role and content (got {value!r})")
        role, content = value.get("role"), value.get("content")
        if role not in ROLES:
            raise InvalidParameter(f"{where}.role: must be one of {', '.join(ROLES)} (got {role!r})")
        if not isinstance(content, str):
            raise InvalidParameter(f"{where}.content: must be a string (got {content!r})")
        _check_text(f"{where}.content", content)
        return cls(role, content)


@dataclass(frozen=True)
class GenerationRequest:
    """Everything that decides one generation. Validated on construction.

    The input is ``prompt`` (one user message) or ``messages`` (a conversation), exactly one of them.
    """

    prompt: Optional[str] = None
    pair: Optional[str] = None  # None: the default pair
    mode: str = "intervene"
    divergence: str = "kl"
    threshold: float = DEFAULT_THRESHOLD
    budget: Optional[int] = None  # None: unlimited takeovers
    max_tokens: int = DEFAULT_MAX_TOKENS
    temperature: float = 0.0
    top_k: int = 0
    top_p: float = 1.0
    seed: Optional[int] = None  # None: a fresh seed, reported in the summary
    stop: tuple[str, ...] = ()
    raw: bool = False  # True: the prompt goes in as plain text, without the chat template
    max_position: Optional[int] = None  # takeovers only before this response position
    min_base_entropy: Optional[float] = None  # takeovers only where base entropy (nats) >= this
    schedule: str = "block"  # "lockstep": both models one token at a time (the reference)
    return_top: int = 0  # > 0: each token event carries both models' top candidates (top_k)
    logprobs: bool = False  # True: each token event carries its log-probability under the model that wrote it
    block_size: Optional[int] = None  # block schedule: draft length; None adapts it
    # a conversation: system/user/assistant messages, ending with the user's; None when ``prompt`` is given
    messages: Optional[tuple[ChatMessage, ...]] = None
    # handed to each model's chat template (merged over the model's own from models.toml), e.g. enable_thinking
    chat_template_kwargs: dict[str, Any] = field(default_factory=dict)
    # reuse the longest prefix of the prompt the KV caches hold; None: yes for messages, no for a prompt
    reuse_prefix: Optional[bool] = None
    conversation_id: Optional[str] = None  # names the conversation in the history (the client chooses it)
    gate: str = "divergence"  # the takeover rule (gate.py); controls: entropy, top1, random

    def __post_init__(self) -> None:
        if isinstance(self.stop, list):
            object.__setattr__(self, "stop", tuple(self.stop))
        if isinstance(self.messages, (list, tuple)):
            object.__setattr__(self, "messages", tuple(ChatMessage.of(m, f"messages[{i}]") for i, m in enumerate(self.messages)))
        if self.chat_template_kwargs is None:
            object.__setattr__(self, "chat_template_kwargs", {})
        object.__setattr__(self, "chat_template_kwargs", check_template_kwargs("chat_template_kwargs", self.chat_template_kwargs))
        if _is_int(self.threshold):
            object.__setattr__(self, "threshold", float(self.threshold))
        for name in ("temperature", "top_p", "min_base_entropy"):
            if _is_int(getattr(self, name)):
                object.__setattr__(self, name, float(getattr(self, name)))
        self._validate()

    def _validate(self) -> None:
        def bad(name: str, why: str) -> InvalidParameter:
            return InvalidParameter(f"{name}: {why} (got {getattr(self, name)!r})")

        if (self.prompt is None) == (self.messages is None):
            raise InvalidParameter("prompt or messages: give exactly one of them (a prompt is a one-message conversation)")
        if self.prompt is not None and not isinstance(self.prompt, str):
            raise bad("prompt", "must be a string")
        if self.messages is not None:
            if not isinstance(self.messages, tuple) or not self.messages:
                raise InvalidParameter("messages: must be a non-empty list of {role, content} maps")
            if self.messages[-1].role != "user":
                raise InvalidParameter(
                    f"messages: the last message must be the user's, which the response answers (got {self.messages[-1].role!r})")
            if self.raw and len(self.messages) > 1:
                raise InvalidParameter("raw: a conversation of several messages needs the chat template; send a prompt instead")
        if self.reuse_prefix is not None and not isinstance(self.reuse_prefix, bool):
            raise bad("reuse_prefix", "must be true, false or omitted")
        if self.conversation_id is not None and (
            not isinstance(self.conversation_id, str) or not 0 < len(self.conversation_id) <= MAX_ID_CHARS
        ):
            raise bad("conversation_id", f"must be a string of 1 to {MAX_ID_CHARS} characters")
        if self.pair is not None and (not isinstance(self.pair, str) or not self.pair):
            raise bad("pair", "must be a pair name")
        if self.mode not in MODES:
            raise bad("mode", f"must be one of {', '.join(MODES)}")
        if self.divergence not in DIVERGENCES:
            raise bad("divergence", f"must be one of {', '.join(DIVERGENCES)}")
        if self.schedule not in SCHEDULES:
            raise bad("schedule", f"must be one of {', '.join(SCHEDULES)}")
        if self.gate not in GATES:
            raise bad("gate", f"must be one of {', '.join(GATES)}")
        if not isinstance(self.threshold, float) or math.isnan(self.threshold) or self.threshold < 0:
            raise bad("threshold", "must be a number >= 0 (inf allowed)")
        if self.gate in PROBABILITY_GATES and self.threshold > 1:
            raise bad("threshold", f"is a probability for the {self.gate} gate: a number from 0 to 1")
        if self.budget is not None and (not _is_int(self.budget) or self.budget < 0):
            raise bad("budget", "must be an integer >= 0, or omitted for unlimited")
        if not _is_int(self.max_tokens) or self.max_tokens < 1:
            raise bad("max_tokens", "must be an integer >= 1")
        if not isinstance(self.temperature, float) or not math.isfinite(self.temperature) or self.temperature < 0:
            raise bad("temperature", "must be a finite number >= 0")
        if not _is_int(self.top_k) or self.top_k < 0:
            raise bad("top_k", "must be an integer >= 0 (0 turns it off)")
        if not isinstance(self.top_p, float) or not (0.0 < self.top_p <= 1.0):
            raise bad("top_p", "must be a number in (0, 1]")
        if self.seed is not None and (not _is_int(self.seed) or not 0 <= self.seed < 2**63):
            raise bad("seed", "must be an integer in [0, 2**63)")
        if not isinstance(self.stop, tuple) or len(self.stop) > MAX_STOP_STRINGS or not all(
            isinstance(s, str) and s for s in self.stop
        ):
            raise bad("stop", f"must be a list of at most {MAX_STOP_STRINGS} non-empty strings")
        if not isinstance(self.raw, bool):
            raise bad("raw", "must be true or false")
        if not isinstance(self.logprobs, bool):
            raise bad("logprobs", "must be true or false")
        if self.max_position is not None and (not _is_int(self.max_position) or self.max_position < 0):
            raise bad("max_position", "must be an integer >= 0")
        if self.block_size is not None and (not _is_int(self.block_size) or not 1 <= self.block_size <= MAX_BLOCK_SIZE):
            raise bad("block_size", f"must be an integer from 1 to {MAX_BLOCK_SIZE}, or omitted to adapt")
        if not _is_int(self.return_top) or not 0 <= self.return_top <= MAX_RETURN_TOP:
            raise bad("return_top", f"must be an integer from 0 to {MAX_RETURN_TOP}")
        if self.min_base_entropy is not None and (
            not isinstance(self.min_base_entropy, float) or not math.isfinite(self.min_base_entropy)
        ):
            raise bad("min_base_entropy", "must be a finite number")
        for name, text in (("prompt", self.prompt), ("pair", self.pair), ("conversation_id", self.conversation_id),
                           *(("stop", s) for s in self.stop)):
            _check_text(name, text)

    def as_messages(self) -> tuple[ChatMessage, ...]:
        """The conversation this request answers (a prompt is one user message)."""
        return self.messages if self.messages is not None else (ChatMessage("user", self.prompt or ""),)

    @property
    def user_text(self) -> str:
        """The message the response answers: the prompt, or the conversation's last (user) message."""
        return self.as_messages()[-1].content

    @property
    def reuses_prefix(self) -> bool:
        return self.reuse_prefix if self.reuse_prefix is not None else self.messages is not None

    def to_wire(self) -> dict[str, Any]:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["stop"] = list(self.stop)
        out["chat_template_kwargs"] = dict(self.chat_template_kwargs)
        if self.messages is None:
            del out["messages"]
        else:
            out["messages"] = [m.to_wire() for m in self.messages]
            del out["prompt"]
        return out

    @classmethod
    def from_wire(cls, body: Any) -> "GenerationRequest":
        if not isinstance(body, dict):
            raise InvalidParameter("a generation request must be a map of fields")
        known = {f.name for f in fields(cls)}
        kwargs = {k: v for k, v in body.items() if k in known}
        if kwargs.get("prompt") is None and kwargs.get("messages") is None:
            raise InvalidParameter("prompt: missing (or give messages, a conversation)")
        if "messages" in kwargs and not isinstance(kwargs["messages"], (list, tuple)):
            raise InvalidParameter(f"messages: must be a list of {{role, content}} maps (got {kwargs['messages']!r})")
        try:
            return cls(**kwargs)
        except TypeError as exc:  # e.g. an unhashable value where a scalar belongs
            raise InvalidParameter(f"malformed generation request: {exc}") from None
