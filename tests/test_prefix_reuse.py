"""KV-cache prefix reuse: a conversation's next turn decodes only what the caches do not hold yet,
and gives the same tokens as a from-scratch prefill (on the tiny models); a bare prompt still
never depends on the request before it."""
import numpy as np
import pytest

from tokint_local.engine import generate
from tokint_local.events import GenerationRequest, Summary, TokenEvent


@pytest.fixture
def model(tiny_pair):
    return tiny_pair.reasoning


def tokens_of(model, text):
    return model.tokenize(text, add_special=False, parse_special=False)


def test_prefill_reuses_the_longest_prefix_the_cache_holds(model):
    earlier = tokens_of(model, "the shared beginning of a conversation, then one ending")
    later = tokens_of(model, "the shared beginning of a conversation, then a different and longer ending")
    common = next(i for i, (a, b) in enumerate(zip(earlier, later)) if a != b)
    model.truncate(0)
    scratch = model.prefill(later)
    assert model.last_reused == 0
    model.prefill(earlier)
    model.decode(tokens_of(model, " and a response"))
    reused = model.prefill(later, reuse_prefix=True)
    assert model.last_reused == common and model.n_past == len(later)
    np.testing.assert_allclose(reused, scratch, atol=1e-3)
    assert np.argmax(reused) == np.argmax(scratch)


def test_a_prompt_the_cache_holds_whole_decodes_only_its_last_token(model):
    prompt = tokens_of(model, "a prompt and its response")
    model.truncate(0)
    model.prefill(prompt[:-3])
    model.decode(prompt[-3:])  # the cache now holds all of ``prompt`` (as a response would leave it)
    again = model.prefill(prompt, reuse_prefix=True)
    assert model.last_reused == len(prompt) - 1 and model.n_past == len(prompt)
    model.truncate(0)
    np.testing.assert_allclose(again, model.prefill(prompt), atol=1e-3)
    assert np.argmax(again) == np.argmax(model.prefill(prompt))
    model.prefill(prompt[:-3])
    model.prefill(prompt[:-3], reuse_prefix=True)  # the same prompt again: nothing decoded
    assert model.last_reused == len(prompt) - 3


def test_without_reuse_a_prompt_never_takes_logits_a_reuse_computed(model):
    a = tokens_of(model, "one two three four five")
    b = tokens_of(model, "one two three four six seven")
    model.truncate(0)
    cold = model.prefill(b)
    model.prefill(a)
    model.prefill(b, reuse_prefix=True)  # b's logits now come from a partial decode
    warm = model.prefill(b)  # the same prompt, without reuse: decoded again from position 0
    assert model.last_reused == 0
    np.testing.assert_array_equal(warm, cold)


def converse(pair, questions, reuse, answers=None, **params):
    """Answer ``questions`` turn by turn; with ``answers`` the earlier turns use them instead of the responses."""
    messages, turns = [{"role": "system", "content": "You answer briefly."}], []
    for i, question in enumerate(questions):
        messages.append({"role": "user", "content": question})
        events = list(generate(pair, GenerationRequest(messages=messages, reuse_prefix=reuse, **params)))
        summary = events[-1]
        assert isinstance(summary, Summary)
        tokens = [e.token_id for e in events if isinstance(e, TokenEvent)]
        text = "".join(e.text for e in events if isinstance(e, TokenEvent))
        turns.append((tokens, summary))
        messages.append({"role": "assistant", "content": answers[i] if answers else text})
    return turns, messages


QUESTIONS = ["What is a list?", "And a tuple, how is it different?", "Which one is faster to build?",
             "Give an example of each."]


@pytest.mark.parametrize("mode, schedule", [("intervene", "block"), ("intervene", "lockstep"), ("base", "block")])
def test_reuse_gives_the_tokens_of_a_from_scratch_run(tiny_pair, mode, schedule):
    params = dict(max_tokens=24, mode=mode, schedule=schedule, threshold=0.5)
    reused, messages = converse(tiny_pair, QUESTIONS, reuse=True, **params)
    for turn, (tokens, summary) in enumerate(reused):
        if turn:  # every later turn took the conversation so far from the caches
            assert all(n > 0 for n in summary.cached_tokens.values()), summary.cached_tokens
            assert set(summary.cached_tokens) == set(summary.prompt_tokens)
    answers = [m["content"] for m in messages if m["role"] == "assistant"]
    scratch, _ = converse(tiny_pair, QUESTIONS, reuse=False, answers=answers, **params)
    for (tokens, summary), (again, cold) in zip(reused, scratch):
        assert all(n == 0 for n in cold.cached_tokens.values())
        assert tokens == again


def test_a_bare_prompt_does_not_reuse_unless_asked(tiny_pair):
    first = list(generate(tiny_pair, GenerationRequest(prompt="hello there", max_tokens=4)))[-1]
    again = list(generate(tiny_pair, GenerationRequest(prompt="hello there, friend", max_tokens=4)))[-1]
    assert first.cached_tokens == {"base": 0, "reasoning": 0} and again.cached_tokens == {"base": 0, "reasoning": 0}
    asked = list(generate(tiny_pair, GenerationRequest(prompt="hello there, friend!", max_tokens=4, reuse_prefix=True)))[-1]
    assert asked.cached_tokens["base"] > 0
