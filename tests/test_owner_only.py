"""Only its owner reaches tokintd: TCP, loopback included, requires CURVE keys that the owner's
clients find by themselves; the ipc socket is owner-only; another Unix account gets nothing;
an autostarted daemon binds only the address its client uses."""
import json
import os
import pwd
import shutil
import socket
import stat
import subprocess
import sys
import textwrap
import time
import uuid
from pathlib import Path

import pytest

from conftest import DaemonProcess
from test_remote_security import free_port, no_reply_without_curve
from tokint_local.client import Client

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def tcp_daemon(tiny_models_toml, tokint_home, daemon_address):
    port = free_port()
    tcp = f"tcp://127.0.0.1:{port}"
    d = DaemonProcess(tiny_models_toml, daemon_address, "--bind", tcp)  # no --allow-remote: loopback only
    yield d, tcp
    d.stop()


def test_loopback_tcp_needs_keys_that_the_owners_clients_find(tcp_daemon, tokint_home):
    d, tcp = tcp_daemon
    keys = tokint_home / "curve"
    assert (keys / "server.key_secret").is_file()  # made on the first start that binds TCP
    assert stat.S_IMODE(keys.stat().st_mode) == 0o700
    assert all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in keys.rglob("*") if p.is_file())
    with Client(tcp) as c:  # no curve_dir given: the owner's keys are found in TOKINT_HOME/curve
        assert list(c.generate("hi", max_tokens=3))[-1].n_tokens == 3
    assert no_reply_without_curve(tcp)
    with Client(d.address) as c:
        assert c.status().addresses == [d.address, tcp]


def test_the_default_daemon_binds_no_tcp(daemon):
    with Client(daemon.address) as c:
        assert all(a.startswith("ipc://") for a in c.status().addresses)


STRANGER = textwrap.dedent('''
    import json, os, sys, zmq, zmq.auth, msgpack
    from pathlib import Path
    from tokint_local.client import Client
    from tokint_local.errors import TokintError
    ipc, tcp, owner_keys, own, uid, gid = sys.argv[1:7]
    # The interpreter lives under /root (0700): import as root, then become the other account for
    # everything the kernel checks (socket connects, file opens).
    os.setgroups([])
    os.setgid(int(gid))
    os.setuid(int(uid))
    assert os.geteuid() == int(uid)
    out = {}

    def attempt(name, fn):
        try:
            out[name] = "SUCCEEDED: " + repr(fn())[:200]
        except (TokintError, OSError) as exc:
            out[name] = f"refused: {type(exc).__name__}"

    for label, address in (("ipc", ipc), ("tcp", tcp)):
        for op in ("hello", "status", "shutdown"):
            attempt(f"{label} {op}", lambda: getattr(Client(address, curve_dir=Path(own), timeout=1.0), op)())
        attempt(f"{label} generate", lambda: list(Client(address, curve_dir=Path(own), timeout=1.0).generate("x", max_tokens=2)))
    attempt("read the owner's server secret", lambda: Path(owner_keys, "server.key_secret").read_bytes())
    attempt("read the owner's client secret", lambda: Path(owner_keys, "client.key_secret").read_bytes())
    sock = zmq.Context.instance().socket(zmq.DEALER)
    sock.setsockopt(zmq.LINGER, 0)
    sock.setsockopt(zmq.SNDTIMEO, 1000)  # dropped at the handshake, a plain socket may have no peer to send to
    sock.connect(tcp)
    try:
        sock.send_multipart([msgpack.packb({"id": "s", "type": "status", "version": 1}), msgpack.packb({})])
        out["tcp plain zmq status"] = "SUCCEEDED" if sock.poll(1000) else "refused: no reply"
    except zmq.Again:
        out["tcp plain zmq status"] = "refused: no peer took the request"
    print(json.dumps(out))
''')


@pytest.fixture
def stranger(tmp_path):
    """A throwaway Unix account (root only), removed afterwards."""
    if os.geteuid() != 0:
        pytest.skip("needs root to create a second Unix account")
    if shutil.which("useradd") is None:
        pytest.skip("useradd is not installed")
    name = f"tk{uuid.uuid4().hex[:8]}"
    subprocess.run(["useradd", "--no-create-home", "--shell", "/usr/sbin/nologin", name], check=True)
    try:
        entry = pwd.getpwnam(name)
        home = Path(f"/tmp/{name}-home")
        home.mkdir()
        os.chown(home, entry.pw_uid, entry.pw_gid)
        own = home / "keys"  # the stranger's own key pair, and the server's public key (which is public)
        yield entry, home, own
    finally:
        subprocess.run(["userdel", name], check=False)
        shutil.rmtree(f"/tmp/{name}-home", ignore_errors=True)


def test_another_user_gets_nothing(tcp_daemon, tokint_home, stranger):
    d, tcp = tcp_daemon
    entry, home, own = stranger
    import zmq.auth

    own.mkdir()
    zmq.auth.create_certificates(str(own), "client")
    shutil.copyfile(tokint_home / "curve" / "server.key", own / "server.key")
    for p in [own, *own.iterdir()]:
        os.chown(p, entry.pw_uid, entry.pw_gid)
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "TOKINT_HOME": str(home / "tokint"),
           "PYTHONPATH": str(ROOT)}
    r = subprocess.run([sys.executable, "-c", STRANGER, d.address, tcp, str(tokint_home / "curve"), str(own),
                        str(entry.pw_uid), str(entry.pw_gid)], env=env, cwd=str(home), capture_output=True, text=True,
                       timeout=120)
    assert r.returncode == 0, r.stderr
    outcomes = json.loads(r.stdout)
    print("another user:", json.dumps(outcomes, indent=1))
    assert len(outcomes) == 11 and all(v.startswith("refused") for v in outcomes.values()), outcomes
    with Client(d.address) as c:  # the owner is still served
        assert list(c.generate("still mine", max_tokens=3))[-1].n_tokens == 3
        assert c.status().pid == d.proc.pid
    assert d.proc.poll() is None


def test_autostart_binds_only_what_its_client_uses(tiny_models_toml, tokint_home, daemon_address):
    # another daemon (of this user or another, or any program) already holds the default TCP port
    held = socket.socket()
    held.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        held.bind(("127.0.0.1", 7411))
        held.listen()
    except OSError:
        held.close()
        held = None  # taken already: even better, it is held by someone else
    try:
        r = subprocess.run([sys.executable, "-m", "tokint_local.cli", "--models", str(tiny_models_toml), "generate",
                            "--max-tokens", "3", "--json", "hi"], capture_output=True, text=True, timeout=60, cwd=ROOT)
        assert r.returncode == 0, r.stderr
        assert "started tokintd in the background" in r.stderr
        with Client(daemon_address) as c:
            assert c.status().addresses == [daemon_address]
    finally:
        if held is not None:
            held.close()
