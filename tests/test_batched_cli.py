"""`tokint eval --parallel N` and `tokint analyze --parallel N`: N at once, the results of one at a time,
in the same order, resumable."""
import json
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from conftest import DaemonProcess
from tokint_local.results_file import ResultsFile

ROOT = Path(__file__).resolve().parent.parent
KEPT = ("item", "config", "passed", "n_tokens", "n_takeovers", "takeover_positions", "finish_reason", "response")


@pytest.fixture
def dataset(tmp_path):
    path = tmp_path / "d.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"question {i} about the cat", "answer": "x",
                                        "checker": "exact"}) + "\n" for i in range(6)))
    return path


def tokint(*args, timeout=300):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout)


def kept(path):
    return [{k: r[k] for k in KEPT} for r in ResultsFile(path).load()]


def eval_args(models, data, out, *extra, max_tokens=60):
    return ["eval", "--models", str(models), "--dataset", str(data), "--modes", "base,intervene", "--budgets", "2,inf",
            "--max-tokens", str(max_tokens), "--out", str(out), *extra]


def test_eval_in_parallel_writes_what_one_at_a_time_writes_and_resumes(tiny_models_toml, dataset, tmp_path):
    one, many = tmp_path / "one.jsonl", tmp_path / "many.jsonl"
    r = tokint(*eval_args(tiny_models_toml, dataset, one, "--local", max_tokens=400))
    assert r.returncode == 0, r.stderr
    # three at a time, killed partway, then resumed
    cmd = [sys.executable, "-m", "tokint_local.cli",
           *eval_args(tiny_models_toml, dataset, many, "--local", "--parallel", "3", max_tokens=400)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while (not many.exists() or len(many.read_text().splitlines()) < 4) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = kept(many)
    assert 4 <= len(partial) < 18
    assert partial == kept(one)[: len(partial)]  # written in the one-at-a-time order
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert kept(many) == kept(one)  # every record once, in that order, the same responses


def test_eval_in_parallel_through_the_daemon(tiny_models_toml, dataset, tmp_path, daemon_address):
    one = tmp_path / "one.jsonl"
    assert tokint(*eval_args(tiny_models_toml, dataset, one, "--local")).returncode == 0
    d = DaemonProcess(tiny_models_toml, daemon_address, "--parallel", "3")
    try:
        out = tmp_path / "daemon.jsonl"
        r = tokint(*eval_args(tiny_models_toml, dataset, out, "--connect", daemon_address, "--parallel", "3"))
        assert r.returncode == 0, r.stderr
        assert kept(out) == kept(one)
    finally:
        d.stop()


def test_analyze_in_parallel_scores_what_one_at_a_time_scores(tiny_models_toml, dataset):
    common = ["analyze", "--models", str(tiny_models_toml), "--dataset", str(dataset), "--max-tokens", "40", "--json"]
    one, many = tokint(*common), tokint(*common, "--parallel", "3")
    assert one.returncode == 0 and many.returncode == 0, many.stderr
    a, b = json.loads(one.stdout), json.loads(many.stdout)
    assert (a["n_tokens"], a["n_responses"]) == (b["n_tokens"], b["n_responses"]) == (a["n_tokens"], 6)
    # the responses' rows are decoded beside other responses' rows: the same numbers up to rounding
    assert b["mean_divergence"] == pytest.approx(a["mean_divergence"], rel=1e-3)
    assert [t["position"] for t in a["top_tokens"]] == [t["position"] for t in b["top_tokens"]]


def test_parallel_must_be_a_sensible_number(tiny_models_toml, dataset):
    r = tokint("eval", "--local", "--models", str(tiny_models_toml), "--dataset", str(dataset), "--parallel", "0")
    assert r.returncode != 0 and "--parallel" in r.stderr
