"""How the two models are run to decide each token: ``lockstep`` and ``block``.

Both yield the same kind of Decision, one per response position, in order; the engine turns them
into events and decides when to stop. The generator does the decoding when it is asked for the next
token, so whatever the engine stops on (a stop string, the end-of-generation token, max_tokens) no
model work is wasted on positions nobody asked for, beyond an abandoned draft.

lockstep: at every position both models decode one token, then the gate decides.

block (speculative-decoding style): the base model drafts up to k tokens one at a time; the
reasoning model scores all of them in one batch; divergences for the block are computed at once.
At the first position where the gate fires, the reasoning model's token is taken, both caches are
rolled back to that position and the rest of the draft is dropped; with no takeover the whole draft
stands. The token at a position is drawn from the same logits with the same random number as in
lockstep, so the two schedules agree up to the arithmetic of batched decoding (docs/PERFORMANCE.md).

Once no takeover is possible any more (budget spent, past max_position, infinite threshold) the
reasoning model stops running and the base model decodes alone, in either schedule.

The block schedule needs both caches to roll back; the engine runs lockstep for a pair with a
model that cannot (recurrent and hybrid architectures). A draft is cut to what fits in the
reasoning model's batch (llama.cpp's n_batch) and context.

A control gate (entropy, top1, random: gate.py) decides from the base model alone. In lockstep the
reasoning model still runs at every position (its divergence is reported); in the block schedule it
runs only where the gate fires (``_sparse``): it reads the tokens it has not seen in one batch,
logits for the last row only, and writes the takeover token.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Optional, Union

import numpy as np

from . import divergence as dv
from .errors import BackendError
from .gate import Gate
from .pair import ModelPair
from .sampling import Sampler

# Adaptive block size: sizes llama.cpp scores efficiently (on the 2-core CPU a batch of 16 rows
# runs at 63 tok/s, 8 rows at 34, 4 rows at 44; bench/block_speed.py), starting small because
# takeovers cluster early in a response, stepping up after a fully accepted draft and back down
# after a takeover.
K_LADDER = (4, 16)


@dataclass(frozen=True)
class Decision:
    position: int
    token: int
    source: str  # "base" or "reasoning"
    divergence: Optional[float]
    base_entropy: Optional[float]
    budget_left: Optional[int]
    top: Optional[dict] = None
    logprob: Optional[float] = None  # under the model that wrote the token, when asked for


class AdaptiveK:
    """The draft length policy; ``fixed`` pins it (for measurements)."""

    def __init__(self, fixed: Optional[int] = None, ladder: tuple[int, ...] = K_LADDER):
        self.fixed, self.ladder, self.step = fixed, ladder, 0

    @property
    def k(self) -> int:
        return self.fixed or self.ladder[self.step]

    def accepted(self, n: int) -> None:
        if n >= self.k:
            self.step = min(self.step + 1, len(self.ladder) - 1)

    def took_over(self, at: int) -> None:
        self.step = 0


class Stepper:
    """Decisions for one response. ``lb``/``lr`` are the models' logits for position 0 (cut to the
    shared vocab); ``prompt_lengths`` are where each model's response positions start."""

    def __init__(self, pair: ModelPair, mode: str, divergence: str, gate: Gate, sampler: Sampler, max_tokens: int,
                 return_top: int, prompt_lengths: tuple[int, int], block: Optional[AdaptiveK], logprobs: bool = False):
        self.pair, self.mode, self.divergence = pair, mode, divergence
        self.gate, self.sampler, self.max_tokens, self.return_top = gate, sampler, max_tokens, return_top
        self.log_probs = logprobs or return_top > 0  # full log-softmax rows only when asked for
        self.pb, self.pr = prompt_lengths
        self.block = block  # None: lockstep
        self.n = pair.n_shared
        self.takeovers = 0
        self.reasoning_on = mode == "reasoning" or (mode == "intervene" and gate.can_fire(0, 0))
        self.base_on = mode in ("base", "intervene")
        self.drafted = 0  # base tokens decoded for drafts, for measurements
        self.rejected = 0  # drafted tokens thrown away after a takeover

    def _still_reasoning(self, position: int) -> bool:
        if self.mode == "intervene" and self.reasoning_on and not self.gate.can_fire(position, self.takeovers):
            self.reasoning_on = False  # nothing left for the reasoning model to decide
        return self.reasoning_on

    # -- the numbers for a block of positions ----------------------------------------------
    def _score(self, lb: Optional[np.ndarray], lr: Optional[np.ndarray]):
        """Per position of a block (2-D rows): base entropy and divergence, and the log-probs the
        opt-in top candidates need. Each row is computed on its own (dv.position_stats)."""
        ent = div = None
        if lb is not None:
            stats = [dv.position_stats(lb[j], None if lr is None else lr[j], self.divergence) for j in range(len(lb))]
            ent = np.array([e for e, _ in stats])
            if lr is not None:
                div = np.array([d for _, d in stats])
        lpb = dv.log_softmax(lb) if self.log_probs and lb is not None else None
        lpr = dv.log_softmax(lr) if self.log_probs and lr is not None else None
        return lpb, lpr, ent, div

    def _top(self, lpb: Optional[np.ndarray], lpr: Optional[np.ndarray]) -> Optional[dict]:
        if not self.return_top:
            return None
        out = {}
        for role, lp, model in (("base", lpb, self.pair.base), ("reasoning", lpr, self.pair.reasoning)):
            if lp is not None:
                out[role] = [(t, model.piece(t).decode("utf-8", "replace"), p) for t, p in dv.top_k(lp, self.return_top)]
        return out

    def _base_top1(self, lb: np.ndarray) -> Optional[np.ndarray]:
        """The base model's top-1 probability per row, where the gate's rule needs it."""
        return np.array([dv.top1_from_logits(row) for row in lb]) if self.gate.kind == "top1" else None

    def _decision(self, position: int, token: int, source: str, j: int, lpb, lpr, ent, div) -> Decision:
        writer = lpr if source == "reasoning" else lpb
        return Decision(
            position=position, token=token, source=source,
            divergence=None if div is None else float(div[j]),
            base_entropy=None if ent is None else float(ent[j]),
            budget_left=self.gate.budget_left(self.takeovers),
            top=self._top(None if lpb is None else lpb[j], None if lpr is None else lpr[j]),
            logprob=None if writer is None else float(writer[j][token]),
        )

    # -- one position at a time ------------------------------------------------------------
    def _single(self, i: int, lb: Optional[np.ndarray], lr: Optional[np.ndarray]) -> Decision:
        lr = lr if self._still_reasoning(i) else None
        if self.mode == "base" or self.mode == "intervene" and lr is None:
            lpb, _, ent, _ = self._score(lb[None], None)
            return self._decision(i, self.sampler.choose(lb, i), "base", 0, lpb, None, ent, None)
        if self.mode == "reasoning":
            _, lpr, _, _ = self._score(None, lr[None])
            return self._decision(i, self.sampler.choose(lr, i), "reasoning", 0, None, lpr, None, None)
        lpb, lpr, ent, div = self._score(lb[None], lr[None])
        if self.gate.eligible(div, ent, np.array([i]), self._base_top1(lb[None]))[0]:
            self.takeovers += 1
            return self._decision(i, self.sampler.choose(lr, i), "reasoning", 0, lpb, lpr, ent, div)
        return self._decision(i, self.sampler.choose(lb, i), "base", 0, lpb, lpr, ent, div)

    def decisions(self, lb: Optional[np.ndarray], lr: Optional[np.ndarray]) -> Iterator[Decision]:
        """Yield one Decision per position until max_tokens or a full context; the caller stops
        earlier (end of generation, stop strings) simply by not asking for more."""
        i = 0
        base, reasoning = self.pair.base, self.pair.reasoning
        while i < self.max_tokens:
            if self.block is not None and self.mode == "intervene" and self._still_reasoning(i):
                step = self._block if self.gate.needs_reasoning else self._sparse
                result = yield from step(i, lb, lr)
                if result is None:
                    return
                i, lb, lr = result
                continue
            d = self._single(i, lb, lr)
            yield d
            i += 1
            if i >= self.max_tokens:
                return
            try:
                lb = base.decode([d.token], [0])[0][: self.n] if self.base_on else None
                lr = reasoning.decode([d.token], [0])[0][: self.n] if self._still_reasoning(i) else None
            except BackendError:
                if self._context_full():
                    return  # the engine finishes with "length"
                raise

    def _context_full(self) -> bool:
        return (self.base_on and self.pair.base.n_past >= self.pair.base.n_ctx) or (
            self.reasoning_on and self.pair.reasoning.n_past >= self.pair.reasoning.n_ctx)

    # -- a block of positions --------------------------------------------------------------
    def _block(self, i: int, lb: np.ndarray, lr: Union[np.ndarray, int]):
        """Draft, score, decide one block starting at position ``i``; returns (i, lb, lr) for the
        next block, or None when the response cannot go on (end of generation, full context).

        ``lr`` is the reasoning model's logits for position ``i``, or (an int) the token at ``i - 1``
        that it has not decoded yet: that token then opens the scoring batch, so an accepted draft's
        last token and a takeover token cost the reasoning model a batch row, not a decode of its own.
        """
        base, reasoning = self.pair.base, self.pair.reasoning
        pending = lr if isinstance(lr, int) else None
        reasoning_room = reasoning.n_ctx - reasoning.n_past - (pending is not None)  # drafts it can still score
        batch_room = reasoning.n_batch - (pending is not None)  # the scoring batch may hold no more than n_batch
        limit = min(self.block.k, self.max_tokens - i, reasoning_room + 1, batch_room + 1, base.n_ctx - base.n_past + 1)
        if self.gate.max_position is not None:
            limit = min(limit, self.gate.max_position - i)
        if limit < 1:
            return None  # a context is full: finish "length"
        tokens: list[int] = []
        rows = [lb]
        for j in range(limit):
            t = self.sampler.choose(rows[j], i + j)
            tokens.append(t)
            if base.is_eog(t) or base.n_past >= base.n_ctx:
                break
            rows.append(base.decode([t], [0])[0][: self.n])
        m = len(tokens)
        self.drafted += m
        feed = ([pending] if pending is not None else []) + tokens[: m - 1]
        scored = reasoning.decode(feed)[:, : self.n] if feed else np.empty((0, self.n), np.float32)
        lbs = np.stack(rows[:m])
        lrs = scored if pending is not None else np.concatenate([lr[None], scored])
        lpb, lpr, ent, div = self._score(lbs, lrs)
        eligible = self.gate.eligible(div, ent, np.arange(i, i + m), self._base_top1(lbs))
        hits = np.flatnonzero(eligible)
        f = int(hits[0]) if len(hits) else None
        if f is None:
            for j in range(m):
                yield self._decision(i + j, tokens[j], "base", j, lpb, lpr, ent, div)
            self.block.accepted(m)
            if len(rows) <= m:  # ended on an EOG token or a full context
                return None
            return i + m, rows[m], tokens[m - 1]
        for j in range(f):
            yield self._decision(i + j, tokens[j], "base", j, lpb, lpr, ent, div)
        t = self.sampler.choose(lrs[f], i + f)
        self.takeovers += 1
        yield self._decision(i + f, t, "reasoning", f, lpb, lpr, ent, div)
        self.rejected += m - f
        self.block.took_over(f)
        base.truncate(self.pb + i + f)
        reasoning.truncate(self.pr + i + f)  # keeps what it decoded before position i + f
        nxt = i + f + 1
        if nxt >= self.max_tokens:
            return None
        try:
            lb = base.decode([t], [0])[0][: self.n]
        except BackendError:
            if self._context_full():
                return None
            raise
        return nxt, lb, t

    # -- a control gate: the reasoning model runs only where it takes over --------------------
    def _sparse(self, i: int, lb: np.ndarray, lr: np.ndarray):
        """The block schedule for a gate that decides from the base model alone: the base model
        writes on one token at a time; where the gate fires, the reasoning model reads the tokens
        it has not read yet (batches of n_batch, logits for the last row only) and writes the
        takeover token. Returns (i, lb, None) once no takeover can happen any more, None when the
        response cannot go on; stops where lockstep would (a context full, counting unread tokens)."""
        base, reasoning = self.pair.base, self.pair.reasoning
        fresh: Optional[np.ndarray] = lr  # the reasoning model's logits for position i while it is up to date
        unread: list[int] = []  # response tokens the reasoning model has not read yet
        while True:
            if not self._still_reasoning(i):
                return i, lb, None
            lpb, _, ent, _ = self._score(lb[None], None)
            if self.gate.eligible(None, ent, np.array([i]), self._base_top1(lb[None]))[0]:
                if unread:
                    fresh, unread = self._read(unread), []
                t = self.sampler.choose(fresh, i)
                self.takeovers += 1
                _, div = dv.position_stats(lb, fresh, self.divergence)
                lpr = dv.log_softmax(fresh[None]) if self.return_top else None
                yield self._decision(i, t, "reasoning", 0, lpb, lpr, ent, np.array([div]))
            else:
                t = self.sampler.choose(lb, i)
                yield self._decision(i, t, "base", 0, lpb, None, ent, None)
            unread.append(t)
            fresh = None
            i += 1
            if i >= self.max_tokens or reasoning.n_past + len(unread) > reasoning.n_ctx:
                return None
            try:
                lb = base.decode([t], [0])[0][: self.n]
            except BackendError:
                if base.n_past >= base.n_ctx:
                    return None  # the engine finishes with "length"
                raise

    def _read(self, tokens: list[int]) -> np.ndarray:
        """The reasoning model reads ``tokens``; its logits after the last one."""
        reasoning, step = self.pair.reasoning, self.pair.reasoning.n_batch
        for start in range(0, len(tokens), step):
            chunk = tokens[start : start + step]
            last = start + step >= len(tokens)
            rows = reasoning.decode(chunk, [len(chunk) - 1] if last else [])
        return rows[0][: self.n]
