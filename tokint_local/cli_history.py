"""`tokint history`: the generations tokintd recorded."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any

from .history import list_generations, show_generation


def cmd_history(args: argparse.Namespace) -> int:
    if args.id:
        gen = show_generation(args.id)
        if args.json:
            sys.stdout.write(json.dumps(gen, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(_show_text(gen) + "\n")
        return 0
    rows = list_generations(args.limit)
    if args.json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        sys.stdout.write("no generations recorded yet\n")
    for r in rows:
        when = datetime.datetime.fromtimestamp(r["created"]).strftime("%Y-%m-%d %H:%M:%S")
        prompt = " ".join((r["prompt"] or "").split())
        state = r["finish_reason"] or r["state"]
        sys.stdout.write(f"{r['id'][:12]}  {when}  {r['pair'] or '-':16} {r['mode'] or '-':9} {r['n_tokens']:5d} tok "
                         f"{r['n_takeovers']:3d} takeovers  {state:10} {prompt[:40]}\n")
    return 0


def _show_text(g: dict[str, Any]) -> str:
    when = datetime.datetime.fromtimestamp(g["created"]).strftime("%Y-%m-%d %H:%M:%S")
    text = "".join(t["text"] or "" for t in g["tokens"])
    taken = [t["position"] for t in g["tokens"] if t["source"] == "reasoning" and g["mode"] == "intervene"]
    lines = [f"generation {g['id']} at {when}: pair {g['pair']}, mode {g['mode']}, state {g['state']}"
             + (f", finish {g['finish_reason']}" if g["finish_reason"] else "") + (f", error {g['error']}" if g["error"] else ""),
             f"{len(g['tokens'])} tokens, takeovers at {taken}", "", "prompt:", g["prompt"] or "", "", "response:", text]
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    h = sub.add_parser("history", help="generations recorded by tokintd (in $TOKINT_HOME/history.sqlite)")
    h.add_argument("id", nargs="?", help="show this generation (an id or a unique prefix)")
    h.add_argument("--limit", type=int, default=20, help="list this many, newest first (default 20)")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=cmd_history)
