"""Anything wider than loopback needs --allow-remote and CURVE keys; a client without the key gets nothing."""
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DaemonProcess
from tokint_local.client import Client
from tokint_local.errors import DaemonUnavailable

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tokintd(*args):
    return subprocess.run([sys.executable, "-m", "daemon.cli", *args], capture_output=True, text=True, timeout=30, cwd=ROOT)


def test_non_loopback_bind_is_refused_without_allow_remote(tiny_models_toml):
    r = tokintd("--models", str(tiny_models_toml), "--bind", f"tcp://0.0.0.0:{free_port()}")
    assert r.returncode == 1 and "not loopback" in r.stderr and "Traceback" not in r.stderr


def test_allow_remote_without_keys_is_refused(tiny_models_toml):
    r = tokintd("--models", str(tiny_models_toml), "--bind", f"tcp://0.0.0.0:{free_port()}", "--allow-remote")
    assert r.returncode == 1 and "tokintd keygen" in r.stderr


def test_keygen_writes_owner_only_files(tokint_home):
    r = tokintd("keygen")
    assert r.returncode == 0, r.stderr
    folder = tokint_home / "curve"
    files = [p for p in folder.rglob("*") if p.is_file()]
    assert {p.name for p in files} >= {"server.key", "server.key_secret", "client.key", "client.key_secret"}
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in files)
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700


@pytest.fixture
def remote_daemon(tiny_models_toml, tokint_home, daemon_address):
    assert tokintd("keygen").returncode == 0
    port = free_port()
    d = DaemonProcess(tiny_models_toml, daemon_address, "--bind", f"tcp://0.0.0.0:{port}", "--allow-remote")
    yield d, port, tokint_home / "curve"
    d.stop()


def test_with_curve_keys_a_client_is_served_and_one_without_is_not(remote_daemon, tmp_path):
    d, port, keys = remote_daemon
    address = f"tcp://127.0.0.1:{port}"
    with Client(address, curve_dir=keys) as c:
        events = list(c.generate("hi", max_tokens=4))
        assert events[-1].n_tokens == 4
    assert no_reply_without_curve(address)  # a plain ZeroMQ peer: the handshake never completes
    stranger = tmp_path / "stranger"
    stranger.mkdir()
    import zmq.auth

    zmq.auth.create_certificates(str(stranger), "client")
    (stranger / "server.key").write_bytes((keys / "server.key").read_bytes())
    with pytest.raises(DaemonUnavailable):
        Client(address, curve_dir=stranger).hello(timeout=1.0)
    with Client(d.address) as local:  # the local socket still needs no keys
        assert local.hello()["daemon"] == "tokintd"


def no_reply_without_curve(address: str, wait_ms: int = 1000) -> bool:
    """A DEALER without CURVE sends hello and status: True if nothing at all comes back. A send that
    finds no peer to take it (the daemon dropped the connection at its handshake, and the socket has
    not reconnected yet) waits at most ``wait_ms`` and counts as no reply: it used to block for ever
    (a CI run hung here for the test's 300 s)."""
    import msgpack
    import zmq

    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, wait_ms)
    sock.connect(address)
    try:
        for mtype in ("hello", "status", "shutdown"):
            try:
                sock.send_multipart([msgpack.packb({"id": mtype, "type": mtype, "version": 1}), msgpack.packb({})])
            except zmq.Again:  # no peer took it: nothing can come back
                return sock.poll(0) == 0
        return sock.poll(wait_ms) == 0
    finally:
        sock.close()


def test_a_remote_address_without_keys_is_a_clear_error(tmp_path):
    from tokint_local.errors import ConfigError

    with pytest.raises(ConfigError, match="CURVE keys"):
        Client("tcp://192.0.2.1:7411", curve_dir=tmp_path).hello(timeout=0.2)
