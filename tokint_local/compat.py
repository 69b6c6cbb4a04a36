"""Whether two models can decode one response together, checked as llama.cpp's speculative
decoding checks a draft model (common/speculative.cpp): same vocab type; the same add-BOS and
add-EOS flags, and the same BOS (EOS) id where it is added; vocab sizes within 128; identical
token text on the shared id range.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from .errors import IncompatiblePair

MAX_VOCAB_SIZE_DIFFERENCE = 128  # llama.cpp: SPEC_VOCAB_MAX_SIZE_DIFFERENCE
FIRST_CHECKED_TOKEN = 5  # llama.cpp: SPEC_VOCAB_CHECK_START_TOKEN_ID


@dataclass(frozen=True)
class VocabInfo:
    """What decides whether two vocabularies agree. ``tokens`` is each id's text."""

    vocab_type: str
    bos: int
    eos: int
    add_bos: bool
    add_eos: bool
    tokens: Sequence[str]

    @property
    def size(self) -> int:
        return len(self.tokens)


def shared_vocab_size(base: VocabInfo, reasoning: VocabInfo, names: tuple[str, str] = ("base", "reasoning")) -> int:
    """Check the pair and return the size of the shared id range, or raise IncompatiblePair."""
    b, r = names

    def refuse(why: str) -> IncompatiblePair:
        return IncompatiblePair(f"{b} and {r} models cannot be paired: {why}")

    if base.vocab_type != reasoning.vocab_type:
        raise refuse(f"vocab types differ ({base.vocab_type} vs {reasoning.vocab_type})")
    if base.add_bos != reasoning.add_bos or (base.add_bos and base.bos != reasoning.bos):
        raise refuse(
            f"BOS handling differs (add_bos {base.add_bos} vs {reasoning.add_bos}, bos {base.bos} vs {reasoning.bos})"
        )
    if base.add_eos != reasoning.add_eos or (base.add_eos and base.eos != reasoning.eos):
        raise refuse(
            f"EOS handling differs (add_eos {base.add_eos} vs {reasoning.add_eos}, eos {base.eos} vs {reasoning.eos})"
        )
    diff = abs(base.size - reasoning.size)
    if diff > MAX_VOCAB_SIZE_DIFFERENCE:
        raise refuse(
            f"vocab sizes differ by {diff} ({base.size} vs {reasoning.size}; at most {MAX_VOCAB_SIZE_DIFFERENCE} allowed)"
        )
    shared = min(base.size, reasoning.size)
    for i in range(FIRST_CHECKED_TOKEN, shared):
        if base.tokens[i] != reasoning.tokens[i]:
            raise refuse(f"token {i} differs ({base.tokens[i]!r} vs {reasoning.tokens[i]!r})")
    return shared
