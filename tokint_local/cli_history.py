"""`tokint history`: the generations and conversations tokintd recorded."""
from __future__ import annotations

import argparse
import datetime
import json
import sys
from typing import Any, Callable

from .events import Summary
from .history import HistoryError, find_conversation, list_conversations, list_generations, show_conversation, show_generation
from .render import TextPrinter, color_wanted, summary_line, visible_controls


def cmd_history(args: argparse.Namespace) -> int:
    shown: Callable[[str], str] = visible_controls if sys.stdout.isatty() else str  # a terminal never interprets them
    if args.id:
        conversation = find_conversation(args.id)
        try:
            gen = show_generation(args.id)
        except HistoryError:
            if conversation is None:
                raise
            gen = None
        if gen is not None and conversation is not None:
            raise HistoryError(f"{args.id!r} begins the id of a conversation and of a generation; give more of it")
        if gen is not None:
            body, text = gen, _show_text(gen, color_wanted(sys.stdout), shown)
        else:
            body = show_conversation(conversation)
            text = _conversation_text(body, color_wanted(sys.stdout), shown)
        sys.stdout.write((json.dumps(body, ensure_ascii=False) if args.json else text) + "\n")
        return 0
    if args.conversations:
        return _list_conversations(args, shown)
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
        chat = f"{r['conversation'][:8]}#{r['turn']}" if r["conversation"] else "-"
        sys.stdout.write(shown(f"{r['id'][:12]:12}  {when}  {r['pair'] or '-':16} {r['mode'] or '-':9} {r['n_tokens']:5d} tok "
                               f"{r['n_takeovers']:3d} takeovers  {state:10} {chat:11} {prompt[:40]}") + "\n")
    return 0


def _list_conversations(args: argparse.Namespace, shown: Callable[[str], str]) -> int:
    rows = list_conversations(args.limit)
    if args.json:
        sys.stdout.write(json.dumps(rows, ensure_ascii=False) + "\n")
        return 0
    if not rows:
        sys.stdout.write("no conversations recorded yet\n")
    for r in rows:
        when = datetime.datetime.fromtimestamp(r["updated"]).strftime("%Y-%m-%d %H:%M:%S")
        first = " ".join((r["first"] or "").split())
        sys.stdout.write(shown(f"{r['id'][:12]:12}  {when}  {r['pair'] or '-':16} {r['turns'] or 0:3d} turns  {first[:50]}") + "\n")
    return 0


def _conversation_text(c: dict[str, Any], color: bool, shown: Callable[[str], str]) -> str:
    """A conversation for a person: its system prompt, then each turn (the latest answer of each)."""
    turns = c["turns"]
    messages = (turns[-1]["request"] or {}).get("messages") or []
    lines = [shown(f"conversation {c['id']}: pair {c['pair']}, {len(turns)} turns "
                   f"({len(c['generations'])} generations recorded); continue it with `tokint chat --resume {c['id'][:12]}`")]
    if messages and messages[0].get("role") == "system":
        lines += ["", "system:", shown(messages[0].get("content", ""))]
    for g in turns:
        ended = summary_line(Summary.from_wire(g["summary"])) if g["summary"] else f"[{len(g['tokens'])} tokens recorded, {g['state']}]"
        lines += ["", shown(f"turn {g['turn']} ({g['id'][:12]}, {g['mode']}):"), "you> " + shown(g["prompt"] or ""),
                  _response_text(g, color, shown), shown(ended)]
    return "\n".join(lines)


def _response_text(g: dict[str, Any], color: bool, shown: Callable[[str], str]) -> str:
    """A recorded response, takeovers highlighted and thinking dimmed when ``color``."""
    intervene = g["mode"] == "intervene"
    pieces = []
    for t in g["tokens"]:
        text = shown(t["text"] or "")
        if not (color and text):
            pieces.append(text)
            continue
        taken = intervene and t["source"] == "reasoning"
        if t.get("channel") == "thinking":
            pieces.append(f"{TextPrinter.THINKING_TAKEOVER if taken else TextPrinter.THINKING}{text}{TextPrinter.RESET}")
        else:
            pieces.append(f"{TextPrinter.TAKEOVER}{text}{TextPrinter.RESET}" if taken else text)
    return "".join(pieces)


def _show_text(g: dict[str, Any], color: bool, shown: Callable[[str], str]) -> str:
    """One generation for a person: what ran, the prompt, the response with its takeovers marked.

    ``shown`` is applied to every recorded text (the colour codes are added after it).
    """
    when = datetime.datetime.fromtimestamp(g["created"]).strftime("%Y-%m-%d %H:%M:%S")
    intervene = g["mode"] == "intervene"
    ended = summary_line(Summary.from_wire(g["summary"])) if g["summary"] else f"[{len(g['tokens'])} tokens recorded]"
    request = g.get("request") or {}
    rule = ""
    if intervene:  # the takeover rule, as asked (what a field left out came to is in the pair's defaults)
        rule = "".join(f", {k} {'unlimited' if k == 'budget' and request[k] is None else request[k]}"
                       for k in ("gate", "threshold", "budget", "divergence") if k in request)
    head = shown(f"generation {g['id']} at {when}: pair {g['pair']}, mode {g['mode']}{rule}, state {g['state']}"
                 + (f", error {g['error']}" if g["error"] else ""))
    lines = [head, shown(ended), "", "prompt:", shown(g["prompt"] or ""), "",
             "response" + (" (takeovers highlighted):" if intervene and color else ":"), _response_text(g, color, shown)]
    return "\n".join(lines)


def add_parsers(sub: Any) -> None:
    h = sub.add_parser("history", help="generations recorded by tokintd (in $TOKINT_HOME/history.sqlite)")
    h.add_argument("id", nargs="?", help="show this generation, or every turn of this conversation (an id or a unique prefix)")
    h.add_argument("--conversations", action="store_true", help="list conversations instead of generations")
    h.add_argument("--limit", type=int, default=20, help="list this many, newest first (default 20)")
    h.add_argument("--json", action="store_true", help="print JSON")
    h.set_defaults(func=cmd_history)
