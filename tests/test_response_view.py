"""The response view's incremental word wrapping and cursor, on synthetic tokens."""
from textual.app import App

from tokint_local.events import TokenEvent
from tui.widgets.response import ResponseView, visible


def tokens(texts, takeovers=()):
    return [TokenEvent(i, i, t, "reasoning" if i in takeovers else "base", 0.5, 1.0, None, 0.01 * i)
            for i, t in enumerate(texts)]


class ViewApp(App):
    def compose(self):
        yield ResponseView(id="view")


def line_texts(view):
    return [strip.text.rstrip() for strip in (view.render_line(y) for y in range(view.size.height))]


async def test_wraps_at_word_boundaries_and_keeps_every_character():
    words = ["The", " quick", " brown", " fox", " jumps", " over", " the", " lazy", " dog.", "\n", "New", " line", " here"]
    app = ViewApp()
    async with app.run_test(size=(24, 12)) as pilot:
        view = app.query_one(ResponseView)
        view.show([], True)
        for i in range(0, len(words), 3):  # streamed in batches, as the app does
            view.append(tokens(words)[i:i + 3])
        await pilot.pause()
        assert view.shown_text() == "".join(words)
        lines = line_texts(view)
        assert all(len(l) <= view.scrollable_content_region.width for l in lines)
        assert "dog." in " ".join(lines) and lines[lines.index("New line here")] == "New line here"
        for l in lines:
            assert not l.startswith(("uick", "rown", "umps"))  # no word cut in two


async def test_streaming_and_rewrapping_give_the_same_lines():
    text = ["Some", " tokens", " that", " wrap", " across", " several", " lines", " of", " a", " narrow", " view", "."] * 5
    app = ViewApp()
    async with app.run_test(size=(30, 40)) as pilot:
        view = app.query_one(ResponseView)
        view.show([], True)
        for t in tokens(text):
            view.append([t])
        await pilot.pause()
        streamed = line_texts(view)
        view.show(view.tokens, True)  # wrapped in one go
        await pilot.pause()
        assert line_texts(view) == streamed


async def test_control_characters_and_empty_tokens_show_visibly():
    app = ViewApp()
    async with app.run_test(size=(40, 6)) as pilot:
        view = app.query_one(ResponseView)
        view.show(tokens(["a\x08b", "", "c"]), True)
        await pilot.pause()
        assert view.shown_text() == visible("a\x08b") + "c" and "␈" in view.shown_text()
        view.set_cursor(1)
        await pilot.pause()
        assert "⟨∅⟩" in line_texts(view)[0]


async def test_cursor_jumps_between_takeovers_and_follows_the_view():
    words = [f" w{i}" for i in range(300)]
    app = ViewApp()
    async with app.run_test(size=(20, 8)) as pilot:
        view = app.query_one(ResponseView)
        view.show(tokens(words, takeovers={5, 250}), True)
        view.focus()
        await pilot.press("right_square_bracket")
        assert view.cursor == 5
        await pilot.press("right_square_bracket")
        assert view.cursor == 250
        line = view._layout.token_lines[250][0]
        assert view.scroll_y <= line < view.scroll_y + view.size.height  # scrolled to it
        await pilot.press("right_square_bracket")
        assert view.cursor == 5  # wraps around
        await pilot.press("left")
        assert view.cursor == 4


class ConversationApp(App):
    def compose(self):
        yield ResponseView(id="view", conversation=True)


async def test_a_turn_reopened_while_it_streams_gets_no_token_twice():
    from tokint_local.events import GenerationRequest
    from tui.transcript import Transcript

    words = [f" w{i}" for i in range(12)]
    running = Transcript(GenerationRequest(messages=[{"role": "user", "content": "go"}]), tokens=tokens(words)[:8])
    app = ConversationApp()
    async with app.run_test(size=(40, 20)) as pilot:
        view = app.query_one(ResponseView)
        view.show_conversation([running])  # reopened: 8 tokens so far, of which 5..7 are still in a message in flight
        view.append(tokens(words)[5:])
        await pilot.pause()
        assert view.shown_text() == "".join(words) and len(view.tokens) == 12
