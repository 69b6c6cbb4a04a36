"""The ``tokintd`` command: parse arguments, set up logging, run the daemon.

    tokintd [--models FILE] [--bind ADDR ...] [--http [ADDR]] [--preload PAIR ...] [--parallel N] [--allow-remote]
            [--log-level LEVEL]
    tokintd keygen [--dir DIR]
    tokintd keygen --http
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import sys
from pathlib import Path
from typing import Optional, Sequence

import zmq

from tokint_local.addresses import curve_dir, default_bind_addresses, is_local
from tokint_local.config import DEFAULT_PARALLEL, MAX_PARALLEL, load_models
from tokint_local.errors import ConfigError, DaemonUnavailable, TokintError
from tokint_local.history import HistoryWriter

from .security import DEFAULT_HTTP_PORT, check_http_bind, http_keygen, http_keys_path, keygen, parse_http_address, split_binds
from .server import Daemon

log = logging.getLogger("tokintd")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="tokintd", description="tokint daemon: keeps model pairs loaded and serves generations over ZeroMQ.")
    p.add_argument("--models", help="models.toml (default: $TOKINT_MODELS or the shipped one)")
    p.add_argument("--bind", action="append", metavar="ADDR",
                   help="listen here (repeatable; default: the per-user ipc socket only). Every tcp:// address, "
                        "loopback included, requires CURVE keys (made in $TOKINT_HOME/curve on first use)")
    p.add_argument("--preload", action="append", default=[], metavar="PAIR", help="load this pair at start (repeatable)")
    p.add_argument("--http", nargs="?", const="", default=None, metavar="ADDR",
                   help=f"also serve the OpenAI-compatible HTTP API at HOST:PORT (default 127.0.0.1:{DEFAULT_HTTP_PORT}); "
                        "a non-loopback address needs --allow-remote and keys from `tokintd keygen --http`")
    p.add_argument("--http-require-key", action="store_true",
                   help="require a bearer key on a loopback HTTP address too (other local users can reach loopback)")
    p.add_argument("--parallel", type=int, default=DEFAULT_PARALLEL, metavar="N",
                   help=f"generations a pair runs at once, decoded together (default {DEFAULT_PARALLEL}; a pair's own "
                        "`parallel` in models.toml wins). Each one takes n_ctx cells of KV cache in each model")
    p.add_argument("--allow-remote", action="store_true",
                   help="allow non-loopback --bind and --http addresses, with CURVE keys / bearer keys required")
    p.add_argument("--curve-dir", type=Path, help="CURVE keys folder (default: $TOKINT_HOME/curve)")
    p.add_argument("--log-level", default="info", choices=["debug", "info", "warning", "error"])
    p.add_argument("--no-history", action="store_true", help="do not record generations in $TOKINT_HOME/history.sqlite")
    return p


def keygen_main(argv: Sequence[str]) -> int:
    p = argparse.ArgumentParser(prog="tokintd keygen", description="Write CURVE keys for TCP clients, or a bearer key for HTTP clients.")
    p.add_argument("--dir", type=Path, default=None, help="folder for the keys (default: $TOKINT_HOME/curve)")
    p.add_argument("--http", action="store_true", help="add a bearer key for the HTTP API to $TOKINT_HOME/http_keys and print it")
    args = p.parse_args(argv)
    if args.http:
        key, path = http_keygen()
        print(key)
        sys.stderr.write(f"added to {path} (owner-only); HTTP clients send it as `Authorization: Bearer KEY`\n")
        return 0
    folder = args.dir or curve_dir()
    keygen(folder)
    print(f"keys in {folder} (owner-only). Your own clients find them there; give clients on other machines\n"
          f"server.key and client.key_secret, and start the daemon with --allow-remote --bind tcp://0.0.0.0:7411")
    return 0


def already_running(addresses: list[str]) -> Optional[str]:
    """The address of a tokintd that already answers at one of ``addresses``, if any."""
    from tokint_local.client import Client

    for address in addresses:
        if not is_local(address):
            continue
        client = Client(address)
        try:
            client.hello(timeout=1.0)
            return address
        except (DaemonUnavailable, TokintError):
            continue
        finally:
            client.close()
    return None


def main(argv: Optional[Sequence[str]] = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["keygen"]:
        try:
            return keygen_main(argv[1:])
        except TokintError as exc:
            sys.stderr.write(f"tokintd: error: {exc}\n")
            return 1
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if not 1 <= args.parallel <= MAX_PARALLEL:
            raise ConfigError(f"--parallel: must be from 1 to {MAX_PARALLEL}, not {args.parallel}")
        models = load_models(args.models)
        for name in args.preload:
            models.pair(name)
        local, remote, keys = split_binds(args.bind or default_bind_addresses(), args.allow_remote, args.curve_dir)
        running = already_running(local)
        if running:
            raise ConfigError(f"a tokintd is already running at {running}; stop it first (tokint shutdown)")
        http = None
        if args.http is not None:
            from .http_api import HttpSettings

            bind = parse_http_address(args.http or None)
            http = HttpSettings(bind, check_http_bind(bind, args.allow_remote, args.http_require_key), http_keys_path())
        daemon = Daemon(models, local, remote, keys, history=None if args.no_history else HistoryWriter(),
                        models_arg=args.models, log_level=args.log_level, http=http, parallel=args.parallel)
        try:
            daemon.bind()
        except zmq.ZMQError as exc:
            raise ConfigError(f"cannot listen: {exc} (another program on that address? pass --bind)") from None
        asyncio.run(daemon.serve(args.preload))
    except TokintError as exc:
        sys.stderr.write(f"tokintd: error: {exc}\n")
        return 1
    except KeyboardInterrupt:
        return 0
    return 0


if __name__ == "__main__":
    sys.exit(main())
