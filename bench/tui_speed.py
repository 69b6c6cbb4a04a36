"""Can tokint-tui keep up with a fast stream, and does it stay responsive on a long response?

    python bench/tui_speed.py [--tokens 4000]

Runs a real tokintd on tiny GGUF models (written on the spot; they stream well above 500
tokens/s on 2 cores) and the real app headless under App.run_test(). Measures:
- the stream rate the daemon delivered to the app;
- event-to-screen latency: from the moment the client library hands a token event to the app
  until the response view has re-rendered with that token;
- input latency while streaming: a key typed into the prompt box until the box shows it;
- how far the screen lags at the end (tokens received but not yet shown when the stream ends).
"""
from __future__ import annotations

import argparse
import asyncio
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))
sys.path.insert(0, str(ROOT / "bench"))

from common import git_rev, machine, table  # noqa: E402
from conftest import DaemonProcess, models_toml_text  # noqa: E402
from gguf_factory import TinySpec, write_tiny_model, write_tiny_pair  # noqa: E402

import tokint_local.client as client_mod  # noqa: E402
from textual import events  # noqa: E402
from tui.app import TokintApp  # noqa: E402
from tui.widgets.response import ResponseView  # noqa: E402


PROMPT = "write a long text"  # the tiny models run 4,000 tokens on it without an end-of-turn token


def instrument():
    """Record when each token reaches the app and when the view has rendered it."""
    received: dict[int, float] = {}
    shown: dict[int, float] = {}
    original_next = client_mod.AsyncGeneration.__anext__
    original_append = ResponseView.append

    async def timed_next(self):
        event = await original_next(self)
        if getattr(event, "type", "") == "token":
            received[event.position] = time.perf_counter()
        return event

    def timed_append(self, tokens):
        original_append(self, tokens)
        positions = [t.position for t in tokens]

        def painted():
            now = time.perf_counter()
            for p in positions:
                shown.setdefault(p, now)

        self.call_after_refresh(painted)

    client_mod.AsyncGeneration.__anext__ = timed_next
    ResponseView.append = timed_append
    return received, shown


async def drive(address: str, n_tokens: int, mode: str, received, shown) -> dict:
    app = TokintApp(address, autostart=False)
    key_lag = []
    async with app.run_test(size=(120, 40)) as pilot:
        while not app.link.connected:
            await pilot.pause(0.05)
        screen = app.screen
        panel = screen.query_one("#settings")
        panel.query_one("#pair").value = "tiny-long"
        panel.query_one("#max_tokens").value = str(n_tokens)
        panel.query_one("#mode").value = mode
        area = screen.query_one("#prompt")
        area.text = PROMPT
        area.focus()
        await pilot.press("ctrl+r")
        # From here on no pilot calls: they wait for the app to go idle, which a streaming app never does.
        while not screen.showing or not screen.showing.tokens:
            await asyncio.sleep(0.005)
        while screen.running is not None:
            before = area.text
            t0 = time.perf_counter()
            key = events.Key("x", "x")
            key.set_sender(app)
            app._driver.send_message(key)  # as a terminal driver delivers a keystroke
            while area.text == before:
                await asyncio.sleep(0.001)
            key_lag.append(time.perf_counter() - t0)
            await asyncio.sleep(0.05)
        stream_end = max(received.values())
        await asyncio.sleep(0.5)
        if screen.showing.error:
            raise SystemExit(f"generation failed: {screen.showing.error}")
        print(f"transcript: {len(screen.showing.tokens)} tokens, {screen.showing.summary}", file=sys.stderr)
        t = screen.showing
        view = screen.query_one(ResponseView)
        unshown_at_end = sum(1 for p, at in received.items() if shown.get(p, float("inf")) > stream_end)
        first, last = min(received.values()), max(received.values())
        return {
            "tokens": len(t.tokens),
            "shown": len(view.tokens),
            "rate": (len(received) - 1) / (last - first),
            "engine_rate": t.summary.tokens_per_second,
            "lag": [shown[p] - received[p] for p in received if p in shown],
            "keys": key_lag,
            "unshown_at_end": unshown_at_end,
            "catch_up": max(shown.values()) - stream_end,
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--tokens", type=int, default=4000)
    ap.add_argument("--mode", default="base", help="base streams fastest (one model); intervene runs both")
    args = ap.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="tkt", dir="/tmp"))
    base, reasoning = write_tiny_pair(folder)
    _, padded = write_tiny_pair(folder, reasoning_pad=24)
    other = write_tiny_model(folder / "other.gguf", TinySpec(seed=7, vocab="other"))
    models = folder / "models.toml"
    models.write_text(models_toml_text({"base": base, "reasoning": reasoning, "padded": padded, "other": other}))
    daemon = DaemonProcess(models, f"ipc://{folder}/d.sock")
    try:
        # the baseline, same request: the stream into a client that only counts tokens
        with client_mod.Client(daemon.address) as c:
            events = list(c.generate(PROMPT, pair="tiny-long", mode=args.mode, max_tokens=args.tokens, return_top=5))
        plain_rate = events[-1].tokens_per_second
        received, shown = instrument()
        r = asyncio.run(drive(daemon.address, args.tokens, args.mode, received, shown))
    finally:
        daemon.stop()
    lag = sorted(r["lag"])
    keys = sorted(r["keys"])
    print(f"\ntokint-tui under App.run_test (headless, 120x40), tiny models through a real tokintd, "
          f"{args.tokens}-token response, mode {args.mode}, {machine()}, commit {git_rev()}\n")
    print(table(["measure", "value"], [
        ["tokens streamed / shown", f"{r['tokens']} / {r['shown']}"],
        ["baseline: same stream into a bare client (tok/s)", plain_rate],
        ["engine rate in the daemon while the app consumes (tok/s)", r["engine_rate"]],
        ["stream rate received by the app (tok/s)", r["rate"]],
        ["event-to-screen latency median (ms)", 1000 * statistics.median(lag)],
        ["event-to-screen latency p95 (ms)", 1000 * lag[int(0.95 * (len(lag) - 1))]],
        ["event-to-screen latency max (ms)", 1000 * lag[-1]],
        ["key-to-screen latency while streaming, median (ms)", 1000 * statistics.median(keys)],
        ["key-to-screen latency while streaming, max (ms)", 1000 * keys[-1]],
        ["keys typed while streaming", len(keys)],
        ["tokens not yet on screen when the stream ended", r["unshown_at_end"]],
        ["time from the last token received to the last token shown (ms)", 1000 * r["catch_up"]],
    ]))


if __name__ == "__main__":
    main()
