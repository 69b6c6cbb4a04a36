"""Who the HTTP API serves: loopback only unless --allow-remote; a non-loopback listener (or one
started with --http-require-key) serves only requests with a bearer key from the owner-only
TOKINT_HOME/http_keys file that `tokintd keygen --http` writes."""
import stat
import subprocess
import sys
from pathlib import Path

import openai
import pytest

from conftest import DaemonProcess, free_port

ROOT = Path(__file__).resolve().parent.parent
HELLO = [{"role": "user", "content": "Hello there"}]


def tokintd(*args):
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, timeout=30, cwd=ROOT)


def keygen() -> str:
    r = tokintd("keygen", "--http")
    assert r.returncode == 0, r.stderr
    return r.stdout.strip()


def curl_status(url: str, *headers: str) -> int:
    args = [a for h in headers for a in ("-H", h)]
    out = subprocess.run(["curl", "-s", "-o", "/dev/null", "-w", "%{http_code}", *args, url], capture_output=True,
                         text=True, timeout=30, check=True)
    return int(out.stdout)


def answer(port: int, key: str) -> str:
    with openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0) as client:
        return client.chat.completions.create(model="tiny", messages=HELLO, max_tokens=3).choices[0].finish_reason


def test_a_non_loopback_address_is_refused_without_allow_remote(tiny_models_toml):
    r = tokintd("--models", str(tiny_models_toml), "--http", f"0.0.0.0:{free_port()}")
    assert r.returncode == 1 and "not loopback" in r.stderr and "Traceback" not in r.stderr


def test_allow_remote_without_keys_is_refused(tiny_models_toml):
    r = tokintd("--models", str(tiny_models_toml), "--http", f"0.0.0.0:{free_port()}", "--allow-remote")
    assert r.returncode == 1 and "tokintd keygen --http" in r.stderr and "Traceback" not in r.stderr


def test_keygen_http_appends_keys_to_an_owner_only_file(tokint_home):
    first, second = keygen(), keygen()
    path = tokint_home / "http_keys"
    assert first != second and first.startswith("tk-") and len(first) > 40
    assert path.read_text().split() == [first, second]
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_keys_file_others_can_read_is_refused(tiny_models_toml, tokint_home):
    keygen()
    (tokint_home / "http_keys").chmod(0o644)
    r = tokintd("--models", str(tiny_models_toml), "--http", f"0.0.0.0:{free_port()}", "--allow-remote")
    assert r.returncode == 1 and "readable by nobody else" in r.stderr


def test_a_port_in_use_is_a_clear_error(tiny_models_toml, daemon_address):
    port = free_port()
    d = DaemonProcess(tiny_models_toml, daemon_address, "--http", f"127.0.0.1:{port}")
    try:
        other = Path(daemon_address[len("ipc://"):]).with_name("other.sock")
        r = tokintd("--models", str(tiny_models_toml), "--bind", f"ipc://{other}", "--http", f"127.0.0.1:{port}")
        assert r.returncode == 1 and f"cannot serve HTTP on http://127.0.0.1:{port}" in r.stderr
        assert "Traceback" not in r.stderr
    finally:
        d.stop()


@pytest.fixture
def remote_http(tiny_models_toml, tokint_home, daemon_address):
    key = keygen()
    port = free_port()
    d = DaemonProcess(tiny_models_toml, daemon_address, "--http", f"0.0.0.0:{port}", "--allow-remote")
    yield port, key
    d.stop()


def test_without_a_valid_key_a_remote_listener_answers_401(remote_http):
    port, key = remote_http
    url = f"http://127.0.0.1:{port}"
    for bad in ("", "Authorization: Bearer tk-wrong", f"Authorization: Basic {key}", f"Authorization: Bearer {key}x"):
        assert curl_status(url + "/v1/models", *([bad] if bad else [])) == 401, bad
    with pytest.raises(openai.AuthenticationError) as err:
        answer(port, "tk-not-a-key")
    assert err.value.status_code == 401 and err.value.code == "invalid_api_key"
    assert "tokintd keygen --http" in err.value.message
    assert answer(port, key) == "length"
    assert curl_status(url + "/v1/models", f"Authorization: Bearer {key}") == 200
    assert curl_status(url + "/health") == 200  # says only that it is up


def test_a_key_made_while_running_is_accepted_and_one_removed_is_not(remote_http, tokint_home):
    port, key = remote_http
    newer = keygen()
    assert answer(port, newer) == "length"
    (tokint_home / "http_keys").write_text(newer + "\n")
    with pytest.raises(openai.AuthenticationError):
        answer(port, key)
    (tokint_home / "http_keys").chmod(0o644)  # others could have read it: none of its keys is trusted
    with pytest.raises(openai.AuthenticationError):
        answer(port, newer)


def test_loopback_serves_without_a_key_unless_told_to_require_one(http_daemon, tiny_models_toml, daemon_address):
    port = int(http_daemon.http_url.rsplit(":", 1)[1])
    assert curl_status(http_daemon.http_url + "/v1/models") == 200
    assert answer(port, "anything") == "length"
    key = keygen()
    strict_port = free_port()
    d = DaemonProcess(tiny_models_toml, daemon_address, "--http", f"127.0.0.1:{strict_port}", "--http-require-key")
    try:
        assert curl_status(f"http://127.0.0.1:{strict_port}/v1/models") == 401
        assert answer(strict_port, key) == "length"
    finally:
        d.stop()
