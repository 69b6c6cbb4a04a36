"""The ``tokint`` command: a thin layer that parses arguments and calls the library.

Library errors (TokintError) become one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import io
import json
import signal
import sys
from typing import Any, Callable, Optional, Sequence, TextIO

from .divergence import DIVERGENCES
from .errors import InvalidParameter, TokintError
from .addresses import is_local
from .gate import GATES
from .events import DEFAULT_MAX_TOKENS, DEFAULT_THRESHOLD, MODES, SCHEDULES
from .request import FLAG_FIELDS, from_flags
from .render import TextPrinter, color_wanted, json_printer, print_json, status_text

EXIT_ERROR = 1
EXIT_INTERRUPTED = 130


def _number(text: str) -> float:
    try:
        return float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None


def _integer(text: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not an integer: {text!r}") from None


def _budget(text: str) -> Optional[int]:
    if text.lower() in ("unlimited", "inf", "none"):
        return None
    return _integer(text)


GIVEN = argparse.SUPPRESS  # a flag not given leaves the pair's default (then the global one) in place


def _template_var(text: str) -> tuple[str, Any]:
    name, sep, value = text.partition("=")
    if not sep or not name:
        raise argparse.ArgumentTypeError(f"not NAME=VALUE: {text!r}")
    try:
        return name.strip(), json.loads(value)
    except ValueError:
        return name.strip(), value


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that make a GenerationRequest; shared by every command that generates.

    Flags that are not given fall back to the pair's [pairs.NAME.defaults], then to tokint's.
    """
    p.add_argument("prompt", nargs="?", help="the prompt; '-' reads it from standard input (after --messages: the next user message)")
    p.add_argument("--system", metavar="TEXT", default=GIVEN, help="a system prompt before the conversation")
    p.add_argument("--messages", metavar="FILE.json", default=GIVEN,
                   help="a conversation: a JSON list of {role, content} messages (or a file `tokint chat` saved); "
                        "it ends with the user's message unless PROMPT is given")
    p.add_argument("--template-var", metavar="NAME=VALUE", action="append", default=GIVEN, type=_template_var,
                   help="a variable for the models' chat templates, e.g. enable_thinking=false (VALUE is JSON, else text; repeatable)")
    p.add_argument("--models", default=argparse.SUPPRESS, help="models.toml to use (default: $TOKINT_MODELS or the shipped one)")
    p.add_argument("--pair", help="model pair from models.toml (default: the file's default_pair)")
    p.add_argument("--mode", choices=MODES, default=GIVEN, help="who writes the response (default: intervene)")
    p.add_argument("--divergence", choices=DIVERGENCES, default=GIVEN, help="divergence the gate compares (default: kl)")
    p.add_argument("--gate", choices=GATES, default=GIVEN,
                   help="the takeover rule: divergence (default); the controls entropy (base entropy >= threshold), "
                        "top1 (base top-1 probability < threshold), random (probability = threshold)")
    p.add_argument("--threshold", type=_number, default=GIVEN,
                   help=f"takeover where divergence >= this, in nats for kl/js (default: {DEFAULT_THRESHOLD}; inf: never); "
                        "see --gate for the controls")
    p.add_argument("--budget", type=_budget, default=GIVEN, help="at most this many takeovers (default: unlimited)")
    p.add_argument("--max-position", type=_integer, default=GIVEN, help="takeovers only in the first N positions")
    p.add_argument("--min-base-entropy", type=_number, default=GIVEN,
                   help="takeovers only where the base model's entropy (nats) is at least this")
    p.add_argument("--max-tokens", type=_integer, default=GIVEN, help=f"response length limit (default: {DEFAULT_MAX_TOKENS})")
    p.add_argument("--temperature", type=_number, default=GIVEN, help="0 is greedy (default: 0)")
    p.add_argument("--top-k", type=_integer, default=GIVEN, help="sample among the k likeliest tokens (0: off)")
    p.add_argument("--top-p", type=_number, default=GIVEN, help="nucleus sampling mass (1: off)")
    p.add_argument("--seed", type=_integer, default=GIVEN, help="seed for reproducible sampling (default: random, reported)")
    p.add_argument("--stop", action="append", default=GIVEN, help="stop when the response contains this text (repeatable)")
    p.add_argument("--raw", action="store_true", default=GIVEN, help="send the prompt as plain text, without the chat template")
    p.add_argument("--schedule", choices=SCHEDULES, default=GIVEN,
                   help="block: the base model drafts, the reasoning model scores a block at once (default); "
                        "lockstep: both models one token at a time (the reference)")
    p.add_argument("--block-size", type=_integer, default=GIVEN, metavar="K",
                   help="block schedule: draft K tokens at a time (default: adaptive)")
    p.add_argument("--return-top", type=_integer, default=GIVEN, metavar="N",
                   help="with --json: each token event lists both models' N likeliest tokens (top_k)")
    p.add_argument("--json", action="store_true", help="print one JSON object per event instead of text")


REQUEST_FLAGS = FLAG_FIELDS


def as_text(given: str | bytes, what: str, err: TextIO) -> str:
    """``given`` (bytes from stdin, or an argument, whose undecodable bytes Python keeps as lone
    surrogates) as text: bytes that are not UTF-8 become U+FFFD, and ``err`` is told so."""
    if isinstance(given, str):
        try:
            given.encode("utf-8")
            return given
        except UnicodeEncodeError:
            try:
                given = given.encode("utf-8", "surrogateescape")  # the bytes Python could not decode, back
            except UnicodeEncodeError:
                given = given.encode("utf-8", "surrogatepass")  # lone surrogates of another origin: U+FFFD below
    try:
        return given.decode("utf-8")
    except UnicodeDecodeError:
        err.write(f"tokint: {what} is not valid UTF-8; the bytes that are not were replaced with U+FFFD\n")
        return given.decode("utf-8", "replace")


def request_fields(args: argparse.Namespace, stdin: TextIO, err: Optional[TextIO] = None) -> dict[str, Any]:
    """The request fields the person gave (prompt and pair included), checked as a request."""
    err = err or sys.stderr
    if args.prompt == "-":
        prompt = as_text(stdin.buffer.read() if hasattr(stdin, "buffer") else stdin.read(), "the prompt", err)
    elif args.prompt is not None:
        prompt = as_text(args.prompt, "the prompt", err)
    else:
        prompt = None
    fields: dict[str, Any] = {"prompt": prompt, "pair": args.pair}
    if hasattr(args, "messages") or hasattr(args, "system"):
        fields.pop("prompt")
        fields["messages"] = conversation_messages(args, prompt, err)
    elif prompt is None:
        raise InvalidParameter("give a PROMPT (or --messages FILE.json)")
    if hasattr(args, "template_var"):
        fields["chat_template_kwargs"] = dict(args.template_var)
    fields.update({name: getattr(args, name) for name in REQUEST_FLAGS if hasattr(args, name)})
    if "stop" in fields:
        fields["stop"] = tuple(as_text(s, "a --stop text", err) for s in fields["stop"])
    from_flags(fields, {})  # bad values (a control gate without its threshold too) fail here, before any model loads
    return fields


def conversation_messages(args: argparse.Namespace, prompt: Optional[str], err: TextIO) -> list[dict[str, str]]:
    """The messages of --messages FILE (and --system, and the PROMPT as the next user message)."""
    from .conversation import Conversation

    messages: list[dict[str, str]] = []
    if hasattr(args, "messages"):
        try:
            body = json.loads(open(args.messages, "rb").read().decode("utf-8", "replace"))
        except OSError as exc:
            raise InvalidParameter(f"--messages: cannot read {args.messages}: {exc.strerror}") from None
        except ValueError as exc:
            raise InvalidParameter(f"--messages: {args.messages} is not JSON: {exc}") from None
        if isinstance(body, dict) and "messages" in body:
            body = body["messages"]
        if not isinstance(body, list):
            raise InvalidParameter(f"--messages: {args.messages} must hold a list of {{role, content}} messages")
        if body and isinstance(body[-1], dict) and body[-1].get("role") == "user" and prompt is None:
            last, body = body[-1], body[:-1]  # checked below as a conversation, then asked
            prompt = last.get("content")
        messages = [m.to_wire() for m in Conversation.from_messages(body).messages()]
    if hasattr(args, "system"):
        messages = [m for m in messages if m["role"] != "system"]
        messages.insert(0, {"role": "system", "content": as_text(args.system, "--system", err)})
    if prompt is None:
        raise InvalidParameter("the conversation ends without a user message to answer; give a PROMPT")
    return messages + [{"role": "user", "content": prompt}]


def run_local_generation(args: argparse.Namespace, fields: dict[str, Any], emit: Callable[[Any], None], err: TextIO) -> int:
    from .cli_pairs import ensure_pair_files
    from .config import load_models
    from .engine import Cancel, generate
    from .pair import open_pair

    entry = load_models(args.models).pair(fields["pair"])
    req = from_flags(fields, entry.defaults)
    ensure_pair_files(entry, err)
    if err.isatty():
        err.write(f"loading pair {entry.name} ({entry.base.describe()} + {entry.reasoning.describe()}) ...\n")
    pair = open_pair(entry)
    cancel = Cancel()

    def on_interrupt(signum: int, frame: Any) -> None:
        if cancel.is_set():
            raise KeyboardInterrupt  # a second Ctrl+C stops at once
        cancel.cancel()  # the engine ends the response at its next token, with a summary

    previous = signal.signal(signal.SIGINT, on_interrupt)
    try:
        for event in generate(pair, req, cancel):
            emit(event)
    finally:
        signal.signal(signal.SIGINT, previous)
        pair.close()
    return EXIT_INTERRUPTED if cancel.is_set() else 0


def run_daemon_generation(args: argparse.Namespace, fields: dict[str, Any], emit: Callable[[Any], None], err: TextIO) -> int:
    from .autostart import connect
    from .cli_pairs import ensure_pair_files
    from .config import load_models

    client = connect(args.connect, args.models, not args.no_autostart, err)
    try:
        if args.connect is None or is_local(args.connect):
            ensure_pair_files(load_models(args.models).pair(fields["pair"]), err)  # the daemon reads the same files
        params = dict(fields)
        pair = params.pop("pair")
        if "messages" in params:
            stream = client.chat(params.pop("messages"), pair, **params)
        else:  # the daemon fills in the pair's defaults
            stream = client.generate(params.pop("prompt"), pair, **params)
        try:
            for event in stream:
                emit(event)
        except KeyboardInterrupt:
            stream.cancel()
            for event in stream:  # the daemon ends the stream with finish reason "cancelled"
                emit(event)
            return EXIT_INTERRUPTED
    finally:
        client.close()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    req = request_fields(args, sys.stdin, sys.stderr)
    emit = json_printer(sys.stdout) if args.json else TextPrinter(sys.stdout, sys.stderr, color_wanted(sys.stdout))
    run = run_local_generation if args.local else run_daemon_generation
    return run(args, req, emit, sys.stderr)


def cmd_status(args: argparse.Namespace) -> int:
    """What the running daemon is doing; it never starts one (a question about the daemon does not)."""
    from .autostart import connect
    from .errors import DaemonUnavailable

    try:
        client = connect(args.connect, args.models, False, sys.stderr)
    except DaemonUnavailable as exc:
        raise DaemonUnavailable(str(exc).split(";")[0] + ": none is running (`tokint generate` or `tokintd` "
                                "starts one)") from None
    try:
        status = client.status()
    finally:
        client.close()
    if args.json:
        print_json(sys.stdout, status.to_wire())
    else:
        sys.stdout.write(status_text(status) + "\n")
    return 0


def cmd_shutdown(args: argparse.Namespace) -> int:
    from .addresses import client_address
    from .client import Client

    client = Client(client_address(args.connect))
    try:
        client.shutdown()
    finally:
        client.close()
    sys.stderr.write("tokint: tokintd is shutting down\n")
    return 0


def _add_daemon_arguments(p: argparse.ArgumentParser, local: bool) -> None:
    """--connect, and --no-autostart; with ``local`` (a command that would start tokintd or run in
    this process) --local. Without it the command never starts tokintd: --no-autostart is still
    accepted (scripts pass it to every command) but not offered."""
    p.add_argument("--connect", metavar="ADDR", default=argparse.SUPPRESS,
                   help="tokintd address (default: $TOKINT_ADDRESS or the per-user ipc socket)")
    p.add_argument("--no-autostart", action="store_true", default=argparse.SUPPRESS,
                   help="fail instead of starting tokintd when none is running" if local else argparse.SUPPRESS)
    if local:
        p.add_argument("--local", action="store_true", help="run in this process instead of through tokintd")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokint",
        description="A small model writes; a reasoning model corrects the few tokens where they disagree.",
    )
    parser.add_argument("--models", default=None, help="models.toml to use (default: $TOKINT_MODELS or the shipped one)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    parser.add_argument("--connect", metavar="ADDR", default=None,
                        help="tokintd address (default: $TOKINT_ADDRESS or the per-user ipc socket)")
    parser.add_argument("--no-autostart", action="store_true", help="fail instead of starting tokintd when none is running")
    gen = sub.add_parser("generate", help="generate a response with a model pair (through tokintd unless --local)")
    add_generation_arguments(gen)
    _add_daemon_arguments(gen, local=True)
    gen.set_defaults(func=cmd_generate)
    status = sub.add_parser("status", help="what the running tokintd is doing")
    status.add_argument("--json", action="store_true", help="print the status as JSON")
    _add_daemon_arguments(status, local=False)
    status.set_defaults(func=cmd_status)
    from .cli_chat import add_parsers as add_chat_parsers
    from .cli_history import add_parsers as add_history_parsers
    from .cli_pairs import add_parsers
    from .cli_research import add_parsers as add_research_parsers

    add_parsers(sub)
    add_research_parsers(sub)
    add_history_parsers(sub)
    add_chat_parsers(sub)
    stop = sub.add_parser("shutdown", help="stop the running tokintd")
    _add_daemon_arguments(stop, local=False)
    stop.set_defaults(func=cmd_shutdown)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # a character the locale cannot encode is escaped, never a traceback
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TokintError as exc:
        sys.stderr.write(f"tokint: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write(f"tokint: interrupted{getattr(args, 'on_interrupt', '')}\n")
        return EXIT_INTERRUPTED
    except UnicodeError as exc:  # text from a file or an argument that is not UTF-8, wherever it surfaces
        sys.stderr.write(f"tokint: error: text that is not valid UTF-8 ({exc.reason}); give UTF-8 text\n")
        return EXIT_ERROR
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
