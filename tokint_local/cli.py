"""The ``tokint`` command: a thin layer that parses arguments and calls the library.

Library errors (TokintError) become one line on stderr and a non-zero exit, never a traceback.
"""
from __future__ import annotations

import argparse
import json
import math
import os
import sys
import threading
from typing import Any, Callable, Iterable, Optional, Sequence, TextIO

from .divergence import DIVERGENCES
from .errors import TokintError
from .events import DEFAULT_MAX_TOKENS, DEFAULT_THRESHOLD, MODES, GenerationRequest, Summary, TokenEvent

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


def add_generation_arguments(p: argparse.ArgumentParser) -> None:
    """The flags that make a GenerationRequest; shared by every command that generates."""
    p.add_argument("prompt", help="the prompt; '-' reads it from standard input")
    p.add_argument("--models", default=argparse.SUPPRESS, help="models.toml to use (default: $TOKINT_MODELS or the shipped one)")
    p.add_argument("--pair", help="model pair from models.toml (default: the file's default_pair)")
    p.add_argument("--mode", choices=MODES, default="intervene", help="who writes the response (default: intervene)")
    p.add_argument("--divergence", choices=DIVERGENCES, default="kl", help="divergence the gate compares (default: kl)")
    p.add_argument("--threshold", type=_number, default=DEFAULT_THRESHOLD,
                   help=f"takeover where divergence >= this, in nats for kl/js (default: {DEFAULT_THRESHOLD}; inf: never)")
    p.add_argument("--budget", type=_integer, default=None, help="at most this many takeovers (default: unlimited)")
    p.add_argument("--max-position", type=_integer, default=None, help="takeovers only in the first N positions")
    p.add_argument("--min-base-entropy", type=_number, default=None,
                   help="takeovers only where the base model's entropy (nats) is at least this")
    p.add_argument("--max-tokens", type=_integer, default=DEFAULT_MAX_TOKENS, help=f"response length limit (default: {DEFAULT_MAX_TOKENS})")
    p.add_argument("--temperature", type=_number, default=0.0, help="0 is greedy (default: 0)")
    p.add_argument("--top-k", type=_integer, default=0, help="sample among the k likeliest tokens (0: off)")
    p.add_argument("--top-p", type=_number, default=1.0, help="nucleus sampling mass (1: off)")
    p.add_argument("--seed", type=_integer, default=None, help="seed for reproducible sampling (default: random, reported)")
    p.add_argument("--stop", action="append", default=[], help="stop when the response contains this text (repeatable)")
    p.add_argument("--raw", action="store_true", help="send the prompt as plain text, without the chat template")
    p.add_argument("--json", action="store_true", help="print one JSON object per event instead of text")


def request_from_args(args: argparse.Namespace, stdin: TextIO) -> GenerationRequest:
    prompt = stdin.read() if args.prompt == "-" else args.prompt
    return GenerationRequest(
        prompt=prompt,
        pair=args.pair,
        mode=args.mode,
        divergence=args.divergence,
        threshold=args.threshold,
        budget=args.budget,
        max_tokens=args.max_tokens,
        temperature=args.temperature,
        top_k=args.top_k,
        top_p=args.top_p,
        seed=args.seed,
        stop=tuple(args.stop),
        raw=args.raw,
        max_position=args.max_position,
        min_base_entropy=args.min_base_entropy,
    )


class TextPrinter:
    """Prints a stream of events as a person reads it: the response, takeovers highlighted."""

    TAKEOVER = "\x1b[1;30;43m"  # bold black on yellow
    RESET = "\x1b[0m"

    def __init__(self, out: TextIO, err: TextIO, color: bool):
        self.out, self.err, self.color = out, err, color

    def __call__(self, event: TokenEvent | Summary) -> None:
        if isinstance(event, TokenEvent):
            if event.source == "reasoning" and self.color and event.text:
                self.out.write(f"{self.TAKEOVER}{event.text}{self.RESET}")
            else:
                self.out.write(event.text)
            self.out.flush()
        else:
            self.out.write("\n")
            self.out.flush()
            self.err.write(summary_line(event) + "\n")


def summary_line(s: Summary) -> str:
    shown = ", ".join(str(p) for p in s.takeover_positions[:12]) + (" ..." if len(s.takeover_positions) > 12 else "")
    where = f" at {shown}" if shown else ""
    return (
        f"[{s.n_tokens} tokens, {s.n_takeovers} takeovers{where}; {s.tokens_per_second:.1f} tok/s, "
        f"{s.elapsed_s:.2f} s; finish: {s.finish_reason}; seed {s.seed}]"
    )


def json_printer(out: TextIO) -> Callable[[Any], None]:
    def emit(event: TokenEvent | Summary) -> None:
        out.write(json.dumps(event.to_wire(), ensure_ascii=False) + "\n")
        out.flush()

    return emit


def _color_wanted(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


def run_local_generation(args: argparse.Namespace, req: GenerationRequest, emit: Callable[[Any], None], err: TextIO) -> int:
    from .config import load_models
    from .engine import generate
    from .pair import open_pair

    entry = load_models(args.models).pair(req.pair)
    if err.isatty():
        err.write(f"loading pair {entry.name} ({entry.base.describe()} + {entry.reasoning.describe()}) ...\n")
    pair = open_pair(entry)
    cancel = threading.Event()
    events = generate(pair, req, cancel)
    try:
        for event in events:
            emit(event)
    except KeyboardInterrupt:
        cancel.set()
        for event in events:  # the engine ends the response with finish reason "cancelled"
            emit(event)
        return EXIT_INTERRUPTED
    finally:
        pair.close()
    return 0


def cmd_generate(args: argparse.Namespace) -> int:
    req = request_from_args(args, sys.stdin)
    emit = json_printer(sys.stdout) if args.json else TextPrinter(sys.stdout, sys.stderr, _color_wanted(sys.stdout))
    return run_local_generation(args, req, emit, sys.stderr)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="tokint",
        description="A small model writes; a reasoning model corrects the few tokens where they disagree.",
    )
    parser.add_argument("--models", default=None, help="models.toml to use (default: $TOKINT_MODELS or the shipped one)")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    gen = sub.add_parser("generate", help="generate a response with a model pair")
    add_generation_arguments(gen)
    gen.set_defaults(func=cmd_generate)
    return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except TokintError as exc:
        sys.stderr.write(f"tokint: error: {exc}\n")
        return EXIT_ERROR
    except KeyboardInterrupt:
        sys.stderr.write("tokint: interrupted\n")
        return EXIT_INTERRUPTED
    except BrokenPipeError:
        return 0


if __name__ == "__main__":
    sys.exit(main())
