"""The shapes of the OpenAI-compatible HTTP API, as pydantic models: what a request may hold and
what every response and streamed chunk holds, with tokint's ``tokint`` extension.

Requests ignore fields they do not know (as OpenAI clients expect); a field of the wrong type or
out of range is a 400 naming it. Ranges that tokint itself defines (threshold, budget, ...) are
checked once more by ``GenerationRequest`` when the request is built.
"""
from __future__ import annotations

from typing import Any, Literal, Optional, Union

from pydantic import BaseModel, ConfigDict, Field

from tokint_local.events import MAX_RETURN_TOP


def _omit_none(value: Any) -> bool:
    return value is None


class _Request(BaseModel):
    model_config = ConfigDict(extra="ignore")


# -- requests ------------------------------------------------------------------------------
class TextPart(_Request):
    type: Literal["text"]
    text: str


class ChatMessage(_Request):
    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: Union[str, list[TextPart], None] = None

    def text(self) -> str:
        if isinstance(self.content, list):
            return "".join(part.text for part in self.content)
        return self.content or ""


class StreamOptions(_Request):
    include_usage: bool = False


class TokintOptions(_Request):
    """tokint's own settings; a field left out comes from the pair's defaults."""

    divergence: Optional[str] = None
    gate: Optional[str] = None  # divergence, or the controls entropy, top1, random (tokint_local/gate.py)
    threshold: Optional[float] = None  # "inf" (a string) never takes over
    budget: Optional[int] = None  # null: unlimited
    schedule: Optional[str] = None
    block_size: Optional[int] = None
    max_position: Optional[int] = None
    min_base_entropy: Optional[float] = None
    top_k: Optional[int] = None
    raw: Optional[bool] = None
    chat_template_kwargs: Optional[dict[str, Any]] = None  # e.g. {"enable_thinking": false}
    reuse_prefix: Optional[bool] = None  # reuse the KV caches' common prefix (default: yes for a conversation)
    conversation_id: Optional[str] = None  # names the conversation in tokint's history


class _Generation(_Request):
    model: str
    max_tokens: Optional[int] = None
    temperature: Optional[float] = None
    top_p: Optional[float] = None
    seed: Optional[int] = None
    stop: Union[str, list[str], None] = None
    stream: Optional[bool] = False
    stream_options: Optional[StreamOptions] = None
    n: Optional[int] = None
    tokint: TokintOptions = Field(default_factory=TokintOptions)


class ChatCompletionRequest(_Generation):
    messages: list[ChatMessage] = Field(min_length=1)
    max_completion_tokens: Optional[int] = None
    logprobs: Optional[bool] = False
    top_logprobs: Optional[int] = Field(None, ge=0, le=MAX_RETURN_TOP)


class CompletionRequest(_Generation):
    prompt: Union[str, list[str]]
    logprobs: Optional[int] = Field(None, ge=0, le=MAX_RETURN_TOP)  # the legacy API's "top N" count
    echo: Optional[bool] = False
    best_of: Optional[int] = None


# -- responses -----------------------------------------------------------------------------
class TokenProvenance(BaseModel):
    """Where one response token came from."""

    position: int
    token_id: int
    text: str
    source: str  # "base" or "reasoning"
    divergence: Optional[float]  # null where the reasoning model did not run
    channel: Optional[str] = Field(None, exclude_if=_omit_none)  # "thinking" or "answer" where the model has both


class ProvenanceSummary(BaseModel):
    n_tokens: int
    n_takeovers: int
    takeover_positions: list[int]
    delegated_share: float  # takeovers / tokens
    finish_reason: str  # tokint's own: stop, length, cancelled, shutdown
    seed: Optional[int]
    tokens_per_second: float
    elapsed_s: float
    time_to_first_token_s: Optional[float]
    prompt_tokens: dict[str, int]  # per model
    cached_tokens: dict[str, int]  # per model: prompt tokens reused from its KV cache
    tokens_by_channel: dict[str, int]  # "thinking" / "answer"
    takeovers_by_channel: dict[str, int]


class Provenance(BaseModel):
    """The ``tokint`` extension: on every chunk the tokens it carries; on the last chunk and on a
    whole response also the summary, the generation's id (``tokint history ID``), pair and mode."""

    tokens: list[TokenProvenance] = Field(default_factory=list)
    id: Optional[str] = Field(None, exclude_if=_omit_none)
    pair: Optional[str] = Field(None, exclude_if=_omit_none)
    mode: Optional[str] = Field(None, exclude_if=_omit_none)
    summary: Optional[ProvenanceSummary] = Field(None, exclude_if=_omit_none)


class Usage(BaseModel):
    prompt_tokens: int  # as the model that writes saw the prompt
    completion_tokens: int
    total_tokens: int
    prompt_tokens_by_model: dict[str, int]  # each model's own count ("base", "reasoning")
    prompt_tokens_details: dict[str, int]  # cached_tokens: reused from the writing model's KV cache
    completion_tokens_details: dict[str, int]  # reasoning_tokens: in the thinking segment


class TopLogprob(BaseModel):
    token: str
    logprob: float
    bytes: list[int]


class TokenLogprob(TopLogprob):
    top_logprobs: list[TopLogprob]


class ChoiceLogprobs(BaseModel):
    content: list[TokenLogprob]


class AssistantMessage(BaseModel):
    role: Literal["assistant"] = "assistant"
    content: str
    reasoning_content: Optional[str] = Field(None, exclude_if=_omit_none)


class ChatChoice(BaseModel):
    index: int = 0
    message: AssistantMessage
    logprobs: Optional[ChoiceLogprobs] = None
    finish_reason: Optional[str]


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChatChoice]
    usage: Usage
    tokint: Provenance


class Delta(BaseModel):
    role: Optional[Literal["assistant"]] = Field(None, exclude_if=_omit_none)
    content: Optional[str] = Field(None, exclude_if=_omit_none)
    reasoning_content: Optional[str] = Field(None, exclude_if=_omit_none)


class ChunkChoice(BaseModel):
    index: int = 0
    delta: Delta
    logprobs: Optional[ChoiceLogprobs] = None
    finish_reason: Optional[str] = None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    system_fingerprint: str
    choices: list[ChunkChoice]
    usage: Optional[Usage] = None
    tokint: Provenance


class LegacyLogprobs(BaseModel):
    tokens: list[str]
    token_logprobs: list[float]
    top_logprobs: Optional[list[dict[str, float]]]
    text_offset: list[int]


class CompletionChoice(BaseModel):
    index: int = 0
    text: str
    logprobs: Optional[LegacyLogprobs] = None
    finish_reason: Optional[str] = None


class Completion(BaseModel):
    """A whole ``/v1/completions`` response, and (``object`` "text_completion" too) each chunk."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    system_fingerprint: str
    choices: list[CompletionChoice]
    usage: Optional[Usage] = None
    tokint: Provenance


class ModelCard(BaseModel):
    id: str
    object: Literal["model"] = "model"
    created: int = 0
    owned_by: str = "tokint"
    tokint: dict[str, Any]  # pair, mode, default


class ModelList(BaseModel):
    object: Literal["list"] = "list"
    data: list[ModelCard]


class ErrorDetail(BaseModel):
    message: str
    type: str
    param: Optional[str] = None
    code: Optional[str] = None


class ErrorBody(BaseModel):
    error: ErrorDetail
