"""Token bytes become whole characters; stop strings are caught across tokens."""
from tokint_local.textstream import StopHold, Utf8Stream


def test_multibyte_characters_split_across_tokens_come_out_whole():
    stream = Utf8Stream()
    data = "é漢🙂".encode()
    pieces = [data[i : i + 1] for i in range(len(data))]
    texts = [stream.feed(p) for p in pieces]
    assert "".join(texts) == "é漢🙂"
    assert texts[0] == "" and texts[1] == "é"
    assert stream.flush() == ""


def test_invalid_bytes_become_replacement_characters():
    stream = Utf8Stream()
    assert stream.feed(b"\xffa") == "\ufffda"


def test_stop_string_across_tokens_is_cut_and_held_text_released():
    hold = StopHold(["</end>"])
    out = []
    for i, t in enumerate(["Hello", " </", "x", " </e", "nd> tail"]):
        released, stopped = hold.push(i, t)
        out.extend(released)
        if stopped:
            break
    assert stopped
    assert "".join(t for _, t in out) == "Hello </x "
    assert [i for i, _ in out] == [0, 1, 2, 3]


def test_without_stop_strings_everything_passes_and_drain_releases_the_rest():
    assert StopHold([]).push("a", "text") == ([("a", "text")], False)
    hold = StopHold(["STOP"])
    released, _ = hold.push(0, "abc ST")
    assert released == []  # "ST" might begin STOP
    assert hold.drain() == [(0, "abc ST")]
