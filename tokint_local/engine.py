"""The decoding engine: one response from a base and a reasoning model, token by token.

Three modes share this code so that they are comparable: ``base`` (only the base model runs),
``reasoning`` (only the reasoning model runs) and ``intervene`` (the base model writes; where the
gate fires, the reasoning model writes exactly one token and hands control straight back).

Data flow of one position in intervene mode: both models' logits for the position -> log-softmax
over the shared vocab -> divergence and base entropy -> gate -> one token sampled from the chosen
model -> both models decode that token -> next position. Once no takeover is possible any more
(budget spent, past ``max_position``, infinite threshold) the reasoning model stops running.
"""
from __future__ import annotations

import secrets
import threading
import time
from dataclasses import dataclass, replace
from typing import Iterator, Optional

import numpy as np

from . import divergence as dv
from .backend import LlamaModel
from .errors import BackendError, InvalidParameter, PromptTooLong
from .events import Event, GenerationRequest, Summary, TokenEvent
from .gate import Gate
from .pair import ModelPair
from .prompt import format_prompt
from .sampling import Sampler
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
        self.n = pair.n_shared
        self.seed = req.seed if req.seed is not None else secrets.randbits(63)
        self.sampler = Sampler(req.temperature, req.top_k, req.top_p, self.seed)
        # A gate that cannot fire in base/reasoning mode keeps one code path for all three.
        self.gate = Gate(req.threshold, req.budget, req.max_position, req.min_base_entropy)
        self.use_base = req.mode in ("base", "intervene")
        self.use_reasoning = req.mode in ("reasoning", "intervene")
        self.takeovers = 0

    def events(self) -> Iterator[Event]:
        req, pair = self.req, self.pair
        t0 = time.perf_counter()
        if req.mode == "intervene" and not self.gate.can_fire(0, 0):
            self.use_reasoning = False  # e.g. threshold inf or budget 0: the base model alone decides
        prompts = {}
        if self.use_base:
            prompts["base"] = prepare_prompt(pair.base, req.prompt, req.raw, "base", pair.formats[0])
        if self.use_reasoning:
            prompts["reasoning"] = prepare_prompt(pair.reasoning, req.prompt, req.raw, "reasoning", pair.formats[1])
        lb = pair.base.prefill(prompts["base"].tokens)[: self.n] if self.use_base else None
        lr = pair.reasoning.prefill(prompts["reasoning"].tokens)[: self.n] if self.use_reasoning else None
        t_first: Optional[float] = None
        text = Utf8Stream()
        hold: StopHold[TokenEvent] = StopHold(req.stop)
        emitted: list[TokenEvent] = []
        finish = "length"
        position = 0
        while True:
            if self.cancel is not None and self.cancel.is_set():
                finish = getattr(self.cancel, "reason", "cancelled")
                break
            if req.mode == "intervene" and self.use_reasoning and not self.gate.can_fire(position, self.takeovers):
                self.use_reasoning = False  # nothing left for the reasoning model to decide
            d = self._decide(position, lb, lr if self.use_reasoning else None)
            token, source = d.token, d.source
            model = pair.reasoning if source == "reasoning" else pair.base
            piece = text.feed(model.piece(token))
            event = TokenEvent(
                position=position,
                token_id=token,
                text=piece,
                source=source,
                divergence=d.divergence,
                base_entropy=d.base_entropy,
                budget_left=self.gate.budget_left(self.takeovers),
                t=time.perf_counter() - t0,
                top_k=d.top,
            )
            if t_first is None:
                t_first = event.t
            released, stopped = hold.push(event, piece)
            for ev, ev_text in released:
                ev = ev if ev_text == ev.text else _with_text(ev, ev_text)
                emitted.append(ev)
                yield ev
            if stopped:
                finish = "stop"
                break
            if model.is_eog(token):
                finish = "stop"
                break
            position += 1
            if position >= req.max_tokens:
                break
            try:
                lb = pair.base.decode([token], [0])[0][: self.n] if self.use_base else None
                lr = pair.reasoning.decode([token], [0])[0][: self.n] if self.use_reasoning else None
            except BackendError:
                if self._context_full():
                    break  # finish "length": the context is used up
                raise
        for ev, _ in hold.drain():
            emitted.append(ev)
            yield ev
        elapsed = time.perf_counter() - t0
        decode_time = elapsed - (t_first or elapsed)
        n_tokens = len(emitted)
        takeover_positions = tuple(e.position for e in emitted if e.source == "reasoning" and req.mode == "intervene")
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

    def _context_full(self) -> bool:
        full_b = self.use_base and self.pair.base.n_past >= self.pair.base.n_ctx
        full_r = self.use_reasoning and self.pair.reasoning.n_past >= self.pair.reasoning.n_ctx
        return bool(full_b or full_r)

    def _decide(self, position: int, lb: Optional[np.ndarray], lr: Optional[np.ndarray]) -> _Decision:
        """The token at ``position``, its source, divergence, base entropy and (opt-in) candidates."""
        lpb = dv.log_softmax(lb) if lb is not None else None
        lpr = dv.log_softmax(lr) if lr is not None and (lb is None or self.req.mode == "intervene") else None
        top = self._top(lpb, lpr) if self.req.return_top else None
        if lpb is None:
            assert lr is not None
            return _Decision(self.sampler.choose(lr, position), "reasoning", None, None, top)
        ent = float(dv.entropy(lpb))
        if lpr is None:
            return _Decision(self.sampler.choose(lb, position), "base", None, ent, top)
        div = float(dv.divergence(self.req.divergence, lpr, lpb))
        if self.gate.eligible(np.array([div]), np.array([ent]), np.array([position]))[0]:
            self.takeovers += 1
            return _Decision(self.sampler.choose(lr, position), "reasoning", div, ent, top)
        return _Decision(self.sampler.choose(lb, position), "base", div, ent, top)

    def _top(self, lpb: Optional[np.ndarray], lpr: Optional[np.ndarray]) -> dict[str, list[tuple[int, str, float]]]:
        out = {}
        for role, lp, model in (("base", lpb, self.pair.base), ("reasoning", lpr, self.pair.reasoning)):
            if lp is not None:
                out[role] = [(t, model.piece(t).decode("utf-8", "replace"), p) for t, p in dv.top_k(lp, self.req.return_top)]
        return out


@dataclass(frozen=True)
class _Decision:
    token: int
    source: str
    divergence: Optional[float]
    base_entropy: Optional[float]
    top: Optional[dict]


def _with_text(event: TokenEvent, text: str) -> TokenEvent:
    return replace(event, text=text)


def generate(pair: ModelPair, req: GenerationRequest, cancel: Optional[threading.Event] = None) -> Iterator[Event]:
    """Stream the events of one generation: TokenEvent per response token, then one Summary.

    Bad input raises (a TokintError) before the first event. ``cancel`` stops the generation
    at the next token with finish reason ``cancelled`` (or a ``Cancel``'s reason). The pair is used exclusively while the
    iterator runs; do not interleave two generations on one pair.
    """
    return _Run(pair, req, cancel).events()
