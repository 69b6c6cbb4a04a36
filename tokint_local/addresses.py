"""Where tokintd listens and how clients find it.

By default the daemon listens only on an ipc socket in a per-user runtime folder (mode 0700).
TCP is off unless asked for (``--bind tcp://127.0.0.1:7411``), and then every TCP connection,
loopback included, must authenticate with CURVE keys: loopback is no boundary between the users
of one machine. Clients use ``--connect ADDR``, else ``$TOKINT_ADDRESS``, else the ipc socket.
"""
from __future__ import annotations

import ipaddress
import os
import tempfile
from pathlib import Path
from typing import Optional

from .config import tokint_home
from .errors import ConfigError

DEFAULT_TCP_PORT = 7411
SOCKET_NAME = "tokintd.sock"


def runtime_dir() -> Path:
    """The per-user folder for the ipc socket: $TOKINT_RUNTIME_DIR, $XDG_RUNTIME_DIR/tokint, or /tmp/tokint-UID."""
    env = os.environ.get("TOKINT_RUNTIME_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_RUNTIME_DIR")
    if xdg:
        return Path(xdg) / "tokint"
    return Path(tempfile.gettempdir()) / f"tokint-{os.getuid()}"


def ensure_private_dir(path: Path) -> Path:
    """Create ``path`` with mode 0700, or refuse one that others could enter or that we do not own."""
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    st = path.stat()
    if st.st_uid != os.getuid():
        raise ConfigError(f"{path} belongs to another user; set TOKINT_RUNTIME_DIR to a folder of yours")
    if st.st_mode & 0o077:
        path.chmod(0o700)
    return path


def default_ipc_address() -> str:
    return f"ipc://{runtime_dir() / SOCKET_NAME}"


def default_bind_addresses() -> list[str]:
    return [default_ipc_address()]


def needs_curve(address: str) -> bool:
    """True for every address another local user could reach: TCP, loopback included."""
    return not address.startswith(("ipc://", "inproc://"))


def client_address(explicit: Optional[str] = None) -> str:
    return explicit or os.environ.get("TOKINT_ADDRESS") or default_ipc_address()


def is_local(address: str) -> bool:
    """True for ipc://, inproc:// and tcp:// on a loopback host."""
    if address.startswith(("ipc://", "inproc://")):
        return True
    if not address.startswith("tcp://"):
        return False
    host = address[len("tcp://"):].rsplit(":", 1)[0].strip("[]")
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False  # "*", an interface name or a host name: not provably loopback


def curve_dir() -> Path:
    """Where `tokintd keygen` writes CURVE keys: TOKINT_HOME/curve."""
    return tokint_home() / "curve"
