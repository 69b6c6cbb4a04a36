"""The one package that talks to llama.cpp (through llama-cpp-python's low-level API).

``LlamaWeights`` is one GGUF file in memory (llama.cpp's ``llama_model``: weights, vocab,
metadata), loaded once and shared by reference count. A ``LlamaModel`` is one context over such
weights, with a KV cache of its own holding ``n_seq`` sequences (each with n_ctx positions of its
own): it decodes a batch of tokens at a sequence's next positions and returns logits only for the
rows asked for (``llama_batch`` + ``llama_get_logits_ith``), decodes several sequences' tokens in
one batch (``decode_batch``), rolls a sequence back (``llama_memory_seq_rm``), keeps each
sequence's last prompt for an identical prompt, and on request reuses the longest prefix a sequence
holds (a conversation's next turn). Logits memory is bounded by the rows requested,
never n_ctx x vocab. The methods without a ``seq`` argument work on sequence 0.

Every size is the one llama.cpp actually uses (it pads n_ctx up to a multiple of 256 but caps the
batch at the n_ctx asked for, and asserts when a batch is larger), so no call made here can reach
one of its batch-size assertions.

In three modules: ``runtime`` (llama.cpp once per process: initialisation, its log, its build),
``weights`` (``ModelSettings``, ``LlamaWeights``: loading a file) and ``context`` (``LlamaModel``:
a context and its decoding). Import from here; ``KV_UNIFIED`` (which bench/batch_speed.py sets)
lives in ``context``.
"""
from __future__ import annotations

from .context import LlamaModel
from .runtime import accelerator, gpu_offload_supported, versions
from .weights import LlamaWeights, ModelSettings

__all__ = ["LlamaModel", "LlamaWeights", "ModelSettings", "accelerator", "gpu_offload_supported", "versions"]
