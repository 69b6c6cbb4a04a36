"""The ``tokint-tui`` command."""
from __future__ import annotations

import argparse
import sys
from typing import Optional, Sequence


def main(argv: Optional[Sequence[str]] = None) -> int:
    p = argparse.ArgumentParser(prog="tokint-tui", description="Watch a base and a reasoning model decide, live.")
    p.add_argument("--connect", metavar="ADDR", help="tokintd address (default: $TOKINT_ADDRESS or the per-user ipc socket)")
    p.add_argument("--models", help="models.toml for a tokintd this app starts")
    p.add_argument("--no-autostart", action="store_true", help="do not start tokintd when none is running")
    args = p.parse_args(argv)
    from .app import TokintApp

    TokintApp(args.connect, args.models, autostart=not args.no_autostart).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
