"""Bytes that are not UTF-8: the command line decodes them with replacement characters and says so in
one line; the Python client refuses a string that is not text with InvalidParameter. Never a traceback."""
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tokint_local.client import Client
from tokint_local.errors import InvalidParameter
from tokint_local.events import GenerationRequest
from tokint_local.history import list_generations

ROOT = Path(__file__).resolve().parent.parent


def tokint(*args, stdin: bytes = b"", env: dict | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tokint_local.cli", *args], input=stdin, capture_output=True,
                          cwd=ROOT, timeout=60, env={**os.environ, **(env or {})})


@pytest.mark.parametrize("locale", ["C.UTF-8", "C"])
def test_a_prompt_on_stdin_that_is_not_utf8_is_decoded_with_a_note(tiny_models_toml, locale):
    done = tokint("generate", "--local", "--models", str(tiny_models_toml), "--max-tokens", "3", "--json", "-",
                  stdin=b"caf\xe9\n", env={"LC_ALL": locale, "PYTHONUTF8": "0"})
    err = done.stderr.decode()
    assert done.returncode == 0, err
    assert "Traceback" not in err
    assert err.splitlines() == ["tokint: the prompt is not valid UTF-8; the bytes that are not were replaced with U+FFFD"]
    assert json.loads(done.stdout.splitlines()[-1])["type"] == "summary"


def test_a_prompt_argument_that_is_not_utf8_is_decoded_with_a_note(tiny_models_toml):
    done = tokint("generate", "--local", "--models", str(tiny_models_toml), "--max-tokens", "3", "--stop", b"z\xff",
                  b"caf\xe9")
    err = done.stderr.decode()
    assert done.returncode == 0 and "Traceback" not in err, err
    assert "tokint: the prompt is not valid UTF-8" in err and "tokint: a --stop text is not valid UTF-8" in err


def test_the_daemon_receives_the_decoded_prompt(daemon, tiny_models_toml, tokint_home):
    done = tokint("--connect", daemon.address, "--models", str(tiny_models_toml), "generate", "--max-tokens", "2", "-",
                  stdin=b"caf\xe9 au lait")
    assert done.returncode == 0 and "Traceback" not in done.stderr.decode(), done.stderr
    deadline = time.monotonic() + 10
    while not ((tokint_home / "history.sqlite").exists() and list_generations()):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    assert list_generations()[0]["prompt"] == "caf\ufffd au lait"


@pytest.mark.parametrize("text", ["caf\udce9", "\ud800", "ok \udfff end"])
def test_the_client_refuses_a_string_that_is_not_text(text, daemon_address):
    with Client(daemon_address) as client:
        with pytest.raises(InvalidParameter, match="prompt: not valid text"):
            client.generate(text)
        with pytest.raises(InvalidParameter, match="stop: not valid text"):
            client.generate("fine", stop=[text])
        with pytest.raises(InvalidParameter, match="not valid text"):
            client.load_pair(text)  # refused before anything is sent: no daemon needed to say so
    with pytest.raises(InvalidParameter):
        GenerationRequest(prompt="fine", pair=text)
