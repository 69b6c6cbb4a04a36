"""`tokint history`: the generations tokintd recorded."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any, Callable

from .events import Summary
from .history import list_generations, show_generation
from .render import TextPrinter, color_wanted, summary_line, visible_controls


def cmd_history(args: argparse.Namespace) -> int:
    shown: Callable[[str], str] = visible_controls if sys.stdout.isatty() else str  # a terminal never interprets them
    if args.id:
        gen = show_generation(args.id)
        if args.json:
            sys.stdout.write(json.dumps(gen, ensure_ascii=False) + "\n")
        else:
            sys.stdout.write(_show_text(gen, color_wanted(sys.stdout), shown) + "\n")
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
        sys.stdout.write(shown(f"{r['id'][:12]:12}  {when}  {r['pair'] or '-':16} {r['mode'] or '-':9} {r['n_tokens']:5d} tok "
                               f"{r['n_takeovers']:3d} takeovers  {state:10} {prompt[:40]}") + "\n")
    return 0


def _show_text(g: dict[str, Any], color: bool, shown: Callable[[str], str]) -> str:
    """One generation for a person: what ran, the prompt, the response with its takeovers marked.

    ``shown`` is applied to every recorded text (the colour codes are added after it).
    """
    when = datetime.datetime.fromtimestamp(g["created"]).strftime("%Y-%m-%d %H:%M:%S")
    intervene = g["mode"] == "intervene"
    pieces = []
    for t in g["tokens"]:
        text = shown(t["text"] or "")
        taken = intervene and t["source"] == "reasoning" and text
        pieces.append(f"{TextPrinter.TAKEOVER}{text}{TextPrinter.RESET}" if taken and color else text)
    ended = summary_line(Summary.from_wire(g["summary"])) if g["summary"] else f"[{len(g['tokens'])} tokens recorded]"
    head = shown(f"generation {g['id']} at {when}: pair {g['pair']}, mode {g['mode']}, state {g['state']}"
                 + (f", error {g['error']}" if g["error"] else ""))
    lines = [head, shown(ended), "", "prompt:", shown(g["prompt"] or ""), "",
             "response" + (" (takeovers highlighted):" if intervene and color else ":"), "".join(pieces)]
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    h = sub.add_parser("history", help="generations recorded by tokintd (in $TOKINT_HOME/history.sqlite)")
    h.add_argument("id", nargs="?", help="show this generation (an id or a unique prefix)")
    h.add_argument("--limit", type=int, default=20, help="list this many, newest first (default 20)")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=cmd_history)
