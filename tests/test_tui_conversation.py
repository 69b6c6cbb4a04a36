"""Conversations in tokint-tui: the real app under App.run_test() against a real tokintd on tiny
models. Each prompt continues the conversation on display; what each turn sends is read back from
the daemon's history."""
import json

import pytest
from textual.widgets import TabbedContent, TextArea

from conftest import DaemonProcess
from tokint_local.client import Client
from tokint_local.events import ChatMessage, TokenEvent
from tokint_local.history import list_generations, show_generation
from tui.app import TokintApp
from tui.conversation import conversation_of
from tui.plain import visible
from tui.screens.compare import CompareScreen
from tui.transcript import Transcript
from tui.widgets.history import HistoryItem
from tui.widgets.response import ResponseView

from test_tui import Notes, connected, plain, stats, type_prompt, wait_for

SIZE = (120, 50)
TOKENS = 12  # per turn: three turns and their strips fit on one screen


def screen_text(app) -> str:
    """What the screen shows, line by line, as the terminal is sent it."""
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


def user_turns(app) -> list[str]:
    """The user messages the conversation view shows, top to bottom."""
    return [line[2:].rstrip() for line in app.screen.query_one(ResponseView).content_lines() if line.startswith("▌ ")]


def short_turns(app, pair: str = "tiny") -> None:
    panel = app.screen.query_one("#settings")
    panel.query_one("#pair").value = pair
    panel.query_one("#max_tokens").value = str(TOKENS)


async def send(pilot, prompt: str) -> None:
    """Type ``prompt``, Ctrl+R, and wait for its turn to end."""
    await type_prompt(pilot, prompt)
    await pilot.press("ctrl+r")
    screen = pilot.app.screen
    await wait_for(pilot, lambda: screen.running is None and screen.showing is not None
                   and screen.showing.user_text == prompt and screen.showing.summary is not None)
    await pilot.pause(0.1)


async def recorded(pilot, home, n: int) -> list[dict]:
    """The daemon's first ``n`` recorded generations, oldest first, once all have ended."""
    path = home / "history.sqlite"

    await wait_for(pilot, lambda: path.exists() and sum(r["state"] == "done" for r in list_generations(50, path)) >= n)
    rows = sorted(list_generations(50, path), key=lambda r: r["created"])[:n]
    return [show_generation(r["id"], path) for r in rows]


def exchange(t) -> list[dict]:
    return [{"role": "user", "content": t.user_text}, {"role": "assistant", "content": t.text}]


async def test_three_turns_each_sending_the_turns_before(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        prompts = ["first question", "second [question] with [b]markup[/b]", "third question"]
        for prompt in prompts:
            await send(pilot, prompt)
            assert app.screen.query_one("#prompt", TextArea).text == ""  # sent: the box is free for the next
        turns = app.screen.conversation.turns
        assert [t.user_text for t in turns] == prompts and all(len(t.tokens) == TOKENS for t in turns)
        shown = screen_text(app)
        at = [shown.index(f"▌ {p}") for p in prompts]  # each user turn on screen, in order
        assert at == sorted(at)
        assert shown.count(f"── {TOKENS} tok · ") == 3  # each response with its own caption
        assert app.screen.query_one(ResponseView).shown_text() == "".join(visible(t.text) for t in turns)
        assert f"turn 3 · {TOKENS} tok" in stats(app)
        assert len(app.screen.query_one("#history").children) == 1
        records = await recorded(pilot, tokint_home, 3)
        for k, record in enumerate(records):
            before = [m for t in turns[:k] for m in exchange(t)]
            assert record["request"]["messages"] == before + [{"role": "user", "content": prompts[k]}]
            assert record["request"]["conversation_id"] == app.screen.conversation.id
            assert "".join(token["text"] for token in record["tokens"]) == turns[k].text


async def test_ctrl_n_starts_a_new_conversation(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        await send(pilot, "one")
        first = app.screen.conversation
        await pilot.press("ctrl+n")
        await pilot.pause(0.1)
        assert app.screen.conversation is not first and not app.screen.conversation.turns
        assert "▌ one" not in screen_text(app) and "Ctrl+N starts a new one" in screen_text(app)
        assert "ready" in stats(app)
        await send(pilot, "two")
        assert user_turns(app) == ["two"]
        one, two = await recorded(pilot, tokint_home, 2)
        assert two["request"]["messages"] == [{"role": "user", "content": "two"}]
        assert one["request"]["conversation_id"] == first.id != two["request"]["conversation_id"]
        assert len(app.screen.query_one("#history").children) == 2


async def test_edit_and_resend_the_last_prompt_then_reopen_and_continue(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        await send(pilot, "question one")
        await send(pilot, "question two")
        await pilot.press("f4")
        await pilot.pause(0.1)
        area = app.screen.query_one("#prompt", TextArea)
        assert area.text == "question two" and app.focused is area  # back in the box, ready to edit
        assert user_turns(app) == ["question one"] and len(app.screen.conversation.turns) == 1
        area.insert(", better")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.screen.running is None and app.screen.showing.user_text == "question two, better")
        await pilot.pause(0.1)
        first, second = app.screen.conversation.turns
        assert user_turns(app) == ["question one", "question two, better"]
        records = await recorded(pilot, tokint_home, 3)
        assert records[2]["request"]["messages"] == exchange(first) + [{"role": "user", "content": "question two, better"}]
        conversation_id = app.screen.conversation.id
    # a new session: the history holds the conversation as it was resent (the dropped turn replaced)
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        history = app.screen.query_one("#history")
        await wait_for(pilot, lambda: len(history.query(HistoryItem)) == 1)
        app.screen.query_one("#tabs", TabbedContent).active = "history-tab"
        history.focus()
        history.index = 0
        await pilot.press("enter")
        await pilot.pause(0.1)
        assert user_turns(app) == ["question one", "question two, better"]
        assert app.screen.query_one(ResponseView).shown_text() == visible(first.text) + visible(second.text)
        await send(pilot, "question three")
        records = await recorded(pilot, tokint_home, 4)
        assert records[3]["request"]["conversation_id"] == conversation_id
        assert records[3]["request"]["messages"] == exchange(first) + exchange(second) + [
            {"role": "user", "content": "question three"}]


async def test_the_system_prompt_reaches_every_turn(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        system = app.screen.query_one("#system", TextArea)
        system.text = "You are terse. [b]Really[/b]."
        await send(pilot, "hi")
        assert "┆ system: You are terse. [b]Really[/b]." in screen_text(app)
        await send(pilot, "again")
        system.text = ""
        await send(pilot, "no system now")
        assert "┆ system, from here on: (none)" in screen_text(app)
        one, two, three = await recorded(pilot, tokint_home, 3)
        turns = app.screen.conversation.turns
        assert one["request"]["messages"] == [{"role": "system", "content": "You are terse. [b]Really[/b]."},
                                              {"role": "user", "content": "hi"}]
        assert two["request"]["messages"][0] == {"role": "system", "content": "You are terse. [b]Really[/b]."}
        assert three["request"]["messages"] == exchange(turns[0]) + exchange(turns[1]) + [
            {"role": "user", "content": "no system now"}]


async def test_compare_continues_the_conversation_so_far_in_each_mode(daemon):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        await send(pilot, "first")
        first = app.screen.conversation.turns[0]
        await type_prompt(pilot, "next")
        await pilot.press("f2")
        compare = app.screen
        assert isinstance(compare, CompareScreen)
        await wait_for(pilot, lambda: all(t.summary for t in compare.transcripts.values()))
        await pilot.pause(0.1)
        history = (ChatMessage("user", "first"), ChatMessage("assistant", first.text))
        for mode, t in compare.transcripts.items():
            assert t.request.messages == history + (ChatMessage("user", "next"),) and t.request.mode == mode
            assert compare.query_one(f"#response-{mode}", ResponseView).shown_text() == visible(t.text)
        assert "after 1 earlier turn: next" in screen_text(app)
        assert compare.transcripts["intervene"].takeovers > 0
        await pilot.press("escape")
        await pilot.pause(0.1)
        assert len(app.screen.conversation.turns) == 1  # comparing adds no turn
        assert app.screen.query_one("#prompt", TextArea).text == "next"
        await type_prompt(pilot, "")
        await pilot.press("f2")  # nothing typed: the last prompt again, on the turns before it
        compare = app.screen
        await wait_for(pilot, lambda: all(t.summary for t in compare.transcripts.values()))
        assert all(t.request.messages == (ChatMessage("user", "first"),) for t in compare.transcripts.values())
        assert "the same prompt in each mode" in compare.sub_title


async def test_exports_hold_every_turn(daemon, tokint_home):
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        short_turns(app)
        await send(pilot, "alpha prompt")
        await send(pilot, "beta prompt")
        await pilot.press("ctrl+s", "ctrl+o")
        await pilot.pause(0.1)
        json_file, md_file = sorted((tokint_home / "exports").iterdir())
        body = json.loads(json_file.read_text())
        turns = app.screen.conversation.turns
        assert body["format"] == "tokint-conversation" and body["id"] == app.screen.conversation.id and len(body["turns"]) == 2
        assert body["messages"] == exchange(turns[0]) + exchange(turns[1])
        assert [(t["user"], t["response"]) for t in body["turns"]] == [(t.user_text, t.text) for t in turns]
        try:  # tokint chat's /load reads it (tokint_local.conversation comes with the conversations branch)
            from tokint_local.conversation import Conversation as Saved
        except ImportError:
            Saved = None
        if Saved is not None:
            loaded = Saved.load(json_file)
            assert loaded.id == body["id"] and [m.to_wire() for m in loaded.messages()] == body["messages"]
        assert body["turns"][1]["request"]["messages"] == exchange(turns[0]) + [{"role": "user", "content": "beta prompt"}]
        assert ["".join(t["text"] for t in turn["tokens"]) for turn in body["turns"]] == [t.text for t in turns]
        markdown = md_file.read_text()
        one, two = markdown.index("## Turn 1"), markdown.index("## Turn 2")
        assert one < markdown.index("### You\n\nalpha prompt") < two < markdown.index("### You\n\nbeta prompt")


async def test_a_turn_that_fails_before_its_first_token_gives_the_prompt_back(daemon):
    notes = Notes()
    app = TokintApp(daemon.address, autostart=False)
    async with app.run_test(size=SIZE, message_hook=notes) as pilot:
        await connected(pilot)
        short_turns(app)
        await send(pilot, "this one works")
        short_turns(app, pair="tiny-mismatch")  # two vocabularies: the daemon refuses the pair
        await type_prompt(pilot, "this one cannot run")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.screen.running is None and notes.any("prompt is back"))
        assert app.screen.query_one("#prompt", TextArea).text == "this one cannot run"
        assert user_turns(app) == ["this one works"] and len(app.screen.conversation.turns) == 1


async def test_a_conversation_rebuilt_from_part_of_the_history_shows_earlier_turns_as_text(daemon, tokint_home):
    """The app reads the recent generations only: a turn whose own record was not read is taken, as
    text, from the request of a later turn."""
    with Client(daemon.address) as c:
        messages, texts = [], []
        for prompt in ("one", "two", "three"):
            messages.append({"role": "user", "content": prompt})
            events = list(c.chat(messages, max_tokens=TOKENS, conversation_id="conv-x"))
            texts.append("".join(e.text for e in events if isinstance(e, TokenEvent)))
            messages.append({"role": "assistant", "content": texts[-1]})
    path = tokint_home / "history.sqlite"
    records = sorted(list_generations(10, path), key=lambda r: r["created"])
    later = [Transcript.from_record(show_generation(r["id"], path)) for r in records[1:]]
    conversation = conversation_of(later)
    assert conversation.id == "conv-x" and [t.user_text for t in conversation.turns] == ["one", "two", "three"]
    assert [t.text for t in conversation.turns] == texts
    assert conversation.turns[0].reply_text == texts[0] and not conversation.turns[0].tokens
    app = TokintApp(offline=True)
    async with app.run_test(size=SIZE) as pilot:
        app.screen.open(conversation)
        await pilot.pause()
        lines = app.screen.query_one(ResponseView).content_lines()
        assert user_turns(app) == ["one", "two", "three"]
        assert any("its text alone" in line for line in lines)
        assert sum(line.startswith(f"── {TOKENS} tok") for line in lines) == 2


@pytest.fixture
def thinking_daemon(tmp_path, daemon_address):
    """A tokintd on a scripted pair whose template thinks as Qwen3's does (tests/test_thinking.py): to
    "hi" it writes <think>hm</think>, two newlines, OK; the reasoning model takes over h and K."""
    if not hasattr(TokenEvent, "channel"):
        pytest.skip("token events carry no channel yet (the conversations branch adds it)")
    from gguf_factory import write_scripted_pair
    from test_thinking import BASE_SCRIPT, QWEN3_LIKE, REASONING_SCRIPT

    base, reasoning = write_scripted_pair(tmp_path / "thinking", BASE_SCRIPT, REASONING_SCRIPT, QWEN3_LIKE, "qwen3like")
    models = tmp_path / "thinking.toml"
    models.write_text(f'default_pair = "qwen3like"\n\n[pairs.qwen3like]\n'
                      f'base = {{ path = "{base}", n_ctx = 256, n_threads = 1 }}\n'
                      f'reasoning = {{ path = "{reasoning}", n_ctx = 256, n_threads = 1 }}\n')
    d = DaemonProcess(models, daemon_address)
    yield d
    d.stop()


def styles_of(app, text: str) -> list:
    """The styles of the screen's segments whose text is ``text``."""
    return [segment.style for strip in app.screen._compositor.render_strips() for segment in strip if segment.text == text]


async def test_thinking_is_dimmed_and_folded_apart_from_the_answer(thinking_daemon, tokint_home):
    app = TokintApp(thinking_daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        panel = app.screen.query_one("#settings")
        await wait_for(pilot, lambda: panel.query_one("#pair").value == "qwen3like")
        panel.query_one("#max_tokens").value = "20"
        await send(pilot, "hi")
        view = app.screen.query_one(ResponseView)
        first = app.screen.showing
        assert [t.channel for t in first.tokens] == ["thinking"] * 4 + ["answer"] * 4
        # folded: one line for the segment, the answer on its own
        assert "▸ thinking · 4 tokens · 1 takeover  (F5 or click: unfold)" in screen_text(app)
        assert view.shown_text() == "OK" and "hm" not in screen_text(app)
        assert "2/∞ takeovers (1 in thinking)" in stats(app)
        await pilot.press("f5")
        await pilot.pause()
        assert "▾ thinking · 4 tokens · 1 takeover" in screen_text(app)
        assert view.shown_text() == "<think>hm</think>OK"  # the answer still on a line of its own
        [m] = styles_of(app, "m")
        assert m.italic and m.color.triplet.hex == "#8a8a8a"  # dimmed
        [h] = styles_of(app, "h")
        assert h.bold and h.bgcolor is not None  # a takeover inside thinking still stands out
        fold = view.content_lines().index(next(line for line in view.content_lines() if line.startswith("▾ thinking")))
        await pilot.click(ResponseView, offset=(4, 1 + fold - view._top()))  # the line is a toggle
        await pilot.pause()
        assert "▸ thinking" in screen_text(app) and "hm" not in screen_text(app)
        # the inspector reaches a takeover inside folded thinking by unfolding it
        await pilot.press("ctrl+g", "home", "left_square_bracket")
        await pilot.pause()
        assert view.tokens[view.cursor].text == "h" and "▾ thinking" in screen_text(app)
        inspector = " ".join(plain(app.screen.query_one("#inspector")).split())
        assert "channel thinking" in inspector and "source reasoning" in inspector
        await pilot.press("f5")  # fold all again
        # the next turn sends the first response whole; the template keeps its thinking out
        await send(pilot, "again")
        assert screen_text(app).count("▸ thinking · 4 tokens") == 2
        # thinking switched off in the form: the template closes the segment, the response has none
        panel.query_one("#thinking").value = "off"
        await send(pilot, "no thinking")
        assert all(t.channel == "answer" for t in app.screen.showing.tokens)
        assert screen_text(app).count("thinking · 4 tokens") == 2
        one, two, three = await recorded(pilot, tokint_home, 3)
        assert two["request"]["messages"][1] == {"role": "assistant", "content": "<think>hm</think>\n\nOK"}
        assert one["request"]["chat_template_kwargs"] == {} and three["request"]["chat_template_kwargs"] == {"enable_thinking": False}
        await pilot.press("ctrl+s")
        await pilot.pause(0.1)
        [markdown] = (tokint_home / "exports").iterdir()
        assert "> *thinking (4 tokens)*\n>\n> <think>**h**m</think>\n\nO**K**" in markdown.read_text()
    # reopened from the history, the turns keep their channels: thinking folded again
    app = TokintApp(thinking_daemon.address, autostart=False)
    async with app.run_test(size=SIZE) as pilot:
        await connected(pilot)
        history = app.screen.query_one("#history")
        await wait_for(pilot, lambda: len(history.query(HistoryItem)) == 1)
        history.index = 0
        history.action_select_cursor()
        await pilot.pause(0.1)
        assert user_turns(app) == ["hi", "again", "no thinking"]
        assert screen_text(app).count("▸ thinking · 4 tokens · 1 takeover") == 2
