"""Text is data in the TUI: whatever a prompt, a response, a pair name or an error message holds
(markup such as `[/quote]` or `[@click=app.quit]`, brackets, escape sequences), every widget and
screen shows those characters as text, the app stays alive, and no control character reaches the
terminal."""
import asyncio
import io

from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from rich.console import Console
from textual.widgets import Static, TabbedContent
from textual.widgets._toast import Toast

from conftest import DaemonProcess
from tokint_local.client import Client
from tokint_local.events import GenerationRequest, TokenEvent
from tokint_local.status import ModelFile, PairListing
from tui.app import TokintApp
from tui.link import DaemonLink
from tui.messages import TranscriptFinished, TranscriptUpdated
from tui.plain import visible
from tui.screens.compare import CompareScreen
from tui.transcript import Transcript
from tui.widgets.history import HistoryItem, HistoryList
from tui.widgets.inspector import TokenInspector
from tui.widgets.response import ResponseView
from tui.widgets.settings import SettingsPanel

from test_tui import connected, plain, wait_for

SIZE = (140, 48)
# what a terminal would act on; the app must show none of them as they are
CONTROLS = {chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0))} - {"\n"}
MARKUP_LIKE = [
    "[/quote]", "[/]", "[b]", "[bold red]", "[@click=app.quit]", "[@click=screen.run]", "[link=https://example.com]",
    "[link='x']", "[/link]", "[on red]", "[$accent]", "$accent", "[", "]", "[[", "]]", "\\[", "\\", "arr[i] = x[j]",
    "{}", "[b][i]x[/b][/i]", "\x1b]0;pwned\x07", "\x1b[2J", "\r", "\x9b31m", "\t", "é", " ",
]
markup_like = st.lists(
    st.one_of(st.sampled_from(MARKUP_LIKE), st.text(alphabet="[]/@=$\\ab {}#:'", min_size=1, max_size=8)),
    min_size=1, max_size=6,
).map("".join).filter(lambda s: s.strip())
FROM_BUG_REPORTS = ["[/quote]", "arr[i] = x[j]", "[@click=app.quit]click me[/]", "[link=https://x.test]here[/link]",
                    "[b][/i]", "\x1b]0;pwned\x07title\rover"]


def screen_text(app) -> str:
    """What the screen holds, as the terminal would be sent it (text only)."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def tokens_of(text: str) -> list[TokenEvent]:
    pieces = [text[i : i + 3] for i in range(0, len(text), 3)]
    return [TokenEvent(i, 5, piece, "reasoning" if i % 2 else "base", 1.5, 2.0, None, 0.01 * i,
                       top_k={"base": [(5, piece, 0.5)], "reasoning": [(6, text, 0.25)]}) for i, piece in enumerate(pieces)]


def wide(widget) -> str:
    """What a Static widget holds, rendered without wrapping (its own width would wrap long cells)."""
    console = Console(file=io.StringIO(), width=1000, color_system=None)
    with console.capture() as capture:
        console.print(widget.content)
    return capture.get()


def toasts(app) -> list[str]:
    return [toast.render().plain for toast in app.screen.query(Toast)]


async def main_screen_shows(texts: list[str]) -> None:
    app = TokintApp(offline=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        screen = app.screen
        history = screen.query_one(HistoryList)
        for text in texts:
            t = Transcript(GenerationRequest(prompt=text), tokens=tokens_of(text), state=text)
            history.add(t)
            screen.post_message(HistoryList.Open(t))  # as selecting it in the History tab does
            await pilot.pause()
            screen.query_one(TokenInspector).show(t.tokens[-1])
            pair = PairListing(text, text, False, ModelFile(text, None, False), ModelFile(text, None, True))
            screen.query_one(SettingsPanel).set_pairs([pair], text)
            failed = Transcript(GenerationRequest(prompt=text), error=text, state="failed")
            screen.post_message(TranscriptFinished(failed))  # a failure notification quotes the error
            app.notify(text, title=text)
            await pilot.pause()
            assert app.is_running
            label = history.query(HistoryItem).last().query_one(Static)
            assert plain(label) == visible(HistoryItem.describe(t))
            assert screen.query_one(ResponseView).shown_text() == visible(text)
            assert visible(text) in plain(screen.query_one("#stats"))
            assert screen.query_one("#prompt").text == text  # the editor keeps the text exactly
            inspector = wide(screen.query_one(TokenInspector))
            assert repr(t.tokens[-1].text) in inspector and repr(text) in inspector
            select = screen.query_one("#settings").query_one("#pair")
            assert select.value == text and plain(select.query_one("#label")) == visible(text) + " (files missing)"
            assert any(visible(text) in shown for shown in toasts(app))
            assert any(f"generation failed\n{visible(text)}" == shown for shown in toasts(app))
            assert not CONTROLS & set(screen_text(app))
        screen.query_one("#tabs", TabbedContent).active = "history-tab"
        await pilot.pause()
        assert app.is_running and not CONTROLS & set(screen_text(app))


async def compare_screen_shows(texts: list[str]) -> None:
    app = TokintApp(offline=True)
    async with app.run_test(size=SIZE, notifications=True) as pilot:
        # a daemon that is not there: each column fails at once, and says so
        link = DaemonLink("ipc:///nonexistent-tokint-test/d.sock", autostart=False)
        compare = CompareScreen(link, GenerationRequest(prompt=texts[0]))
        await app.push_screen(compare)
        await wait_for(pilot, lambda: all(t.error for t in compare.transcripts.values()))
        await pilot.pause()
        for mode, text in zip(compare.transcripts, texts * 3):
            t = compare.transcripts[mode]
            tokens = tokens_of(text)
            t.tokens.extend(tokens)
            compare.post_message(TranscriptUpdated(t, tokens))
            t.error = text
            compare.post_message(TranscriptFinished(t))
        await pilot.pause()
        assert app.is_running
        for mode, text in zip(compare.transcripts, texts * 3):
            assert compare.query_one(f"#response-{mode}", ResponseView).shown_text() == visible(text)
            assert any(f"{mode}: {visible(text)}" in shown for shown in toasts(app))
        assert not CONTROLS & set(screen_text(app))


@settings(max_examples=5, deadline=None, suppress_health_check=list(HealthCheck))
@given(st.lists(markup_like, min_size=2, max_size=4))
@example(FROM_BUG_REPORTS)
def test_markup_like_text_is_shown_as_text_on_every_screen(texts):
    asyncio.run(main_screen_shows(texts))
    asyncio.run(compare_screen_shows(texts))


async def test_a_recorded_prompt_holding_markup_does_not_stop_the_app(daemon):
    """A prompt with `[/quote]` in the daemon's history used to end tokint-tui with a MarkupError at start."""
    prompt = "[/quote] arr[i] = x[j] [@click=app.quit]click[/]"
    with Client(daemon.address) as c:
        list(c.generate(prompt, max_tokens=6))
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        history = app.screen.query_one("#history")
        await wait_for(pilot, lambda: len(history.query(HistoryItem)) == 1)
        app.screen.query_one("#tabs", TabbedContent).active = "history-tab"
        await pilot.pause()
        label = plain(history.query(HistoryItem).first().query_one(Static))
        assert label.startswith("[int] [/quote] arr[i] = x[") and label.endswith("· 6t done")
        await pilot.click(HistoryItem)  # plain text: nothing in it is a link that runs an action
        await pilot.pause(0.2)
        assert app.is_running and app.screen.query_one("#prompt").text == prompt


async def test_the_pair_selector_chooses_the_first_pair_when_models_toml_names_no_default(tmp_path, tiny_files, daemon_address):
    models = tmp_path / "no-default.toml"
    models.write_text("".join(
        f'[pairs.{name}]\nbase = {{ path = "{tiny_files["base"]}", n_ctx = 256, n_threads = 1 }}\n'
        f'reasoning = {{ path = "{tiny_files["reasoning"]}", n_ctx = 256, n_threads = 1 }}\n\n' for name in ("zeta", "alpha")))
    d = DaemonProcess(models, daemon_address)
    try:
        app = TokintApp(daemon_address, autostart=False)
        async with app.run_test(size=SIZE) as pilot:
            await connected(pilot)
            select = app.screen.query_one("#settings").query_one("#pair")
            await wait_for(pilot, lambda: select.value != select.NULL)
            assert select.value == "zeta" and plain(select.query_one("#label")) == "zeta"
            assert select.prompt == "choose a pair"
            await pilot.pause(0.1)
            assert "connecting" not in screen_text(app)
    finally:
        d.stop()
