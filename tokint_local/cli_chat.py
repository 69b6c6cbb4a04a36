"""`tokint chat`: an interactive conversation with a model pair through tokintd.

Line editing and input history come from prompt_toolkit (history in $TOKINT_HOME/chat_history);
responses stream with takeovers highlighted and thinking dimmed (render.TextPrinter). Ctrl+C stops
the answer being written, not the session; Ctrl+D (or /quit) leaves.
"""
from __future__ import annotations

import argparse
import signal
import sys
import threading
from typing import Any, Callable, Optional, TextIO

from .errors import InvalidParameter, TokintError
from .events import MODES
from .render import TextPrinter, color_wanted, visible_controls

HELP = """commands:
  /reset               a new conversation (the system prompt and settings stay)
  /system TEXT         set the system prompt (/system alone shows it, /system - clears it)
  /set NAME VALUE      threshold 0.5, budget 8 (or unlimited), max_tokens 256, temperature 0.7, seed 1,
                       thinking on|off; /set alone shows the settings
  /mode M              base, reasoning or intervene
  /save FILE           write the conversation (every turn) as JSON;  /load FILE  continue one
  /quit                leave (or Ctrl+D); Ctrl+C stops an answer"""

SETTINGS = {"threshold": float, "budget": int, "max_tokens": int, "temperature": float, "seed": int, "top_p": float,
            "top_k": int, "divergence": str}


def _setting(name: str, value: str) -> tuple[str, Any]:
    if name == "thinking":
        if value not in ("on", "off"):
            raise InvalidParameter("thinking: on or off")
        return "chat_template_kwargs", {"enable_thinking": value == "on"}
    if name not in SETTINGS:
        raise InvalidParameter(f"unknown setting {name!r} (known: {', '.join([*SETTINGS, 'thinking'])})")
    if name == "budget" and value.lower() in ("unlimited", "inf", "none"):
        return name, None
    try:
        return name, SETTINGS[name](value)
    except ValueError:
        raise InvalidParameter(f"{name}: not a {SETTINGS[name].__name__}: {value!r}") from None


class ChatSession:
    """The loop: read a line, run a command or send it as the next turn, print the answer."""

    def __init__(self, client: Any, conversation: Any, out: TextIO, err: TextIO, read: Callable[[], str]):
        self.client, self.conversation = client, conversation
        self.out, self.err, self.read = out, err, read
        self.printer = TextPrinter(out, err, color_wanted(out))
        self.shown = visible_controls if out.isatty() else str

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    def run(self) -> int:
        c = self.conversation
        self.say(f"tokint chat: pair {c.pair or '(default)'}, mode {c.settings.get('mode', 'intervene')}. "
                 "/help for commands, Ctrl+D to leave.")
        if c.turns:
            self.show_turns()
        while True:
            try:
                line = self.read()
            except KeyboardInterrupt:
                continue  # Ctrl+C at the prompt drops the line
            except EOFError:
                self.say("")
                return 0
            if not line.strip():
                continue
            if line.startswith("/"):
                try:
                    if self.command(line.strip()) == "quit":
                        return 0
                except TokintError as exc:
                    self.say(f"tokint: {exc}")
                continue
            self.ask(line)

    def show_turns(self) -> None:
        for turn in self.conversation.turns:
            self.say(self.shown(f"you> {turn.user}"))
            self.say(self.shown(turn.answer))

    def ask(self, text: str) -> None:
        """Send ``text`` as the next turn and print the answer as it comes. Ctrl+C cancels the answer
        (the daemon still ends it with a summary, which is read, so the cut answer is kept as a turn);
        more Ctrl+C until the summary comes are ignored; one before anything is sent drops the turn."""
        try:
            stream = self.conversation.send(self.client, text)
        except KeyboardInterrupt:  # nothing was sent yet
            self.say("")
            return
        except TokintError as exc:
            self.say(f"tokint: {exc}")
            return
        interrupted = []  # Ctrl+C seen: a KeyboardInterrupt that lands in a finalizer is swallowed, this is not

        def on_sigint(signum: int, frame: Any) -> None:
            interrupted.append(signum)
            raise KeyboardInterrupt

        previous = signal.signal(signal.SIGINT, on_sigint) if threading.current_thread() is threading.main_thread() else None
        cancelled = False
        try:
            while True:
                try:
                    for event in stream:
                        self.printer(event)
                        if interrupted and not cancelled:
                            raise KeyboardInterrupt  # one the interpreter swallowed: cancel now
                    return
                except KeyboardInterrupt:
                    if not cancelled:
                        cancelled = True
                        try:
                            stream.cancel()
                        except KeyboardInterrupt:
                            pass  # the cancel request goes on, on the client's own thread
                except TokintError as exc:
                    self.say(f"\ntokint: {exc}")
                    return
        finally:
            if previous is not None:
                signal.signal(signal.SIGINT, previous)

    def command(self, line: str) -> Optional[str]:
        name, _, rest = line.partition(" ")
        rest = rest.strip()
        c = self.conversation
        if name in ("/quit", "/exit"):
            return "quit"
        if name == "/help":
            self.say(HELP)
        elif name == "/reset":
            c.reset()
            self.say("a new conversation")
        elif name == "/system":
            if rest == "-":
                c.system = ""
                self.say("no system prompt")
            elif rest:
                c.system = rest
                self.say("system prompt set")
            else:
                self.say(self.shown(f"system prompt: {c.system}" if c.system else "no system prompt"))
        elif name == "/set":
            if not rest:
                self.say(", ".join(f"{k}={v}" for k, v in c.settings.items()) or "the pair's defaults")
                return None
            key, _, value = rest.partition(" ")
            key, parsed = _setting(key, value.strip())
            c.request("check", **{**c.settings, key: parsed})  # InvalidParameter before it is kept
            c.settings[key] = parsed
            self.say(f"{key} = {parsed}")
        elif name == "/mode":
            if rest not in MODES:
                raise InvalidParameter(f"mode: one of {', '.join(MODES)}")
            c.settings["mode"] = rest
            self.say(f"mode {rest}")
        elif name == "/save":
            if not rest:
                raise InvalidParameter("/save FILE")
            try:
                self.say(f"saved {len(c.turns)} turns to {c.save(rest)}")
            except OSError as exc:
                raise InvalidParameter(f"cannot write {rest}: {exc.strerror}") from None
        elif name == "/load":
            if not rest:
                raise InvalidParameter("/load FILE")
            from .conversation import Conversation

            loaded = Conversation.load(rest)
            loaded.pair = loaded.pair or c.pair
            loaded.settings = {**c.settings, **loaded.settings}
            self.conversation = loaded
            self.say(f"loaded {len(loaded.turns)} turns")
            self.show_turns()
        else:
            raise InvalidParameter(f"unknown command {name} (/help lists them)")
        return None


def prompt_reader(out: TextIO) -> Callable[[], str]:
    """prompt_toolkit's line editor with history in TOKINT_HOME/chat_history (plain input() off a terminal)."""
    if not (sys.stdin.isatty() and out.isatty()):
        return lambda: input()
    from prompt_toolkit import PromptSession
    from prompt_toolkit.history import FileHistory

    from .config import tokint_home

    home = tokint_home()
    home.mkdir(parents=True, exist_ok=True)
    session: PromptSession = PromptSession(history=FileHistory(str(home / "chat_history")))
    return lambda: session.prompt("you> ")


def cmd_chat(args: argparse.Namespace) -> int:
    from .autostart import connect
    from .conversation import Conversation

    settings: dict[str, Any] = {}
    for name in ("mode", "threshold", "budget", "max_tokens", "temperature", "seed"):
        if getattr(args, name, None) is not None:
            settings[name] = getattr(args, name)
    if args.no_thinking:
        settings["chat_template_kwargs"] = {"enable_thinking": False}
    if args.resume:
        from .history import conversation_from_history

        conversation = conversation_from_history(args.resume)
        conversation.pair = args.pair or conversation.pair
        conversation.settings.update(settings)
        if args.system is not None:
            conversation.system = args.system
    else:
        conversation = Conversation(system=args.system or "", pair=args.pair, settings=settings)
    conversation.request("check")  # bad settings fail before anything starts
    client = connect(args.connect, args.models, not args.no_autostart, sys.stderr)
    try:
        return ChatSession(client, conversation, sys.stdout, sys.stderr, prompt_reader(sys.stdout)).run()
    finally:
        client.close()


def add_parsers(sub: Any) -> None:
    from .cli import _budget, _integer, _number

    p = sub.add_parser("chat", help="an interactive conversation with a model pair (through tokintd)")
    p.add_argument("--pair", help="model pair from models.toml (default: the file's default_pair)")
    p.add_argument("--system", metavar="TEXT", help="the system prompt")
    p.add_argument("--resume", metavar="ID", help="continue a conversation from the history (an id or a unique prefix)")
    p.add_argument("--mode", choices=MODES)
    p.add_argument("--threshold", type=_number)
    p.add_argument("--budget", type=_budget)
    p.add_argument("--max-tokens", type=_integer)
    p.add_argument("--temperature", type=_number)
    p.add_argument("--seed", type=_integer)
    p.add_argument("--no-thinking", action="store_true", help="ask the templates to switch thinking off (enable_thinking=false)")
    p.set_defaults(func=cmd_chat)


__all__ = ["ChatSession", "cmd_chat", "add_parsers"]
