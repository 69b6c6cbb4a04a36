"""Between the OpenAI API and tokint: a request's fields as a generation request's, tokint's events
as OpenAI responses and streamed chunks (with the ``tokint`` provenance extension), tokint's error
codes as HTTP statuses.

Nothing here does I/O; http_api.py feeds it what the scheduler sends.
"""
from __future__ import annotations

import math
import time
from typing import Any, Optional, Union

from tokint_local import __version__
from tokint_local.config import ModelsFile, PairEntry
from tokint_local.errors import InvalidParameter, UnknownPair
from tokint_local.events import MODES, Summary, TokenEvent

from .http_models import (
    AssistantMessage, ChatChoice, ChatCompletion, ChatCompletionChunk, ChatCompletionRequest, ChoiceLogprobs,
    ChunkChoice, Completion, CompletionChoice, CompletionRequest, Delta, LegacyLogprobs, ModelCard, ModelList,
    Provenance, ProvenanceSummary, TokenLogprob, TokenProvenance, TopLogprob, Usage,
)

FINGERPRINT = f"tokint-{__version__}"
MIN_LOGPROB = -9999.0  # what OpenAI reports for a token of probability 0 (JSON has no -inf)
LISTED_MODES = ("base", "reasoning")  # listed as PAIR:MODE beside PAIR (intervene)
THINKING = "thinking"

# tokint's error code -> HTTP status; anything else is a 500
STATUS_BY_CODE = {
    "invalid_parameter": 400, "prompt_too_long": 400, "template_error": 400, "malformed": 400,
    "invalid_api_key": 401, "model_not_found": 404, "unknown_pair": 404, "too_large": 413,
    "too_many_requests": 429,
    "backend_crashed": 503, "model_load_failed": 503, "model_missing": 503, "incompatible_pair": 503,
    "shutting_down": 503,
}
TYPE_BY_STATUS = {400: "invalid_request_error", 401: "authentication_error", 404: "invalid_request_error",
                  405: "invalid_request_error", 413: "invalid_request_error", 429: "rate_limit_error"}


def error_type(status: int) -> str:
    return TYPE_BY_STATUS.get(status, "server_error")


# -- models --------------------------------------------------------------------------------
def resolve_model(models: ModelsFile, name: str) -> tuple[PairEntry, str]:
    """``PAIR`` (intervene) or ``PAIR:MODE``; UnknownPair (404) for anything else."""
    pair_name, mode = name, "intervene"
    head, sep, tail = name.rpartition(":")
    if sep and tail in MODES:
        pair_name, mode = head, tail
    if not pair_name or pair_name not in models.pairs:
        known = ", ".join(model_names(models)) or "none"
        raise UnknownPair(f"the model {name!r} does not exist; models here: {known}")
    return models.pairs[pair_name], mode


def model_names(models: ModelsFile) -> list[str]:
    return [name for pair in models.pairs for name in (pair, *(f"{pair}:{m}" for m in LISTED_MODES))]


def model_card(models: ModelsFile, name: str) -> ModelCard:
    entry, mode = resolve_model(models, name)
    return ModelCard(id=name, tokint={"pair": entry.name, "mode": mode, "default": entry.name == models.default_pair})


def model_list(models: ModelsFile) -> ModelList:
    return ModelList(data=[model_card(models, name) for name in model_names(models)])


# -- requests ------------------------------------------------------------------------------
_ROLE = {"developer": "system"}  # OpenAI's newer name for the system message

# tokint settings where null means "off" rather than "the pair's default"
_NULL_MEANS_OFF = {"budget", "max_position", "min_base_entropy", "block_size"}


def _common_fields(req: Union[ChatCompletionRequest, CompletionRequest], mode: str, max_tokens: Optional[int]) -> dict[str, Any]:
    if req.n not in (None, 1):
        raise InvalidParameter(f"n: tokint writes one choice per request; n must be 1 (got {req.n})")
    fields: dict[str, Any] = {"mode": mode}
    for name, value in req.tokint.model_dump(exclude_unset=True).items():
        if value is not None or name in _NULL_MEANS_OFF:
            fields[name] = value
    for name, value in (("max_tokens", max_tokens), ("temperature", req.temperature), ("top_p", req.top_p),
                        ("seed", req.seed)):
        if value is not None:
            fields[name] = value
    if req.stop is not None:
        fields["stop"] = [req.stop] if isinstance(req.stop, str) else list(req.stop)
    return fields


def chat_fields(req: ChatCompletionRequest, mode: str) -> dict[str, Any]:
    """The generation request's fields for a chat completion; the pair's defaults fill the rest."""
    fields = _common_fields(req, mode, req.max_completion_tokens if req.max_completion_tokens is not None else req.max_tokens)
    if len(req.messages) == 1 and req.messages[0].role == "user":
        fields["prompt"] = req.messages[0].text()  # exactly what `tokint generate PROMPT` runs
    else:  # a conversation: each model renders it through its own chat template
        fields["messages"] = [{"role": _ROLE.get(m.role, m.role), "content": m.text()} for m in req.messages]
    if req.top_logprobs and not req.logprobs:
        raise InvalidParameter("top_logprobs: needs logprobs: true")
    if req.logprobs:
        fields["logprobs"] = True
        fields["return_top"] = req.top_logprobs or 0
    return fields


def completion_fields(req: CompletionRequest, mode: str) -> dict[str, Any]:
    """The generation request's fields for a (legacy) completion: the prompt is plain text."""
    if req.best_of not in (None, 1):
        raise InvalidParameter(f"best_of: tokint writes one choice per request; best_of must be 1 (got {req.best_of})")
    if req.echo:
        raise InvalidParameter("echo: not supported; the response holds only the completion")
    fields = _common_fields(req, mode, req.max_tokens)
    prompt = req.prompt
    if isinstance(prompt, list):
        if len(prompt) != 1:
            raise InvalidParameter(f"prompt: one prompt per request (got a list of {len(prompt)})")
        prompt = prompt[0]
    fields["prompt"] = prompt
    fields.setdefault("raw", True)  # a completion continues the text as given, no chat template
    if req.logprobs is not None:
        fields["logprobs"] = True
        fields["return_top"] = req.logprobs
    return fields


# -- responses -----------------------------------------------------------------------------
def sse(payload: str) -> str:
    return f"data: {payload}\n\n"


DONE = sse("[DONE]")


def _logprob(value: Optional[float]) -> float:
    return MIN_LOGPROB if value is None or not math.isfinite(value) else max(value, MIN_LOGPROB)


def _log(p: float) -> float:
    return math.log(p) if p > 0 else MIN_LOGPROB


def _top(ev: TokenEvent) -> list[tuple[str, float]]:
    """The writing model's top candidates of this position as (text, logprob)."""
    cands = (ev.top_k or {}).get(ev.source) or []
    return [(text, _log(p)) for _, text, p in cands]


def _finish_reason(summary: Summary) -> str:
    return "length" if summary.finish_reason == "length" else "stop"


class _Shape:
    """One generation's responses: the fields every chunk repeats, provenance and usage."""

    def __init__(self, job_id: str, model: str, pair: str, mode: str, prefix: str):
        self.job_id, self.model, self.pair, self.mode = job_id, model, pair, mode
        self.id = f"{prefix}-{job_id}"
        self.created = int(time.time())

    @staticmethod
    def provenance(ev: TokenEvent) -> TokenProvenance:
        return TokenProvenance(position=ev.position, token_id=ev.token_id, text=ev.text, source=ev.source,
                               divergence=ev.divergence, channel=ev.channel)

    def header(self, **extra: Any) -> Provenance:
        return Provenance(id=self.job_id, pair=self.pair, mode=self.mode, **extra)

    @staticmethod
    def summary(summary: Summary) -> ProvenanceSummary:
        return ProvenanceSummary(
            n_tokens=summary.n_tokens, n_takeovers=summary.n_takeovers,
            takeover_positions=list(summary.takeover_positions),
            delegated_share=summary.n_takeovers / summary.n_tokens if summary.n_tokens else 0.0,
            finish_reason=summary.finish_reason, seed=summary.seed, tokens_per_second=summary.tokens_per_second,
            elapsed_s=summary.elapsed_s, time_to_first_token_s=summary.time_to_first_token_s,
            prompt_tokens=dict(summary.prompt_tokens), cached_tokens=dict(summary.cached_tokens),
            tokens_by_channel=dict(summary.tokens_by_channel), takeovers_by_channel=dict(summary.takeovers_by_channel),
        )

    def usage(self, summary: Summary) -> Usage:
        writer = "reasoning" if self.mode == "reasoning" else "base"
        prompt = summary.prompt_tokens.get(writer, max(summary.prompt_tokens.values(), default=0))
        return Usage(prompt_tokens=prompt, completion_tokens=summary.n_tokens, total_tokens=prompt + summary.n_tokens,
                     prompt_tokens_by_model=dict(summary.prompt_tokens),
                     prompt_tokens_details={"cached_tokens": summary.cached_tokens.get(writer, 0)},
                     completion_tokens_details={"reasoning_tokens": summary.tokens_by_channel.get(THINKING, 0)})


class ChatShape(_Shape):
    """``/v1/chat/completions``: chunks as the stream goes, or one ChatCompletion at the end."""

    def __init__(self, job_id: str, model: str, pair: str, mode: str, logprobs: bool):
        super().__init__(job_id, model, pair, mode, "chatcmpl")
        self.logprobs = logprobs

    def _chunk(self, choices: list[ChunkChoice], tokint: Provenance, usage: Optional[Usage] = None) -> str:
        return sse(ChatCompletionChunk(id=self.id, created=self.created, model=self.model, system_fingerprint=FINGERPRINT,
                                       choices=choices, usage=usage, tokint=tokint).model_dump_json())

    def _logprobs(self, events: list[TokenEvent]) -> Optional[ChoiceLogprobs]:
        if not self.logprobs:
            return None
        return ChoiceLogprobs(content=[TokenLogprob(
            token=ev.text, logprob=_logprob(ev.logprob), bytes=list(ev.text.encode()),
            top_logprobs=[TopLogprob(token=t, logprob=lp, bytes=list(t.encode())) for t, lp in _top(ev)],
        ) for ev in events])

    def opening(self) -> str:
        return self._chunk([ChunkChoice(delta=Delta(role="assistant", content=""))], self.header())

    def token(self, ev: TokenEvent) -> str:
        thinking = ev.channel == THINKING
        delta = Delta(reasoning_content=ev.text) if thinking else Delta(content=ev.text)
        return self._chunk([ChunkChoice(delta=delta, logprobs=self._logprobs([ev]))],
                           Provenance(tokens=[self.provenance(ev)]))

    def closing(self, summary: Summary, include_usage: bool) -> str:
        out = self._chunk([ChunkChoice(delta=Delta(), finish_reason=_finish_reason(summary))],
                          self.header(summary=self.summary(summary)))
        if include_usage:
            out += self._chunk([], Provenance(), self.usage(summary))
        return out + DONE

    def whole(self, summary: Summary, events: list[TokenEvent]) -> ChatCompletion:
        answer = "".join(ev.text for ev in events if ev.channel != THINKING)
        thinking = [ev.text for ev in events if ev.channel == THINKING]
        message = AssistantMessage(content=answer, reasoning_content="".join(thinking) if thinking else None)
        return ChatCompletion(
            id=self.id, created=self.created, model=self.model, system_fingerprint=FINGERPRINT,
            choices=[ChatChoice(message=message, logprobs=self._logprobs(events), finish_reason=_finish_reason(summary))],
            usage=self.usage(summary),
            tokint=self.header(tokens=[self.provenance(ev) for ev in events], summary=self.summary(summary)),
        )


class CompletionShape(_Shape):
    """``/v1/completions``: the same, in the legacy text-completion shape."""

    def __init__(self, job_id: str, model: str, pair: str, mode: str, logprobs: bool):
        super().__init__(job_id, model, pair, mode, "cmpl")
        self.logprobs = logprobs
        self.offset = 0  # characters of completion text so far, for text_offset

    def _chunk(self, choices: list[CompletionChoice], tokint: Provenance, usage: Optional[Usage] = None) -> str:
        return sse(Completion(id=self.id, created=self.created, model=self.model, system_fingerprint=FINGERPRINT,
                              choices=choices, usage=usage, tokint=tokint).model_dump_json())

    def _logprobs(self, events: list[TokenEvent], offset: int) -> Optional[LegacyLogprobs]:
        if not self.logprobs:
            return None
        offsets = []
        for ev in events:
            offsets.append(offset)
            offset += len(ev.text)
        top = [dict(_top(ev)) for ev in events]
        return LegacyLogprobs(tokens=[ev.text for ev in events], token_logprobs=[_logprob(ev.logprob) for ev in events],
                              top_logprobs=top if any(top) else None, text_offset=offsets)

    def opening(self) -> str:
        return self._chunk([CompletionChoice(text="")], self.header())

    def token(self, ev: TokenEvent) -> str:
        logprobs = self._logprobs([ev], self.offset)
        self.offset += len(ev.text)
        return self._chunk([CompletionChoice(text=ev.text, logprobs=logprobs)], Provenance(tokens=[self.provenance(ev)]))

    def closing(self, summary: Summary, include_usage: bool) -> str:
        out = self._chunk([CompletionChoice(text="", finish_reason=_finish_reason(summary))],
                          self.header(summary=self.summary(summary)))
        if include_usage:
            out += self._chunk([], Provenance(), self.usage(summary))
        return out + DONE

    def whole(self, summary: Summary, events: list[TokenEvent]) -> Completion:
        return Completion(
            id=self.id, created=self.created, model=self.model, system_fingerprint=FINGERPRINT,
            choices=[CompletionChoice(text="".join(ev.text for ev in events), logprobs=self._logprobs(events, 0),
                                      finish_reason=_finish_reason(summary))],
            usage=self.usage(summary),
            tokint=self.header(tokens=[self.provenance(ev) for ev in events], summary=self.summary(summary)),
        )

