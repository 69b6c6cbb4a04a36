"""Who may talk to tokintd: its owner. The ipc socket is owner-only (folder 0700, socket 0600);
every TCP listener, loopback included, requires CURVE keys from TOKINT_HOME/curve (made on the
first start that binds TCP); a non-loopback address also needs --allow-remote.

The HTTP API (http_api.py) listens on loopback unless --allow-remote; a non-loopback HTTP
listener requires a bearer key from TOKINT_HOME/http_keys (owner-only, ``tokintd keygen --http``).
"""
from __future__ import annotations

import hmac
import ipaddress
import os
import secrets
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

import zmq
import zmq.auth

from tokint_local.addresses import curve_dir, ensure_private_dir, is_local, needs_curve
from tokint_local.config import tokint_home
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


# -- the HTTP API ---------------------------------------------------------------------------
DEFAULT_HTTP_PORT = 7412
HTTP_KEYS_NAME = "http_keys"
HTTP_KEY_PREFIX = "tk-"


@dataclass(frozen=True)
class HttpBind:
    host: str
    port: int

    @property
    def loopback(self) -> bool:
        if self.host == "localhost":
            return True
        try:
            return ipaddress.ip_address(self.host).is_loopback
        except ValueError:
            return False  # a host name or an interface: not provably loopback

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"http://{host}:{self.port}"


def parse_http_address(text: Optional[str]) -> HttpBind:
    """``HOST:PORT``, ``PORT``, ``[V6]:PORT`` or ``http://HOST:PORT``; None: 127.0.0.1 and the default port."""
    if text is None:
        return HttpBind("127.0.0.1", DEFAULT_HTTP_PORT)
    rest = text.strip()
    if rest.startswith("http://"):
        rest = rest[len("http://"):].rstrip("/")
    if rest.isdigit():
        host, port = "127.0.0.1", rest
    elif rest.startswith("["):
        host, _, port = rest[1:].partition("]")
        port = port.lstrip(":")
    else:
        host, _, port = rest.rpartition(":")
    if not host or not port.isdigit() or not 0 <= int(port) < 65536:
        raise ConfigError(f"--http {text!r}: give HOST:PORT (for example 127.0.0.1:{DEFAULT_HTTP_PORT}) or a port")
    return HttpBind(host, int(port))


def http_keys_path() -> Path:
    return tokint_home() / HTTP_KEYS_NAME


def http_keygen(path: Optional[Path] = None) -> tuple[str, Path]:
    """Append a new bearer key to the owner-only keys file; the key and the file."""
    path = path or http_keys_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    key = HTTP_KEY_PREFIX + secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, (key + "\n").encode())
    finally:
        os.close(fd)
    return key, path


def load_http_keys(path: Optional[Path] = None) -> frozenset[str]:
    """The bearer keys in the keys file (one a line, ``#`` comments); none when it does not exist.

    ConfigError when others could read it or it is not the daemon owner's: such keys may be known.
    """
    path = path or http_keys_path()
    try:
        st = path.stat()
    except FileNotFoundError:
        return frozenset()
    if st.st_uid != os.getuid() or st.st_mode & 0o077:
        raise ConfigError(f"{path} must be the daemon owner's and readable by nobody else (chmod 600 {path})")
    lines = path.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip() for line in lines if line.strip() and not line.lstrip().startswith("#"))


def check_http_bind(bind: HttpBind, allow_remote: bool, require_key: bool = False, keys_path: Optional[Path] = None) -> bool:
    """Whether requests must bring a key: always for a non-loopback bind (allowed only with
    --allow-remote, and keys made beforehand); on loopback only with ``require_key``. ConfigError when refused."""
    if not bind.loopback and not allow_remote:
        raise ConfigError(
            f"refusing to serve HTTP on {bind.host}: it is not loopback. Anyone who can reach it could use your "
            "models; run `tokintd keygen --http`, then start with --allow-remote to require its keys")
    if bind.loopback and not require_key:
        return False
    path = keys_path or http_keys_path()
    if not load_http_keys(path):
        raise ConfigError(f"HTTP on {bind.host} requires bearer keys and {path} holds none; run `tokintd keygen --http`")
    return True


def key_matches(presented: str, keys: frozenset[str]) -> bool:
    """Constant-time comparison with every key, so timing tells nothing about how much matched."""
    found = False
    for key in keys:
        found |= hmac.compare_digest(presented.encode(), key.encode())
    return found
