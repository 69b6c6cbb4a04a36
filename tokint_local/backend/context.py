"""Decoding: ``LlamaModel``, one llama.cpp context (``llama_context``) over loaded weights, with a
KV cache of its own holding ``n_seq`` sequences: prefill (with the prompt and prefix reuse), decode,
decode_batch (several sequences' tokens in one ``llama_decode``), truncate (roll a sequence back)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Optional, Sequence

import llama_cpp
import numpy as np

from ..compat import VocabInfo
from ..errors import BackendError, ModelLoadError, PromptTooLong
from .runtime import accelerator
from .weights import LlamaWeights, ModelSettings

# each sequence keeps its cache in a stream of its own: a sequence's attention then reads only its own
# cells, in the order a context of its own would hold them (docs/PERFORMANCE.md, batched decoding)
KV_UNIFIED = False


class LlamaModel:
    """One llama.cpp context, with a KV cache of its own, over loaded weights. ``weights`` None
    loads the file for this context alone; pass a ``LlamaWeights`` to share one file between
    contexts (each keeps its own cache). Not thread-safe: use it from one thread at a time.

    ``n_seq`` sequences share the context, each with its own positions and cache (``seq`` arguments;
    sequence 0 by default). ``n_ctx`` is what each sequence may fill: the smaller of what was
    configured and what llama.cpp allocated per sequence. ``n_batch`` is the most tokens one decode
    takes, all sequences together: llama.cpp's own batch size for this context (at most the configured
    n_batch, and at most the n_ctx asked for).
    """

    def __init__(self, settings: ModelSettings, weights: Optional[LlamaWeights] = None, n_seq: int = 1):
        if n_seq < 1:
            raise BackendError(f"a context holds at least one sequence, not {n_seq}")
        self.settings = settings
        self.n_seq = n_seq
        self._ctx = None
        self._batch = None
        self._holds_weights = False
        self.weights = weights if weights is not None else LlamaWeights(settings.path, settings.n_gpu_layers)
        self.weights.retain()
        self._holds_weights = True
        try:
            self._open_context()
        except BaseException:
            self.close()
            raise
        self.n_vocab = self.weights.n_vocab
        # per sequence: the tokens whose keys and values are in the cache, in order
        self._cached: list[list[int]] = [[] for _ in range(n_seq)]
        # per sequence: its last prompt and that prompt's logits
        self._prompt: list[Optional[tuple[tuple[int, ...], np.ndarray, bool]]] = [None] * n_seq  # and: from 0?
        self.last_reused = 0  # prompt tokens the last prefill took from the cache

    def _open_context(self) -> None:
        settings = self.settings
        cparams = llama_cpp.llama_context_default_params()
        threads = settings.n_threads or os.cpu_count() or 1
        # every sequence gets n_ctx cells of its own (llama.cpp splits n_ctx evenly between them)
        cparams.n_ctx = settings.n_ctx * self.n_seq
        cparams.n_batch = settings.n_batch
        cparams.n_ubatch = settings.n_batch
        cparams.n_seq_max = self.n_seq
        cparams.kv_unified = KV_UNIFIED
        cparams.n_threads = threads
        cparams.n_threads_batch = threads
        self._ctx = llama_cpp.llama_init_from_model(self.weights._model, cparams)
        if not self._ctx:
            raise ModelLoadError(f"llama.cpp could not create a context for {settings.path} (n_ctx {settings.n_ctx})")
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        # llama.cpp pads each sequence's n_ctx up to a multiple of 256: use no more than was configured
        self.n_ctx = min(int(llama_cpp.llama_n_ctx_seq(self._ctx)), settings.n_ctx)
        self.n_cells = int(llama_cpp.llama_n_ctx(self._ctx))
        # llama.cpp caps its batch at the n_ctx asked for and asserts on a larger one (and on one
        # larger than n_ubatch for non-causal attention)
        self.n_batch = min(int(llama_cpp.llama_n_batch(self._ctx)), int(llama_cpp.llama_n_ubatch(self._ctx)))
        if self.n_batch < 1:
            raise ModelLoadError(f"llama.cpp gave {settings.path} a batch of {self.n_batch} tokens (n_batch {settings.n_batch})")
        self._batch = llama_cpp.llama_batch_init(self.n_batch, 0, 1)

    # -- lifecycle -------------------------------------------------------------------------
    def close(self) -> None:
        """Free this context; the weights too when no other context uses them."""
        if getattr(self, "_batch", None) is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if getattr(self, "_ctx", None):
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if getattr(self, "_holds_weights", False):
            self._holds_weights = False
            self.weights.release()

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- what the weights know -------------------------------------------------------------
    @property
    def can_roll_back(self) -> bool:
        """False for recurrent and hybrid models: ``truncate`` can then only empty the cache."""
        return self.weights.can_roll_back

    def metadata(self, key: str) -> Optional[str]:
        return self.weights.metadata(key)

    @property
    def chat_template(self) -> Optional[str]:
        return self.weights.chat_template

    def token_text(self, token: int) -> str:
        return self.weights.token_text(token)

    @property
    def bos(self) -> int:
        return self.weights.bos

    @property
    def eos(self) -> int:
        return self.weights.eos

    def special_text(self, token: int) -> str:
        return self.token_text(token) if token >= 0 else ""

    def vocab_info(self) -> VocabInfo:
        return self.weights.vocab_info()

    @property
    def add_bos(self) -> bool:
        return self.weights.add_bos

    def memory_bytes(self) -> int:
        """The size of the weights (shared with every other context over them)."""
        return self.weights.memory_bytes()

    def context_bytes(self) -> int:
        """The KV cache's size: n_seq x n_ctx cells (as llama.cpp padded them) of f16 keys and values
        per layer; 0 for a recurrent model (its state does not grow with the context)."""
        if not self.can_roll_back:
            return 0
        w = self.weights
        arch = w.architecture
        n_head = int(llama_cpp.llama_model_n_head(w._model)) or 1
        head = int(llama_cpp.llama_model_n_embd(w._model)) // n_head
        key = int(w.metadata(f"{arch}.attention.key_length") or head)
        value = int(w.metadata(f"{arch}.attention.value_length") or head)
        n_head_kv = int(llama_cpp.llama_model_n_head_kv(w._model))
        return self.n_cells * w.n_layers() * n_head_kv * (key + value) * 2

    def offload(self) -> tuple[str, int, int]:
        """(backend, layers on the GPU, layers in all): n_gpu_layers as llama.cpp applies it."""
        n_layers = self.weights.n_layers()
        backend = accelerator()
        if backend == "CPU":
            return backend, 0, n_layers
        wanted = self.settings.n_gpu_layers
        on_gpu = n_layers if wanted < 0 else min(wanted, n_layers)
        return backend, on_gpu, n_layers

    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        return self.weights.tokenize(text, add_special, parse_special)

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; control tokens (end of turn, ...) give none."""
        return self.weights.piece(token)

    def is_eog(self, token: int) -> bool:
        return self.weights.is_eog(token)

    # -- decoding --------------------------------------------------------------------------
    @property
    def n_past(self) -> int:
        return len(self._cached[0])

    def seq_n_past(self, seq: int) -> int:
        return len(self._cached[seq])

    def prefill(self, tokens: Sequence[int], seq: int = 0, reuse_prefix: bool = False) -> np.ndarray:
        """Put the prompt ``tokens`` in sequence ``seq``; logits ``[n_vocab]`` of the last one.

        By default the prompt is decoded the same way every time (chunks of n_batch from position 0,
        in batches of its own), because llama.cpp's arithmetic differs slightly between batch sizes:
        reusing part of an earlier prompt would make a generation depend on what ran before it. The
        one reuse is exact: the same prompt as this sequence's last one keeps its cache and its logits
        (for a model that cannot roll back, only when the cache holds nothing after it).

        ``reuse_prefix`` (a conversation's next turn) keeps the longest prefix of ``tokens`` that the
        sequence holds and decodes only the rest: much faster, at the price that the logits may differ
        slightly from a from-scratch prefill (and tip a near tie). ``last_reused`` says how many
        tokens came from the cache.
        """
        if not tokens:
            raise BackendError("cannot decode an empty prompt")
        if len(tokens) >= self.n_ctx:
            raise PromptTooLong(
                f"the prompt is {len(tokens)} tokens but the context holds {self.n_ctx}; shorten it or raise n_ctx"
            )
        key = tuple(tokens)
        cached = self._cached[seq]
        held = tuple(cached if not self.can_roll_back else cached[: len(key)])
        last = self._prompt[seq]
        if last is not None and last[0] == key and held == key and (reuse_prefix or last[2]):
            self.truncate(len(key), seq)
            self.last_reused = len(key)
            return last[1].copy()
        start = 0
        if reuse_prefix:
            start = next((i for i, (a, b) in enumerate(zip(cached, key)) if a != b), min(len(cached), len(key)))
            start = min(start, len(key) - 1)  # the last token is decoded again: its logits are the answer
            if start < len(cached) and not self.can_roll_back:
                start = 0  # a recurrent model cannot drop positions: the whole prompt again
        self._prompt[seq] = None
        self.truncate(start, seq)
        logits = None
        at = start
        while at < len(key):  # chunks end where a from-scratch prefill's end: at multiples of n_batch
            end = min((at // self.n_batch + 1) * self.n_batch, len(key))
            logits = self.decode(key[at:end], rows=[end - at - 1] if end == len(key) else [], seq=seq)
            at = end
        assert logits is not None
        self._prompt[seq] = (key, logits[0], start == 0)  # (tokens, logits, decoded from position 0)
        self.last_reused = start
        return logits[0].copy()

    def decode(self, tokens: Sequence[int], rows: Optional[Sequence[int]] = None, seq: int = 0) -> np.ndarray:
        """Append ``tokens`` to sequence ``seq`` at its next positions; logits ``[len(rows), n_vocab]``
        for the chosen rows.

        ``rows`` None means every row. Raises BackendError when the context is full or the batch
        is larger than ``n_batch``.
        """
        return self.decode_batch([(seq, tokens, rows)])[0]

    def check(self, seq: int, tokens: Sequence[int], rows: Optional[Sequence[int]] = None) -> None:
        """Raise BackendError if ``tokens`` (with logits ``rows``) cannot be appended to sequence ``seq``."""
        n = len(tokens)
        if not 0 <= seq < self.n_seq:
            raise BackendError(f"sequence {seq} is not one of this context's {self.n_seq}")
        if n == 0 or n > self.n_batch:
            raise BackendError(f"a batch holds 1 to {self.n_batch} tokens, not {n}")
        if len(self._cached[seq]) + n > self.n_ctx:
            raise BackendError(f"the context is full ({self.n_ctx} tokens)")
        if rows is not None and any(not 0 <= row < n for row in rows):
            raise BackendError(f"logits rows must lie in 0..{n - 1}, not {list(rows)}")

    def decode_batch(self, parts: Sequence[tuple[int, Sequence[int], Optional[Sequence[int]]]]) -> list[np.ndarray]:
        """One ``llama_decode`` for several sequences: each part ``(seq, tokens, rows)`` appends its
        tokens to its sequence at that sequence's next positions. Returns each part's logits rows
        ``[len(rows), n_vocab]`` (``rows`` None: every row), in the order of ``parts``.

        The parts' tokens together may not exceed ``n_batch`` and a sequence may appear once.
        """
        for seq, tokens, rows in parts:
            self.check(seq, tokens, rows)
        total = sum(len(tokens) for _, tokens, _ in parts)
        if total > self.n_batch:
            raise BackendError(f"a batch holds 1 to {self.n_batch} tokens, not {total}")
        if len({seq for seq, _, _ in parts}) != len(parts):
            raise BackendError("a sequence may appear once in a batch")
        # In ascending sequence order: with a KV stream per sequence, llama.cpp splits a batch whose
        # sequence ids are out of order into one micro-batch per sequence, and 4 rows then cost
        # about 4 single-row decodes instead of about 2.5 (bench/batch_speed.py, docs/PERFORMANCE.md).
        order = sorted(range(len(parts)), key=lambda k: parts[k][0])
        parts = [parts[k] for k in order]
        batch = self._batch
        i = 0
        wanted: list[list[int]] = []  # per part: the batch indices of its logits rows
        for seq, tokens, rows in parts:
            start = len(self._cached[seq])
            rows = range(len(tokens)) if rows is None else rows
            want = set(rows)
            for j, tok in enumerate(tokens):
                batch.token[i + j] = tok
                batch.pos[i + j] = start + j
                batch.n_seq_id[i + j] = 1
                batch.seq_id[i + j][0] = seq
                batch.logits[i + j] = j in want
            wanted.append([i + row for row in rows])
            i += len(tokens)
        batch.n_tokens = total
        rc = llama_cpp.llama_decode(self._ctx, batch)
        if rc != 0:
            # llama.cpp undoes a failed batch; should it have left anything behind, start clean
            for seq, _, _ in parts:
                if llama_cpp.llama_memory_seq_pos_max(self._memory, seq) != len(self._cached[seq]) - 1:
                    self._clear(seq)
            raise BackendError(f"llama_decode failed with code {rc}")
        out: list[np.ndarray] = [np.empty(0)] * len(parts)
        for k, (seq, tokens, _), indices in zip(order, parts, wanted):  # each back in its place in ``parts``
            self._cached[seq].extend(tokens)
            logits = np.empty((len(indices), self.n_vocab), dtype=np.float32)
            for j, index in enumerate(indices):
                ptr = llama_cpp.llama_get_logits_ith(self._ctx, index)
                if not ptr:
                    raise BackendError(f"llama.cpp returned no logits for row {index}")
                logits[j] = np.ctypeslib.as_array(ptr, shape=(self.n_vocab,))
            out[k] = logits
        return out

    def truncate(self, n: int, seq: int = 0) -> None:
        """Forget every cached position of sequence ``seq`` from ``n`` on (``llama_memory_seq_rm``).

        Raises BackendError when llama.cpp refuses (a recurrent model cannot drop only its last
        positions); the sequence is then empty, never silently different from what ``n_past`` says.
        """
        cached = self._cached[seq]
        if n >= len(cached):
            return
        if not llama_cpp.llama_memory_seq_rm(self._memory, seq, max(n, 0), -1):
            self._clear(seq)
            raise BackendError(
                f"llama.cpp cannot roll the cache of {Path(self.settings.path).name} back to position {n} "
                f"(a {self.weights.architecture} model keeps no earlier state); the cache was emptied"
            )
        del cached[max(n, 0):]

    def _clear(self, seq: int) -> None:
        llama_cpp.llama_memory_seq_rm(self._memory, seq, -1, -1)
        self._cached[seq] = []
        self._prompt[seq] = None
