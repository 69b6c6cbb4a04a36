"""The tokint command through tokintd: autostart, status, pairs, shutdown."""
import json
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def tokint(*args, timeout=60):
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=ROOT)


def test_generate_starts_a_daemon_once_and_streams_through_it(tiny_models_toml, tokint_home, daemon_address):
    first = tokint("--models", str(tiny_models_toml), "generate", "--max-tokens", "6", "--json", "hello")
    assert first.returncode == 0, first.stderr
    assert "started tokintd in the background" in first.stderr
    events = [json.loads(l) for l in first.stdout.splitlines()]
    assert [e["type"] for e in events] == ["token"] * 6 + ["summary"]
    assert (tokint_home / "tokintd.log").exists()
    again = tokint("--models", str(tiny_models_toml), "generate", "--max-tokens", "6", "--json", "hello")
    assert again.returncode == 0 and "started tokintd" not in again.stderr
    assert [json.loads(l)["token_id"] for l in again.stdout.splitlines()[:-1]] == [e["token_id"] for e in events[:-1]]

    status = tokint("status", "--json")
    assert status.returncode == 0, status.stderr
    body = json.loads(status.stdout)
    assert [p["name"] for p in body["loaded_pairs"]] == ["tiny"] and body["models_file"] == str(tiny_models_toml)

    text = tokint("status")
    assert "tokintd 0.1.0" in text.stdout and "pair tiny:" in text.stdout

    pairs = json.loads(tokint("--models", str(tiny_models_toml), "pairs", "--json").stdout)
    tiny = next(p for p in pairs if p["name"] == "tiny")
    assert tiny["default"] and tiny["loaded"] and tiny["base"]["present"]

    other = tokint("--models", str(ROOT / "models.toml"), "generate", "hi")
    assert other.returncode == 1 and "the running tokintd uses" in other.stderr

    stop = tokint("shutdown")
    assert stop.returncode == 0
    sock = Path(daemon_address[len("ipc://"):])
    deadline = time.monotonic() + 5
    while sock.exists() and time.monotonic() < deadline:
        time.sleep(0.05)
    for _ in range(2):  # a question about the daemon never starts one (the second would find it)
        gone = tokint("status")
        assert gone.returncode == 1 and "no tokintd answers" in gone.stderr and "none is running" in gone.stderr
        assert "started tokintd" not in gone.stderr


def test_no_autostart_fails_clearly(tiny_models_toml):
    r = tokint("--models", str(tiny_models_toml), "generate", "--no-autostart", "hi")
    assert r.returncode == 1 and r.stderr.startswith("tokint: error: no tokintd") and "Traceback" not in r.stderr


def test_pairs_local_lists_missing_files(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text('[pairs.gone]\nbase = { path = "/nope/b.gguf" }\nreasoning = { hf_repo = "o/r", file = "r.gguf" }\n')
    r = tokint("pairs", "--models", str(p))
    assert r.returncode == 0, r.stderr
    assert "/nope/b.gguf (missing)" in r.stdout and "o/r:r.gguf (missing)" in r.stdout
