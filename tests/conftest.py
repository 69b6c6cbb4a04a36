"""Shared fixtures: tiny GGUF models written on the spot, the real pair when present, and an
isolated TOKINT_HOME for every test."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

# huggingface_hub reads its settings when first imported: keep this process off the network and
# out of the person's own cache. Tests that pull run `tokint` in a subprocess with their own settings.
os.environ["HF_HUB_OFFLINE"] = "1"
os.environ["HF_HOME"] = tempfile.mkdtemp(prefix="tokint-hf-")

from gguf_factory import TinySpec, write_tiny_model, write_tiny_pair  # noqa: E402

REAL_DIR = Path(os.environ.get("TOKINT_TEST_MODELS", Path.home() / ".cache" / "tokint-test-models"))
REAL_BASE = REAL_DIR / "qwen2.5-coder-0.5b-instruct-q4_k_m.gguf"
REAL_REASONING = REAL_DIR / "qwen2.5-coder-1.5b-instruct-q4_k_m.gguf"
REAL_OTHER_VOCAB = REAL_DIR / "smollm2-135m-instruct-q4_1.gguf"
REAL_MISSING = (
    f"real models absent from {REAL_DIR}; run `python3 ../shared/models/fetch_real_models.py` "
    "(or set TOKINT_TEST_MODELS) to run the real-model tests"
)


@pytest.fixture(autouse=True)
def tokint_home(tmp_path, monkeypatch):
    """Every test gets its own TOKINT_HOME and no inherited TOKINT_MODELS."""
    home = tmp_path / "tokint-home"
    home.mkdir()
    monkeypatch.setenv("TOKINT_HOME", str(home))
    monkeypatch.delenv("TOKINT_MODELS", raising=False)
    return home


@pytest.fixture(autouse=True)
def daemon_address(monkeypatch):
    """Every test gets its own runtime folder and daemon address (short: ipc paths are limited to
    ~100 bytes); a daemon a test started there (autostart included) is stopped afterwards."""
    folder = Path(tempfile.mkdtemp(prefix="tk", dir="/tmp"))
    address = f"ipc://{folder}/tokintd.sock"
    monkeypatch.setenv("TOKINT_RUNTIME_DIR", str(folder))
    monkeypatch.setenv("TOKINT_ADDRESS", address)
    yield address
    if (folder / "tokintd.sock").exists():
        from tokint_local.client import Client
        from tokint_local.errors import TokintError

        client = Client(address, timeout=0.5)
        try:
            client.shutdown()
            time.sleep(0.3)
        except TokintError:
            pass
        finally:
            client.close()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_files(tmp_path_factory) -> dict[str, Path]:
    """Tiny GGUF files: a pair with one vocab, a padded reasoning model, and a different vocab."""
    folder = tmp_path_factory.mktemp("tiny-models")
    base, reasoning = write_tiny_pair(folder, seed=0)
    _, padded = write_tiny_pair(folder, seed=0, reasoning_pad=24)
    other = write_tiny_model(folder / "tiny-other-vocab.gguf", TinySpec(seed=7, vocab="other"))
    far = write_tiny_model(folder / "tiny-far-padded.gguf", TinySpec(seed=8, n_pad=200))
    return {"base": base, "reasoning": reasoning, "padded": padded, "other": other, "far": far}


def models_toml_text(files: dict[str, Path], n_ctx: int = 512) -> str:
    def model(p: Path) -> str:
        return f'{{ path = "{p}", n_ctx = {n_ctx}, n_threads = 1 }}'

    return f"""
default_pair = "tiny"

[pairs.tiny]
base = {model(files["base"])}
reasoning = {model(files["reasoning"])}

[pairs.tiny-padded]
base = {model(files["base"])}
reasoning = {model(files["padded"])}

[pairs.tiny-padded.defaults]
max_tokens = 7
threshold = 0.0

[pairs.tiny-mismatch]
base = {model(files["base"])}
reasoning = {model(files["other"])}

[pairs.tiny-long]
parallel = 1
base = {{ path = "{files["base"]}", n_ctx = 8192, n_threads = 1 }}
reasoning = {{ path = "{files["reasoning"]}", n_ctx = 8192, n_threads = 1 }}
"""


@pytest.fixture
def tiny_models_toml(tmp_path, tiny_files) -> Path:
    path = tmp_path / "models.toml"
    path.write_text(models_toml_text(tiny_files))
    return path


@pytest.fixture(scope="session")
def tiny_pair(tiny_files, tmp_path_factory):
    """The tiny pair loaded once for the session (generations on it run one at a time)."""
    from tokint_local.config import load_models
    from tokint_local.pair import open_pair

    path = tmp_path_factory.mktemp("tiny-config") / "models.toml"
    path.write_text(models_toml_text(tiny_files))
    pair = open_pair(load_models(path).pair("tiny"))
    yield pair
    pair.close()


@pytest.fixture(scope="session")
def real_pair():
    """The real qwen2.5-coder pair, loaded once; skipped with a reason when the files are absent."""
    if not (REAL_BASE.is_file() and REAL_REASONING.is_file()):
        pytest.skip(REAL_MISSING)
    from tokint_local.config import ModelEntry, PairEntry
    from tokint_local.pair import open_pair

    entry = PairEntry(
        "qwen2.5-coder",
        ModelEntry("base", path=REAL_BASE, n_ctx=1024, n_threads=2),
        ModelEntry("reasoning", path=REAL_REASONING, n_ctx=1024, n_threads=2),
    )
    pair = open_pair(entry)
    yield pair
    pair.close()


def wait_until(condition, timeout: float = 15.0) -> None:
    """Poll ``condition`` every 20 ms (often enough for the cancel times RELIABILITY.md quotes); fail the
    test if it is not true within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


class DaemonProcess:
    """A real tokintd in a subprocess, serving a models file at an address."""

    def __init__(self, models: Path, address: str, *extra: str, env: dict | None = None, terminal: bool = False):
        """``terminal``: in a process group of its own with SIGINT's default handling, as in a terminal
        (signal the group with ``os.killpg(proc.pid, ...)``, as Ctrl+C does)."""
        self.address = address
        self.log = Path(tempfile.mkstemp(prefix="tokintd-", suffix=".log")[1])
        cmd = [sys.executable, "-m", "daemon.cli", "--models", str(models), "--bind", address, "--log-level", "debug", *extra]
        as_in_a_terminal = (lambda: signal.signal(signal.SIGINT, signal.SIG_DFL)) if terminal else None
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen(cmd, stdout=log, stderr=log, env=env, cwd=Path(__file__).parent.parent,
                                         start_new_session=terminal, preexec_fn=as_in_a_terminal)
        self.wait_ready()

    def wait_ready(self, timeout: float = 20.0) -> None:
        from tokint_local.client import Client
        from tokint_local.errors import DaemonUnavailable

        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"tokintd exited with {self.proc.returncode}: {self.log.read_text()}")
            client = Client(self.address)
            try:
                client.hello(timeout=0.3)
                return
            except DaemonUnavailable:
                time.sleep(0.05)
            finally:
                client.close()
        raise RuntimeError(f"tokintd did not answer: {self.log.read_text()}")

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode


@pytest.fixture
def daemon(tiny_models_toml, daemon_address):
    """A tokintd of this test's own on the tiny models."""
    d = DaemonProcess(tiny_models_toml, daemon_address)
    yield d
    d.stop()


@pytest.fixture(scope="module")
def shared_daemon(tmp_path_factory, tiny_files):
    """One tokintd for a module's tests that leave it as they found it."""
    folder = Path(tempfile.mkdtemp(prefix="tks", dir="/tmp"))
    models = tmp_path_factory.mktemp("shared-daemon") / "models.toml"
    models.write_text(models_toml_text(tiny_files))
    # module-scoped: started before the per-test TOKINT_HOME, so it gets a home of its own
    home = tmp_path_factory.mktemp("shared-daemon-home")
    env = {k: v for k, v in os.environ.items() if k != "TOKINT_MODELS"}
    d = DaemonProcess(models, f"ipc://{folder}/d.sock", env={**env, "TOKINT_HOME": str(home)})
    yield d
    d.stop()
    shutil.rmtree(folder, ignore_errors=True)


def free_port() -> int:
    """A loopback TCP port nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def http_daemon(tmp_path_factory, tiny_files):
    """One tokintd for a module's tests on the tiny models, also serving the HTTP API on loopback:
    ``.http_url`` (``http://127.0.0.1:PORT``), ``.home`` (its TOKINT_HOME, for the history)."""
    folder = Path(tempfile.mkdtemp(prefix="tkh", dir="/tmp"))
    models = tmp_path_factory.mktemp("http-daemon") / "models.toml"
    models.write_text(models_toml_text(tiny_files))
    home = tmp_path_factory.mktemp("http-daemon-home")
    env = {k: v for k, v in os.environ.items() if k != "TOKINT_MODELS"}
    port = free_port()
    d = DaemonProcess(models, f"ipc://{folder}/d.sock", "--http", f"127.0.0.1:{port}", env={**env, "TOKINT_HOME": str(home)})
    d.http_url, d.home = f"http://127.0.0.1:{port}", home
    yield d
    d.stop()
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="module")
def oai(http_daemon):
    """The official ``openai`` client on ``http_daemon``'s HTTP API."""
    import openai

    with openai.OpenAI(base_url=http_daemon.http_url + "/v1", api_key="unused", max_retries=0, timeout=60) as client:
        yield client
