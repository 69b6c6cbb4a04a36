"""tokintd: a real daemon on a real socket serving tiny models to real clients."""
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import msgpack
import pytest
import zmq

from tokint_local.client import Client
from tokint_local.engine import generate
from tokint_local.errors import (
    ConfigError, DaemonError, DaemonUnavailable, IncompatiblePair, InvalidParameter, PromptTooLong, UnknownPair,
)
from tokint_local.events import GenerationRequest, Loading, Queued, Started, Summary, TokenEvent
from tokint_local.wire import HEARTBEAT_TIMEOUT_S

from conftest import wait_until


def events_of(client, prompt="hello", **kw):
    kw.setdefault("max_tokens", 20)
    return list(client.generate(prompt, **kw))


def check_stream(events, n_tokens=None):
    """A complete, ordered stream: [queued...] started token... summary."""
    kinds = [type(e) for e in events]
    assert kinds[-1] is Summary
    first_token = kinds.index(TokenEvent) if TokenEvent in kinds else len(kinds) - 1
    assert kinds[first_token - 1] is Started
    assert all(k is Queued for k in kinds[: first_token - 1] if k is not Loading)
    assert kinds.count(Loading) <= 1
    tokens = [e for e in events if isinstance(e, TokenEvent)]
    assert [t.position for t in tokens] == list(range(len(tokens)))
    assert events[-1].n_tokens == len(tokens)
    if n_tokens is not None:
        assert len(tokens) == n_tokens
    return tokens


def test_hello_status_and_pairs(shared_daemon):
    with Client(shared_daemon.address) as c:
        hello = c.hello()
        assert hello["daemon"] == "tokintd" and hello["protocol_version"] == 2 and hello["protocol_versions"] == [1, 2]
        c.unload_pair("tiny")
        first = events_of(c)
        assert first[0] == Loading("tiny")  # the pair was not loaded: the client is told
        names = {p.name for p in c.list_pairs()}
        assert {"tiny", "tiny-padded", "tiny-mismatch"} <= names
        check_stream(events_of(c), 20)
        status = c.status()
        assert "tiny" in [p.name for p in status.loaded_pairs]
        assert status.uptime_s > 0 and status.memory_rss_bytes > 0 and status.versions["llama_cpp_python"]
        assert status.queue_length == 0 and status.active == []
        tiny = next(p for p in status.loaded_pairs if p.name == "tiny")
        # this CPU build offloads nothing, whatever n_gpu_layers asks; the tiny models have 2 layers
        assert tiny.base_offload.backend == "CPU" and (tiny.base_offload.gpu_layers, tiny.base_offload.n_layers) == (0, 2)


def test_concurrent_clients_each_get_their_own_complete_stream(shared_daemon):
    results, errors = {}, []

    def run(i):
        try:
            with Client(shared_daemon.address) as c:
                results[i] = events_of(c, prompt=f"client {i} says hi", max_tokens=40, seed=i, temperature=0.7)
        except Exception as exc:  # surfaced below
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(i,)) for i in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    for i, events in results.items():
        tokens = check_stream(events)
        assert events[-1].seed == i
        # each client got its own generation: the same request alone gives the same tokens
        with Client(shared_daemon.address) as c:
            alone = check_stream(events_of(c, prompt=f"client {i} says hi", max_tokens=40, seed=i, temperature=0.7))
        assert [t.token_id for t in tokens] == [t.token_id for t in alone]
    assert sum(any(isinstance(e, Queued) for e in ev) for ev in results.values()) >= 1


def test_a_queued_request_starts_when_the_one_before_ends(shared_daemon):
    with Client(shared_daemon.address) as a, Client(shared_daemon.address) as b:
        a.load_pair("tiny-long")
        first = a.generate("hello", pair="tiny-long", max_tokens=7000)
        assert isinstance(next(first), Started)
        submitted = time.monotonic()
        second = b.generate("hello", pair="tiny-long", max_tokens=5)
        assert next(second) == Queued(place=1)
        time.sleep(0.3)
        first.cancel()
        assert list(first)[-1].finish_reason == "cancelled"
        first_ended = time.monotonic()
        rest = list(second)
        started = rest[0]
        assert isinstance(started, Started)
        assert started.waited_s >= 0.3  # it did not start while the first one ran
        assert started.waited_s <= first_ended - submitted + 0.5
        check_stream([Queued(1)] + rest, 5)


def test_cancel_stops_the_generation_and_frees_the_pair(shared_daemon):
    with Client(shared_daemon.address) as c:
        stream = c.generate("hello", pair="tiny-long", max_tokens=7000)
        got = []
        for event in stream:
            got.append(event)
            if isinstance(event, TokenEvent) and event.position == 5:
                stream.cancel()
        assert got[-1].finish_reason == "cancelled" and got[-1].n_tokens < 7000
        check_stream(events_of(c, pair="tiny-long", max_tokens=5), 5)
        with pytest.raises(DaemonError) as err:
            c.cancel(stream.id)  # it is over
        assert err.value.code == "unknown_request"


def test_a_queued_generation_can_be_cancelled_before_it_starts(shared_daemon):
    with Client(shared_daemon.address) as a, Client(shared_daemon.address) as b:
        a.load_pair("tiny-long")
        long = a.generate("hello", pair="tiny-long", max_tokens=3000)
        next(iter(long))  # started
        waiting = b.generate("hello", pair="tiny-long", max_tokens=5)
        assert isinstance(next(waiting), Queued)
        waiting.cancel()
        rest = list(waiting)
        assert rest[-1].finish_reason == "cancelled" and rest[-1].n_tokens == 0
        long.cancel()
        assert list(long)[-1].finish_reason == "cancelled"


CLIENT_SCRIPT = """
import sys, time
from tokint_local.client import Client
c = Client(sys.argv[1])
for event in c.generate("hello", pair="tiny-long", max_tokens=7000):
    if getattr(event, "position", 0) == 3:
        print("streaming", flush=True)
        time.sleep(60)
"""


def test_a_killed_client_has_its_generation_cancelled(shared_daemon):
    proc = subprocess.Popen([sys.executable, "-c", CLIENT_SCRIPT, shared_daemon.address], stdout=subprocess.PIPE,
                            text=True, cwd=Path(__file__).parent.parent)
    assert proc.stdout.readline().strip() == "streaming"
    with Client(shared_daemon.address) as c:
        assert any(p.active for p in c.status().loaded_pairs if p.name == "tiny-long")
        proc.kill()
        proc.wait()
        killed = time.monotonic()
        while any(p.active for p in c.status().loaded_pairs if p.name == "tiny-long"):
            time.sleep(0.05)
            assert time.monotonic() - killed < HEARTBEAT_TIMEOUT_S + 5
        noticed = time.monotonic() - killed
        print(f"dead client noticed and its generation cancelled after {noticed:.2f} s")
        assert noticed < HEARTBEAT_TIMEOUT_S + 1.0
        check_stream(events_of(c, pair="tiny-long", max_tokens=5), 5)


HELD_CLIENT_SCRIPT = """
import sys
from tokint_local.client import Client
with Client(sys.argv[1]) as c, c.generate("hello", pair="tiny-long", max_tokens=7000) as generation:
    for event in generation:
        if getattr(event, "position", 0) == 3:
            print("streaming", flush=True)
            sys.stdin.readline()  # heartbeats go on meanwhile; leaving the with block cancels it
            break
"""


def test_a_client_held_back_by_the_machine_keeps_its_generation(shared_daemon):
    """A client process stopped (SIGSTOP) for 2.5 s, five heartbeat intervals, is a live client on a
    loaded machine, not a dead one: its running generation goes on (it was cancelled at 1.5 s once)."""
    proc = subprocess.Popen([sys.executable, "-c", HELD_CLIENT_SCRIPT, shared_daemon.address], stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parent.parent)
    try:
        assert proc.stdout.readline().strip() == "streaming"
        with Client(shared_daemon.address) as c:
            proc.send_signal(signal.SIGSTOP)
            time.sleep(2.5)
            running = [a.id for a in c.status().active if a.pair == "tiny-long"]
            proc.send_signal(signal.SIGCONT)
            assert running  # 7,000 tokens take tens of seconds: only the watchdog could have ended it
            proc.communicate("\n", timeout=10)
            assert proc.returncode == 0
            wait_until(lambda: not any(a.pair == "tiny-long" for a in c.status().active))
    finally:
        proc.kill()
        proc.wait()


def test_sigterm_ends_generations_with_shutdown_and_exits_zero(daemon):
    with Client(daemon.address) as c:
        stream = c.generate("hello", pair="tiny-long", max_tokens=7000)
        got = []
        for event in stream:
            got.append(event)
            if isinstance(event, TokenEvent) and event.position == 3:
                daemon.proc.send_signal(signal.SIGTERM)
                sent = time.monotonic()
        assert got[-1].finish_reason == "shutdown"
    assert daemon.proc.wait(5) == 0
    print(f"daemon exited {time.monotonic() - sent:.2f} s after SIGTERM")


def test_same_stream_as_the_in_process_engine(shared_daemon, tiny_pair):
    params = dict(max_tokens=40, threshold=1.2, budget=5, temperature=0.8, top_p=0.9, seed=99, return_top=3)
    local = [e for e in generate(tiny_pair, GenerationRequest(prompt="compare me", **params)) if isinstance(e, TokenEvent)]
    with Client(shared_daemon.address) as c:
        remote = check_stream(events_of(c, prompt="compare me", **params))
    strip = lambda ts: [(t.position, t.token_id, t.text, t.source, t.divergence, t.base_entropy, t.budget_left, t.top_k)
                        for t in ts]
    assert strip(remote) == strip(local)


def test_load_unload_and_errors_by_code(shared_daemon):
    with Client(shared_daemon.address) as c:
        c.load_pair("tiny-padded")
        assert "tiny-padded" in [p.name for p in c.status().loaded_pairs]
        assert c.unload_pair("tiny-padded")["unloaded"] is True
        assert "tiny-padded" not in [p.name for p in c.status().loaded_pairs]
        with pytest.raises(UnknownPair):
            c.load_pair("nope")
        with pytest.raises(UnknownPair):
            events_of(c, pair="nope")
        with pytest.raises(PromptTooLong):
            events_of(c, prompt="a" * 2000, raw=True)
        with pytest.raises(IncompatiblePair, match="token 256 differs"):
            events_of(c, pair="tiny-mismatch")
        with pytest.raises(InvalidParameter):
            c.generate("x", threshold=-1)  # checked before sending
        check_stream(events_of(c), 20)  # still serving


def test_unload_refuses_a_busy_pair(shared_daemon):
    with Client(shared_daemon.address) as c:
        stream = c.generate("hello", pair="tiny-long", max_tokens=3000)
        next(iter(stream))
        with pytest.raises(DaemonError) as err:
            c.unload_pair("tiny-long")
        assert err.value.code == "busy"
        stream.cancel()
        list(stream)


def test_a_pair_is_free_as_soon_as_its_summary_arrives(shared_daemon):
    with Client(shared_daemon.address) as c:
        for _ in range(20):  # the summary and the worker's own bookkeeping race; the client must never see it
            assert list(c.generate("hello", pair="tiny-long", max_tokens=1))[-1].n_tokens == 1
            assert c.unload_pair("tiny-long")["unloaded"] is True


def test_a_model_shared_by_two_pairs_is_loaded_once(shared_daemon):
    with Client(shared_daemon.address) as c:
        c.load_pair("tiny")
        one = c.status().model_bytes
        c.load_pair("tiny-padded")  # same base file and settings as "tiny"
        both = c.status()
        padded = next(p for p in both.loaded_pairs if p.name == "tiny-padded")
        assert both.model_bytes < one + padded.model_bytes
        c.unload_pair("tiny-padded")
        assert c.status().model_bytes == one


def raw_request(address, frames, timeout_ms=3000):
    ctx = zmq.Context.instance()
    sock = ctx.socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.connect(address)
    try:
        sock.send_multipart(frames)
        if not sock.poll(timeout_ms):
            return None
        header, content = sock.recv_multipart()
        return msgpack.unpackb(header), msgpack.unpackb(content)
    finally:
        sock.close()


def pack(obj):
    return msgpack.packb(obj, use_bin_type=True)


def header(mtype, mid="r1", version=1):
    return pack({"id": mid, "type": mtype, "version": version, "parent": None})


@pytest.mark.parametrize(
    "frames,code,parent",
    [
        ([b"\xc1garbage"], "malformed", None),
        ([header("hello"), pack({}), b"extra"], "malformed", None),
        ([b"\xc1", pack({})], "malformed", None),
        ([pack([1, 2]), pack({})], "malformed", None),
        ([header("hello"), b"\xc1"], "malformed", "r1"),
        ([header("hello"), pack([1])], "malformed", "r1"),
        ([header("dance"), pack({})], "unknown_type", "r1"),
        ([header("hello", version=3), pack({})], "unsupported_version", "r1"),
        ([header("generate"), pack({"prompt": "hi", "threshold": "high"})], "invalid_parameter", "r1"),
        ([header("generate"), pack({"prompt": 42})], "invalid_parameter", "r1"),
        ([header("generate"), pack({"max_tokens": 5})], "invalid_parameter", "r1"),
        ([header("generate"), pack({"prompt": "hi", "pair": "nope"})], "unknown_pair", "r1"),
        ([header("generate"), pack({"prompt": "x" * (2 << 20)})], "too_large", "r1"),
        ([header("cancel"), pack({"id": "never"})], "unknown_request", "r1"),
        ([header("load_pair"), pack({"pair": 5})], "invalid_parameter", "r1"),
        ([header("generate"), b"\xd4\x01\x00"], "malformed", "r1"),  # a msgpack extension type
    ],
)
def test_bad_messages_get_error_replies_and_the_daemon_keeps_serving(shared_daemon, frames, code, parent):
    reply = raw_request(shared_daemon.address, frames)
    assert reply is not None, "no reply"
    head, content = reply
    assert head["type"] == "error" and content["code"] == code and head["parent"] == parent
    assert isinstance(content["message"], str) and content["message"]
    with Client(shared_daemon.address) as c:
        assert c.hello()["daemon"] == "tokintd"


def test_unknown_fields_are_ignored(shared_daemon):
    reply = raw_request(shared_daemon.address, [header("hello"), pack({"from_the_future": [1, 2]})])
    assert reply[0]["type"] == "hello_reply" and reply[0]["parent"] == "r1"


def test_nothing_listening_is_daemon_unavailable(tmp_path):
    with pytest.raises(DaemonUnavailable, match="no tokintd"):
        Client(f"ipc://{tmp_path}/none.sock").hello()
    with pytest.raises(ConfigError, match="CURVE keys"):  # TCP always authenticates: no keys, no try
        Client("tcp://127.0.0.1:9").hello(timeout=0.3)
    from daemon.security import keygen
    from tokint_local.addresses import curve_dir

    keygen(curve_dir())
    c = Client("tcp://127.0.0.1:9")  # nothing there
    with pytest.raises(DaemonUnavailable, match="no answer"):
        c.hello(timeout=0.3)
    c.close()


def test_socket_and_folder_are_private(daemon):
    path = Path(daemon.address[len("ipc://"):])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700


def test_a_second_daemon_on_the_same_socket_is_refused(daemon, tiny_models_toml):
    r = subprocess.run([sys.executable, "-m", "daemon.cli", "--models", str(tiny_models_toml), "--bind", daemon.address],
                       capture_output=True, text=True, timeout=30, cwd=Path(__file__).parent.parent)
    assert r.returncode == 1 and "already running" in r.stderr
    with Client(daemon.address) as c:
        assert c.hello()["pid"] == daemon.proc.pid


async def test_async_client_streams_and_cancels(shared_daemon):
    from tokint_local.client import AsyncClient

    async with AsyncClient(shared_daemon.address) as c:
        assert (await c.hello())["daemon"] == "tokintd"
        events = [e async for e in c.generate("hello", max_tokens=8)]
        check_stream(events, 8)
        stream = c.generate("hello", pair="tiny-long", max_tokens=7000)
        got = []
        async for event in stream:
            got.append(event)
            if isinstance(event, TokenEvent) and event.position == 2:
                await stream.cancel()
        assert got[-1].finish_reason == "cancelled"
        assert [p.name for p in await c.list_pairs()][:1] == ["tiny"]
        assert (await c.status()).queue_length == 0


def test_fields_not_sent_take_the_pairs_defaults(shared_daemon):
    with Client(shared_daemon.address) as c:
        events = list(c.generate("hello", pair="tiny-padded"))  # defaults: max_tokens 7, threshold 0
        assert events[-1].n_tokens == 7 and events[-1].n_takeovers == 7
        events = list(c.generate("hello", pair="tiny-padded", max_tokens=3, threshold=float("inf")))
        assert events[-1].n_tokens == 3 and events[-1].n_takeovers == 0
        listing = {p.name: p for p in c.list_pairs()}
        assert listing["tiny-padded"].defaults == {"max_tokens": 7, "threshold": 0.0}
        assert listing["tiny-padded"].compatible is True and listing["tiny-mismatch"].compatible is False
        assert "token 256 differs" in listing["tiny-mismatch"].compat_detail


def test_ctrl_c_in_tokintds_terminal_is_a_clean_shutdown(tiny_models_toml, daemon_address):
    """Ctrl+C signals the terminal's whole process group, the llama.cpp worker too: the worker leaves the
    shutdown to the daemon (generations end with `shutdown`) instead of dying of a KeyboardInterrupt."""
    from conftest import DaemonProcess

    d = DaemonProcess(tiny_models_toml, daemon_address, terminal=True)
    try:
        with Client(d.address) as c:
            got = []
            for event in c.generate("hello", pair="tiny-long", max_tokens=7000):
                got.append(event)
                if isinstance(event, TokenEvent) and event.position == 3:
                    os.killpg(d.proc.pid, signal.SIGINT)
            assert got[-1].finish_reason == "shutdown"
        assert d.proc.wait(10) == 0
        log = d.log.read_text()
        assert "KeyboardInterrupt" not in log and "Traceback" not in log, log
    finally:
        d.stop()
