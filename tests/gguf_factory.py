"""Write tiny llama-architecture GGUF models with the ``gguf`` package, for tests and benches.

Random weights, a small byte-level BPE vocab (256 byte tokens, a few merges, a few special
tokens) and a ChatML-style chat template. They load in llama.cpp in milliseconds and run its
real code. A "reasoning" model is made from a base model's weights plus a perturbation, so the
two agree at most positions and disagree at some, as real pairs do.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import gguf
import numpy as np

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
SPECIALS = ("<|bos|>", "<|im_start|>", "<|im_end|>")
THINK_TOKENS = ("<think>", "</think>")  # user-defined tokens, as in Qwen3: always one token, printed as text

_MERGES_STANDARD = [
    ("Ġ", "t"), ("h", "e"), ("Ġt", "he"), ("i", "n"), ("e", "r"), ("a", "n"), ("o", "n"), ("Ġ", "a"),
    ("r", "e"), ("Ġ", "s"), ("e", "n"), ("a", "t"), ("o", "r"), ("Ġ", "w"), ("i", "s"), ("Ġ", "i"),
    ("e", "s"), ("Ġ", "o"), ("Ġ", "f"), ("Ġ", "c"), ("Ġ", "b"), ("l", "e"), ("i", "t"), ("Ġ", "d"),
]
_MERGES_OTHER = [
    ("Ġ", "a"), ("Ġ", "b"), ("Ġ", "c"), ("Ġ", "d"), ("a", "b"), ("c", "d"), ("e", "f"), ("g", "h"),
    ("i", "j"), ("k", "l"), ("m", "n"), ("o", "p"), ("q", "r"), ("s", "t"), ("u", "v"), ("w", "x"),
    ("y", "z"), ("Ġ", "e"), ("Ġ", "g"), ("Ġ", "h"), ("Ġ", "k"), ("Ġ", "l"), ("Ġ", "m"), ("Ġ", "n"),
]


def _bytes_to_unicode() -> dict[int, str]:
    """GPT-2's reversible map from bytes to printable characters."""
    bs = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    cs = bs[:]
    n = 0
    for b in range(256):
        if b not in bs:
            bs.append(b)
            cs.append(256 + n)
            n += 1
    return dict(zip(bs, (chr(c) for c in cs)))


@dataclass(frozen=True)
class TinySpec:
    seed: int = 0
    vocab: str = "standard"  # "standard" or "other" (a vocab that must be refused as a pair)
    n_pad: int = 0  # extra padding tokens at the end of the vocab
    n_embd: int = 32
    n_layer: int = 2
    n_head: int = 4
    n_head_kv: int = 2
    n_ff: int = 64
    context_length: int = 8192
    logit_scale: float = 3.0  # larger: more peaked next-token distributions
    chat_template: Optional[str] = CHAT_TEMPLATE
    add_bos: bool = False  # llama.cpp puts the BOS token before every prompt
    thinking: bool = False  # the vocab has <think> and </think> (and a "\n\n" token)


def vocab_tokens(vocab: str, n_pad: int, thinking: bool = False) -> tuple[list[str], list[int], list[str]]:
    """Token texts, token types and merges of a tiny vocab."""
    byte_chars = _bytes_to_unicode()
    tokens = [byte_chars[b] for b in range(256)]
    types = [int(gguf.TokenType.NORMAL)] * 256
    merges = _MERGES_STANDARD if vocab == "standard" else _MERGES_OTHER
    if thinking:
        merges = merges + [("Ċ", "Ċ")]
    for a, b in merges:
        tokens.append(a + b)
        types.append(int(gguf.TokenType.NORMAL))
    for s in SPECIALS:
        tokens.append(s)
        types.append(int(gguf.TokenType.CONTROL))
    for s in THINK_TOKENS if thinking else ():
        tokens.append(s)
        types.append(int(gguf.TokenType.USER_DEFINED))
    for i in range(n_pad):
        tokens.append(f"[PAD{i}]")
        types.append(int(gguf.TokenType.UNUSED))
    return tokens, types, [f"{a} {b}" for a, b in merges]


def tiny_weights(spec: TinySpec, n_vocab: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(spec.seed)
    e, f, hd = spec.n_embd, spec.n_ff, spec.n_embd // spec.n_head
    kv = spec.n_head_kv * hd

    def w(*shape: int, scale: float) -> np.ndarray:
        return (rng.standard_normal(shape) * scale).astype(np.float32)

    out = {
        "token_embd.weight": w(n_vocab, e, scale=1.0),
        "output_norm.weight": np.ones(e, dtype=np.float32),
        "output.weight": w(n_vocab, e, scale=spec.logit_scale / np.sqrt(e)),
    }
    for i in range(spec.n_layer):
        p = f"blk.{i}."
        out[p + "attn_norm.weight"] = np.ones(e, dtype=np.float32)
        out[p + "attn_q.weight"] = w(e, e, scale=1 / np.sqrt(e))
        out[p + "attn_k.weight"] = w(kv, e, scale=1 / np.sqrt(e))
        out[p + "attn_v.weight"] = w(kv, e, scale=1 / np.sqrt(e))
        out[p + "attn_output.weight"] = w(e, e, scale=1 / np.sqrt(e))
        out[p + "ffn_norm.weight"] = np.ones(e, dtype=np.float32)
        out[p + "ffn_gate.weight"] = w(f, e, scale=1 / np.sqrt(e))
        out[p + "ffn_up.weight"] = w(f, e, scale=1 / np.sqrt(e))
        out[p + "ffn_down.weight"] = w(e, f, scale=1 / np.sqrt(f))
    return out


def perturbed(weights: dict[str, np.ndarray], seed: int, scale: float) -> dict[str, np.ndarray]:
    """A copy of ``weights`` with relative Gaussian noise of size ``scale`` on every matrix."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, t in weights.items():
        if t.ndim == 2:
            noise = rng.standard_normal(t.shape).astype(np.float32) * (scale * float(t.std()))
            out[name] = (t + noise).astype(np.float32)
        else:
            out[name] = t.copy()
    return out


def write_tiny_model(path: Path, spec: TinySpec = TinySpec(), weights: Optional[dict[str, np.ndarray]] = None) -> Path:
    """Write a tiny GGUF model to ``path``; ``weights`` overrides the random ones (same shapes)."""
    tokens, types, merges = vocab_tokens(spec.vocab, spec.n_pad, spec.thinking)
    n_vocab = len(tokens)
    if weights is None:
        weights = tiny_weights(spec, n_vocab)
    writer = gguf.GGUFWriter(str(path), "llama")
    writer.add_name(f"tiny-{spec.vocab}-{spec.seed}")
    writer.add_context_length(spec.context_length)
    writer.add_embedding_length(spec.n_embd)
    writer.add_block_count(spec.n_layer)
    writer.add_feed_forward_length(spec.n_ff)
    writer.add_head_count(spec.n_head)
    writer.add_head_count_kv(spec.n_head_kv)
    writer.add_layer_norm_rms_eps(1e-5)
    writer.add_rope_dimension_count(spec.n_embd // spec.n_head)
    writer.add_vocab_size(n_vocab)
    writer.add_file_type(gguf.LlamaFileType.ALL_F32)
    writer.add_tokenizer_model("gpt2")
    writer.add_tokenizer_pre("gpt-2")
    writer.add_token_list(tokens)
    writer.add_token_types(types)
    writer.add_token_merges(merges)
    writer.add_bos_token_id(tokens.index("<|bos|>"))
    writer.add_eos_token_id(tokens.index("<|im_end|>"))
    writer.add_add_bos_token(spec.add_bos)
    writer.add_add_eos_token(False)
    if spec.chat_template:
        writer.add_chat_template(spec.chat_template)
    for name, tensor in weights.items():
        writer.add_tensor(name, tensor)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(path)


def write_tiny_pair(folder: Path, seed: int = 0, noise: float = 0.35, reasoning_pad: int = 0) -> tuple[Path, Path]:
    """A base model and a "reasoning" model made from it by perturbing its weights."""
    folder.mkdir(parents=True, exist_ok=True)
    base_spec = TinySpec(seed=seed)
    n_vocab = len(vocab_tokens("standard", 0)[0])
    base_w = tiny_weights(base_spec, n_vocab)
    base = write_tiny_model(folder / f"tiny-base-{seed}.gguf", base_spec, base_w)
    reasoning_w = perturbed(base_w, seed + 1000, noise)
    if reasoning_pad:
        pad_rng = np.random.default_rng(seed + 2000)
        for name in ("token_embd.weight", "output.weight"):
            t = reasoning_w[name]
            extra = (pad_rng.standard_normal((reasoning_pad, t.shape[1])) * float(t.std())).astype(np.float32)
            reasoning_w[name] = np.concatenate([t, extra])
    reasoning_spec = TinySpec(seed=seed + 1, n_pad=reasoning_pad)
    reasoning = write_tiny_model(folder / f"tiny-reasoning-{seed}-pad{reasoning_pad}.gguf", reasoning_spec, reasoning_w)
    return base, reasoning


def scripted_weights(spec: TinySpec, script: dict[str, dict[str, float]], then: str = "<|im_end|>") -> dict[str, np.ndarray]:
    """Weights of a bigram model that follows ``script``: after token x, token y has logit script[x][y]
    (every other token 0); after a token the script does not name, ``then`` has logit 10.

    The layers are all zeros, so the last hidden state is the current token's one-hot embedding and
    the output matrix is the bigram table itself: the model writes exactly what it is told, which
    lets tests plant a thinking segment and the positions where a pair disagrees. ``spec.n_embd``
    must be at least the vocab size.
    """
    tokens, _, _ = vocab_tokens(spec.vocab, spec.n_pad, spec.thinking)
    n_vocab, e = len(tokens), spec.n_embd
    assert e >= n_vocab, f"n_embd {e} must be at least the vocab size {n_vocab}"
    index = {t: i for i, t in enumerate(tokens)}
    table = np.zeros((n_vocab, n_vocab), dtype=np.float32)  # [current, next]
    table[:, index[then]] = 10.0
    for current, nexts in script.items():
        table[index[current]] = 0.0
        for nxt, logit in nexts.items():
            table[index[current], index[nxt]] = logit
    embd = np.zeros((n_vocab, e), dtype=np.float32)
    embd[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    output = np.zeros((n_vocab, e), dtype=np.float32)
    output[:, :n_vocab] = table.T / np.sqrt(e)  # RMS norm scales a one-hot vector by sqrt(n_embd)
    zeros = tiny_weights(spec, n_vocab)
    out = {name: (np.zeros_like(t) if t.ndim == 2 else t) for name, t in zeros.items()}
    out["token_embd.weight"], out["output.weight"] = embd, output
    return out


def write_scripted_pair(folder: Path, base_script: dict, reasoning_script: dict, chat_template: str, name: str) -> tuple[Path, Path]:
    """A pair of scripted bigram models (see scripted_weights) with the thinking vocab and ``chat_template``."""
    folder.mkdir(parents=True, exist_ok=True)
    n_vocab = len(vocab_tokens("standard", 0, thinking=True)[0])
    spec = TinySpec(seed=0, thinking=True, chat_template=chat_template, n_embd=(n_vocab + 3) // 4 * 4, n_ff=8)
    base = write_tiny_model(folder / f"{name}-base.gguf", spec, scripted_weights(spec, base_script))
    reasoning = write_tiny_model(folder / f"{name}-reasoning.gguf", spec, scripted_weights(spec, reasoning_script))
    return base, reasoning
