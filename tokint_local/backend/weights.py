"""Loading: ``ModelSettings`` (how to load one model) and ``LlamaWeights`` (one GGUF file in
memory, llama.cpp's ``llama_model``: weights, vocab, metadata, tokenize, pieces), shared by the
contexts made from it and counted by reference."""
from __future__ import annotations

import ctypes
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import llama_cpp

from ..compat import VocabInfo
from ..errors import BackendError, ModelFileMissing, ModelLoadError
from .runtime import _init_backend

_VOCAB_TYPES = {0: "none", 1: "spm", 2: "bpe", 3: "wpm", 4: "ugm", 5: "rwkv", 6: "plamo2"}


@dataclass(frozen=True)
class ModelSettings:
    """How to load one model. ``n_threads`` None means every core."""

    path: Path
    n_ctx: int = 4096
    n_threads: Optional[int] = None
    n_gpu_layers: int = 0
    n_batch: int = 512

    @property
    def weights_key(self) -> tuple[str, int]:
        """What identifies the weights in memory: contexts whose settings share it can share them."""
        return str(Path(self.path).resolve()), self.n_gpu_layers


def _rolls_back(model: llama_cpp.llama_model_p) -> bool:
    """False for recurrent and hybrid models (Mamba, RWKV, Jamba, ...): their state keeps no earlier positions."""
    checks = [getattr(llama_cpp, name, None) for name in ("llama_model_is_recurrent", "llama_model_is_hybrid")]
    return not any(check(model) for check in checks if check is not None)


class LlamaWeights:
    """One GGUF file loaded by llama.cpp: weights, vocab and metadata, shared by the contexts made
    from it. Each ``LlamaModel`` over it holds a reference; the last ``release`` frees it."""

    def __init__(self, path: Path, n_gpu_layers: int = 0):
        _init_backend()
        self.path, self.n_gpu_layers = Path(path), n_gpu_layers
        self.users = 0  # contexts holding these weights
        self._model = None
        if not self.path.is_file():
            raise ModelFileMissing(f"model file not found: {self.path}")
        mparams = llama_cpp.llama_model_default_params()
        mparams.n_gpu_layers = n_gpu_layers
        model = llama_cpp.llama_model_load_from_file(str(self.path).encode(), mparams)
        if not model:
            raise ModelLoadError(f"llama.cpp could not load {self.path} (is it a complete GGUF file?)")
        self._model = model
        self._vocab = llama_cpp.llama_model_get_vocab(model)
        self.n_vocab = llama_cpp.llama_vocab_n_tokens(self._vocab)
        self.can_roll_back = _rolls_back(model)
        self.architecture = self.metadata("general.architecture") or "unknown"
        self._pieces: dict[int, bytes] = {}
        self._vocab_info: Optional[VocabInfo] = None

    # -- lifecycle -------------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        return self._model is None

    def retain(self) -> None:
        if self.closed:
            raise BackendError(f"the weights of {self.path} were already freed")
        self.users += 1

    def release(self) -> None:
        self.users -= 1
        if self.users <= 0:
            self.close()

    def close(self) -> None:
        if getattr(self, "_model", None):
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def __del__(self) -> None:
        try:
            self.close()
        except Exception:
            pass

    # -- metadata --------------------------------------------------------------------------
    def metadata(self, key: str) -> Optional[str]:
        size = 1 << 16
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_model_meta_val_str(self._model, key.encode(), buf, size)
            if n < 0:
                return None
            if n < size:
                return buf.value.decode("utf-8", "replace")
            size = n + 1

    @property
    def chat_template(self) -> Optional[str]:
        raw = llama_cpp.llama_model_chat_template(self._model, None)
        return raw.decode("utf-8", "replace") if raw else None

    def token_text(self, token: int) -> str:
        raw = llama_cpp.llama_vocab_get_text(self._vocab, token)
        return raw.decode("utf-8", "backslashreplace") if raw else ""

    @property
    def bos(self) -> int:
        return llama_cpp.llama_vocab_bos(self._vocab)

    @property
    def eos(self) -> int:
        return llama_cpp.llama_vocab_eos(self._vocab)

    @property
    def add_bos(self) -> bool:
        return bool(llama_cpp.llama_vocab_get_add_bos(self._vocab))

    def vocab_info(self) -> VocabInfo:
        if self._vocab_info is None:
            self._vocab_info = VocabInfo(
                vocab_type=_VOCAB_TYPES.get(llama_cpp.llama_vocab_type(self._vocab), "unknown"),
                bos=self.bos,
                eos=self.eos,
                add_bos=self.add_bos,
                add_eos=bool(llama_cpp.llama_vocab_get_add_eos(self._vocab)),
                tokens=[self.token_text(i) for i in range(self.n_vocab)],
            )
        return self._vocab_info

    def memory_bytes(self) -> int:
        return int(llama_cpp.llama_model_size(self._model))

    def n_layers(self) -> int:
        return int(llama_cpp.llama_model_n_layer(self._model))

    # -- text ------------------------------------------------------------------------------
    def tokenize(self, text: str, add_special: bool, parse_special: bool) -> list[int]:
        data = text.encode("utf-8")
        cap = len(data) + 8
        buf = (llama_cpp.llama_token * cap)()
        n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            cap = -n
            buf = (llama_cpp.llama_token * cap)()
            n = llama_cpp.llama_tokenize(self._vocab, data, len(data), buf, cap, add_special, parse_special)
        if n < 0:
            raise BackendError("tokenization failed")
        return list(buf[:n])

    def piece(self, token: int) -> bytes:
        """The bytes a token stands for; control tokens (end of turn, ...) give none."""
        cached = self._pieces.get(token)
        if cached is not None:
            return cached
        size = 64
        while True:
            buf = ctypes.create_string_buffer(size)
            n = llama_cpp.llama_token_to_piece(self._vocab, token, buf, size, 0, False)
            if n >= 0:
                out = buf.raw[:n]
                self._pieces[token] = out
                return out
            size = -n

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self._vocab, token))
