"""The engine on the tiny pair: the three modes, the gate, the budget, stops and errors."""
import threading

import numpy as np
import pytest

from tokint_local.engine import generate, prepare_prompt
from tokint_local.errors import InvalidParameter, PromptTooLong
from tokint_local.events import GenerationRequest, Summary, TokenEvent

PROMPTS = ["hello there", "the cat sat on the mat", "write a story about a robot", "x", "is it on or at?"]


def run(pair, **kw):
    kw.setdefault("max_tokens", 24)
    events = list(generate(pair, GenerationRequest(**kw)))
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert isinstance(events[-1], Summary) and all(isinstance(e, TokenEvent) for e in events[:-1])
    return tokens, events[-1]


@pytest.mark.parametrize("prompt", PROMPTS)
def test_infinite_threshold_is_exactly_the_base_model(tiny_pair, prompt):
    base, _ = run(tiny_pair, prompt=prompt, mode="base")
    inter, summary = run(tiny_pair, prompt=prompt, mode="intervene", threshold=float("inf"))
    assert [t.token_id for t in inter] == [t.token_id for t in base]
    assert summary.n_takeovers == 0 and all(t.source == "base" for t in inter)


@pytest.mark.parametrize("prompt", PROMPTS)
def test_zero_threshold_unlimited_is_exactly_the_reasoning_model(tiny_pair, prompt):
    reasoning, _ = run(tiny_pair, prompt=prompt, mode="reasoning")
    inter, summary = run(tiny_pair, prompt=prompt, mode="intervene", threshold=0.0)
    assert [t.token_id for t in inter] == [t.token_id for t in reasoning]
    assert summary.n_takeovers == len(inter) and all(t.source == "reasoning" for t in inter)
    # the two models really differ here, or this test would prove nothing
    base, _ = run(tiny_pair, prompt=prompt, mode="base")
    assert [t.token_id for t in base] != [t.token_id for t in reasoning]


def reasoning_argmax_after(pair, prompt, response_ids):
    """The reasoning model's greedy choice after ``response_ids``, computed from scratch."""
    prompt_ids = prepare_prompt(pair.reasoning, prompt, raw=False, role="reasoning").tokens
    pair.reasoning.truncate(0)
    return int(np.argmax(pair.reasoning.prefill(prompt_ids + response_ids)[: pair.n_shared]))


@pytest.mark.parametrize("budget", [0, 1, 3])
def test_budget_caps_takeovers_and_each_is_the_reasoning_argmax(tiny_pair, budget):
    prompt = "the cat sat on the mat"
    tokens, summary = run(tiny_pair, prompt=prompt, threshold=1.5, budget=budget, max_tokens=40)
    taken = [t for t in tokens if t.source == "reasoning"]
    assert len(taken) == summary.n_takeovers <= budget
    assert list(summary.takeover_positions) == [t.position for t in taken]
    ids = [t.token_id for t in tokens]
    for t in taken:
        assert t.divergence >= 1.5
        assert t.token_id == reasoning_argmax_after(tiny_pair, prompt, ids[: t.position])
    used = 0
    for t in tokens:
        used += t.source == "reasoning"
        assert t.budget_left == budget - used
        if t.source == "base" and t.divergence is not None:
            assert t.divergence < 1.5  # the gate did not skip an eligible position
    if budget == 3:
        assert summary.n_takeovers == 3  # this prompt has enough disagreement to spend it
        after = [t for t in tokens if t.position > taken[-1].position]
        assert after and all(t.divergence is None for t in after)  # the reasoning model stopped


def test_positions_limits_and_entropy_floor_gate_takeovers(tiny_pair):
    tokens, summary = run(tiny_pair, prompt="hello there", threshold=0.0, max_position=3)
    assert list(summary.takeover_positions) == [0, 1, 2]
    tokens, _ = run(tiny_pair, prompt="hello there", threshold=0.0, min_base_entropy=2.5)
    assert all((t.source == "reasoning") == (t.base_entropy >= 2.5) for t in tokens)
    assert {t.source for t in tokens} == {"base", "reasoning"}


def test_events_are_ordered_and_timed(tiny_pair):
    tokens, summary = run(tiny_pair, prompt="hello", threshold=1.0)
    assert [t.position for t in tokens] == list(range(len(tokens)))
    assert all(a.t <= b.t for a, b in zip(tokens, tokens[1:]))
    assert summary.n_tokens == len(tokens) == 24 and summary.finish_reason == "length"
    assert summary.elapsed_s >= tokens[-1].t and summary.tokens_per_second > 0
    assert summary.prompt_tokens["base"] == summary.prompt_tokens["reasoning"] > 3


@pytest.mark.parametrize("mode", ["base", "reasoning", "intervene"])
def test_seeded_sampling_reproduces(tiny_pair, mode):
    kw = dict(prompt="once upon a time", mode=mode, temperature=1.0, top_p=0.95, max_tokens=30, threshold=1.0)
    a, sa = run(tiny_pair, seed=11, **kw)
    b, _ = run(tiny_pair, seed=11, **kw)
    c, _ = run(tiny_pair, seed=12, **kw)
    assert [t.token_id for t in a] == [t.token_id for t in b]
    assert [t.token_id for t in a] != [t.token_id for t in c]
    assert sa.seed == 11


def test_unseeded_runs_report_the_seed_that_reproduces_them(tiny_pair):
    kw = dict(prompt="once", temperature=1.0, max_tokens=20)
    a, sa = run(tiny_pair, **kw)
    b, _ = run(tiny_pair, seed=sa.seed, **kw)
    assert [t.token_id for t in a] == [t.token_id for t in b]


def test_stop_string_ends_the_response_before_it(tiny_pair):
    full, _ = run(tiny_pair, prompt="hello there", mode="base", max_tokens=40)
    text = "".join(t.text for t in full)
    stop = text[10:14]
    assert len(stop) == 4 and text.find(stop) == 10
    cut, summary = run(tiny_pair, prompt="hello there", mode="base", max_tokens=40, stop=[stop])
    assert "".join(t.text for t in cut) == text[:10]
    assert summary.finish_reason == "stop"


@pytest.mark.parametrize("mode", ["base", "intervene"])
def test_end_of_generation_token_of_the_writing_model_stops(tiny_pair, mode):
    # Hot sampling makes every token, <|im_end|> included, likely enough to appear.
    stopped = 0
    for seed in range(12):
        tokens, summary = run(tiny_pair, prompt="hi", mode=mode, threshold=2.0, temperature=4.0, seed=seed, max_tokens=150)
        ends = [t for t in tokens if tiny_pair.base.is_eog(t.token_id)]
        if summary.finish_reason == "stop":
            stopped += 1
            assert ends == [tokens[-1]] and tokens[-1].text == ""
        else:
            assert ends == [] and len(tokens) == 150
    assert stopped >= 2


def test_context_exhaustion_finishes_with_length(tiny_files, tmp_path):
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    entry = PairEntry("small", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_threads=1),
                      ModelEntry("reasoning", path=tiny_files["reasoning"], n_ctx=256, n_threads=1))
    pair = open_pair(entry)
    try:
        n_ctx = pair.base.n_ctx
        prompt = "a" * (n_ctx - 10)  # "a" is one token each
        tokens, summary = run(pair, prompt=prompt, raw=True, max_tokens=500, threshold=1.0)
        assert summary.finish_reason == "length"
        assert summary.prompt_tokens["base"] + len(tokens) == n_ctx + 1
        with pytest.raises(PromptTooLong, match="shorten the prompt"):
            run(pair, prompt="a" * n_ctx)
    finally:
        pair.close()


def test_cancel_stops_at_the_next_token(tiny_pair):
    cancel = threading.Event()
    events = []
    for event in generate(tiny_pair, GenerationRequest(prompt="hi", max_tokens=200), cancel):
        events.append(event)
        if len(events) == 3:
            cancel.set()
    assert events[-1].finish_reason == "cancelled" and events[-1].n_tokens == 3


def test_raw_prompt_skips_the_chat_template(tiny_pair):
    _, templated = run(tiny_pair, prompt="hello", max_tokens=2)
    _, raw = run(tiny_pair, prompt="hello", max_tokens=2, raw=True)
    hello = len(tiny_pair.base.tokenize("hello", False, False))
    assert raw.prompt_tokens["base"] == hello
    assert templated.prompt_tokens["base"] > hello + 4  # <|im_start|>user ... <|im_start|>assistant


def test_empty_raw_prompt_is_refused(tiny_pair):
    with pytest.raises(InvalidParameter, match="empty"):
        run(tiny_pair, prompt="", raw=True)


def test_padded_pair_decodes_on_the_shared_range(tiny_files):
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    entry = PairEntry("padded", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_threads=1),
                      ModelEntry("reasoning", path=tiny_files["padded"], n_ctx=256, n_threads=1))
    pair = open_pair(entry)
    try:
        tokens, summary = run(pair, prompt="hello", threshold=0.0, max_tokens=30)
        assert summary.n_takeovers == len(tokens) == 30
        assert all(t.token_id < pair.n_shared for t in tokens)
    finally:
        pair.close()


def test_top_candidates_are_opt_in_and_consistent(tiny_pair):
    plain, _ = run(tiny_pair, prompt="hello", max_tokens=4)
    assert all(t.top_k is None for t in plain)
    tokens, _ = run(tiny_pair, prompt="hello", max_tokens=12, threshold=1.5, budget=2, return_top=5)
    for t in tokens:
        base = t.top_k["base"]
        assert len(base) == 5 and [p for _, _, p in base] == sorted((p for _, _, p in base), reverse=True)
        assert 0 < sum(p for _, _, p in base) <= 1.0 + 1e-6
        chosen = t.top_k[t.source][0][0]
        assert chosen == t.token_id  # greedy: the writer's best candidate is the token
        assert ("reasoning" in t.top_k) == (t.divergence is not None)
    assert any("reasoning" not in t.top_k for t in tokens)  # after the budget the reasoning model stops
    reasoning_only, _ = run(tiny_pair, prompt="hello", mode="reasoning", max_tokens=3, return_top=3)
    assert all(set(t.top_k) == {"reasoning"} for t in reasoning_only)
