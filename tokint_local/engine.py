"""The decoding engine: one response from a base and a reasoning model, token by token.

Three modes share this code so that they are comparable: ``base`` (only the base model runs),
``reasoning`` (only the reasoning model runs) and ``intervene`` (the base model writes; where the
gate fires, the reasoning model writes exactly one token and hands control straight back).

How the two models are run to reach each decision (one token at a time, or the base model drafting
a block that the reasoning model scores in one batch) lives in schedule.py; this module prepares the
prompts, turns decisions into events (text, stop strings, end of generation) and sums up.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator, Optional

from .backend import LlamaModel
from .errors import InvalidParameter, PromptTooLong
from .events import Event, GenerationRequest, Summary, TokenEvent
from .gate import Gate
from .pair import ModelPair
from .prompt import format_prompt
from .sampling import Sampler
from .schedule import AdaptiveK, Stepper
from .textstream import StopHold, Utf8Stream


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


def prepare_prompt(model: LlamaModel, prompt: str, raw: bool, role: str, fmt: str = "gguf") -> PreparedPrompt:
    """The prompt in ``model``'s own prompt format, as tokens, checked against its context."""
    bos = model.special_text(model.bos)
    text = format_prompt(prompt, model.chat_template, bos, model.special_text(model.eos), raw, fmt)
    add_bos = model.add_bos and not (bos and text.text.startswith(bos))
    tokens = model.tokenize(text.text, add_special=add_bos, parse_special=text.parse_special)
    if not tokens:
        raise InvalidParameter("prompt: empty; give some text to respond to")
    if len(tokens) >= model.n_ctx:
        raise PromptTooLong(
            f"the prompt is {len(tokens)} tokens but the {role} model's context holds {model.n_ctx}; "
            "shorten the prompt or raise n_ctx in models.toml"
        )
    return PreparedPrompt(tokens, text.format)


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
        if use_base:
            prompts["base"] = prepare_prompt(pair.base, req.prompt, req.raw, "base", pair.formats[0])
        if use_reasoning:
            prompts["reasoning"] = prepare_prompt(pair.reasoning, req.prompt, req.raw, "reasoning", pair.formats[1])
        n = pair.n_shared
        lb = pair.base.prefill(prompts["base"].tokens)[:n] if use_base else None
        lr = pair.reasoning.prefill(prompts["reasoning"].tokens)[:n] if use_reasoning else None
        stepper = Stepper(
            pair, req.mode, req.divergence, gate, Sampler(req.temperature, req.top_k, req.top_p, self.seed),
            req.max_tokens, req.return_top,
            (len(prompts["base"].tokens) if use_base else 0, len(prompts["reasoning"].tokens) if use_reasoning else 0),
            AdaptiveK(req.block_size) if req.schedule == "block" else None,
        )
        decisions = stepper.decisions(lb, lr)
        t_first: Optional[float] = None
        text = Utf8Stream()
        hold: StopHold[TokenEvent] = StopHold(req.stop)
        emitted: list[TokenEvent] = []
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
            event = TokenEvent(
                position=d.position, token_id=d.token, text=piece, source=d.source, divergence=d.divergence,
                base_entropy=d.base_entropy, budget_left=d.budget_left, t=time.perf_counter() - t0, top_k=d.top,
            )
            if t_first is None:
                t_first = event.t
            released, stopped = hold.push(event, piece)
            for ev, ev_text in released:
                ev = ev if ev_text == ev.text else _with_text(ev, ev_text)
                emitted.append(ev)
                yield ev
            if stopped or model.is_eog(d.token):
                finish = "stop"
                break
        decisions.close()
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
        )


def _with_text(event: TokenEvent, text: str) -> TokenEvent:
    return replace(event, text=text)


def generate(pair: ModelPair, req: GenerationRequest, cancel: Optional[threading.Event] = None) -> Iterator[Event]:
    """Stream the events of one generation: TokenEvent per response token, then one Summary.

    Bad input raises (a TokintError) before the first event. ``cancel`` stops the generation
    at the next token with finish reason ``cancelled`` (or a ``Cancel``'s reason). The pair is used exclusively while the
    iterator runs; do not interleave two generations on one pair.
    """
    return _Run(pair, req, cancel).events()
