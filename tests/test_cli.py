"""The tokint command on tiny models: streaming text, JSON events, and one-line errors."""
import json
import subprocess
import sys

import pytest

from tokint_local.cli import main


def tokint(*args, stdin=None, env=None):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True,
                          input=stdin, env=env, timeout=60)


def test_json_output_is_one_event_per_line(tiny_models_toml):
    r = tokint("generate", "--local", "--models", str(tiny_models_toml), "--threshold", "1.5", "--budget", "2",
               "--max-tokens", "12", "--json", "hello")
    assert r.returncode == 0, r.stderr
    events = [json.loads(line) for line in r.stdout.splitlines()]
    assert [e["type"] for e in events] == ["token"] * 12 + ["summary"]
    summary = events[-1]
    assert summary["n_tokens"] == 12 and summary["n_takeovers"] <= 2 and summary["finish_reason"] == "length"
    taken = [e["position"] for e in events[:-1] if e["source"] == "reasoning"]
    assert taken == summary["takeover_positions"]
    for key in ("position", "token_id", "text", "source", "divergence", "base_entropy", "budget_left", "t"):
        assert key in events[0]


def test_text_output_streams_the_response_and_a_summary_line(tiny_models_toml, capsys):
    assert main(["--models", str(tiny_models_toml), "generate", "--local", "--max-tokens", "8", "--mode", "base", "hi"]) == 0
    out, err = capsys.readouterr()
    assert out.endswith("\n") and len(out) > 1
    assert "8 tokens, 0 takeovers" in err and "finish: length" in err
    assert "\x1b[" not in out  # not a terminal: no colour codes


def test_prompt_from_stdin(tiny_models_toml):
    r = tokint("generate", "--local", "--models", str(tiny_models_toml), "--max-tokens", "3", "--json", "--raw", "-", stdin="hello")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.splitlines()[-1])["prompt_tokens"]["base"] == 4  # he-l-l-o in the tiny vocab


@pytest.mark.parametrize(
    "args,message",
    [
        (["--pair", "nope"], "unknown pair 'nope'"),
        (["--pair", "tiny-mismatch"], "cannot be paired: token"),
        (["--threshold", "nan"], "--threshold: must be a number >= 0"),
        (["--threshold", "-1"], "--threshold: must be a number >= 0"),
        (["--budget", "-2"], "--budget: must be an integer >= 0"),
        (["--max-tokens", "0"], "--max-tokens: must be an integer >= 1"),
    ],
)
def test_bad_input_is_one_clear_line(tiny_models_toml, capsys, args, message):
    assert main(["--models", str(tiny_models_toml), "generate", "--local", *args, "hi"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("tokint: error: ") and message in err and err.count("\n") == 1


def test_missing_model_file_and_long_prompt(tmp_path, tiny_files, capsys):
    p = tmp_path / "m.toml"
    p.write_text(f'[pairs.gone]\nbase = {{ path = "{tmp_path}/gone.gguf" }}\nreasoning = {{ path = "{tiny_files["reasoning"]}" }}\n'
                 f'[pairs.short]\nbase = {{ path = "{tiny_files["base"]}", n_ctx = 256 }}\n'
                 f'reasoning = {{ path = "{tiny_files["reasoning"]}", n_ctx = 256 }}\n')
    assert main(["generate", "--local", "--models", str(p), "--pair", "gone", "hi"]) == 1
    assert "model file not found" in capsys.readouterr().err
    assert main(["generate", "--local", "--models", str(p), "--pair", "short", "a" * 400]) == 1
    assert "context holds 256" in capsys.readouterr().err


def test_errors_never_print_a_traceback(tiny_models_toml):
    r = tokint("generate", "--local", "--models", str(tiny_models_toml), "--pair", "tiny-mismatch", "hi")
    assert r.returncode == 1 and "Traceback" not in r.stderr and r.stderr.count("\n") == 1
    r = tokint("generate", "--threshold", "x", "hi")
    assert r.returncode == 2 and "not a number: 'x'" in r.stderr and "Traceback" not in r.stderr


@pytest.mark.parametrize("where", ["--local", "--no-autostart"])
def test_ctrl_c_stops_the_response_and_prints_its_summary(tiny_models_toml, where, request):
    import signal

    if where == "--no-autostart":
        request.getfixturevalue("daemon")  # a running tokintd on this test's address
    proc = subprocess.Popen([sys.executable, "-m", "tokint_local.cli", "--models", str(tiny_models_toml), "generate",
                             where, "--pair", "tiny-long", "--max-tokens", "7000", "--json", "hi"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            # as from a terminal: a shell's background job would hand SIGINT down ignored
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    first = proc.stdout.readline()
    assert json.loads(first)["type"] == "token"
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    last = json.loads(out.splitlines()[-1])
    assert last["type"] == "summary" and last["finish_reason"] == "cancelled" and last["n_tokens"] < 7000
    assert proc.returncode == 130 and "Traceback" not in err
