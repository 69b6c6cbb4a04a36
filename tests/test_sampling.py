"""Token choice: greedy, temperature, top-k, top-p; reproducible from (seed, position)."""
import numpy as np
import pytest

from tokint_local.sampling import Sampler


def test_greedy_is_argmax_and_ignores_the_seed():
    logits = np.random.default_rng(0).standard_normal(1000)
    assert Sampler(0.0, seed=1).choose(logits, 0) == int(np.argmax(logits))
    assert Sampler(0.0, seed=2).choose(logits, 5) == int(np.argmax(logits))
    assert Sampler(1.0, top_k=1, seed=3).choose(logits, 5) == int(np.argmax(logits))


def test_seed_and_position_decide_the_draw():
    logits = np.zeros(500)
    s = Sampler(1.0, seed=42)
    draws = [s.choose(logits, p) for p in range(50)]
    assert draws == [Sampler(1.0, seed=42).choose(logits, p) for p in range(50)]
    assert draws != [Sampler(1.0, seed=43).choose(logits, p) for p in range(50)]
    assert len(set(draws)) > 30  # positions get different random numbers


def test_sampling_follows_the_distribution():
    probs = np.array([0.5, 0.3, 0.2])
    s = Sampler(1.0, seed=7)
    counts = np.bincount([s.choose(np.log(probs), p) for p in range(6000)], minlength=3) / 6000
    np.testing.assert_allclose(counts, probs, atol=0.03)


def test_temperature_sharpens():
    logits = np.log(np.array([0.6, 0.4]))
    cold = Sampler(0.2, seed=1)
    share = np.mean([cold.choose(logits, p) == 0 for p in range(2000)])
    assert share > 0.85


def test_top_k_and_top_p_restrict_the_candidates():
    logits = np.log(np.array([0.4, 0.3, 0.2, 0.05, 0.05]))
    ids, probs = Sampler(1.0, top_k=2).candidates(logits)
    assert ids.tolist() == [0, 1]
    np.testing.assert_allclose(probs, [4 / 7, 3 / 7])
    ids, _ = Sampler(1.0, top_p=0.65).candidates(logits)
    assert ids.tolist() == [0, 1]  # 0.4 < 0.65 <= 0.7
    drawn = {Sampler(1.0, top_p=0.65, seed=3).choose(logits, p) for p in range(300)}
    assert drawn == {0, 1}


def test_top_p_on_a_large_flat_vocab_widens_its_search():
    logits = np.zeros(20000)
    logits[:10] = 5.0  # ten strong tokens hold ~8% of the mass; the nucleus needs thousands more
    ids, probs = Sampler(1.0, top_p=0.5).candidates(logits)
    assert set(range(10)) <= set(ids.tolist())
    assert len(ids) > 4096
    assert probs.sum() == pytest.approx(1.0)
