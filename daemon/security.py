"""Who may talk to tokintd: its owner. The ipc socket is owner-only (folder 0700, socket 0600);
every TCP listener, loopback included, requires CURVE keys from TOKINT_HOME/curve (made on the
first start that binds TCP); a non-loopback address also needs --allow-remote."""
from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import zmq
import zmq.auth

from tokint_local.addresses import curve_dir, ensure_private_dir, is_local, needs_curve
from tokint_local.errors import ConfigError

SERVER_NAME = "server"
CLIENT_NAME = "client"


@dataclass(frozen=True)
class CurveKeys:
    public: bytes
    secret: bytes
    authorized_dir: Path


def split_binds(addresses: list[str], allow_remote: bool, keys_dir: Optional[Path]) -> tuple[list[str], list[str], Optional[CurveKeys]]:
    """The owner-only ipc addresses, the TCP ones, and the CURVE keys the TCP ones need.

    Keys for a loopback-only daemon are created on first use (owner-only files); a non-loopback
    address needs --allow-remote and keys made beforehand with ``tokintd keygen``. ConfigError if refused.
    """
    local = [a for a in addresses if not needs_curve(a)]
    tcp = [a for a in addresses if needs_curve(a)]
    if not tcp:
        return local, tcp, None
    remote = [a for a in tcp if not is_local(a)]
    if remote and not allow_remote:
        raise ConfigError(
            f"refusing to listen on {remote[0]}: it is not loopback. Anyone who can reach it could use your models; "
            "run `tokintd keygen`, then start with --allow-remote to require CURVE keys"
        )
    folder = keys_dir or curve_dir()
    if not remote and not (folder / f"{SERVER_NAME}.key_secret").is_file():
        keygen(folder)  # loopback TCP: the owner's clients find these keys by themselves
    return local, tcp, load_server_keys(folder)


def load_server_keys(folder: Path) -> CurveKeys:
    secret_file = folder / f"{SERVER_NAME}.key_secret"
    authorized = folder / "authorized"
    if not secret_file.is_file():
        raise ConfigError(f"a TCP listener needs CURVE keys, and {secret_file} does not exist; run `tokintd keygen`")
    if not authorized.is_dir() or not any(authorized.glob("*.key")):
        raise ConfigError(f"a TCP listener needs at least one authorized client key in {authorized}; run `tokintd keygen`")
    public, secret = zmq.auth.load_certificate(str(secret_file))
    return CurveKeys(public=public, secret=secret, authorized_dir=authorized)


def keygen(folder: Path) -> dict[str, Path]:
    """Write a server key pair and a client key pair (authorized for the server) into ``folder``.

    Every file is readable by its owner only. Existing keys are kept, not overwritten.
    """
    ensure_private_dir(folder)
    authorized = ensure_private_dir(folder / "authorized")
    written = {}
    old_umask = os.umask(0o077)
    try:
        for name in (SERVER_NAME, CLIENT_NAME):
            public_file = folder / f"{name}.key"
            if not public_file.exists():
                zmq.auth.create_certificates(str(folder), name)
            written[name] = public_file
        shutil.copyfile(folder / f"{CLIENT_NAME}.key", authorized / f"{CLIENT_NAME}.key")
    finally:
        os.umask(old_umask)
    for path in folder.rglob("*"):
        path.chmod(0o700 if path.is_dir() else 0o600)
    return written


def secure_ipc_endpoint(address: str) -> None:
    """Make the folder of an ipc socket private (0700) before binding there."""
    if address.startswith("ipc://"):
        ensure_private_dir(Path(address[len("ipc://"):]).parent)


def restrict_ipc_socket(address: str) -> None:
    """Make a bound ipc socket file readable and writable by its owner only."""
    if address.startswith("ipc://"):
        path = Path(address[len("ipc://"):])
        if path.exists():
            path.chmod(0o600)


def make_curve_server(sock: zmq.Socket, keys: CurveKeys) -> None:
    sock.curve_secretkey = keys.secret
    sock.curve_publickey = keys.public
    sock.curve_server = True
