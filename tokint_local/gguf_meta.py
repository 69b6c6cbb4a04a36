"""Reading a GGUF file's metadata (never its weights): for checking a pair before loading it.

A small reader of the GGUF header (version 2 and 3): key-value pairs are parsed in place from a
memory map, and arrays nobody asked for are skipped without being decoded. ``required_size``
reads the tensor table too, to tell a file cut short from a whole one.
"""
from __future__ import annotations

import mmap
import struct
from pathlib import Path
from typing import Any, Iterable, Optional

from .compat import VocabInfo
from .errors import ModelLoadError

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?", 10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
# llama.cpp's tokenizer.ggml.model values -> its vocab type names (as backend/weights.py reports them)
_VOCAB_TYPES = {"llama": "spm", "gpt2": "bpe", "bert": "wpm", "t5": "ugm", "rwkv": "rwkv", "plamo2": "plamo2", "no_vocab": "none"}
# llama.cpp's defaults when a file does not say: (bos, eos, add_bos, add_eos) per vocab type
_VOCAB_DEFAULTS = {"spm": (1, 2, True, False), "bpe": (11, 11, False, False), "wpm": (101, 102, True, False),
                   "ugm": (-1, 1, False, True), "rwkv": (-1, -1, False, False)}
# ggml tensor types -> (elements per block, bytes per block), as ggml.c's type_traits has them
_GGML_BLOCKS = {
    0: (1, 4), 1: (1, 2), 2: (32, 18), 3: (32, 20), 6: (32, 22), 7: (32, 24), 8: (32, 34), 9: (32, 36),
    10: (256, 84), 11: (256, 110), 12: (256, 144), 13: (256, 176), 14: (256, 210), 15: (256, 292),
    16: (256, 66), 17: (256, 74), 18: (256, 98), 19: (256, 50), 20: (32, 18), 21: (256, 110), 22: (256, 82),
    23: (256, 136), 24: (1, 1), 25: (1, 2), 26: (1, 4), 27: (1, 8), 28: (1, 8), 29: (256, 56), 30: (1, 2),
    34: (256, 54), 35: (256, 66), 39: (32, 17), 40: (64, 36), 41: (128, 18),
}
DEFAULT_ALIGNMENT = 32

# llama.cpp's recurrent and hybrid architectures (llm_arch_is_recurrent / llm_arch_is_hybrid): their
# state keeps no earlier positions, so their cache cannot be cut back to one
RECURRENT_ARCHITECTURES = frozenset({
    "mamba", "mamba2", "rwkv6", "rwkv6qwen2", "rwkv7", "arwkv7",
    "jamba", "falcon-h1", "plamo2", "granitehybrid", "lfm2", "lfm2moe", "nemotron_h", "nemotron_h_moe",
    "qwen3next", "qwen35", "qwen35moe", "qwen4exp", "kimi-linear", "kimi-k3", "bailingmoe3", "glm5-next",
    "deepseek4", "minimax-01",
})
VOCAB_KEYS = ("tokenizer.ggml.model", "tokenizer.ggml.tokens", "tokenizer.ggml.bos_token_id",
              "tokenizer.ggml.eos_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token")


def read_metadata(path: Path, keys: Optional[Iterable[str]] = None) -> dict[str, Any]:
    """The metadata of a GGUF file; only ``keys`` if given (the rest is skipped, not decoded)."""
    wanted = set(keys) if keys is not None else None
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _Reader(buf, path).read(wanted)
    except (OSError, ValueError, struct.error, IndexError) as exc:
        raise ModelLoadError(f"{path} is not a readable GGUF file ({exc})") from None


def required_size(path: Path) -> Optional[int]:
    """The bytes a whole file needs: where its tensor data starts plus the end of its last tensor.

    None when that cannot be told (an unreadable header, a tensor type this table lacks); a file
    shorter than the answer was cut short.
    """
    try:
        with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
            return _Reader(buf, path).required_size()
    except (OSError, ValueError, struct.error, IndexError, KeyError):
        return None


def vocab_info(path: Path) -> VocabInfo:
    """What decides pairing, from the file's metadata alone."""
    meta = read_metadata(path, VOCAB_KEYS)
    model = meta.get("tokenizer.ggml.model")
    if model is None or "tokenizer.ggml.tokens" not in meta:
        raise ModelLoadError(f"{path} has no tokenizer in its metadata")
    vocab_type = _VOCAB_TYPES.get(model, model)
    bos, eos, add_bos, add_eos = _VOCAB_DEFAULTS.get(vocab_type, (-1, -1, False, False))
    return VocabInfo(
        vocab_type=vocab_type,
        bos=int(meta.get("tokenizer.ggml.bos_token_id", bos)),
        eos=int(meta.get("tokenizer.ggml.eos_token_id", eos)),
        add_bos=bool(meta.get("tokenizer.ggml.add_bos_token", add_bos)),
        add_eos=bool(meta.get("tokenizer.ggml.add_eos_token", add_eos)),
        tokens=meta["tokenizer.ggml.tokens"],
    )


def architecture(path: Path) -> str:
    """The file's ``general.architecture`` (llama.cpp's name for the model's kind)."""
    return str(read_metadata(path, ["general.architecture"]).get("general.architecture", "unknown"))


def can_roll_back(arch: str) -> bool:
    """Whether llama.cpp can cut this architecture's cache back to a position (not recurrent or hybrid)."""
    return arch not in RECURRENT_ARCHITECTURES


class _Reader:
    def __init__(self, buf: mmap.mmap, path: Path):
        self.buf, self.path, self.pos = buf, path, 0

    def read(self, wanted: Optional[set[str]]) -> dict[str, Any]:
        _, n_kv = self._preamble()
        out: dict[str, Any] = {}
        for _ in range(n_kv):
            key = self._string()
            vtype = self._scalar("<I")
            if wanted is None or key in wanted:
                out[key] = self._value(vtype)
                if wanted is not None and len(out) == len(wanted):
                    break
            else:
                self._skip(vtype)
        return out

    def _preamble(self) -> tuple[int, int]:
        if self.buf[:4] != b"GGUF":
            raise ValueError("no GGUF magic")
        self.pos = 4
        version = self._scalar("<I")
        if version not in (2, 3):
            raise ValueError(f"GGUF version {version} is not supported")
        return self._scalar("<Q"), self._scalar("<Q")  # tensor count, key-value count

    def required_size(self) -> int:
        try:
            return self._tensor_end()
        except struct.error:
            return len(self.buf) + 1  # the header itself runs past the end: the file needs more than it has

    def _tensor_end(self) -> int:
        n_tensors, n_kv = self._preamble()
        alignment = DEFAULT_ALIGNMENT
        for _ in range(n_kv):
            key = self._string()
            vtype = self._scalar("<I")
            if key == "general.alignment":
                alignment = int(self._value(vtype))
            else:
                self._skip(vtype)
        end = 0
        for _ in range(n_tensors):
            self._string()  # name
            n_dims = self._scalar("<I")
            elements = 1
            for _ in range(n_dims):
                elements *= self._scalar("<Q")
            per_block, block_bytes = _GGML_BLOCKS[self._scalar("<I")]
            offset = self._scalar("<Q")
            end = max(end, offset + elements // per_block * block_bytes)
        data_start = -(-self.pos // alignment) * alignment
        return data_start + end

    def _scalar(self, fmt: str) -> Any:
        value = struct.unpack_from(fmt, self.buf, self.pos)[0]
        self.pos += struct.calcsize(fmt)
        return value

    def _string(self) -> str:
        n = self._scalar("<Q")
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        return raw.decode("utf-8", "backslashreplace")

    def _value(self, vtype: int) -> Any:
        if vtype in _SCALARS:
            return self._scalar(_SCALARS[vtype])
        if vtype == _STRING:
            return self._string()
        if vtype == _ARRAY:
            etype, count = self._scalar("<I"), self._scalar("<Q")
            if etype in _SCALARS:
                fmt = _SCALARS[etype]
                size = struct.calcsize(fmt)
                values = list(struct.unpack_from(f"<{count}{fmt[1]}", self.buf, self.pos))
                self.pos += size * count
                return values
            return [self._value(etype) for _ in range(count)]
        raise ValueError(f"unknown GGUF value type {vtype}")

    def _skip(self, vtype: int) -> None:
        if vtype in _SCALARS:
            self.pos += struct.calcsize(_SCALARS[vtype])
        elif vtype == _STRING:
            self.pos += 8 + struct.unpack_from("<Q", self.buf, self.pos)[0]
        elif vtype == _ARRAY:
            etype, count = self._scalar("<I"), self._scalar("<Q")
            if etype in _SCALARS:
                self.pos += struct.calcsize(_SCALARS[etype]) * count
            else:
                for _ in range(count):
                    self._skip(etype)
        else:
            raise ValueError(f"unknown GGUF value type {vtype}")
