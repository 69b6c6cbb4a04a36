"""`tokint eval`, `--report` and `analyze` on bad results files and arguments: one clear line, exit
status 1, before any model loads (the models file the commands get does not exist), nothing lost."""
import json
import re
from pathlib import Path

import pytest

from tokint_local.cli import main
from tokint_local.errors import ConfigError
from tokint_local.results_file import ResultsFile

RECORD = {"type": "item", "config": "base", "mode": "base", "budget": None, "threshold": None, "passed": True,
          "n_tokens": 3, "n_takeovers": 0, "takeover_positions": [], "tokens_per_second": 1.0, "response": "2",
          "settings": {"pair": "tiny", "divergence": "kl", "max_tokens": 8}}


@pytest.fixture
def data(tmp_path) -> Path:
    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{n}", "prompt": f"{n}+1?", "checker": "numeric", "answer": n + 1})
                            + "\n" for n in range(3)))
    return path


@pytest.fixture
def no_models(tmp_path) -> list[str]:
    return ["--models", str(tmp_path / "no-such-models.toml")]  # a command that got as far as loading fails on it


def lines(path: Path, *texts: str) -> Path:
    path.write_text("".join(t + "\n" for t in texts))
    return path


def test_only_a_torn_last_line_is_passed_over(tmp_path):
    good = json.dumps({**RECORD, "item": "q0"})
    assert [r["item"] for r in ResultsFile(lines(tmp_path / "a.jsonl", good)).load()] == ["q0"]
    torn = tmp_path / "torn.jsonl"
    torn.write_text(good + '\n{"type": "item", "item": "q1", "con')  # a kill mid-write: no newline after it
    assert [r["item"] for r in ResultsFile(torn).load()] == ["q0"]
    for name, text in [("middle", ['{"type": "item", "item": "q1", "con', good]),  # a bad line with lines after it
                       ("ended", [good, '{"type": "item", "item": "q1", "con']),  # a newline after it: no kill did that
                       ("words", ["hello world"]), ("list", ["[1, 2]"])]:
        with pytest.raises(ConfigError, match=rf"{name}.jsonl:\d: not a JSON record of `tokint eval`"):
            ResultsFile(lines(tmp_path / f"{name}.jsonl", *text)).load()
    (tmp_path / "latin1.jsonl").write_bytes(b'{"item": "caf\xe9"}\n')
    with pytest.raises(ConfigError, match="latin1.jsonl:1: not UTF-8 text"):
        ResultsFile(tmp_path / "latin1.jsonl").load()
    with pytest.raises(ConfigError, match="is a folder"):
        ResultsFile(tmp_path).load()


def test_report_on_a_file_with_nothing_to_report_fails(tmp_path, data, capsys):
    empty = lines(tmp_path / "empty.jsonl")
    assert main(["eval", "--report", "--out", str(empty)]) == 1
    assert "empty.jsonl holds no records of `tokint eval`" in capsys.readouterr().err
    other = lines(tmp_path / "other.jsonl", json.dumps({**RECORD, "item": "HumanEval/0"}))
    assert main(["eval", "--report", "--out", str(other), "--dataset", str(data)]) == 1
    assert "none of the 1 records in" in capsys.readouterr().err
    assert main(["eval", "--report", "--out", str(tmp_path)]) == 1
    assert "is a folder" in capsys.readouterr().err


def test_a_plot_that_cannot_be_written_fails_before_the_report(tmp_path, capsys):
    out = lines(tmp_path / "r.jsonl", json.dumps({**RECORD, "item": "q0"}))
    (tmp_path / "dir.png").mkdir()
    for plot, why in [(tmp_path / "plot.txt", "ending in .png, .pdf, .svg"),
                      (tmp_path / "missing" / "plot.png", "no folder"), (tmp_path / "dir.png", "a folder; give another")]:
        assert main(["eval", "--report", "--out", str(out), "--plot", str(plot)]) == 1
        captured = capsys.readouterr()
        assert why in captured.err and captured.out == ""


def test_eval_refuses_before_loading_models(tmp_path, data, no_models, capsys):
    out = lines(tmp_path / "r.jsonl", json.dumps({**RECORD, "item": "HumanEval/0"}))
    run = ["eval", "--local", "--dataset", str(data), *no_models]
    assert main(run + ["--out", str(out)]) == 1  # another dataset's results file: nothing appended to it
    assert "holds records of items that are not" in capsys.readouterr().err and len(out.read_text().splitlines()) == 1
    for gate in ("entropy", "top1", "random"):  # a control gate has no default threshold (1.0 fires everywhere)
        assert main(run + ["--gate", gate, "--out", str(tmp_path / "new.jsonl")]) == 1
        assert f"--gate {gate} needs --threshold" in capsys.readouterr().err
    corrupt = lines(tmp_path / "c.jsonl", "hello world", json.dumps({**RECORD, "item": "q0"}))
    assert main(run + ["--out", str(corrupt)]) == 1
    assert "c.jsonl:1: not a JSON record" in capsys.readouterr().err
    assert main(run + ["--budgets", "4,-1"]) == 1
    assert "'-1' is no budget: give a whole number of takeovers" in capsys.readouterr().err
    assert main(["eval", "--dataset", "gsm8k8", *no_models]) == 1
    assert "dataset not found: gsm8k8 (give one of humaneval, gsm8k, aime2025, or a JSONL file)" in capsys.readouterr().err
    assert main(["eval", *no_models]) == 1
    assert "--dataset is required (humaneval, gsm8k, aime2025 or FILE.jsonl)" in capsys.readouterr().err
    # a results file that cannot be written is refused before a model loads (it failed at the first record)
    a_file = lines(tmp_path / "a_file", "x")
    for out, why in [(a_file / "r.jsonl", "Not a directory"), (tmp_path / "missing" / "r.jsonl", "No such file"),
                     (Path("/proc/r.jsonl"), "")]:
        assert main(run + ["--out", str(out)]) == 1
        assert f"--out {out}: cannot write the results file ({why}" in capsys.readouterr().err
    assert not (tmp_path / "new.jsonl").exists()  # tried, not left behind by the refused runs above


def test_analyze_reads_its_results_file_before_loading_models(tmp_path, data, no_models, capsys):
    corrupt = lines(tmp_path / "c.jsonl", json.dumps({**RECORD, "item": "q0"}), "hello world")
    assert main(["analyze", "--dataset", str(data), "--from-results", str(corrupt), *no_models]) == 1
    assert "c.jsonl:2: not a JSON record" in capsys.readouterr().err
    base_only = lines(tmp_path / "b.jsonl", json.dumps({**RECORD, "item": "q0"}))
    assert main(["analyze", "--dataset", str(data), "--from-results", str(base_only), *no_models]) == 1
    assert "no reasoning-mode responses" in capsys.readouterr().err


def test_a_resume_made_otherwise_is_refused_before_the_models_load(tmp_path, data, capsys):
    from conftest import models_toml_text

    missing = {name: tmp_path / f"{name}.gguf" for name in ("base", "reasoning", "padded", "other")}
    models = tmp_path / "models.toml"  # the pair's files do not exist: loading them would fail otherwise
    models.write_text(models_toml_text(missing))
    out = lines(tmp_path / "r.jsonl", json.dumps({**RECORD, "item": "q0", "settings": {**RECORD["settings"], "max_tokens": 9}}))
    run = ["eval", "--local", "--models", str(models), "--dataset", str(data), "--modes", "base", "--out", str(out)]
    assert main(run + ["--max-tokens", "8"]) == 1
    err = capsys.readouterr().err
    assert "holds a run made with max_tokens 9, this run asks 8" in err and "--max-tokens 9" in err and "gguf" not in err
    assert main(run + ["--max-tokens", "9"]) == 1  # the same settings: it resumes, and loading the pair fails
    assert "gguf" in capsys.readouterr().err
    done = {**RECORD, "settings": {**RECORD["settings"], "max_tokens": 9}}
    lines(out, *(json.dumps({**done, "item": f"q{n}"}) for n in range(3)))  # every item held: no model is needed
    assert main(run + ["--max-tokens", "9"]) == 0
    captured = capsys.readouterr()
    assert "r.jsonl holds all 3 items x 1 configurations" in captured.err and "gguf" not in captured.err
    assert captured.out.splitlines()[2].split()[:3] == ["base", "3", "1.000"]


def test_report_refuses_the_flags_that_choose_what_runs(tmp_path, capsys):
    out = lines(tmp_path / "r.jsonl", json.dumps({**RECORD, "item": "q0"}))
    for flags in (["--gate", "entropy"], ["--threshold", "0.5"], ["--thresholds", "1,2"], ["--modes", "base"],
                  ["--budgets", "4"], ["--pair", "tiny"], ["--divergence", "kl"], ["--max-tokens", "512"], ["--seed", "0"]):
        assert main(["eval", "--report", "--out", str(out), *flags]) == 1
        captured = capsys.readouterr()
        assert f"as it was run: drop {flags[0]} (what a run is to run)" in captured.err and captured.out == ""
    assert main(["eval", "--report", "--out", str(out)]) == 0


def test_a_bad_threshold_names_the_flag(tmp_path, data, no_models, capsys):
    assert main(["eval", "--local", "--dataset", str(data), "--gate", "top1", "--threshold", "2", *no_models]) == 1
    assert "--threshold: is a probability for the top1 gate: a number from 0 to 1 (got 2.0)" in capsys.readouterr().err
    assert main(["generate", "--local", "--max-tokens", "0", "hi", *no_models]) == 1
    assert "--max-tokens: must be an integer >= 1 (got 0)" in capsys.readouterr().err


def test_a_results_file_holds_one_run(tmp_path, capsys):
    """Each (item, configuration) once, every record of one pair, divergence and length limit: a report of a
    file that mixes two runs would compare them item by item as if they were one."""
    a, b = ({**RECORD, "item": f"q{n}"} for n in range(2))
    other = {**b, "settings": {**b["settings"], "max_tokens": 64}, "passed": False}
    for name, records, why in [("twice", [a, b, {**a, "passed": False}], "twice.jsonl:3: q0 base again (line 1 holds it too)"),
                               ("mixed", [a, other], "mixed.jsonl:2: made with pair 'tiny', divergence 'kl', max_tokens 64, "
                                                     "line 1 with pair 'tiny', divergence 'kl', max_tokens 8")]:
        path = lines(tmp_path / f"{name}.jsonl", *map(json.dumps, records))
        assert main(["eval", "--report", "--out", str(path)]) == 1
        assert why in capsys.readouterr().err


def test_a_line_torn_inside_a_character_is_passed_over_and_cut(tmp_path):
    whole = json.dumps({**RECORD, "item": "q0", "response": "½ × 2"}, ensure_ascii=False) + "\n"
    torn = json.dumps({**RECORD, "item": "q1", "response": "½ × 2"}, ensure_ascii=False).encode()
    path = tmp_path / "r.jsonl"
    path.write_bytes(whole.encode() + torn[:torn.index("½".encode()) + 1])  # the kill fell inside "½"
    results = ResultsFile(path)
    assert [r["item"] for r in results.load()] == ["q0"]
    results.append({**RECORD, "item": "q2"})
    assert [r["item"] for r in results.load()] == ["q0", "q2"] and path.read_bytes().startswith(whole.encode())


def test_checks_that_need_no_daemon_come_before_one_is_asked_for(tmp_path, data, capsys):
    out = lines(tmp_path / "r.jsonl", json.dumps({**RECORD, "item": "q0"}))
    dead = ["--connect", f"ipc://{tmp_path}/none.sock", "--no-autostart"]
    assert main(["eval", "--dataset", str(data), "--pair", "other", "--max-tokens", "8", "--out", str(out), *dead]) == 1
    assert "holds a run made with pair 'tiny', this run asks 'other'" in capsys.readouterr().err
    assert main(["generate", "--gate", "top1", "hi", *dead]) == 1
    assert "--threshold: the top1 gate needs one of its own" in capsys.readouterr().err
    for modes in ("", ","):
        assert main(["eval", "--dataset", str(data), "--modes", modes, *dead]) == 1
        assert "--modes: unknown mode" in capsys.readouterr().err


def test_hand_edited_records_are_refused_not_reported(tmp_path, data, capsys):
    good = {**RECORD, "item": "q0"}
    for name, record, why in [("mode", {**good, "mode": "bogus", "config": "bogus"}, "mode 'bogus' is none of"),
                              ("name", {**good, "config": "reasoning"}, "config 'reasoning' is not what its fields make (base)"),
                              ("empty", {}, "its type is None, not 'item'"),
                              ("count", {**good, "n_takeovers": 3}, "n_takeovers 3 (budget 0)"),
                              ("speed", {**good, "tokens_per_second": float("inf")}, "tokens_per_second inf cannot be"),
                              ("budget", {**good, "mode": "intervene", "budget": "x", "threshold": 1.0,
                                          "config": "intervene/budget=x/threshold=1"}, "budget 'x' is no budget")]:
        path = lines(tmp_path / f"{name}.jsonl", json.dumps({**RECORD, "item": "q1"}), json.dumps(record))
        assert main(["eval", "--report", "--out", str(path)]) == 1
        assert f"{name}.jsonl:2: " in (err := capsys.readouterr().err) and why in err
    summary = lines(tmp_path / "summary.jsonl", json.dumps(good), json.dumps({**good, "item": "q1", "type": "summary"}))
    with pytest.raises(ConfigError, match=r"summary.jsonl:2: .*\(its type is 'summary'"):  # dropped, it would run again
        ResultsFile(summary).load()
    report = lines(tmp_path / "report.jsonl", json.dumps(good), json.dumps({"type": "summary", "config": "base"}))
    assert [r["item"] for r in ResultsFile(report).load()] == ["q0"]  # a report's own line is passed over
    gate = {**good, "mode": "intervene", "budget": 4, "threshold": 0.575, "config": "intervene/budget=4/threshold=0.575"}
    rnd = {**gate, "gate": "random", "threshold": 0.05, "config": "intervene/budget=4/threshold=0.05/gate=random",
           "settings": {**good["settings"], "seed": 0, "item_seeds": True}}
    for name, second, why in [("threshold", {**gate, "threshold": 0.5750001}, "made with threshold 0.5750001, line 1 with threshold 0.575"),
                              ("seed", {**rnd, "settings": {**rnd["settings"], "seed": 7}}, "seed 7, item_seeds True, line 1 with threshold 0.05, seed 0")]:
        first = gate if name == "threshold" else rnd
        path = lines(tmp_path / f"{name}.jsonl", json.dumps(first), json.dumps({**second, "item": "q1"}))
        with pytest.raises(ConfigError, match=rf"{name}.jsonl:2: .*{re.escape(why)}.*two runs under one configuration name"):
            ResultsFile(path).load()
    broken = tmp_path / "broken.jsonl"
    broken.write_bytes(json.dumps(good).encode() + b"\n" + b'{"item": "caf\xe9"}\n' + json.dumps(good).encode() + b"\n")
    with pytest.raises(ConfigError, match=r"broken.jsonl:2: not UTF-8 text"):
        ResultsFile(broken).load()
    other = lines(tmp_path / "other.jsonl", json.dumps({**good, "prompt_sha256": "0" * 16}))
    assert main(["eval", "--report", "--dataset", str(data), "--out", str(other)]) == 1
    assert "holds another item under the id 'q0'" in capsys.readouterr().err


def test_a_results_file_holds_one_datasets_records(tmp_path, data, capsys):
    """Records say which dataset made them: two files put together are refused, not reported as one run;
    records from before tokint kept the dataset go with any (their ids and prompts are checked instead)."""
    of = lambda name, item: json.dumps({**RECORD, "item": item, "settings": {**RECORD["settings"], "dataset": name}})
    both = lines(tmp_path / "both.jsonl", of("gsm8k", "gsm8k/0"), json.dumps({**RECORD, "item": "q9"}),
                 of("humaneval", "HumanEval/0"))
    assert main(["eval", "--report", "--out", str(both)]) == 1
    assert "both.jsonl:3: a record of dataset 'humaneval', line 1 of 'gsm8k': a results file holds one dataset's" \
        in capsys.readouterr().err
    # records from before tokint kept the dataset: a built-in's item ids say whose they are
    older = lines(tmp_path / "older.jsonl", json.dumps({**RECORD, "item": "gsm8k/0"}), json.dumps({**RECORD, "item": "q9"}),
                  json.dumps({**RECORD, "item": "AIME2025-I/1"}))
    assert main(["eval", "--report", "--out", str(older)]) == 1
    assert "older.jsonl:3: a record of dataset 'aime2025', line 1 of 'gsm8k'" in capsys.readouterr().err
    mine = lines(tmp_path / "mine.jsonl", of("sums", "q0"))
    (tmp_path / "other.jsonl").write_text(data.read_text())  # the same items, under another dataset's name
    assert main(["eval", "--dataset", str(tmp_path / "other.jsonl"), "--out", str(mine), "--pair", "tiny",
                 "--max-tokens", "8", "--connect", f"ipc://{tmp_path}/none.sock", "--no-autostart"]) == 1
    assert "holds results of the dataset 'sums', this run's is 'other'" in capsys.readouterr().err


def test_plan_eval_runs_only_what_the_file_lacks_and_refuses_a_mix(tmp_path):
    from tokint_local.datasets import load_dataset
    from tokint_local.evaluation import plan_eval, prompt_hash, records_of
    from tokint_local.results_file import Config

    path = tmp_path / "sums.jsonl"
    path.write_text("".join(json.dumps({"id": f"q{n}", "prompt": f"{n}+1?", "checker": "numeric", "answer": n + 1})
                            + "\n" for n in range(3)))
    items = load_dataset(str(path))
    configs = [Config("base"), Config("intervene", 4, 0.5)]
    base = {"pair": "tiny", "divergence": "kl", "max_tokens": 8, "dataset": "sums"}
    held = [{**RECORD, "item": "q1", "prompt_sha256": prompt_hash("1+1?"), "settings": {**RECORD["settings"], "dataset": "sums"}}]
    todo = plan_eval(tmp_path / "r.jsonl", held, items, configs, base)
    assert [(item.id, cfg.key) for item, cfg in todo] == [
        ("q0", "base"), ("q0", "intervene/budget=4/threshold=0.5"),
        ("q1", "intervene/budget=4/threshold=0.5"), ("q2", "base"), ("q2", "intervene/budget=4/threshold=0.5")]
    assert records_of(held, items[:1], configs) == [] and records_of(held, items, configs) == held
    with pytest.raises(ConfigError, match="max_tokens 8, this run asks 16.*--max-tokens 8"):
        plan_eval(tmp_path / "r.jsonl", held, items, configs, {**base, "max_tokens": 16})


def test_a_resume_continues_the_files_run_where_flags_are_not_given(tmp_path, data, capsys):
    """Without --pair/--divergence/--max-tokens a resume takes the file's (a file holds one run), so
    that a finished run reports without a daemon: here none is listening, and none may be started."""
    done = {**RECORD, "settings": {**RECORD["settings"], "max_tokens": 9, "divergence": "js"}}
    out = lines(tmp_path / "r.jsonl", *(json.dumps({**done, "item": f"q{n}"}) for n in range(3)))
    dead = ["--connect", f"ipc://{tmp_path}/none.sock", "--no-autostart"]
    assert main(["eval", "--dataset", str(data), "--modes", "base", "--out", str(out), *dead]) == 0
    captured = capsys.readouterr()
    assert f"continuing the run in {out}: --pair tiny, --divergence js, --max-tokens 9" in captured.err
    assert "holds all 3 items x 1 configurations" in captured.err
    assert captured.out.splitlines()[2].split()[:3] == ["base", "3", "1.000"]
    assert main(["eval", "--dataset", str(data), "--modes", "base", "--max-tokens", "8", "--out", str(out), *dead]) == 1
    assert "made with max_tokens 9, this run asks 8" in capsys.readouterr().err  # a flag given must match


@pytest.mark.parametrize("threshold", ["-1", "nan", "lots"])
def test_analyze_refuses_a_bad_threshold_before_loading_models(data, no_models, threshold, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["analyze", "--dataset", str(data), "--threshold", threshold, *no_models])
    assert exit_.value.code == 2
    assert "--threshold" in capsys.readouterr().err  # argparse's line, not the missing models file's


def test_intervene_flags_without_intervene_are_refused(tmp_path, data, no_models, capsys):
    run = ["eval", "--local", "--dataset", str(data), "--out", str(tmp_path / "r.jsonl"), *no_models]
    assert main(run + ["--modes", "base", "--gate", "random"]) == 1  # not "needs --threshold": the gate is moot
    assert "--gate: sets how intervene takes over, and --modes base runs no intervene: drop it" in capsys.readouterr().err
    assert main(run + ["--modes", "base,reasoning", "--threshold", "0.1", "--budgets", "4"]) == 1
    err = capsys.readouterr().err
    assert "--threshold, --budgets: set how intervene takes over" in err and "drop them or add intervene" in err
    assert not (tmp_path / "r.jsonl").exists()
    assert main(run + ["--modes", "base,intervene", "--budgets", "4"]) == 1  # with intervene: on to the models
    assert "no-such-models.toml" in capsys.readouterr().err


def test_a_limit_past_the_dataset_says_it_runs_them_all(tmp_path, data, no_models, capsys):
    assert main(["eval", "--local", "--dataset", str(data), "--limit", "99999", "--modes", "base",
                 "--out", str(tmp_path / "r.jsonl"), *no_models]) == 1  # the models file is missing
    assert "--limit 99999: " + str(data) + " has 3 items; running all of them" in capsys.readouterr().err
