"""Finding a running tokintd, or starting one in the background (as ``ollama`` does)."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional, TextIO

from .addresses import client_address, is_local
from .client import Client
from .config import models_path, tokint_home
from .errors import ConfigError, DaemonUnavailable

START_TIMEOUT_S = 30.0


def daemon_command(address: str, models: Optional[str]) -> list[str]:
    exe = shutil.which("tokintd", path=str(Path(sys.executable).parent)) or shutil.which("tokintd")
    cmd = [exe] if exe else [sys.executable, "-m", "daemon.cli"]
    cmd += ["--bind", address]  # only what this client will use: never a port another daemon may hold
    if models:
        cmd += ["--models", str(models)]
    return cmd


def start_daemon(address: str, models: Optional[str], err: TextIO) -> None:
    """Start tokintd detached, logging to TOKINT_HOME/tokintd.log, and wait until it answers."""
    if not is_local(address):
        raise DaemonUnavailable(f"no tokintd answers at {address}, and tokint only starts daemons on this machine")
    home = tokint_home()
    home.mkdir(parents=True, exist_ok=True)
    log_path = home / "tokintd.log"
    with open(log_path, "ab") as log:
        proc = subprocess.Popen(daemon_command(address, models), stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                start_new_session=True, env=os.environ.copy())
    err.write(f"tokint: started tokintd in the background (pid {proc.pid}, log {log_path})\n")
    deadline = time.monotonic() + START_TIMEOUT_S
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            tail = log_path.read_text(errors="replace").strip().splitlines()[-1:] or ["(no output)"]
            raise DaemonUnavailable(f"tokintd exited with status {proc.returncode}: {tail[0]}")
        probe = Client(address)
        try:
            probe.hello(timeout=0.5)
            return
        except (DaemonUnavailable, ConfigError):  # ConfigError: its TCP keys are not written yet
            time.sleep(0.1)
        finally:
            probe.close()
    raise DaemonUnavailable(f"tokintd did not answer within {START_TIMEOUT_S:g} s; see {log_path}")


def connect(address: Optional[str], models: Optional[str], autostart: bool, err: TextIO) -> Client:
    """A client connected to a daemon that answers, started first if needed and allowed.

    With ``models`` given, the daemon must be serving that models file.
    """
    address = client_address(address)
    client = Client(address)
    try:
        hello = client.hello(timeout=2.0)
    except DaemonUnavailable:
        client.close()
        if not autostart:
            raise DaemonUnavailable(f"no tokintd answers at {address}; start it with `tokintd`, or drop --no-autostart") from None
        start_daemon(address, models, err)
        client = Client(address)
        hello = client.hello()
    if models is not None and Path(hello.get("models_file", "")) != models_path(models):
        client.close()
        raise ConfigError(
            f"the running tokintd uses {hello.get('models_file')}, not {models}; stop it (tokint shutdown) "
            "or run with --local"
        )
    return client
