"""tokintd outlives its llama.cpp worker: a worker killed mid-generation (SIGKILL, SIGSEGV, SIGABRT, SIGILL)
ends that generation with ``backend_crashed``, the queued one behind it runs on a fresh worker, the
history holds the cut generation as failed, and ``status`` counts the restart."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from conftest import DaemonProcess, wait_until
from tokint_local.client import Client
from tokint_local.errors import BackendCrashed
from tokint_local.events import Summary, TokenEvent
from tokint_local.history import show_generation

ROOT = Path(__file__).resolve().parent.parent




def worker_pid(client: Client) -> int:
    wait_until(lambda: client.status().worker.state == "running")
    return client.status().worker.pid


@pytest.mark.parametrize("sig", [signal.SIGKILL, signal.SIGSEGV, signal.SIGABRT, signal.SIGILL], ids=lambda s: s.name)
def test_a_worker_killed_mid_generation_fails_only_that_generation(daemon, tokint_home, sig):
    with Client(daemon.address) as c, Client(daemon.address) as other:
        pid = worker_pid(c)
        assert pid != daemon.proc.pid
        stream = c.generate("crash me", pair="tiny-long", max_tokens=7000)
        behind = other.generate("after the crash", pair="tiny-long", max_tokens=5)  # its one slot is busy
        with pytest.raises(BackendCrashed) as err:
            for event in stream:
                if isinstance(event, TokenEvent) and event.position == 2:
                    behind.submit()  # queued behind the running generation
                    wait_until(lambda: c.status().queue_length == 1)
                    os.kill(pid, sig)
        crashed = err.value
        assert f"pid {pid}" in str(crashed) and sig.name in str(crashed)
        # SIGILL restarts only to die again (a build for another CPU): the error says what to do
        assert ("README's 'Illegal instruction'" in str(crashed)) == (sig == signal.SIGILL)
        queued_events = list(behind)  # runs on the restarted worker
        assert isinstance(queued_events[-1], Summary) and queued_events[-1].n_tokens == 5
        status = c.status()
        assert daemon.proc.poll() is None
        assert status.worker.restarts == 1 and status.worker.state == "running"
        assert status.worker.pid not in (None, pid)
        assert sig.name in status.worker.last_crash
        median, p95 = status.worker.token_hop_ms  # the daemon timed each token's hop from the worker
        assert 0 <= median <= p95
    wait_until(lambda: show_generation(stream.id)["state"] == "failed")
    record = show_generation(stream.id)
    assert record["error"].startswith("backend_crashed") and sig.name in record["error"]
    assert record["tokens"]  # the tokens it streamed before the crash are kept
    print(f"worker {sig.name}: generation ended with backend_crashed, queued request served by the restarted worker")


def test_repeated_crashes_back_off_and_are_reported(daemon):
    with Client(daemon.address) as c:
        for n in range(1, 4):
            pid = worker_pid(c)
            os.kill(pid, signal.SIGKILL)
            wait_until(lambda: c.status().worker.crashes == n)
        # the third crash within a minute: the next start waits, and status says so
        backoff = c.status().worker
        assert backoff.state == "backoff" and 0 < backoff.restart_in_s <= 1.0, backoff
        assert backoff.last_crash == "was killed by SIGKILL" and backoff.pid is None
        wait_until(lambda: c.status().worker.state == "running")
        assert c.status().worker.restarts == 3
        assert list(c.generate("still here", pair="tiny", max_tokens=3))[-1].n_tokens == 3
        assert daemon.proc.poll() is None


def test_the_worker_leaves_with_the_daemon(daemon):
    with Client(daemon.address) as c:
        pid = worker_pid(c)
    daemon.proc.kill()  # the daemon dies hard: its worker sees the pipe close and exits
    daemon.proc.wait()
    wait_until(lambda: not _alive(pid), 10)


def test_the_daemon_imports_no_llama_cpp():
    code = ("import sys; import daemon.server, daemon.scheduler, daemon.supervisor, daemon.cli; "
            "print('llama_cpp' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=ROOT, check=True)
    assert out.stdout.strip() == "False"


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().split()[2] != "Z"
    except FileNotFoundError:
        return False


def test_a_worker_that_cannot_start_fails_requests_instead_of_holding_them(daemon, tiny_models_toml):
    good = tiny_models_toml.read_text()
    with Client(daemon.address) as c:
        pid = worker_pid(c)
        tiny_models_toml.write_text("this is [not toml")  # the next worker cannot read its models file
        os.kill(pid, signal.SIGKILL)
        wait_until(lambda: c.status().worker.state == "backoff")
        status = c.status().worker
        assert status.last_crash == "exited with status 1"
        with pytest.raises(BackendCrashed, match="cannot start") as err:
            list(c.generate("waiting for nothing", pair="tiny", max_tokens=3))
        assert "models.toml" in str(err.value)  # the worker's own one-line error, from its log
        tiny_models_toml.write_text(good)
        wait_until(lambda: c.status().worker.state == "running", 20)
        assert list(c.generate("back", pair="tiny", max_tokens=3))[-1].n_tokens == 3
    assert daemon.proc.poll() is None
