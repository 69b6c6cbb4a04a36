"""tokint-tui: the real app under App.run_test() against a real tokintd on tiny models."""
import io
import json
import time

import pytest
from rich.console import Console
from textual.widgets import Static, TabbedContent, TextArea

from conftest import DaemonProcess
from tokint_local.events import TokenEvent
from tui.app import TokintApp
from tui.widgets.response import ResponseView, visible

SIZE = (100, 34)


def plain(widget) -> str:
    """The text a widget shows (rich renderables are rendered at the widget's width)."""
    content = widget.content if isinstance(widget, Static) else widget.render()
    if hasattr(content, "plain"):
        return content.plain
    if isinstance(content, str):
        return content
    console = Console(file=io.StringIO(), width=max(widget.size.width, 20), color_system=None)
    with console.capture() as capture:
        console.print(content)
    return capture.get()


def response_text(app) -> str:
    return app.screen.query_one(ResponseView).shown_text()


def stats(app) -> str:
    return plain(app.screen.query_one("#stats"))


async def wait_for(pilot, condition, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await pilot.pause(0.05)


class Notes:
    """The notifications the app raised, captured with run_test's message hook."""

    def __init__(self):
        self.messages = []

    def __call__(self, message):
        if type(message).__name__ == "Notify":
            self.messages.append(message.notification.message)

    def any(self, text):
        return any(text in m for m in self.messages)


async def type_prompt(pilot, text):
    area = pilot.app.screen.query_one("#prompt", TextArea)
    area.text = text
    area.focus()
    await pilot.pause()


async def run_to_the_end(pilot, prompt):
    await type_prompt(pilot, prompt)
    await pilot.press("ctrl+r")
    await wait_for(pilot, lambda: pilot.app.screen.showing and pilot.app.screen.showing.summary is not None)


async def connected(pilot):
    await wait_for(pilot, lambda: pilot.app.link.connected and "connected" in pilot.app.screen.sub_title)


async def test_run_streams_text_and_counts_takeovers(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await run_to_the_end(pilot, "hello there")
        await pilot.pause(0.2)
        t = app.screen.showing
        assert t.summary.n_tokens == 256 and t.summary.n_takeovers > 0
        assert response_text(app) == visible(t.text)
        assert f"{t.summary.n_takeovers}/∞ takeovers" in stats(app) and "256 tok" in stats(app)
        assert app.screen.query_one("#prompt", TextArea).text == ""  # sent: it is the conversation's first turn now
        assert "▌ hello there" in app.screen.query_one(ResponseView).content_lines()[0]


async def test_inspect_a_taken_over_token(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        await run_to_the_end(pilot, "hello there")
        await pilot.press("ctrl+g")
        await pilot.press("home", "right_square_bracket")
        view = app.screen.query_one(ResponseView)
        token = view.tokens[view.cursor]
        assert token.source == "reasoning"
        assert app.screen.query_one("#tabs", TabbedContent).active == "token-tab"
        shown = plain(app.screen.query_one("#inspector"))
        assert f"position {token.position}" in " ".join(shown.split())
        assert "reasoning top 5" in shown and "base top 5" in shown
        assert f"{token.divergence:.3f}" in shown


async def test_cancel_keeps_what_was_generated(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        panel = app.screen.query_one("#settings")
        panel.query_one("#pair").value = "tiny-long"
        panel.query_one("#max_tokens").value = "7000"
        await type_prompt(pilot, "hello")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.screen.showing and len(app.screen.showing.tokens) > 20)
        await pilot.press("escape")
        await wait_for(pilot, lambda: app.screen.running is None)
        await pilot.pause(0.1)
        t = app.screen.showing
        assert t.summary.finish_reason == "cancelled" and 20 < len(t.tokens) < 7000
        assert "cancelled" in stats(app)
        assert response_text(app) == visible(t.text)


async def test_the_daemon_going_away_and_coming_back(tiny_models_toml, daemon_address):
    notes = Notes()
    first = DaemonProcess(tiny_models_toml, daemon_address)
    app = TokintApp(daemon_address, autostart=False)
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await connected(pilot)
        await type_prompt(pilot, "hello")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.screen.showing and app.screen.showing.summary is not None)
        kept = response_text(app)
        first.stop()
        await wait_for(pilot, lambda: "disconnected" in app.screen.sub_title, timeout=10)
        assert notes.any("not answering")
        assert response_text(app) == kept  # what is on screen stays
        await pilot.press("ctrl+r")
        assert notes.any("not connected")
        second = DaemonProcess(tiny_models_toml, daemon_address)
        try:
            await wait_for(pilot, lambda: "connected ·" in app.screen.sub_title and app.link.connected, timeout=15)
            assert notes.any("back")
            await type_prompt(pilot, "hello again")
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.screen.showing.summary is not None and len(app.screen.conversation.turns) == 2)
            assert len(app.screen.query_one("#history").children) == 1  # the same conversation, continued
        finally:
            second.stop()


async def test_bad_settings_are_explained_and_nothing_runs(daemon):
    notes = Notes()
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await connected(pilot)
        app.screen.query_one("#settings").query_one("#threshold").value = "abc"
        await type_prompt(pilot, "hello")
        await pilot.press("ctrl+r")
        await pilot.pause(0.1)
        assert notes.any("threshold: not a number")
        assert app.screen.showing is None
        assert app.focused.id == "threshold"


async def test_history_reopens_and_exports(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        for prompt in ("first prompt", "second prompt"):
            await pilot.press("ctrl+n")  # each its own conversation
            await type_prompt(pilot, prompt)
            await pilot.press("ctrl+r")
            await wait_for(pilot, lambda: app.screen.running is None and app.screen.showing.user_text == prompt)
        first = app.screen.query_one("#history").children[0].conversation.last
        app.screen.query_one("#tabs", TabbedContent).active = "history-tab"
        history = app.screen.query_one("#history")
        history.focus()
        history.index = 0
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert app.screen.showing is first and response_text(app) == visible(first.text)
        await pilot.press("ctrl+s", "ctrl+o")
        await pilot.pause(0.1)
        saved = sorted((tokint_home / "exports").iterdir())
        assert [p.suffix for p in saved] == [".json", ".md"]
        body = json.loads(saved[0].read_text())
        [turn] = body["turns"]
        assert turn["request"]["messages"] == [{"role": "user", "content": "first prompt"}]
        assert len(turn["tokens"]) == len(first.tokens)
        assert "## Turn 1" in saved[1].read_text() and "### Response" in saved[1].read_text()


async def test_compare_runs_three_modes_side_by_side(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await connected(pilot)
        app.screen.query_one("#settings").query_one("#max_tokens").value = "30"
        await type_prompt(pilot, "hello")
        await pilot.press("f2")
        await pilot.pause(0.1)
        screen = app.screen
        assert type(screen).__name__ == "CompareScreen"
        await wait_for(pilot, lambda: all(t.summary for t in screen.transcripts.values()))
        await pilot.pause(0.1)
        for mode, t in screen.transcripts.items():
            view = screen.query_one(f"#response-{mode}", ResponseView)
            assert view.shown_text() == visible(t.text) and len(t.tokens) == 30
        assert screen.transcripts["intervene"].takeovers > 0
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert type(app.screen).__name__ == "MainScreen"


async def test_compare_runs_its_three_modes_at_once(daemon):
    from tokint_local.history import list_generations

    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await connected(pilot)
        app.screen.query_one("#settings").query_one("#max_tokens").value = "300"
        await type_prompt(pilot, "hello")
        await pilot.press("f2")
        screen = app.screen
        await wait_for(pilot, lambda: all(t.summary for t in screen.transcripts.values()))
        assert not any(t.state.startswith("queued") for t in screen.transcripts.values())
    deadline = time.monotonic() + 10  # the daemon records in batches
    while not (len(list_generations(10)) == 3 and all(r["ended"] for r in list_generations(10))):
        assert time.monotonic() < deadline
        time.sleep(0.05)
    runs = list_generations(10)
    # the pair's slots ran base, reasoning and intervene side by side: each started before any ended
    assert max(r["created"] for r in runs) < min(r["ended"] for r in runs)
    assert {r["mode"] for r in runs} == {"base", "reasoning", "intervene"}


async def test_starts_the_daemon_when_none_runs_and_says_so(tiny_models_toml, daemon_address, tokint_home):
    notes = Notes()
    app = TokintApp(daemon_address, models=str(tiny_models_toml), autostart=True)
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await connected(pilot)
        await wait_for(pilot, lambda: notes.any("started tokintd"))  # the notice is handled after the title changes
        select = app.screen.query_one("#settings").query_one("#pair")
        # The pair list arrives in its own reply after the connection is up.
        await wait_for(pilot, lambda: select.value != select.NULL)
        assert select.value == "tiny"


@pytest.mark.parametrize("width,height", [(80, 24), (160, 48)])
async def test_layout_fits_small_and_large_terminals(width, height):
    app = TokintApp(offline=True)
    async with app.run_test(size=(width, height)) as pilot:
        await pilot.pause()
        view = app.screen.query_one(ResponseView)
        prompt = app.screen.query_one("#prompt")
        assert view.size.height >= 5 and prompt.size.height >= 3
        assert view.region.right <= width and prompt.region.bottom <= height - 1


async def test_choosing_a_pair_fills_in_its_defaults(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        panel = app.screen.query_one("#settings")
        await wait_for(pilot, lambda: panel.query_one("#pair").value == "tiny")
        panel.query_one("#pair").value = "tiny-padded"  # defaults: max_tokens 7, threshold 0
        await pilot.pause(0.1)
        assert panel.query_one("#max_tokens").value == "7" and panel.query_one("#threshold").value == "0.0"
        assert "files present" in str(panel.query_one("#pair-files").content)


async def test_history_lists_what_the_daemon_recorded_before_the_app_started(daemon):
    from tokint_local.client import Client
    from tui.widgets.history import HistoryItem

    with Client(daemon.address) as c:
        earlier = list(c.generate("recorded before the app", max_tokens=12, mode="intervene", threshold=0.0, budget=3))
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        history = app.screen.query_one("#history")
        await wait_for(pilot, lambda: len(history.query(HistoryItem)) == 1)
        stored = history.query(HistoryItem).first().conversation.last
        assert stored.request.prompt == "recorded before the app" and stored.state == "done"
        assert stored.text == "".join(e.text for e in earlier if isinstance(e, TokenEvent))
        assert stored.takeovers == earlier[-1].n_takeovers == 3
        app.screen.query_one(TabbedContent).active = "history-tab"
        history.index = 0
        history.action_select_cursor()
        await pilot.pause(0.1)
        assert response_text(app) == visible(stored.text)
        assert "▌ recorded before the app" in app.screen.query_one(ResponseView).content_lines()[0]


async def test_a_control_gate_asks_for_a_threshold_of_its_own():
    """A pair's default threshold is a divergence: with a control gate it would fire anywhere (top1 < 1.0
    is almost every position), so the form empties the field, says what it needs, and refuses it empty."""
    from tokint_local.errors import InvalidParameter
    from tokint_local.status import ModelFile, PairListing

    files = ModelFile("x.gguf", "x.gguf", True)
    app = TokintApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        panel = app.screen.query_one("#settings")
        panel.set_pairs([PairListing("a", "", True, files, files, defaults={"threshold": 0.25}),
                         PairListing("b", "", False, files, files),
                         PairListing("c", "", False, files, files, defaults={"threshold": "inf"})], "a")
        await pilot.pause()
        threshold = panel.query_one("#threshold")
        assert threshold.value == "0.25" and panel.request("hi").threshold == 0.25
        panel.query_one("#gate").value = "top1"
        await pilot.pause()
        assert threshold.value == "" and threshold.placeholder == "needed"
        assert "top-1 prob." in str(panel.query_one("#threshold-label").content)
        with pytest.raises(InvalidParameter, match="threshold: the top1 gate needs one of its own"):
            panel.request("hi")
        await pilot.pause()
        assert app.focused is threshold
        panel.query_one("#pair").value = "b"  # another pair's defaults leave a control's threshold alone
        await pilot.pause()
        threshold.value = "0.6"
        panel.query_one("#pair").value = "a"
        await pilot.pause()
        request = panel.request("hi")
        assert (request.gate, request.threshold) == ("top1", 0.6)
        panel.query_one("#gate").value = "divergence"
        await pilot.pause()
        assert threshold.value == "0.25" and threshold.placeholder == ""
        threshold.value = "0.5"  # typed for the divergence gate: kept while a control is tried
        panel.query_one("#gate").value = "entropy"
        await pilot.pause()
        assert threshold.value == ""
        panel.query_one("#mode").value = "base"  # no takeovers: no threshold needed
        await pilot.pause()
        assert panel.request("hi").mode == "base"
        panel.query_one("#mode").value = "intervene"
        panel.query_one("#gate").value = "divergence"
        await pilot.pause()
        assert threshold.value == "0.5"
        panel.query_one("#pair").value = "b"
        await pilot.pause()
        threshold.value = ""  # empty, with the divergence gate: the pair's default (here tokint's)
        assert panel.request("hi").threshold == 1.0
        panel.query_one("#gate").value = "top1"
        await pilot.pause()
        panel.query_one("#pair").value = "c"  # its default threshold is infinity, written "inf" on the wire
        await pilot.pause()
        panel.query_one("#mode").value = "base"
        panel.query_one("#gate").value = "divergence"
        await pilot.pause()
        assert threshold.value == "inf"  # pair c's default, not what was shown for pair b before the control
        threshold.value = ""
        assert panel.request("hi").threshold == float("inf")
