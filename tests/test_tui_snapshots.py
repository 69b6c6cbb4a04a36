"""Snapshots of the TUI (pytest-textual-snapshot): idle, mid-stream with takeovers, inspector open.

The app runs offline and is shown a fixed transcript, so the pictures do not depend on timing.
Update them with `pytest tests/test_tui_snapshots.py --snapshot-update` after a deliberate change.
"""
from tokint_local.events import GenerationRequest, TokenEvent
from tui.app import TokintApp
from tui.conversation import Conversation
from tui.transcript import Transcript

WORDS = ("First, we need to check the input. So the function loops over each number and keeps "
         "the largest one seen so far. Then it returns that value.").split(" ")
TAKEN = {0, 3, 12, 20}


def fixed_transcript(n: int) -> Transcript:
    request = GenerationRequest(prompt="Write a function that returns the largest number in a list.", threshold=1.0, budget=8)
    t = Transcript(request, id="0123456789abcdef", state="running")
    for i, word in enumerate(WORDS[:n]):
        div = 2.5 if i in TAKEN else round(0.05 + (i % 7) * 0.12, 2)
        top = {"base": [(100 + i, word, 0.42), (200 + i, " the", 0.21), (300 + i, " a", 0.1)],
               "reasoning": [(400 + i, word.upper(), 0.61), (100 + i, word, 0.2), (500 + i, " so", 0.05)]}
        t.tokens.append(TokenEvent(position=i, token_id=100 + i, text=(" " if i else "") + word,
                                   source="reasoning" if i in TAKEN else "base", divergence=div,
                                   base_entropy=1.0 + (i % 5) * 0.3, budget_left=8 - sum(p <= i for p in TAKEN),
                                   t=0.05 * (i + 1), top_k=top))
    return t


def show(n):
    async def run_before(pilot):
        screen = pilot.app.screen
        screen.query_one("#prompt").text = "Write a function that returns the largest number in a list."
        conversation = Conversation(turns=[fixed_transcript(n)])
        screen.query_one("#history").add(conversation)
        screen.open(conversation)
        await pilot.pause()

    return run_before


def test_main_screen_idle(snap_compare):
    assert snap_compare(TokintApp(offline=True), terminal_size=(80, 24))


def test_mid_stream_with_takeovers_highlighted(snap_compare):
    assert snap_compare(TokintApp(offline=True), terminal_size=(100, 30), run_before=show(24))


def test_inspector_open(snap_compare):
    async def run_before(pilot):
        await show(24)(pilot)
        await pilot.press("ctrl+g", "home", "right_square_bracket", "right_square_bracket")
        await pilot.pause()

    assert snap_compare(TokintApp(offline=True), terminal_size=(100, 30), run_before=run_before)
