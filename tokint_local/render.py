"""How the ``tokint`` command shows things to a person (text) or a program (JSON lines)."""
from __future__ import annotations

import json
import os
from typing import Any, Callable, TextIO

from .events import Loading, Queued, StreamEvent, Summary, TokenEvent
from .status import DaemonStatus, ModelFile, PairListing, WorkerStatus


# What a terminal acts on instead of showing: the C0 controls but newline and tab (as the Unicode
# control pictures, ESC as ␛), DEL (␡) and the C1 controls (as \x80 ... \x9f).
CONTROL_SIGNS = {c: chr(0x2400 + c) for c in range(0x20) if c not in (0x09, 0x0A)}
CONTROL_SIGNS[0x7F] = "\u2421"
CONTROL_SIGNS.update({c: f"\\x{c:02x}" for c in range(0x80, 0xA0)})


def visible_controls(text: str) -> str:
    """``text`` with every control character but newline and tab shown as a visible sign, never interpreted."""
    return text.translate(CONTROL_SIGNS)


def color_wanted(stream: TextIO) -> bool:
    return stream.isatty() and "NO_COLOR" not in os.environ and os.environ.get("TERM") != "dumb"


class TextPrinter:
    """The response as it streams, takeovers highlighted, then a summary line on ``err``.

    On a terminal, control characters in the text are shown visibly (a file gets the text as it is).
    """

    TAKEOVER = "\x1b[1;30;43m"  # bold black on yellow
    RESET = "\x1b[0m"

    def __init__(self, out: TextIO, err: TextIO, color: bool):
        self.out, self.err, self.color = out, err, color
        self.shown = visible_controls if out.isatty() else str

    def __call__(self, event: StreamEvent) -> None:
        if isinstance(event, TokenEvent):
            text = self.shown(event.text)
            if event.source == "reasoning" and self.color and text:
                self.out.write(f"{self.TAKEOVER}{text}{self.RESET}")
            else:
                self.out.write(text)
            self.out.flush()
        elif isinstance(event, Summary):
            self.out.write("\n")
            self.out.flush()
            self.err.write(summary_line(event) + "\n")
        elif isinstance(event, Queued) and self.err.isatty():
            self.err.write(f"tokint: waiting for the pair, place {event.place} in the queue\n")
        elif isinstance(event, Loading) and self.err.isatty():
            self.err.write(f"tokint: loading pair {event.pair} ...\n")


def summary_line(s: Summary) -> str:
    shown = ", ".join(str(p) for p in s.takeover_positions[:12]) + (" ..." if len(s.takeover_positions) > 12 else "")
    where = f" at {shown}" if shown else ""
    return (
        f"[{s.n_tokens} tokens, {s.n_takeovers} takeovers{where}; {s.tokens_per_second:.1f} tok/s, "
        f"{s.elapsed_s:.2f} s; finish: {s.finish_reason}; seed {s.seed}]"
    )


def json_printer(out: TextIO) -> Callable[[StreamEvent], None]:
    """One JSON object per token event and one for the summary (queue events are not printed)."""

    def emit(event: StreamEvent) -> None:
        if isinstance(event, (TokenEvent, Summary)):
            out.write(json.dumps(event.to_wire(), ensure_ascii=False) + "\n")
            out.flush()

    return emit


def print_json(out: TextIO, value: Any) -> None:
    out.write(json.dumps(value, ensure_ascii=False, indent=2) + "\n")


def human_bytes(n: float | None) -> str:
    if n is None:
        return "-"
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} GiB"


def duration(seconds: float) -> str:
    s = int(seconds)
    h, rem = divmod(s, 3600)
    m, s = divmod(rem, 60)
    return f"{h}h {m}m {s}s" if h else f"{m}m {s}s" if m else f"{seconds:.1f}s"


def status_text(status: DaemonStatus) -> str:
    lines = [
        f"tokintd {status.version} (pid {status.pid}), up {duration(status.uptime_s)}, protocol {status.protocol_version}, "
        + ", ".join(f"{k} {v}" for k, v in status.versions.items()),
        f"listening:   {', '.join(status.addresses)}",
        f"models file: {status.models_file}",
        f"memory:      {human_bytes(status.memory_rss_bytes)} resident (daemon and worker), "
        f"{human_bytes(status.model_bytes)} of it model weights",
        f"queue:       {status.queue_length} waiting",
        "history:     " + ("not recorded" if not status.history_path else
                           f"{status.history_path}" + (f" - NOT WRITABLE: {status.history_problem}" if status.history_problem else "")),
    ]
    if status.worker is not None:
        lines.append("worker:      " + worker_text(status.worker))
    if not status.loaded_pairs:
        lines.append("pairs:       none loaded (a pair loads on its first generation, or with --preload)")
    for pair in status.loaded_pairs:
        active = "idle"
        if pair.active:
            a = pair.active
            active = f"generating {a.id[:8]} ({a.mode}, {a.tokens} tokens, {a.elapsed_s:.1f} s)"
        lines.append(f"pair {pair.name}: {human_bytes(pair.model_bytes)}, {pair.queue_length} queued, {active}")
        for role, off in (("base", pair.base_offload), ("reasoning", pair.reasoning_offload)):
            if off is not None:
                lines.append(f"    {role}: {off.backend}, {off.gpu_layers}/{off.n_layers} layers on the GPU")
    return "\n".join(lines)


def worker_text(w: WorkerStatus) -> str:
    """One line on the llama.cpp worker: pid, uptime, restarts and the last crash."""
    if w.state == "running":
        text = f"pid {w.pid}, up {duration(w.uptime_s)}"
    elif w.state == "backoff":
        text = f"restarting in {w.restart_in_s or 0:.0f} s after repeated crashes"
    else:
        text = w.state
    text += f", {w.restarts} restart{'s' if w.restarts != 1 else ''}"
    if w.token_hop_ms:
        text += f", token hop {w.token_hop_ms[0]:.2f} ms median ({w.token_hop_ms[1]:.2f} p95)"
    if w.last_crash:
        text += f"; last crash {duration(w.last_crash_ago_s or 0)} ago: {w.last_crash}"
    return text


def _model_cell(m: ModelFile) -> str:
    if not m.present:
        return f"{m.source} (missing)"
    return f"{m.source} ({human_bytes(m.size_bytes)}" + (f", DAMAGED: {m.damage})" if m.damage else ")")


def pairs_text(pairs: list[PairListing]) -> str:
    if not pairs:
        return "no pairs defined"
    lines = []
    for p in pairs:
        flags = [f for f, on in (("default", p.default), ("loaded", p.loaded)) if on]
        lines.append(f"{p.name}" + (f"  [{', '.join(flags)}]" if flags else ""))
        if p.description:
            lines.append(f"    {p.description}")
        lines.append(f"    base:      {_model_cell(p.base)}")
        lines.append(f"    reasoning: {_model_cell(p.reasoning)}")
        damaged = p.base.damage or p.reasoning.damage
        verdict = "DAMAGED" if damaged else {True: "ok", False: "INCOMPATIBLE", None: "unknown"}[p.compatible]
        lines.append(f"    pairing:   {verdict}: {p.compat_detail}")
        if p.lockstep_only:
            lines.append(f"    schedule:  lockstep only ({p.schedule_detail})")
        if p.defaults:
            lines.append("    defaults:  " + ", ".join(f"{k}={'unlimited' if v is None else v}" for k, v in p.defaults.items()))
        if p.pull:
            lines.append(f"    get it:    {p.pull}")
    return "\n".join(lines)
