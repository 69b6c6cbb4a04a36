"""tokintd under bad input, load and faults. Each test prints its figure (pytest -s shows them);
docs/RELIABILITY.md keeps the table."""
import ast
import os
import random
import shutil
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from conftest import DaemonProcess, wait_until, models_toml_text
from tokint_local.client import Client
from tokint_local.errors import DaemonError, ModelFileMissing, ModelLoadError
from tokint_local.events import Summary, TokenEvent
from tokint_local.history import list_generations

ROOT = Path(__file__).resolve().parent.parent


REQUEST_TYPES = ["hello", "status", "list_pairs", "load_pair", "unload_pair", "generate", "cancel", "shutdown",
                 "heartbeat", "dance", ""]
FIELDS = ["prompt", "pair", "mode", "threshold", "budget", "max_tokens", "temperature", "seed", "stop", "id",
          "top_p", "top_k", "raw", "divergence", "return_top", "block_size", "schedule"]

scalars = st.one_of(st.none(), st.booleans(), st.integers(-2**63, 2**64 - 1), st.floats(allow_nan=True),
                    st.text(max_size=30), st.binary(max_size=30))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=8), inner, max_size=4)),
                      max_leaves=10)
headers = st.fixed_dictionaries({}, optional={
    "id": st.one_of(st.text(max_size=140), values), "type": st.one_of(st.sampled_from(REQUEST_TYPES), values),
    "version": st.one_of(st.just(1), values), "parent": values})
# a safe generate has max_tokens 1 and the tiny model: fuzzing never waits on long generations
contents = st.one_of(values, st.dictionaries(st.sampled_from(FIELDS), values, max_size=6))
# near-valid: a correct header and plausible fields, some of the wrong type or out of range
plausible = st.one_of(st.integers(-5, 40), st.floats(-1, 5), st.text(max_size=10), st.booleans(),
                      st.sampled_from(["base", "reasoning", "intervene", "tiny", "kl", "js", "block", "lockstep"]),
                      values)
near_valid = st.tuples(st.text(min_size=1, max_size=20), st.sampled_from(REQUEST_TYPES),
                       st.dictionaries(st.sampled_from(FIELDS), plausible, max_size=6)).map(
    lambda t: [msgpack.packb({"id": t[0], "type": t[1], "version": 1}, use_bin_type=True),
               msgpack.packb(t[2], use_bin_type=True)])
frame_lists = st.one_of(
    near_valid,
    st.lists(st.binary(max_size=60), min_size=0, max_size=4),  # raw garbage
    st.tuples(headers, contents).map(lambda hc: [msgpack.packb(hc[0], use_bin_type=True),
                                                 msgpack.packb(hc[1], use_bin_type=True)]),
    st.tuples(headers, contents, st.integers(0, 40)).map(  # truncated
        lambda hc: [msgpack.packb(hc[0], use_bin_type=True)[: hc[2]], msgpack.packb(hc[1], use_bin_type=True)[: hc[2]]]),
)

REPLY_TYPES = {"error", "hello_reply", "status_reply", "list_pairs_reply", "load_pair_reply", "unload_pair_reply",
               "cancel_reply", "heartbeat_reply", "queued", "loading", "started", "token", "summary"}


def well_formed(frames):
    assert len(frames) == 2
    header, content = (msgpack.unpackb(f, raw=False) for f in frames)
    assert isinstance(header, dict) and isinstance(content, dict)
    assert header["type"] in REPLY_TYPES, header
    if header["type"] == "error":
        assert isinstance(content["code"], str) and isinstance(content["message"], str) and content["message"]
    return header


class Fuzzer:
    """Sends one message at a time and reads everything it brings back, noting any reply that is not well formed.

    A generation the fuzzer manages to start is cancelled at once, so the run never waits on long output."""

    def __init__(self, address):
        self.sock = zmq.Context.instance().socket(zmq.DEALER)
        self.sock.setsockopt(zmq.LINGER, 0)
        self.sock.connect(address)
        self.sent = self.errors = 0
        self.problems = []

    def send(self, frames):
        if frames and isinstance(frames[0], bytes) and b"shutdown" in frames[0]:
            return  # the one message that is allowed to stop the daemon
        self.sock.send_multipart(frames if frames else [b""])
        self.sent += 1
        while True:  # until the reply that ends this request (an error, a *_reply, or a summary)
            if not self.sock.poll(3000):
                self.problems.append(("unanswered", frames))
                return
            try:
                header = well_formed(self.sock.recv_multipart())
            except Exception as exc:
                self.problems.append((repr(exc), frames))
                return
            self.errors += header["type"] == "error"
            if header["type"] in ("queued", "started"):
                cancel = {"id": f"cancel-{self.sent}", "type": "cancel", "version": 1}
                self.sock.send_multipart([msgpack.packb(cancel), msgpack.packb({"id": header["parent"]})])
            elif header["type"] in ("loading", "token") or header.get("parent") == f"cancel-{self.sent}":
                continue
            else:
                return


@pytest.fixture(scope="module")
def fuzz_daemon(tmp_path_factory, tiny_files):
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="tkf", dir="/tmp"))
    models = tmp_path_factory.mktemp("fuzz") / "models.toml"
    models.write_text(models_toml_text(tiny_files) + '\n[pairs.tiny.defaults]\nmax_tokens = 1\n')
    env = {**os.environ, "TOKINT_HOME": str(tmp_path_factory.mktemp("fuzz-home"))}
    d = DaemonProcess(models, f"ipc://{folder}/d.sock", "--no-history", env=env)
    yield d
    d.stop()
    shutil.rmtree(folder, ignore_errors=True)


def test_ten_thousand_malformed_messages(fuzz_daemon):
    fuzzer = Fuzzer(fuzz_daemon.address)

    # Generation only: the daemon keeps state between messages, so hypothesis's replay and shrinking would not
    # reproduce a failure; every problem is kept with the message that caused it instead.
    @settings(max_examples=10_400, phases=[Phase.generate], deadline=None, database=None,
              suppress_health_check=list(HealthCheck))
    @given(frame_lists)  # 10,400 drawn: the shutdown messages among them are not sent
    def one(frames):
        fuzzer.send(frames)

    started = time.monotonic()
    one()
    oversized = [msgpack.packb({"id": "big", "type": "generate", "version": 1}), b"\x00" * (2 << 20)]
    for _ in range(20):
        fuzzer.send(oversized)
    print(f"fuzz: {fuzzer.sent} messages in {time.monotonic() - started:.1f} s, {fuzzer.errors} error replies, "
          f"{len(fuzzer.problems)} problems, daemon alive: {fuzz_daemon.proc.poll() is None}")
    assert not fuzzer.problems, fuzzer.problems[:5]
    assert fuzzer.sent >= 10_000
    assert fuzz_daemon.proc.poll() is None
    with Client(fuzz_daemon.address) as c:
        assert list(c.generate("a normal request afterwards", max_tokens=5))[-1].n_tokens == 5


def test_load_eight_clients_twenty_five_generations_each(daemon, tokint_home):
    results, errors = {}, []

    def client_run(n):
        try:
            with Client(daemon.address, timeout=60) as c:
                # all 25 submitted at once; read afterwards
                streams = [c.generate(f"client {n} request {i}", max_tokens=6, seed=i).submit() for i in range(25)]
                for i, s in enumerate(streams):
                    results[(n, i)] = list(s)
        except Exception as exc:  # surfaced below
            errors.append(repr(exc))

    t0 = time.monotonic()
    threads = [threading.Thread(target=client_run, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(180)
    elapsed = time.monotonic() - t0
    assert not errors, errors[:3]
    assert len(results) == 200
    for events in results.values():
        assert isinstance(events[-1], Summary) and events[-1].n_tokens == 6
        assert sum(isinstance(e, Summary) for e in events) == 1  # none duplicated
        assert [e.position for e in events if isinstance(e, TokenEvent)] == list(range(6))
    # FIFO: one client's requests reach the daemon in the order sent, so they must start in that order.
    # The daemon's history holds when each one started.
    wait_until(lambda: len(list_generations(300)) == 200 and all(r["state"] == "done" for r in list_generations(300)))
    started = {r["prompt"]: r["created"] for r in list_generations(300)}
    for n in range(8):
        times = [started[f"client {n} request {i}"] for i in range(25)]
        assert times == sorted(times), f"client {n}: its requests did not start in the order sent"
    print(f"load: 8 clients x 25 generations at once, 200/200 completed exactly once, FIFO, {elapsed:.1f} s")


def test_memory_stays_flat_over_a_thousand_generations(shared_daemon):
    with Client(shared_daemon.address) as c:
        for _ in range(100):
            list(c.generate("memory", max_tokens=4, pair="tiny"))
        after_100 = c.status().memory_rss_bytes
        for _ in range(900):
            list(c.generate("memory", max_tokens=4, pair="tiny"))
        after_1000 = c.status().memory_rss_bytes
    grew = (after_1000 - after_100) / 2**20
    print(f"memory: RSS {after_100 / 2**20:.1f} MiB after 100 generations, {after_1000 / 2**20:.1f} MiB after 1000 "
          f"({grew:+.1f} MiB)")
    assert grew < 50


def test_a_client_may_not_queue_without_limit(shared_daemon):
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(shared_daemon.address)
    try:
        for i in range(40):
            header = {"id": f"q{i}", "type": "generate", "version": 1, "parent": None}
            sock.send_multipart([msgpack.packb(header), msgpack.packb({"prompt": "x", "pair": "tiny-long", "max_tokens": 2000})])
        refused = set()
        deadline = time.monotonic() + 10
        while len(refused) < 8 and time.monotonic() < deadline:
            if sock.poll(500):
                h, c = (msgpack.unpackb(f) for f in sock.recv_multipart())
                if h["type"] == "error" and c["code"] == "too_many_requests":
                    refused.add(h["parent"])
        print(f"per-client limit: 40 generations sent at once, {40 - len(refused)} accepted, {len(refused)} refused")
        assert refused == {f"q{i}" for i in range(32, 40)}
    finally:
        for i in range(32):  # free the pair for the next tests
            sock.send_multipart([msgpack.packb({"id": f"c{i}", "type": "cancel", "version": 1}), msgpack.packb({"id": f"q{i}"})])
        time.sleep(0.5)
        sock.close()


def test_a_model_file_deleted_or_truncated_while_running(tiny_files, tmp_path, daemon_address):
    base = tmp_path / "base.gguf"
    reasoning = tmp_path / "reasoning.gguf"
    shutil.copyfile(tiny_files["base"], base)
    shutil.copyfile(tiny_files["reasoning"], reasoning)
    models = tmp_path / "m.toml"
    models.write_text(f'[pairs.p]\nbase = {{ path = "{base}" }}\nreasoning = {{ path = "{reasoning}" }}\n')
    d = DaemonProcess(models, daemon_address)
    try:
        with Client(daemon_address) as c:
            assert list(c.generate("hi", max_tokens=3))[-1].n_tokens == 3
            c.unload_pair("p")
            saved = reasoning.read_bytes()
            reasoning.unlink()
            with pytest.raises(ModelFileMissing, match="reasoning.gguf"):
                list(c.generate("hi", max_tokens=3))
            reasoning.write_bytes(saved[: len(saved) // 3])
            with pytest.raises(ModelLoadError, match="reasoning.gguf"):
                list(c.generate("hi", max_tokens=3))
            reasoning.write_bytes(saved)
            assert list(c.generate("hi", max_tokens=3))[-1].n_tokens == 3  # and back
            assert d.proc.poll() is None
        print("model file faults: deleted -> model_missing, truncated -> model_load_failed, restored -> served")
    finally:
        d.stop()


def test_nothing_is_deserialised_but_msgpack():
    forbidden = {"pickle", "marshal", "shelve", "dill", "cloudpickle", "yaml"}
    for folder in ("tokint_local", "daemon", "tui"):
        for path in (ROOT / folder).rglob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, (ast.Import, ast.ImportFrom)):
                    names = [a.name for a in node.names] if isinstance(node, ast.Import) else [node.module or ""]
                    assert not {n.split(".")[0] for n in names} & forbidden, f"{path}: {names}"
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Name):
                    assert node.func.id not in ("eval", "exec"), f"{path}:{node.lineno}"
    wire = (ROOT / "tokint_local" / "wire.py").read_text()
    assert "raw=False" in wire and "ext_hook=_refuse_ext" in wire
