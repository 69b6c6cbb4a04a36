"""Which models may be paired, checked as llama.cpp's speculative decoding checks a draft."""
import pytest

from tokint_local.compat import VocabInfo, shared_vocab_size
from tokint_local.config import load_models
from tokint_local.errors import IncompatiblePair
from tokint_local.pair import open_pair


def info(tokens, **kw):
    base = dict(vocab_type="bpe", bos=1, eos=2, add_bos=False, add_eos=False, tokens=tokens)
    base.update(kw)
    return VocabInfo(**base)


def test_rules_on_synthetic_vocabs():
    toks = [f"t{i}" for i in range(300)]
    assert shared_vocab_size(info(toks), info(toks + ["pad"] * 100)) == 300
    with pytest.raises(IncompatiblePair, match="vocab sizes differ by 129"):
        shared_vocab_size(info(toks), info(toks + ["pad"] * 129))
    with pytest.raises(IncompatiblePair, match="vocab types differ"):
        shared_vocab_size(info(toks), info(toks, vocab_type="spm"))
    with pytest.raises(IncompatiblePair, match="BOS handling differs"):
        shared_vocab_size(info(toks), info(toks, add_bos=True))
    with pytest.raises(IncompatiblePair, match=r"BOS handling differs .*bos 1 vs 7"):
        shared_vocab_size(info(toks, add_bos=True), info(toks, add_bos=True, bos=7))
    with pytest.raises(IncompatiblePair, match=r"EOS handling differs .*eos 2 vs 3"):
        shared_vocab_size(info(toks, add_eos=True), info(toks, add_eos=True, eos=3))
    # as in current llama.cpp: ids of special tokens that are never added need not match
    # (Qwen3-0.6B-Base and Qwen3-0.6B end turns with different EOS ids)
    assert shared_vocab_size(info(toks), info(toks, eos=3, bos=9)) == 300
    other = list(toks)
    other[123] = "changed"
    with pytest.raises(IncompatiblePair, match=r"token 123 differs \('t123' vs 'changed'\)"):
        shared_vocab_size(info(toks), info(other))
    other[3] = "x"  # ids below 5 are not compared, as in llama.cpp
    other[123] = "t123"
    assert shared_vocab_size(info(toks), info(other)) == 300


def test_a_different_vocab_is_refused_naming_the_token(tiny_models_toml):
    with pytest.raises(IncompatiblePair, match=r"token \d+ differs"):
        open_pair(load_models(tiny_models_toml).pair("tiny-mismatch"))


def test_padded_sizes_pair_on_the_shared_range(tiny_models_toml, tiny_files):
    pair = open_pair(load_models(tiny_models_toml).pair("tiny-padded"))
    try:
        assert pair.reasoning.n_vocab == pair.base.n_vocab + 24
        assert pair.n_shared == pair.base.n_vocab
    finally:
        pair.close()


def test_too_far_apart_in_size_is_refused(tmp_path, tiny_files):
    path = tmp_path / "m.toml"
    path.write_text(f'[pairs.p]\nbase = {{ path = "{tiny_files["base"]}" }}\nreasoning = {{ path = "{tiny_files["far"]}" }}\n')
    with pytest.raises(IncompatiblePair, match="vocab sizes differ by 200"):
        open_pair(load_models(path).pair("p"))
