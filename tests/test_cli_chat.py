"""`tokint chat` driven through a pseudo-terminal, as a person types, against a real tokintd on tiny
models: a three-turn conversation, Ctrl+C mid-answer (the session goes on), /reset, /set, /system,
/save, /quit, Ctrl+D, and --resume of the recorded conversation."""
import json
import os
import pty
import re
import select
import signal
import sys
import time
from pathlib import Path

import pytest

from conftest import wait_until
from tokint_local.client import Client
from tokint_local.history import list_generations

ROOT = Path(__file__).resolve().parent.parent
ANSI = re.compile(r"\x1b\[[0-9;?]*[a-zA-Z]|\x1b\][^\x07]*\x07|\x1b[=>]|\r")


class Terminal:
    """A child process on a pseudo-terminal: type into it, wait for what it shows."""

    def __init__(self, argv, env):
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # the child: its terminal is the pty
            os.chdir(ROOT)
            os.execvpe(argv[0], argv, env)
        self.seen = ""

    def type(self, text: str) -> None:
        os.write(self.fd, text.encode())

    def expect(self, pattern: str, timeout: float = 30.0) -> re.Match:
        """Wait until the screen text (escape sequences removed) after the last match shows ``pattern``."""
        deadline = time.monotonic() + timeout
        while True:
            found = re.search(pattern, self.seen)
            if found:
                self.seen = self.seen[found.end():]
                return found
            left = deadline - time.monotonic()
            assert left > 0, f"waited for {pattern!r}; the terminal shows:\n{self.seen[-2000:]}"
            if select.select([self.fd], [], [], min(left, 0.2))[0] and not self._take():
                assert re.search(pattern, self.seen), f"the program ended; it showed:\n{self.seen[-2000:]}"

    def drain(self) -> None:
        """Take in what the program has shown so far without waiting (so its writes never block)."""
        while select.select([self.fd], [], [], 0)[0] and self._take():
            pass

    def _take(self) -> bool:
        """Read what is ready into ``seen`` (escape sequences removed); False once the program is gone."""
        try:
            data = os.read(self.fd, 65536)
        except OSError:  # the child is gone
            return False
        self.seen += ANSI.sub("", data.decode("utf-8", "replace"))
        return bool(data)

    def wait(self, timeout: float = 20.0) -> int:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                os.read(self.fd, 65536)
            except OSError:
                pass
            pid, status = os.waitpid(self.pid, os.WNOHANG)
            if pid:
                return os.waitstatus_to_exitcode(status)
            time.sleep(0.05)
        os.kill(self.pid, signal.SIGKILL)
        raise AssertionError("tokint chat did not exit")

    def close(self) -> None:
        try:
            os.kill(self.pid, signal.SIGKILL)
            os.waitpid(self.pid, 0)
        except (ProcessLookupError, ChildProcessError):
            pass
        os.close(self.fd)


@pytest.fixture
def chat(daemon, tokint_models_env):
    terminals = []

    def start(*args):
        argv = [sys.executable, "-m", "tokint_local.cli", "--connect", daemon.address, "--no-autostart", "chat", *args]
        terminal = Terminal(argv, tokint_models_env)
        terminals.append(terminal)
        return terminal

    yield start
    for terminal in terminals:
        terminal.close()


@pytest.fixture
def tokint_models_env(tiny_models_toml, tokint_home):
    env = dict(os.environ)
    env.update({"TOKINT_MODELS": str(tiny_models_toml), "TERM": "xterm-256color", "PROMPT_TOOLKIT_NO_CPR": "1",
                "NO_COLOR": "1", "COLUMNS": "200", "LINES": "50", "TOKINT_HOME": str(tokint_home)})
    return env


def answered(terminal) -> str:
    """Wait for an answer's summary line; its finish reason."""
    return terminal.expect(r"\[\d+ tokens, \d+ takeovers[^\]]*finish: (\w+)", timeout=60)[1]


def test_a_conversation_in_the_terminal(chat, daemon, tokint_home, tmp_path):
    t = chat("--pair", "tiny-long", "--max-tokens", "6", "--system", "Be brief.")
    t.expect(r"tokint chat: pair tiny-long")
    t.expect(r"you>")
    for question in ("first question", "second one", "and a third"):
        t.type(question + "\r")
        assert answered(t) in ("length", "stop")
        t.expect(r"you>")
    generations = list_generations()
    assert [g["turn"] for g in generations] == [2, 1, 0] and len({g["conversation"] for g in generations}) == 1
    first_conversation = generations[0]["conversation"]

    t.type("/set max_tokens 7000\r")  # long enough to be interrupted (tens of seconds)
    t.expect(r"max_tokens = 7000")
    t.type("tell me everything\r")
    # Ctrl+C once the daemon has written some of the answer: by then the line editor has let the terminal
    # go (typed while it still held the terminal in raw mode, \x03 is a character, not SIGINT, and the answer
    # runs on: a fixed 1.5 s wait, or waiting for output, which the line editor's own redraws can be, lost
    # it in CI), and the cut answer has tokens, so it is kept as a turn (an empty one is not).
    with Client(daemon.address) as watcher:
        wait_until(lambda: t.drain() or any(a.tokens > 0 for a in watcher.status().active))
    t.type("\x03")  # Ctrl+C: the answer stops, the session goes on
    assert answered(t) == "cancelled"
    t.expect(r"you>")
    t.type("/set max_tokens 4\r")
    t.expect(r"max_tokens = 4")
    t.type("/set threshold banana\r")
    t.expect(r"threshold: not a float")
    t.type("/save " + str(tmp_path / "saved.json") + "\r")
    t.expect(r"saved 4 turns")

    t.type("/reset\r")
    t.expect(r"a new conversation")
    t.type("/system You are terse.\r")
    t.expect(r"system prompt set")
    t.type("hello again\r")
    answered(t)
    t.expect(r"you>")
    t.type("/quit\r")
    assert t.wait() == 0

    saved = json.loads((tmp_path / "saved.json").read_text())
    assert [turn["user"] for turn in saved["turns"]] == ["first question", "second one", "and a third", "tell me everything"]
    assert saved["turns"][-1]["summary"]["finish_reason"] == "cancelled" and saved["system"] == "Be brief."
    latest = list_generations()[0]
    assert latest["conversation"] != first_conversation and latest["turn"] == 0 and latest["prompt"] == "hello again"

    again = chat("--resume", first_conversation[:10], "--max-tokens", "4")  # go on with the first conversation; Ctrl+D leaves
    again.expect(r"you> first question")
    again.expect(r"you> tell me everything")
    again.expect(r"you>")
    again.type("one more\r")
    answered(again)
    again.expect(r"you>")
    again.type("\x04")
    assert again.wait() == 0
    latest = list_generations()[0]
    assert (latest["conversation"], latest["turn"], latest["prompt"]) == (first_conversation, 4, "one more")
    assert (tokint_home / "chat_history").read_text().count("first question") == 1  # input history, kept on disk


def test_ctrl_c_before_the_answer_starts_or_while_it_is_cancelled_keeps_the_session(shared_daemon, monkeypatch):
    """Ctrl+C lands where a person's timing cannot be reproduced on a pty: in the instant between Enter
    and the request (the turn is dropped, the session goes on), and again while the cancel of an
    answer waits for the daemon (ignored: the answer still ends with its summary and is kept)."""
    import io

    from tokint_local.cli_chat import ChatSession
    from tokint_local.conversation import Conversation, TurnStream

    real_send, real_cancel = Conversation.send, TurnStream.cancel
    interrupts = {"send": 1, "cancel": 1}

    def send(self, client, text, **params):
        if interrupts["send"]:
            interrupts["send"] -= 1
            raise KeyboardInterrupt
        return real_send(self, client, text, **params)

    def cancel(self):
        real_cancel(self)
        if interrupts["cancel"]:
            interrupts["cancel"] -= 1
            raise KeyboardInterrupt  # a second Ctrl+C while the cancel's reply was awaited

    monkeypatch.setattr(Conversation, "send", send)
    monkeypatch.setattr(TurnStream, "cancel", cancel)
    conversation = Conversation(settings={"max_tokens": 7000, "mode": "intervene", "seed": 1})
    lines = iter(["first", "second", "third"])

    def read():
        line = next(lines, None)
        if line is None:
            raise EOFError  # Ctrl+D
        if line == "third":
            conversation.settings["max_tokens"] = 20  # a short answer that runs to its end
        return line

    out = io.StringIO()
    with Client(shared_daemon.address) as client:
        session = ChatSession(client, conversation, out, io.StringIO(), read)
        printed = []

        def printer(event):
            printed.append(event)
            if conversation.turns == [] and len(printed) == 3:  # the second turn, three events in
                raise KeyboardInterrupt  # the first Ctrl+C: cancel the answer

        session.printer = printer
        assert session.run() == 0
    assert [turn.user for turn in conversation.turns] == ["second", "third"]  # "first" never went out
    assert conversation.turns[0].summary.finish_reason == "cancelled"
    assert conversation.turns[1].summary.finish_reason in ("stop", "length")
    assert interrupts == {"send": 0, "cancel": 0}


def test_a_ctrl_c_the_interpreter_swallows_still_cancels_the_answer(shared_daemon):
    """A KeyboardInterrupt raised while Python runs a finalizer is printed and dropped; the chat
    remembers the SIGINT itself, so the answer is cancelled at its next event all the same."""
    import io
    import os

    from tokint_local.cli_chat import ChatSession
    from tokint_local.conversation import Conversation

    conversation = Conversation(settings={"max_tokens": 7000, "seed": 1})
    lines = iter(["tell me everything"])

    def read():
        line = next(lines, None)
        if line is None:
            raise EOFError
        return line

    with Client(shared_daemon.address) as client:
        session = ChatSession(client, conversation, io.StringIO(), io.StringIO(), read)
        seen = []

        def printer(event):
            seen.append(event)
            if len(seen) == 3:
                try:  # the signal arrives; its exception is lost, as in a finalizer
                    os.kill(os.getpid(), signal.SIGINT)
                    time.sleep(1)
                except KeyboardInterrupt:
                    pass

        session.printer = printer
        assert session.run() == 0
    assert conversation.turns[0].summary.finish_reason == "cancelled"
