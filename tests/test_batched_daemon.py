"""Several generations at once through a real tokintd: a pair's slots, the queue behind them, each
client's order, status, cancel, and a worker crash that ends every running generation."""
import os
import signal
import threading
import time

import pytest

from conftest import DaemonProcess, wait_until
from tokint_local.client import Client
from tokint_local.engine import generate
from tokint_local.errors import BackendCrashed
from tokint_local.events import GenerationRequest, Queued, Started, Summary, TokenEvent
from tokint_local.history import show_generation
from tokint_local.render import status_text


@pytest.fixture
def wide_daemon(tmp_path, tiny_files, daemon_address):
    """tokintd with pair `tiny` (4 slots, the daemon's --parallel), `wide` (3 slots, long context)
    and `narrow` (1 slot)."""
    def model(path, n_ctx):
        return f'{{ path = "{path}", n_ctx = {n_ctx}, n_threads = 1 }}'

    models = tmp_path / "models.toml"
    models.write_text(f"""
default_pair = "tiny"
[pairs.tiny]
base = {model(tiny_files["base"], 512)}
reasoning = {model(tiny_files["reasoning"], 512)}
[pairs.wide]
parallel = 3
base = {model(tiny_files["base"], 8192)}
reasoning = {model(tiny_files["reasoning"], 8192)}
[pairs.narrow]
parallel = 1
base = {model(tiny_files["base"], 8192)}
reasoning = {model(tiny_files["reasoning"], 8192)}
""")
    d = DaemonProcess(models, daemon_address, "--parallel", "4")
    yield d
    d.stop()


REQUESTS = [dict(threshold=1.0), dict(mode="base"), dict(threshold=0.5, budget=3, schedule="lockstep"),
            dict(temperature=0.8, seed=3, threshold=1.5)]


def test_a_pairs_generations_run_together_and_each_is_its_own(wide_daemon, tiny_pair):
    with Client(wide_daemon.address) as a, Client(wide_daemon.address) as b:
        a.load_pair("tiny")
        streams = [(a if i % 2 else b).generate(f"prompt {i} the cat", max_tokens=40, **kw).submit()
                   for i, kw in enumerate(REQUESTS)]
        results = [list(s) for s in streams]
    for i, (kw, events) in enumerate(zip(REQUESTS, results)):
        assert not any(isinstance(e, Queued) for e in events)  # four slots: nobody waited
        assert isinstance(events[0], Started) and isinstance(events[-1], Summary)
        solo = list(generate(tiny_pair, GenerationRequest(prompt=f"prompt {i} the cat", max_tokens=40, **kw)))
        assert [e.token_id for e in events if isinstance(e, TokenEvent)] == \
            [e.token_id for e in solo if isinstance(e, TokenEvent)]


def test_slots_in_use_a_queue_behind_them_and_cancel_of_one(wide_daemon):
    with Client(wide_daemon.address) as c:
        c.load_pair("wide")
        running = [c.generate(f"long {i}", pair="wide", max_tokens=7000).submit() for i in range(3)]
        for stream in running:
            assert isinstance(next(stream), Started)
        waiting = c.generate("after", pair="wide", max_tokens=5).submit()
        assert next(waiting) == Queued(place=1)
        status = c.status()
        wide = next(p for p in status.loaded_pairs if p.name == "wide")
        assert (wide.parallel, len(wide.running), wide.queue_length) == (3, 3, 1)
        assert {g.id for g in wide.running} == {s.id for s in running} and len(status.active) == 3
        assert wide.context_bytes > 0
        assert "3/3 slots in use, 1 queued" in status_text(status)
        seen = [next(s) for s in running]  # all three stream tokens
        assert all(isinstance(e, TokenEvent) for e in seen)
        running[0].cancel()
        assert list(running[0])[-1].finish_reason == "cancelled"
        rest = list(waiting)  # the freed slot goes to the queued request
        assert isinstance(rest[0], Started) and rest[-1].n_tokens == 5
        more = [next(s) for s in running[1:] for _ in range(20)]  # the others were not disturbed
        assert all(isinstance(e, TokenEvent) for e in more)
        for stream in running[1:]:
            stream.cancel()
            events = [e for e in stream]
            tokens = [e for e in events if isinstance(e, TokenEvent)]
            assert events[-1].finish_reason == "cancelled"
            assert [t.position for t in tokens] == list(range(21, 21 + len(tokens)))
        wait_until(lambda: not c.status().active)


def test_each_clients_requests_start_in_the_order_it_sent_them(wide_daemon):
    with Client(wide_daemon.address) as x, Client(wide_daemon.address) as y:
        x.load_pair("narrow")
        x.load_pair("tiny")
        first = x.generate("one", pair="narrow", max_tokens=7000).submit()
        assert isinstance(next(first), Started)
        second = x.generate("two", pair="narrow", max_tokens=3).submit()
        third = x.generate("three", pair="tiny", max_tokens=3).submit()  # its pair is free, but "two" waits
        other = y.generate("another client", pair="tiny", max_tokens=3).submit()
        assert next(second) == Queued(place=1)
        assert isinstance(next(third), Queued)
        assert isinstance(next(other), Started)  # another client's request is not held up
        assert list(other)[-1].n_tokens == 3
        time.sleep(0.3)
        first.cancel()
        list(first)
        started = {}
        for name, stream in (("second", second), ("third", third)):
            event = next(e for e in stream if isinstance(e, Started))
            started[name] = event.waited_s
            list(stream)
        assert started["third"] >= 0.3 and started["second"] >= 0.3


def test_a_worker_crash_ends_every_running_generation(wide_daemon, tokint_home):
    with Client(wide_daemon.address) as c:
        c.load_pair("wide")
        pid = c.status().worker.pid
        running = [c.generate(f"crash {i}", pair="wide", max_tokens=7000).submit() for i in range(3)]
        for stream in running:
            assert isinstance(next(stream), Started)
            assert isinstance(next(stream), TokenEvent)
        behind = c.generate("after the crash", pair="wide", max_tokens=5).submit()
        assert isinstance(next(behind), Queued)
        os.kill(pid, signal.SIGKILL)
        for stream in running:
            with pytest.raises(BackendCrashed, match=f"pid {pid}"):
                list(stream)
        assert list(behind)[-1].n_tokens == 5  # runs on the restarted worker
        assert c.status().worker.restarts == 1
    for stream in running:
        wait_until(lambda: show_generation(stream.id)["state"] == "failed")
        assert show_generation(stream.id)["error"].startswith("backend_crashed")


@pytest.mark.parametrize("value", ["0", "65", '"4"', "2.5", "true"])
def test_parallel_in_models_toml_is_checked(tmp_path, value):
    from tokint_local.config import load_models
    from tokint_local.errors import ConfigError

    path = tmp_path / "models.toml"
    path.write_text(f'[pairs.p]\nbase = {{ path = "/b.gguf" }}\nreasoning = {{ path = "/r.gguf" }}\nparallel = {value}\n')
    with pytest.raises(ConfigError, match=r"models.toml:4: pairs.p.parallel: must be a whole number from 1 to 64"):
        load_models(path)


def test_a_pairs_parallel_wins_over_the_daemons(tmp_path):
    from tokint_local.config import load_models

    path = tmp_path / "models.toml"
    path.write_text('[pairs.own]\nparallel = 2\nbase = { path = "/b.gguf" }\nreasoning = { path = "/r.gguf" }\n'
                    '[pairs.plain]\nbase = { path = "/b.gguf" }\nreasoning = { path = "/r.gguf" }\n')
    models = load_models(path)
    assert models.pair("own").slots(8) == 2 and models.pair("plain").slots(8) == 8


def test_tokintd_refuses_a_bad_parallel(tiny_models_toml):
    import subprocess
    import sys

    r = subprocess.run([sys.executable, "-m", "daemon.cli", "--models", str(tiny_models_toml), "--parallel", "0"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 1 and "--parallel: must be from 1 to 64" in r.stderr
