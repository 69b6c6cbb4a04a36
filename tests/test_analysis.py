"""tokint analyze: teacher-forced divergences and the paper's figures, against independent computations."""
import json
import math
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from test_divergence import ref_entropy, ref_kl, ref_logprobs
from tokint_local.analysis import ScoredToken, planning_flags, score_response, summarize, threshold_for_rate
from tokint_local.engine import prepare_prompt

ROOT = Path(__file__).resolve().parent.parent


def test_teacher_forced_scores_match_token_by_token_reference(tiny_pair):
    prompt, response = "hello there", "the cat sat on the mat and then it ran."
    scored = score_response(tiny_pair, prompt, response)
    ids = tiny_pair.base.tokenize(response, False, False)
    assert [t.token_id for t in scored] == ids
    # independent: each model one token at a time, float64 reference log-softmax and KL
    refs = []
    for model in (tiny_pair.base, tiny_pair.reasoning):
        p = prepare_prompt(model, prompt, False, "x").tokens
        model.truncate(0)
        rows = [model.prefill(p)[: tiny_pair.n_shared]]
        for t in ids[:-1]:
            rows.append(model.decode([t], [0])[0][: tiny_pair.n_shared])
        refs.append(ref_logprobs(np.array(rows)))
    want_kl = ref_kl(refs[1], refs[0])
    want_ent = ref_entropy(refs[0])
    np.testing.assert_allclose([t.divergence for t in scored], want_kl, rtol=2e-3, atol=2e-4)
    np.testing.assert_allclose([t.base_entropy for t in scored], want_ent, rtol=2e-3, atol=2e-4)


def fake(divs, planning=None, entropies=None):
    n = len(divs)
    planning = planning or [False] * n
    entropies = entropies or [1.0] * n
    return [ScoredToken(i, i, "x", d, e, p, i / n) for i, (d, p, e) in enumerate(zip(divs, planning, entropies))]


def test_summary_figures_match_an_independent_computation():
    rng = np.random.default_rng(0)
    divs = list(rng.exponential(0.3, 200) ** 2)
    planning = list(rng.random(200) < 0.2)
    ent = list(np.array(divs) * 2 + rng.random(200))
    s = summarize(fake(divs, planning, ent), threshold=0.5)
    total = sum(divs)
    for level in (0.5, 0.8, 0.9):  # smallest number of tokens whose divergences reach the level
        acc, k = 0.0, 0
        for d in sorted(divs, reverse=True):
            acc += d
            k += 1
            if acc >= level * total:
                break
        assert s["sparsity"][f"{int(level * 100)}%"] == pytest.approx(k / 200)
    assert s["share_above_threshold"] == pytest.approx(sum(d >= 0.5 for d in divs) / 200)
    for decile in range(10):
        members = [d for i, d in enumerate(divs) if int(i / 200 * 10) == decile]
        assert s["position_profile"][decile] == pytest.approx(sum(members) / len(members))
    high = [p for d, p in zip(divs, planning) if d >= 0.5]
    assert s["planning"]["enrichment"] == pytest.approx((sum(high) / len(high)) / (sum(planning) / 200))
    mx, my = sum(divs) / 200, sum(ent) / 200
    cov = sum((a - mx) * (b - my) for a, b in zip(divs, ent))
    pearson = cov / math.sqrt(sum((a - mx) ** 2 for a in divs) * sum((b - my) ** 2 for b in ent))
    assert s["entropy_correlation"]["pearson"] == pytest.approx(pearson)
    assert s["entropy_correlation"]["spearman"] > 0.5
    assert s["sparsity_curve"][0] == [0.0, 0.0] and s["sparsity_curve"][-1][1] == pytest.approx(1.0)


def test_infinite_divergence_and_empty_input():
    s = summarize(fake([math.inf, 1.0, 0.0]), threshold=0.5)
    assert s["share_above_threshold"] == pytest.approx(2 / 3) and not math.isnan(s["mean_divergence"])
    assert summarize([], 1.0) == {"n_tokens": 0}


def test_planning_tokens():
    texts = ["First", ",", " we", " need", " to", " sort", ".", " Then", " return", " it", ".\n", "def", " fo", "o",
             "\n   ", " return", " x", " so"]
    flags = dict(zip(range(len(texts)), planning_flags(texts)))
    assert flags[0] and flags[2] and flags[3] and flags[7] and flags[11] and flags[15] and flags[17]
    assert not flags[4] and not flags[5] and not flags[8] and not flags[12] and not flags[13] and not flags[1]


def test_threshold_for_rate():
    divs = list(range(100))
    assert threshold_for_rate(divs, 0.1) == 90.0
    assert sum(d >= threshold_for_rate(divs, 0.25) for d in divs) == 25
    with pytest.raises(ValueError):
        threshold_for_rate([], 0.1)


def test_analyze_command_json_and_plots(tiny_models_toml, tmp_path):
    r = subprocess.run([sys.executable, "-m", "tokint_local.cli", "analyze", "--models", str(tiny_models_toml),
                        "--prompt", "hello", "--generate", "--max-tokens", "40", "--threshold", "2.0", "--json",
                        "--plots", str(tmp_path / "plots")], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    assert out["n_tokens"] == 40 and 0 <= out["share_above_threshold"] <= 1
    assert set(out["sparsity"]) == {"50%", "80%", "90%"} and len(out["position_profile"]) == 10
    for name in ("sparsity.png", "position_profile.png"):
        assert (tmp_path / "plots" / name).read_bytes()[:4] == b"\x89PNG"
    text = subprocess.run([sys.executable, "-m", "tokint_local.cli", "analyze", "--models", str(tiny_models_toml),
                           "--prompt", "hello", "--response", "the cat sat on the mat"], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert text.returncode == 0 and "sparsity: 50% of the total divergence" in text.stdout


def test_analyze_reuses_the_reasoning_responses_of_an_eval_results_file(tiny_models_toml, tiny_pair, tmp_path):
    dataset = tmp_path / "d.jsonl"
    dataset.write_text('{"id": "a", "prompt": "first", "answer": "1", "checker": "exact"}\n'
                       '{"id": "b", "prompt": "second", "answer": "2", "checker": "exact"}\n')
    results = tmp_path / "r.jsonl"
    record = {"type": "item", "passed": False, "n_tokens": 6, "n_takeovers": 0, "tokens_per_second": 1.0}  # as eval writes
    rows = [{**record, "item": "b", "config": "reasoning", "mode": "reasoning", "response": "the cat sat on the mat"},
            {**record, "item": "a", "config": "base", "mode": "base", "response": "not this one"},
            {"type": "summary", "mode": "reasoning"}]
    results.write_text("".join(json.dumps(r) + "\n" for r in rows))
    r = subprocess.run([sys.executable, "-m", "tokint_local.cli", "analyze", "--models", str(tiny_models_toml),
                        "--dataset", str(dataset), "--from-results", str(results), "--json"],
                       capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert r.returncode == 0, r.stderr
    out = json.loads(r.stdout)
    expected = score_response(tiny_pair, "second", "the cat sat on the mat")
    assert out["n_responses"] == 1 and out["n_tokens"] == len(expected)
    assert abs(out["mean_divergence"] - sum(t.divergence for t in expected) / len(expected)) < 1e-6
    bad = subprocess.run([sys.executable, "-m", "tokint_local.cli", "analyze", "--models", str(tiny_models_toml),
                          "--from-results", str(results), "--prompt", "x", "--generate"],
                         capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert bad.returncode != 0 and "--from-results needs --dataset" in bad.stderr
