"""Terminal control characters in model text are shown on a terminal, never interpreted by it;
files, pipes and --json get the text as it is."""
import json
import os
import select
import pty
import subprocess
import sys
import tty
from pathlib import Path

from tokint_local.history import HistoryWriter
from tokint_local.render import TextPrinter, visible_controls

ROOT = Path(__file__).resolve().parent.parent
C0_AND_C1 = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} - {"\n", "\t"}


def tokint(*args: str, terminal: bool, env: dict | None = None) -> bytes:
    """Run `tokint ARGS`; with ``terminal`` its stdout is a real terminal (a pty in raw mode, so the
    bytes read are exactly the bytes written)."""
    cmd = [sys.executable, "-m", "tokint_local.cli", *args]
    env = {**os.environ, **(env or {})}
    if not terminal:
        done = subprocess.run(cmd, capture_output=True, cwd=ROOT, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        return done.stdout
    master, slave = pty.openpty()
    tty.setraw(slave)
    proc = subprocess.Popen(cmd, stdout=slave, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, cwd=ROOT, env=env)
    os.close(slave)
    out = bytearray()
    while True:
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:  # EIO: the program closed the terminal
            break
        if not chunk:
            break
        out += chunk
    os.close(master)
    assert proc.wait(60) == 0, proc.stderr.read()
    return bytes(out)


def test_generate_shows_control_characters_on_a_terminal(tiny_models_toml):
    args = ("generate", "--local", "--models", str(tiny_models_toml), "--max-tokens", "160", "--temperature", "1",
            "--seed", "11", "--mode", "base", "tell me")
    events = [json.loads(line) for line in tokint(*args, "--json", terminal=False).decode().splitlines()]
    text = "".join(e["text"] for e in events if e["type"] == "token")
    assert C0_AND_C1 & set(text), "the response holds no control character; this test would prove nothing"
    shown = tokint(*args, terminal=True, env={"NO_COLOR": "1"}).decode()
    assert shown == visible_controls(text) + "\n"
    assert not C0_AND_C1 & set(shown)
    piped = tokint(*args, terminal=False).decode()
    assert piped == text + "\n"  # a pipe or a file gets the text as it is


def test_the_printer_on_a_terminal_keeps_its_own_colour_codes_only():
    from tokint_local.events import TokenEvent

    master, slave = pty.openpty()
    tty.setraw(slave)
    with open(slave, "w", encoding="utf-8", closefd=True) as out:
        printer = TextPrinter(out, open(os.devnull, "w"), color=True)
        for i, (text, source) in enumerate([("\x1b]0;pwned\x07", "base"), ("\x1b[2J\rover", "reasoning"), ("a\tb\n", "base")]):
            printer(TokenEvent(i, 1, text, source, None, None, None, 0.0))
    shown = b""
    while select.select([master], [], [], 2.0)[0]:  # a pty hands its data over in pieces, later under load
        try:
            chunk = os.read(master, 1 << 16)
        except OSError:
            break
        if not chunk:
            break
        shown += chunk
    shown = shown.decode()
    os.close(master)
    assert shown == "␛]0;pwned␇" + TextPrinter.TAKEOVER + "␛[2J␍over" + TextPrinter.RESET + "a\tb\n"


def record(tokint_home: Path) -> str:
    """A generation in the history store whose prompt and tokens hold terminal control sequences."""
    writer = HistoryWriter(tokint_home / "history.sqlite")
    gen_id = "c0ffee00112233445566778899aabbcc"
    writer.begin(gen_id, "tiny", {"mode": "intervene", "prompt": "title\x1b]0;pwned\x07 here"})
    texts = [("\x1b[2J", "base"), ("\rgone?", "reasoning"), ("ok\tand\n", "base"), ("\x9b31mred", "base")]
    for i, (text, source) in enumerate(texts):
        writer.token(gen_id, {"position": i, "token_id": 5, "text": text, "source": source, "divergence": 1.0})
    writer.end(gen_id, {"n_tokens": 4, "n_takeovers": 1, "takeover_positions": [1], "finish_reason": "length",
                        "tokens_per_second": 1.0, "elapsed_s": 1.0})
    writer.close()
    return gen_id


def test_history_shows_control_characters_on_a_terminal(tokint_home):
    gen_id = record(tokint_home)
    shown = tokint("history", gen_id[:8], terminal=True, env={"TERM": "xterm"}).decode()
    shown_plain = shown.replace(TextPrinter.TAKEOVER, "").replace(TextPrinter.RESET, "")
    assert TextPrinter.TAKEOVER in shown  # colour is on, and its codes are the only escape sequences
    assert not C0_AND_C1 & set(shown_plain)
    assert "title␛]0;pwned␇ here" in shown_plain
    assert shown_plain.endswith("␛[2J␍gone?ok\tand\n\\x9b31mred\n")
    listed = tokint("history", terminal=True).decode()
    assert "title␛]0;pwned␇ here" in listed and not C0_AND_C1 & set(listed)
    piped = tokint("history", gen_id[:8], terminal=False).decode()
    assert piped.endswith("\x1b[2J\rgone?ok\tand\n\x9b31mred\n")  # a pipe gets the text as it is
    as_json = tokint("history", gen_id[:8], "--json", terminal=True).decode()
    assert "\x1b" not in as_json and json.loads(as_json)["tokens"][0]["text"] == "\x1b[2J"
