"""The decoding engine: one response from a base and a reasoning model, token by token.

Three modes share this code so that they are comparable: ``base`` (only the base model runs),
``reasoning`` (only the reasoning model runs) and ``intervene`` (the base model writes; where the
gate fires, the reasoning model writes exactly one token and hands control straight back).

How the two models are run to reach each decision (one token at a time, or the base model drafting
a block that the reasoning model scores in one batch) lives in schedule.py; this module prepares the
prompts, turns decisions into events (text, stop strings, end of generation) and sums up.
"""
from __future__ import annotations

import re
import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Any, Generator, Iterator, Mapping, Optional, Sequence, Union

from .backend import LlamaModel
from .errors import InvalidParameter, PromptTooLong
from .events import CHANNELS, ChatMessage, Event, GenerationRequest, Summary, TokenEvent
from .gate import Gate
from .pair import ModelPair
from .prompt import format_conversation
from .sampling import Sampler
from .schedule import AdaptiveK, Stepper
from .textstream import StopHold, Utf8Stream
from .thinking import DEFAULT_MARKERS, EITHER, ChannelMarker


class Cancel(threading.Event):
    """Set to stop a generation at its next token; ``reason`` becomes its finish reason."""

    reason = "cancelled"

    def cancel(self, reason: str = "cancelled") -> None:
        self.reason = reason
        self.set()


@dataclass(frozen=True)
class PreparedPrompt:
    tokens: list[int]
    format: str
    markers: tuple[str, str] = DEFAULT_MARKERS  # the thinking markers of the model's template
    starts: str = EITHER  # how a response begins: thinking.THINKING, ANSWER or EITHER


def prepare_prompt(model: LlamaModel, prompt: Union[str, Sequence[ChatMessage]], raw: bool, role: str, fmt: str = "gguf",
                   template_kwargs: Optional[Mapping[str, Any]] = None) -> PreparedPrompt:
    """The prompt (a string, or a conversation's messages) in ``model``'s own prompt format, as tokens,
    checked against its context.

    Only the chat template's own markup may become special tokens; what the person wrote is plain
    text, whatever it spells. A model that adds a BOS token gets exactly one.
    """
    messages = [ChatMessage("user", prompt)] if isinstance(prompt, str) else list(prompt)
    text = format_conversation(messages, model.chat_template, model.special_text(model.bos),
                               model.special_text(model.eos), raw, fmt, template_kwargs)
    tokens = prompt_tokens(model, text.pieces)
    if model.add_bos and model.bos >= 0 and tokens[:1] != [model.bos]:
        tokens.insert(0, model.bos)
    if not tokens:
        raise InvalidParameter("prompt: empty; give some text to respond to")
    if len(tokens) >= model.n_ctx:
        raise PromptTooLong(
            f"the prompt is {len(tokens)} tokens but the {role} model's context holds {model.n_ctx}; "
            "shorten the prompt or raise n_ctx in models.toml"
        )
    return PreparedPrompt(tokens, text.format, text.markers, text.starts)


def prompt_tokens(model: LlamaModel, pieces: Sequence[tuple[str, bool]]) -> list[int]:
    """The tokens of (text, from_template) pieces, special tokens parsed in the template's pieces alone.

    The text is cut at the template's special tokens, as llama.cpp cuts it, and each stretch between
    them (template text and message content alike) is tokenized as plain text: without special text
    in the content the tokens are those of the whole text, and with it the content stays text.
    """
    specials: dict[str, int] = {}
    for piece, from_template in pieces:
        if from_template:
            for token in model.tokenize(piece, add_special=False, parse_special=True):
                if not model.piece(token) and model.token_text(token):  # control tokens print as nothing
                    specials[model.token_text(token)] = token
    cut = re.compile("|".join(re.escape(s) for s in sorted(specials, key=len, reverse=True))) if specials else None
    tokens: list[int] = []
    stretch: list[str] = []

    def plain() -> None:
        if "".join(stretch):
            tokens.extend(model.tokenize("".join(stretch), add_special=False, parse_special=False))
        stretch.clear()

    for piece, from_template in pieces:
        start = 0
        for found in (cut.finditer(piece) if from_template and cut is not None else ()):
            stretch.append(piece[start : found.start()])
            plain()
            tokens.append(specials[found.group()])
            start = found.end()
        stretch.append(piece[start:])
    plain()
    return tokens


class _Run:
    """The state of one generation; ``events()`` drives it."""

    def __init__(self, pair: ModelPair, req: GenerationRequest, cancel: Optional[threading.Event]):
        self.pair, self.req, self.cancel = pair, req, cancel
        self.seed = req.seed if req.seed is not None else secrets.randbits(63)

    def events(self) -> Iterator[Event]:
        req, pair = self.req, self.pair
        t0 = time.perf_counter()
        gate = Gate(req.threshold, req.budget, req.max_position, req.min_base_entropy, req.gate, self.seed)
        use_base = req.mode in ("base", "intervene")
        use_reasoning = req.mode == "reasoning" or (req.mode == "intervene" and gate.can_fire(0, 0))
        prompts = {}
        messages = req.as_messages()
        for i, (role, used) in enumerate((("base", use_base), ("reasoning", use_reasoning))):
            if used:
                kwargs = {**pair.template_kwargs[i], **req.chat_template_kwargs}  # the request's over the model's
                prompts[role] = prepare_prompt(getattr(pair, role), messages, req.raw, role, pair.formats[i], kwargs)
        self.writer = prompts["base" if use_base else "reasoning"]  # its template says where thinking is
        n = pair.n_shared
        reuse = req.reuses_prefix
        cached: dict[str, int] = {}
        lb = lr = None
        if use_base:
            lb = pair.base.prefill(prompts["base"].tokens, reuse_prefix=reuse)[:n]
            cached["base"] = pair.base.last_reused
        if use_reasoning:
            lr = pair.reasoning.prefill(prompts["reasoning"].tokens, reuse_prefix=reuse)[:n]
            cached["reasoning"] = pair.reasoning.last_reused
        stepper = Stepper(
            pair, req.mode, req.divergence, gate, Sampler(req.temperature, req.top_k, req.top_p, self.seed),
            req.max_tokens, req.return_top,
            (len(prompts["base"].tokens) if use_base else 0, len(prompts["reasoning"].tokens) if use_reasoning else 0),
            # block needs rollback: a recurrent or hybrid model runs lockstep
            AdaptiveK(req.block_size) if req.schedule == "block" and pair.can_roll_back else None, req.logprobs,
        )
        decisions = stepper.decisions(lb, lr)
        t_first: Optional[float] = None
        text = Utf8Stream()
        hold: StopHold[TokenEvent] = StopHold(req.stop)
        emitted: list[TokenEvent] = []
        # the last token ended inside a character: its event waits for the next token, or for the end,
        # where the bytes that never became a character are U+FFFD in its text
        unfinished: Optional[TokenEvent] = None
        finish = "length"
        while True:
            if self.cancel is not None and self.cancel.is_set():
                finish = getattr(self.cancel, "reason", "cancelled")
                break
            d = next(decisions, None)
            if d is None:
                break  # max_tokens or a full context: finish "length"
            model = pair.reasoning if d.source == "reasoning" else pair.base
            piece = text.feed(model.piece(d.token))
            end = model.is_eog(d.token)
            if end and unfinished is not None:  # no more bytes will come: the held ones are U+FFFD
                unfinished = _with_text(unfinished, unfinished.text + text.flush())
            event = TokenEvent(
                position=d.position, token_id=d.token, text=piece, source=d.source, divergence=d.divergence,
                base_entropy=d.base_entropy, budget_left=d.budget_left, t=time.perf_counter() - t0, top_k=d.top,
                logprob=d.logprob,
            )
            if t_first is None:
                t_first = event.t
            ready = [e for e in (unfinished, event) if e is not None]
            unfinished = ready.pop() if text.pending else None
            stopped = False
            for ready_event in ready:
                stopped = yield from _release(hold, ready_event, emitted)
                if stopped:
                    unfinished = None  # what came after the stop string is not part of the response
                    break
            if stopped or end:
                finish = "stop"
                break
        decisions.close()
        if unfinished is not None and (yield from _release(hold, _with_text(unfinished, unfinished.text + text.flush()), emitted)):
            finish = "stop"
        for ev, _ in hold.drain():
            emitted.append(ev)
            yield ev
        elapsed = time.perf_counter() - t0
        decode_time = elapsed - (t_first or elapsed)
        n_tokens = len(emitted)
        takeover_positions = tuple(e.position for e in emitted if e.source == "reasoning" and req.mode == "intervene")
        self.stepper = stepper  # for measurements (drafted / rejected tokens)
        yield Summary(
            n_tokens=n_tokens,
            n_takeovers=len(takeover_positions),
            takeover_positions=takeover_positions,
            finish_reason=finish,
            tokens_per_second=(n_tokens - 1) / decode_time if n_tokens > 1 and decode_time > 0 else 0.0,
            elapsed_s=elapsed,
            time_to_first_token_s=t_first,
            seed=self.seed,
            prompt_tokens={role: len(p.tokens) for role, p in prompts.items()},
            cached_tokens=cached,
        )


def _with_text(event: TokenEvent, text: str) -> TokenEvent:
    return replace(event, text=text)


def _release(hold: StopHold[TokenEvent], event: TokenEvent, emitted: list[TokenEvent]) -> Generator[TokenEvent, None, bool]:
    """Yield what ``hold`` lets out after ``event``; returns whether a stop string ended the response."""
    released, stopped = hold.push(event, event.text)
    for ev, ev_text in released:
        ev = ev if ev_text == ev.text else _with_text(ev, ev_text)
        emitted.append(ev)
        yield ev
    return stopped


def _with_channels(run: _Run) -> Iterator[Event]:
    """``run``'s events, each token marked with its channel (thinking or answer), the summary counting both.

    The writing model's template says where a thinking segment can be (thinking.ChannelMarker).
    """
    events = run.events()
    marker: Optional[ChannelMarker] = None
    tokens = {channel: 0 for channel in CHANNELS}
    takeovers = dict(tokens)

    def count(marked: list[TokenEvent]) -> list[TokenEvent]:
        for ev in marked:
            tokens[ev.channel] += 1
            takeovers[ev.channel] += ev.source == "reasoning" and run.req.mode == "intervene"
        return marked

    for event in events:
        if isinstance(event, TokenEvent):
            if marker is None:
                marker = ChannelMarker(run.writer.markers, run.writer.starts)
            yield from count(marker.push(event))
        else:
            if marker is not None:
                yield from count(marker.drain())
            yield replace(event, tokens_by_channel=tokens, takeovers_by_channel=takeovers)


def generate(pair: ModelPair, req: GenerationRequest, cancel: Optional[threading.Event] = None) -> Iterator[Event]:
    """Stream the events of one generation: TokenEvent per response token, then one Summary.

    Every token event says whether it belongs to the response's thinking segment or its answer
    (``channel``); the summary counts tokens and takeovers in each. Bad input raises (a TokintError)
    before the first event. ``cancel`` stops the generation at the next token with finish reason
    ``cancelled`` (or a ``Cancel``'s reason). The pair is used exclusively while the iterator runs;
    do not interleave two generations on one pair.
    """
    return _with_channels(_Run(pair, req, cancel))
