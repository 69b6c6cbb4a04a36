"""The divergences against an independent float64 reference, on awkward inputs."""
import math

import numpy as np
import pytest

from tokint_local import divergence as dv


def ref_logprobs(logits):
    """Row-wise log-probabilities in float64, computed in log space so nothing underflows."""
    out = []
    for row in np.asarray(logits, dtype=np.float64):
        finite = [v for v in row if v != -math.inf]
        m = max(finite)
        log_total = m + math.log(math.fsum(math.exp(v - m) for v in finite))
        out.append([v - log_total if v != -math.inf else -math.inf for v in row])
    return np.array(out)


def ref_kl(lp, lq):
    out = []
    for pr, qr in zip(lp, lq):
        total = 0.0
        for a, b in zip(pr, qr):
            if a == -math.inf:
                continue
            if b == -math.inf:
                total = math.inf
                break
            total += math.exp(a) * (a - b)
        out.append(total)
    return np.array(out)


def ref_js(lp, lq):
    lm = np.logaddexp(lp, lq) - math.log(2)
    return 0.5 * ref_kl(lp, lm) + 0.5 * ref_kl(lq, lm)


def ref_tv(lp, lq):
    return 0.5 * np.abs(np.exp(lp) - np.exp(lq)).sum(axis=1)


def ref_entropy(lp):
    return np.array([-math.fsum(math.exp(a) * a for a in row if a != -math.inf) for row in lp])


def cases():
    rng = np.random.default_rng(0)
    v = 50
    normal = rng.standard_normal((6, v)) * 3
    peaked = rng.standard_normal((6, v))
    peaked[:, 3] += 60  # one token holds nearly all the mass
    masked = rng.standard_normal((6, v)) * 2
    masked[:, ::3] = -np.inf  # a third of the vocab impossible
    huge = rng.standard_normal((6, v)) * 200
    return {"normal": normal, "peaked": peaked, "masked": masked, "huge": huge}


@pytest.mark.parametrize("a_name", list(cases()))
@pytest.mark.parametrize("b_name", list(cases()))
def test_divergences_match_float64_reference(a_name, b_name):
    a, b = cases()[a_name], cases()[b_name] * 0.7 + 0.1
    lpa, lpb = dv.log_softmax(a), dv.log_softmax(b)
    pa, pb = ref_logprobs(a), ref_logprobs(b)
    for name, got, want in [
        ("kl", dv.kl(lpa, lpb), ref_kl(pa, pb)),
        ("reverse_kl", dv.reverse_kl(lpa, lpb), ref_kl(pb, pa)),
        ("js", dv.js(lpa, lpb), ref_js(pa, pb)),
        ("tv", dv.tv(lpa, lpb), ref_tv(pa, pb)),
    ]:
        assert not np.isnan(got).any(), name
        assert got.shape == (6,)
        finite = np.isfinite(want)
        assert np.array_equal(np.isfinite(got), finite), name
        np.testing.assert_allclose(got[finite], want[finite], rtol=2e-3, atol=2e-4, err_msg=name)
    np.testing.assert_allclose(dv.entropy(lpa), ref_entropy(pa), rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose(dv.top1(lpa), np.exp(pa.max(axis=1)), rtol=1e-4)


def test_kl_is_infinite_where_base_rules_out_a_reasoning_token():
    reasoning = np.array([[0.0, 0.0, 0.0]])
    base = np.array([[0.0, 0.0, -np.inf]])
    assert dv.kl(dv.log_softmax(reasoning), dv.log_softmax(base))[0] == np.inf
    # the other direction is finite: base puts no mass where reasoning has none
    assert np.isfinite(dv.reverse_kl(dv.log_softmax(reasoning), dv.log_softmax(base))[0])


def test_identical_distributions_have_zero_divergence():
    x = np.random.default_rng(1).standard_normal((4, 1000)).astype(np.float32) * 5
    lp = dv.log_softmax(x)
    for name in dv.DIVERGENCES:
        np.testing.assert_allclose(dv.divergence(name, lp, lp), 0.0, atol=1e-6)


def test_bounds_hold_for_disjoint_distributions():
    a = np.array([[0.0, -np.inf], [50.0, -50.0]])
    b = np.array([[-np.inf, 0.0], [-50.0, 50.0]])
    lpa, lpb = dv.log_softmax(a), dv.log_softmax(b)
    np.testing.assert_allclose(dv.js(lpa, lpb), [math.log(2), math.log(2)], rtol=1e-4)
    np.testing.assert_allclose(dv.tv(lpa, lpb), [1.0, 1.0], rtol=1e-4)


def test_log_softmax_works_on_one_row_and_rejects_all_impossible_rows():
    lp = dv.log_softmax(np.array([1.0, 2.0, 3.0]))
    np.testing.assert_allclose(np.exp(lp).sum(), 1.0, rtol=1e-6)
    with pytest.raises(ValueError):
        dv.log_softmax(np.array([[-np.inf, -np.inf]]))


def test_unknown_divergence_is_named():
    with pytest.raises(ValueError, match="hellinger"):
        dv.divergence("hellinger", np.zeros((1, 2)), np.zeros((1, 2)))


@pytest.mark.parametrize("name", ["kl", "reverse_kl", "js", "tv"])
def test_position_stats_match_the_reference(name):
    rng = np.random.default_rng(3)
    for scale in (0.5, 3.0, 30.0):
        b = (rng.standard_normal(5000) * scale).astype(np.float32)
        r = (rng.standard_normal(5000) * scale + 0.3).astype(np.float32)
        ent, div = dv.position_stats(b, r, name)
        lb, lr = ref_logprobs(b[None]), ref_logprobs(r[None])
        want = {"kl": ref_kl(lr, lb), "reverse_kl": ref_kl(lb, lr), "js": ref_js(lr, lb), "tv": ref_tv(lr, lb)}[name][0]
        assert div == pytest.approx(want, rel=1e-3, abs=1e-4)
        assert ent == pytest.approx(ref_entropy(lb)[0], rel=1e-3, abs=1e-4)
    masked = np.array([0.0, 1.0, -np.inf], dtype=np.float32)
    ent, div = dv.position_stats(masked, np.array([0.0, 0.0, 0.0], dtype=np.float32), name)
    assert not np.isnan(ent) and not np.isnan(div)
    if name == "kl":
        assert div == np.inf  # mass where the base model has none
    assert dv.position_stats(masked, None, name)[1] is None
