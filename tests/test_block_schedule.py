"""The block schedule gives what the one-token-at-a-time schedule gives, on tiny models."""
import itertools

import numpy as np
import pytest

from tokint_local.engine import generate
from tokint_local.events import GenerationRequest, TokenEvent

PROMPTS = ["hello there", "the cat sat on the mat", "x", "write a story about a robot", "is it on or at?",
           "count to ten", "abc", "tokint"]


def run(pair, **kw):
    events = list(generate(pair, GenerationRequest(**kw)))
    return [e for e in events if isinstance(e, TokenEvent)], events[-1]


def assert_same(a, b):
    (ta, sa), (tb, sb) = a, b
    assert [(t.position, t.token_id, t.source, t.budget_left) for t in ta] == \
        [(t.position, t.token_id, t.source, t.budget_left) for t in tb]
    for x, y in zip(ta, tb):
        assert (x.divergence is None) == (y.divergence is None)
        if x.divergence is not None:
            # batched and single-token decoding round differently (~1e-4 relative on these F32 models)
            assert x.divergence == pytest.approx(y.divergence, rel=2e-3, abs=1e-4)
        assert x.base_entropy == pytest.approx(y.base_entropy, rel=2e-3, abs=1e-4)
    assert sa.takeover_positions == sb.takeover_positions and sa.finish_reason == sb.finish_reason


SETTINGS = [
    dict(threshold=t, budget=b, block_size=k)
    for t, b, k in itertools.product([0.5, 1.5, 3.0], [None, 0, 2, 5], [None, 1, 3, 8])
]


@pytest.mark.parametrize("settings", SETTINGS, ids=lambda s: f"t{s['threshold']}-b{s['budget']}-k{s['block_size']}")
def test_greedy_block_equals_lockstep(tiny_pair, settings):
    takeovers = 0
    for prompt in PROMPTS[:4]:
        lock = run(tiny_pair, prompt=prompt, max_tokens=40, schedule="lockstep", **settings)
        block = run(tiny_pair, prompt=prompt, max_tokens=40, schedule="block", **settings)
        assert_same(lock, block)
        takeovers += lock[1].n_takeovers
    if settings["budget"] != 0:
        assert takeovers > 0  # the setting exercised the gate


@pytest.mark.parametrize("extra", [
    dict(divergence="js", threshold=0.3),
    dict(divergence="tv", threshold=0.4, max_position=12),
    dict(divergence="reverse_kl", threshold=1.0, min_base_entropy=2.8),
    dict(temperature=0.9, top_p=0.95, seed=5, threshold=1.5),
    dict(temperature=1.3, top_k=40, seed=6, threshold=2.0, budget=3),
    dict(stop=["e"], threshold=1.0),
    dict(return_top=3, threshold=1.5, budget=4),
])
def test_other_settings_agree_too(tiny_pair, extra):
    for prompt in PROMPTS[4:]:
        assert_same(run(tiny_pair, prompt=prompt, max_tokens=30, schedule="lockstep", **extra),
                    run(tiny_pair, prompt=prompt, max_tokens=30, schedule="block", **extra))


def test_block_leaves_the_caches_clean(tiny_pair):
    first = run(tiny_pair, prompt="hello there", max_tokens=40, threshold=1.0, schedule="block")
    run(tiny_pair, prompt="something else entirely", max_tokens=50, threshold=0.5, schedule="block")
    assert_same(first, run(tiny_pair, prompt="hello there", max_tokens=40, threshold=1.0, schedule="block"))


def test_end_of_generation_inside_a_draft(tiny_pair):
    stopped = 0
    for seed in range(10):
        kw = dict(prompt="hi", temperature=4.0, seed=seed, threshold=2.0, max_tokens=150, block_size=16)
        lock, block = run(tiny_pair, schedule="lockstep", **kw), run(tiny_pair, schedule="block", **kw)
        assert_same(lock, block)
        stopped += block[1].finish_reason == "stop"
    assert stopped >= 2


def test_context_exhaustion_in_a_block(tiny_files):
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    entry = PairEntry("small", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_threads=1),
                      ModelEntry("reasoning", path=tiny_files["reasoning"], n_ctx=256, n_threads=1))
    pair = open_pair(entry)
    try:
        prompt = "a" * (pair.base.n_ctx - 20)
        lock = run(pair, prompt=prompt, raw=True, max_tokens=500, threshold=2.0, schedule="lockstep")
        block = run(pair, prompt=prompt, raw=True, max_tokens=500, threshold=2.0, schedule="block", block_size=8)
        assert_same(lock, block)
        assert block[1].finish_reason == "length" and len(block[0]) == 21
    finally:
        pair.close()
