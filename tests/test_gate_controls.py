"""The control gates (entropy, top1, random): each fires where and only where its rule says, the
two schedules agree, the block schedule spares the reasoning model's scoring rows, random is
reproducible, and calibrate finds each gate's threshold for a target rate."""
import json
import re
import math

import numpy as np
import pytest

from tokint_local.backend import LlamaModel
from conftest import models_toml_text
from tokint_local.cli import main
from tokint_local.engine import generate
from tokint_local.errors import InvalidParameter
from tokint_local.evaluation import summarize_results
from tokint_local.results_file import Config, configs_in
from tokint_local.events import GenerationRequest, TokenEvent
from tokint_local.gate import GATE_DRAW, Gate, threshold_for_rate
from tokint_local.sampling import Sampler, position_uniform

PROMPTS = ["hello there", "the cat sat on the mat", "write a story about a robot"]


def run(pair, **kw):
    events = list(generate(pair, GenerationRequest(**kw)))
    return [e for e in events if isinstance(e, TokenEvent)], events[-1]


# -- the rules, on numbers ---------------------------------------------------------------------
def test_each_rule_reads_its_own_signal():
    div = np.array([0.1, 2.0, 3.0, 5.0])
    ent = np.array([3.0, 0.1, 2.0, 1.0])
    top1 = np.array([0.2, 0.9, 0.5, 0.05])
    pos = np.arange(4)
    assert Gate(1.0, kind="divergence").eligible(div, ent, pos, top1).tolist() == [False, True, True, True]
    assert Gate(1.0, kind="entropy").eligible(None, ent, pos).tolist() == [True, False, True, True]
    assert Gate(0.3, kind="top1").eligible(None, ent, pos, top1).tolist() == [True, False, False, True]
    assert Gate(0.3, kind="top1", max_position=3).eligible(None, ent, pos, top1).tolist() == [True, False, False, False]
    assert Gate(1.0, kind="entropy", min_base_entropy=2.5).eligible(None, ent, pos).tolist() == [True, False, False, False]
    assert Gate(1.0, kind="random").eligible(None, ent, pos).all()
    for gate in (Gate(math.inf, kind="entropy"), Gate(0.0, kind="top1"), Gate(0.0, kind="random")):
        assert gate.never and not gate.can_fire(0, 0) and not gate.eligible(div, ent * 100, pos, top1 * 0).any()
    assert Gate(1.0).needs_reasoning and not any(Gate(0.5, kind=k).needs_reasoning for k in ("entropy", "top1", "random"))
    with pytest.raises(ValueError, match="unknown gate"):
        Gate(1.0, kind="oracle")


def test_the_random_gate_is_seeded_by_position_and_apart_from_the_token_draw():
    pos = np.arange(4000)
    a = Gate(0.1, kind="random", seed=7).eligible(None, np.zeros(len(pos)), pos)
    assert a.tolist() == Gate(0.1, kind="random", seed=7).eligible(None, np.zeros(len(pos)), pos).tolist()
    assert a.mean() == pytest.approx(0.1, abs=0.02)
    assert a.tolist() != Gate(0.1, kind="random", seed=8).eligible(None, np.zeros(len(pos)), pos).tolist()
    # a block of positions decides each one as it would alone
    assert Gate(0.1, kind="random", seed=7).eligible(None, np.zeros(3), pos[100:103]).tolist() == a[100:103].tolist()
    # the token's number and the gate's are different numbers of the position's stream
    draws = np.array([Sampler(seed=7).uniform(int(i)) for i in pos[:2000]])
    assert (draws == np.array([position_uniform(7, int(i), 0) for i in pos[:2000]])).all()
    assert abs(np.corrcoef(draws, [position_uniform(7, int(i), GATE_DRAW) for i in pos[:2000]])[0, 1]) < 0.1


def test_threshold_for_rate_per_rule():
    values = np.arange(100) / 100  # 0.00 .. 0.99
    for rate in (0.05, 0.2, 0.5):
        t = threshold_for_rate(values, rate, "entropy")
        assert (values >= t).mean() == pytest.approx(rate)
        t = threshold_for_rate(values, rate, "top1")
        assert (values < t).mean() == pytest.approx(rate)
        assert threshold_for_rate([], rate, "random") == rate
    assert threshold_for_rate(values, 0.999, "top1") == 1.0


def test_requests_check_the_gate_and_its_threshold():
    assert GenerationRequest(prompt="x", gate="entropy", threshold=math.inf).gate == "entropy"
    assert GenerationRequest.from_wire({"prompt": "x", "gate": "random", "threshold": 0.25}).to_wire()["gate"] == "random"
    for bad, field in [(dict(gate="oracle"), "gate"), (dict(gate="top1", threshold=1.5), "threshold"),
                       (dict(gate="random", threshold=math.inf), "threshold"), (dict(gate=3), "gate")]:
        with pytest.raises(InvalidParameter, match=f"^{field}:"):
            GenerationRequest(prompt="x", **bad)


# -- the rules, in generation ------------------------------------------------------------------
def rule_holds(gate: str, threshold: float, event: TokenEvent, seed: int) -> bool:
    if gate == "entropy":
        return event.base_entropy >= threshold
    if gate == "top1":
        return event.top_k["base"][0][2] < threshold
    return position_uniform(seed, event.position, GATE_DRAW) < threshold


def signal_midpoint(pair, gate: str) -> float:
    """A threshold halfway between two of the rule's values near their median (no value sits on it)."""
    if gate == "random":
        return 0.3
    tokens, _ = run(pair, prompt=PROMPTS[0], mode="base", max_tokens=40, return_top=1)
    values = sorted({t.base_entropy if gate == "entropy" else t.top_k["base"][0][2] for t in tokens})
    mid = len(values) // 2
    return (values[mid - 1] + values[mid]) / 2


@pytest.mark.parametrize("gate", ["entropy", "top1", "random"])
def test_each_control_fires_where_and_only_where_its_rule_says(tiny_pair, gate):
    threshold = signal_midpoint(tiny_pair, gate)
    fired = held = 0
    for prompt in PROMPTS:
        kw = dict(prompt=prompt, max_tokens=40, gate=gate, threshold=threshold, seed=11, return_top=1)
        lock, block = run(tiny_pair, schedule="lockstep", **kw), run(tiny_pair, schedule="block", **kw)
        assert [(t.position, t.token_id, t.source) for t in lock[0]] == [(t.position, t.token_id, t.source) for t in block[0]]
        assert lock[1].takeover_positions == block[1].takeover_positions
        for t in block[0]:
            assert (t.source == "reasoning") == rule_holds(gate, threshold, t, 11), (prompt, t.position)
            # the block schedule ran the reasoning model only where it took over
            assert (t.divergence is not None) == (t.source == "reasoning")
            fired += t.source == "reasoning"
            held += t.source == "base"
        assert all(t.divergence is not None for t in lock[0])  # lockstep scores every position
    assert fired > 5 and held > 5


@pytest.mark.parametrize("schedule", ["lockstep", "block"])
def test_a_control_spends_its_budget_on_the_first_positions_its_rule_picks(tiny_pair, schedule):
    threshold = signal_midpoint(tiny_pair, "entropy")
    tokens, summary = run(tiny_pair, prompt=PROMPTS[1], max_tokens=40, gate="entropy", threshold=threshold,
                          budget=3, schedule=schedule)
    picked = [t.position for t in tokens if t.base_entropy >= threshold]
    assert len(picked) > 3 and list(summary.takeover_positions) == picked[:3]
    after = [t for t in tokens if t.position > picked[2]]
    assert after and all(t.divergence is None for t in after)  # the reasoning model stopped


def test_the_random_gate_is_reproducible_with_a_seed(tiny_pair):
    kw = dict(prompt=PROMPTS[2], max_tokens=60, gate="random", threshold=0.2)
    first = run(tiny_pair, seed=5, **kw)[1].takeover_positions
    assert first == run(tiny_pair, seed=5, **kw)[1].takeover_positions
    assert first == tuple(i for i in range(60) if position_uniform(5, i, GATE_DRAW) < 0.2)
    assert first != run(tiny_pair, seed=6, **kw)[1].takeover_positions
    assert run(tiny_pair, seed=5, **kw)[1].seed == 5


@pytest.fixture
def reasoning_rows(tiny_pair, monkeypatch):
    """Counts the logits rows the reasoning model computes for response positions (llama.cpp still
    runs every decode)."""
    counts = {"rows": 0, "calls": 0}
    decode = LlamaModel.decode

    def counting(model, tokens, rows=None, seq=0):
        response = model.n_past > 0  # a prompt is decoded from position 0
        out = decode(model, tokens, rows, seq)
        if model is tiny_pair.reasoning and response:

            counts["rows"] += len(out)
            counts["calls"] += 1
        return out

    monkeypatch.setattr(LlamaModel, "decode", counting)
    return counts


def test_the_block_schedule_skips_the_reasoning_models_scoring_rows(tiny_pair, reasoning_rows):
    kw = dict(prompt=PROMPTS[0], max_tokens=80, gate="top1", threshold=signal_midpoint(tiny_pair, "top1") / 2)
    tokens, summary = run(tiny_pair, schedule="block", **kw)
    taken = summary.takeover_positions
    assert 0 < len(taken) < len(tokens) / 3
    # one row, in one batch, per takeover (a takeover at position 0 reads the prompt's logits)
    assert reasoning_rows["rows"] == reasoning_rows["calls"] == len([p for p in taken if p > 0])
    reasoning_rows.update(rows=0, calls=0)
    lock_tokens, lock_summary = run(tiny_pair, schedule="lockstep", **kw)
    assert lock_summary.takeover_positions == taken
    assert reasoning_rows["rows"] >= len(lock_tokens) - 1  # lockstep: a row at every position


def test_a_full_reasoning_context_ends_a_sparse_response_where_lockstep_ends_it(tiny_files):
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    entry = PairEntry("small", ModelEntry("base", path=tiny_files["base"], n_ctx=256, n_threads=1),
                      ModelEntry("reasoning", path=tiny_files["reasoning"], n_ctx=256, n_threads=1))
    pair = open_pair(entry)
    try:
        prompt = "a" * (pair.base.n_ctx - 20)
        kw = dict(prompt=prompt, raw=True, max_tokens=500, gate="random", threshold=0.1, seed=1)
        lock, block = run(pair, schedule="lockstep", **kw), run(pair, schedule="block", **kw)
        assert [(t.token_id, t.source) for t in lock[0]] == [(t.token_id, t.source) for t in block[0]]
        assert block[1].finish_reason == lock[1].finish_reason == "length" and len(block[0]) == 21
    finally:
        pair.close()


# -- through the daemon ------------------------------------------------------------------------
def test_the_daemon_runs_the_controls_as_the_engine_does_and_refuses_a_bad_gate(daemon, tiny_pair):
    import msgpack
    import zmq

    from tokint_local.client import Client

    params = dict(max_tokens=30, gate="random", threshold=0.3, seed=4, budget=5)
    local = [e for e in generate(tiny_pair, GenerationRequest(prompt="hi", **params)) if isinstance(e, TokenEvent)]
    with Client(daemon.address) as client:
        remote = [e for e in client.generate("hi", **params) if isinstance(e, TokenEvent)]
    assert [(t.token_id, t.source, t.divergence) for t in remote] == [(t.token_id, t.source, t.divergence) for t in local]
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(daemon.address)
    try:  # past the client's own check: the daemon validates too
        sock.send_multipart([msgpack.packb({"id": "g1", "type": "generate", "version": 1, "parent": None}),
                             msgpack.packb({"prompt": "hi", "gate": "top1", "threshold": 3.0})])
        assert sock.poll(5000)
        head, content = map(msgpack.unpackb, sock.recv_multipart())
    finally:
        sock.close()
    assert head["type"] == "error" and content["code"] == "invalid_parameter" and "threshold" in content["message"]


def test_a_control_gate_needs_a_threshold_of_its_own(shared_daemon, tmp_path, capsys):
    """The pair's default threshold is a divergence: used as a probability, 1.0 would take over at every
    position. The daemon, the client and the local CLI each refuse a control gate without its threshold."""
    import msgpack
    import zmq

    from tokint_local.client import Client

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(shared_daemon.address)
    try:
        for n, gate in enumerate(("entropy", "top1", "random")):
            sock.send_multipart([msgpack.packb({"id": f"g{n}", "type": "generate", "version": 1, "parent": None}),
                                 msgpack.packb({"prompt": "hi", "gate": gate, "max_tokens": 3})])
            assert sock.poll(5000)
            head, content = map(msgpack.unpackb, sock.recv_multipart())
            assert head["type"] == "error" and content["code"] == "invalid_parameter"
            assert content["message"].startswith(f"threshold: the {gate} gate needs one of its own")
    finally:
        sock.close()
    with Client(shared_daemon.address) as client:
        with pytest.raises(InvalidParameter, match="the random gate needs one of its own"):
            client.generate("hi", gate="random")
        events = list(client.generate("hi", gate="random", threshold=0.5, max_tokens=3, seed=1))
        assert events[-1].finish_reason == "length"  # with its threshold it runs; the divergence gate needs none
        assert list(client.generate("hi", max_tokens=3))[-1].finish_reason == "length"
    models = tmp_path / "models.toml"  # the local CLI refuses before it looks for the model files
    models.write_text(models_toml_text({k: tmp_path / f"missing-{k}.gguf" for k in ("base", "reasoning", "padded", "other")}))
    assert main(["--models", str(models), "generate", "--local", "--gate", "top1", "hi"]) == 1
    assert "threshold: the top1 gate needs one of its own" in capsys.readouterr().err


# -- calibrate and eval ------------------------------------------------------------------------

@pytest.mark.parametrize("gate", ["divergence", "entropy", "top1", "random"])
def test_calibrate_finds_the_threshold_for_a_target_rate(tiny_models_toml, capsys, gate):
    code = main(["calibrate", "--models", str(tiny_models_toml), "--gate", gate, "--rate", "0.25", "--limit", "3",
                 "--max-tokens", "60", "--verify", "--json"])
    assert code == 0
    result = json.loads(capsys.readouterr().out)
    assert result["gate"] == gate and result["target_rate"] == 0.25
    if gate == "random":
        assert result["threshold"] == 0.25 and result["n_tokens"] == 0
    else:
        assert result["n_tokens"] >= 100
        assert result["sample_rate"] == pytest.approx(0.25, abs=0.02)  # what the threshold catches of the sample
    assert result["measured_rate"] == pytest.approx(0.25, abs=0.1)


def test_calibrate_leaves_out_a_prompt_too_long_for_the_context(tiny_models_toml, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"prompt": p, "checker": "numeric", "answer": 1}) + "\n"
                            for p in ("one plus none?", "word " * 2000, "two minus one?")))
    assert main(["calibrate", "--models", str(tiny_models_toml), "--gate", "entropy", "--dataset", str(data),
                 "--max-tokens", "20", "--json"]) == 0
    captured = capsys.readouterr()
    assert "calibrate: prompt 2 left out" in captured.err and "context" in captured.err
    assert json.loads(captured.out)["n_tokens"] > 20  # the other two prompts' tokens
    assert main(["calibrate", "--models", str(tiny_models_toml), "--gate", "entropy", "--dataset", str(data),
                 "--max-tokens", "20", "--rate", "0.0000001"]) == 0
    captured = capsys.readouterr()  # a rate the sample cannot show is not claimed: what the threshold catches is
    line = captured.out
    assert re.search(r"entropy gate: threshold [\d.]+ catches \d+\.\d\d% of \d+ base-model tokens \(.*target 1e-05%\)", line), line
    assert "takeovers' worth, too few to place the threshold well" in captured.err


def test_calibrating_the_random_gate_loads_no_model(tmp_path, capsys):
    """Its threshold is the rate: a pair whose model files are not there calibrates all the same."""
    models = tmp_path / "models.toml"
    models.write_text(models_toml_text({k: tmp_path / f"missing-{k}.gguf" for k in ("base", "reasoning", "padded", "other")}))
    assert main(["calibrate", "--models", str(models), "--gate", "random", "--rate", "0.05", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"pair": "tiny", "gate": "random", "target_rate": 0.05, "threshold": 0.05}
    assert main(["calibrate", "--models", str(models), "--gate", "random", "--rate", "0.05"]) == 0
    assert capsys.readouterr().out == "random gate: threshold 0.05 takes over at 5% of positions (a probability)\n"
    assert main(["calibrate", "--models", str(models), "--gate", "random", "--rate", "0.05", "--verify"]) == 1
    assert "missing-base.gguf" in capsys.readouterr().err  # --verify runs the pair: that needs its files


def test_eval_runs_a_control_gate_and_compares_it_with_the_divergence_gate(tiny_models_toml, tmp_path, capsys):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}", "answer": "7", "checker": "numeric"})
                            + "\n" for i in range(3)))
    out = tmp_path / "results.jsonl"
    common = ["eval", "--local", "--models", str(tiny_models_toml), "--dataset", str(data), "--max-tokens", "30",
              "--out", str(out), "--json"]
    assert main(common + ["--modes", "base,intervene", "--budgets", "2", "--threshold", "0.5"]) == 0
    assert main(common + ["--modes", "intervene", "--budgets", "2", "--gate", "random", "--threshold", "0.2",
                          "--seed", "3"]) == 0
    capsys.readouterr()
    assert main(["eval", "--report", "--out", str(out), "--json"]) == 0
    summaries = {s["config"]: s for s in map(json.loads, capsys.readouterr().out.splitlines())}
    control = summaries["intervene/budget=2/threshold=0.2/gate=random"]
    assert control["gate"] == "random" and control["n_items"] == 3
    assert control["divergence_config"] == "intervene/budget=2/threshold=0.5"
    assert control["compared_with_divergence"] == 3 and "p_vs_divergence" in control
    assert summaries["intervene/budget=2/threshold=0.5"]["gate"] == "divergence"
    with pytest.raises(SystemExit):
        main(common + ["--gate", "oracle"])
    assert main(common + ["--gate", "top1", "--threshold", "2"]) == 1  # refused before any model loads


def test_summaries_pick_the_divergence_gate_at_the_same_budget():
    def record(item, cfg, passed, takeovers):
        return {"item": item, "config": cfg.key, "mode": cfg.mode, "budget": cfg.budget, "threshold": cfg.threshold,
                "gate": cfg.gate, "passed": passed, "n_tokens": 100, "n_takeovers": takeovers,
                "tokens_per_second": 10.0}

    div_low, div_high = Config("intervene", 4, 0.05), Config("intervene", 4, 1.0)
    other_budget, entropy = Config("intervene", 16, 0.05), Config("intervene", 4, 2.0, "entropy")
    records = []
    for i in range(10):
        records += [record(f"q{i}", div_low, i < 8, 4), record(f"q{i}", div_high, i < 5, 1),
                    record(f"q{i}", other_budget, True, 12), record(f"q{i}", entropy, i < 2, 1)]
    configs = configs_in(records)
    assert [c.key for c in configs][-1] == entropy.key  # controls after the divergence gate
    s = {x["config"]: x for x in summarize_results(records, configs)}[entropy.key]
    assert s["divergence_config"] == div_high.key  # same budget, nearest in takeovers per response
    assert (s["fixed_vs_divergence"], s["broken_vs_divergence"]) == (0, 3)


# -- the TUI's settings form -------------------------------------------------------------------
async def test_the_settings_form_sends_the_gate():
    from tui.app import TokintApp

    app = TokintApp(offline=True)
    async with app.run_test(size=(100, 34)) as pilot:
        panel = app.screen.query_one("#settings")
        assert panel.request("x").gate == "divergence"
        panel.query_one("#gate").value = "top1"
        await pilot.pause()  # choosing a control gate empties the threshold: it needs one of its own
        panel.query_one("#threshold").value = "0.4"
        request = panel.request("x")
        assert (request.gate, request.threshold) == ("top1", 0.4)
        panel.query_one("#threshold").value = "2"
        with pytest.raises(InvalidParameter, match="probability"):
            panel.request("x")
