"""The llama.cpp backend on tiny GGUF models: batches, chosen logits rows, rollback, text."""
import numpy as np
import pytest

from tokint_local.backend import LlamaModel, ModelSettings
from tokint_local.errors import BackendError, ModelFileMissing, ModelLoadError, PromptTooLong


@pytest.fixture(scope="module")
def model(tiny_files):
    m = LlamaModel(ModelSettings(path=tiny_files["base"], n_ctx=64, n_threads=1, n_batch=32))
    yield m
    m.close()


def test_batch_logits_equal_one_token_at_a_time(model):
    tokens = model.tokenize("the cat sat on the mat", add_special=False, parse_special=False)
    first = model.prefill(tokens[:1])
    batched = model.decode(tokens[1:])  # every row
    model.truncate(0)
    sequential = [model.prefill(tokens[:1])]
    for tok in tokens[1:]:
        sequential.append(model.decode([tok], [0])[0])
    np.testing.assert_allclose(batched, np.stack(sequential[1:]), atol=1e-4)
    np.testing.assert_allclose(first, sequential[0], atol=1e-5)
    assert model.n_past == len(tokens)


def test_only_chosen_rows_come_back(model):
    tokens = model.tokenize("hello there world", add_special=False, parse_special=False)
    model.truncate(0)
    model.prefill(tokens[:1])
    every = model.decode(tokens[1:])
    model.truncate(1)
    some = model.decode(tokens[1:], rows=[0, len(tokens) - 2])
    assert some.shape == (2, model.n_vocab)
    np.testing.assert_allclose(some, every[[0, -1]], atol=1e-5)


def test_rollback_then_redecode_reproduces_logits(model):
    tokens = model.tokenize("one two three four", add_special=False, parse_special=False)
    model.truncate(0)
    model.prefill(tokens[:2])
    before = model.decode(tokens[2:3], [0])[0]
    model.decode(tokens[3:])
    model.truncate(2)
    assert model.n_past == 2
    again = model.decode(tokens[2:3], [0])[0]
    np.testing.assert_array_equal(before, again)


def test_prefill_does_not_depend_on_what_the_cache_held(model):
    a = model.tokenize("shared prefix then one", add_special=False, parse_special=False)
    b = model.tokenize("shared prefix then two", add_special=False, parse_special=False)
    model.truncate(0)
    cold = model.prefill(b)
    model.decode([5, 6, 7])  # a response after the prompt
    model.prefill(a)
    warm = model.prefill(b)
    np.testing.assert_array_equal(warm, cold)
    model.decode([5, 6, 7])
    again = model.prefill(b)  # the same prompt again: its cache and logits are kept
    np.testing.assert_array_equal(again, cold)
    assert model.n_past == len(b)


def test_text_round_trips_through_pieces_and_specials_parse(model):
    text = "héllo wörld 漢字"
    tokens = model.tokenize(text, add_special=False, parse_special=False)
    assert b"".join(model.piece(t) for t in tokens).decode() == text
    special = model.tokenize("<|im_start|>", add_special=False, parse_special=True)
    assert len(special) == 1 and model.token_text(special[0]) == "<|im_start|>"
    assert model.piece(special[0]) == b""  # control tokens print nothing
    assert model.is_eog(model.eos) and not model.is_eog(tokens[0])


def test_context_limits_are_errors_not_crashes(model):
    n = model.n_ctx  # llama.cpp may round the requested size up
    with pytest.raises(PromptTooLong):
        model.prefill([5] * n)
    model.truncate(0)
    model.prefill([5] * (n - 5))
    with pytest.raises(BackendError, match="context is full"):
        model.decode([6] * 10)
    assert model.n_past == n - 5
    with pytest.raises(BackendError):
        model.decode([])


def test_missing_and_broken_files_give_clear_errors(tmp_path, tiny_files):
    with pytest.raises(ModelFileMissing, match="nope.gguf"):
        LlamaModel(ModelSettings(path=tmp_path / "nope.gguf"))
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(tiny_files["base"].read_bytes()[:5000])
    with pytest.raises(ModelLoadError, match="cut.gguf"):
        LlamaModel(ModelSettings(path=cut))
