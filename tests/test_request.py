"""Generation requests: validation with the field named, and the wire round trip."""
import math

import pytest

from tokint_local.errors import InvalidParameter
from tokint_local.events import GenerationRequest, Summary, TokenEvent


def test_defaults_and_round_trip_through_the_wire():
    req = GenerationRequest(prompt="hi", threshold=2, stop=["\n\n"], budget=4, seed=3)
    assert req.threshold == 2.0 and req.stop == ("\n\n",) and req.budget == 4
    assert GenerationRequest.from_wire(req.to_wire()) == req
    assert GenerationRequest(prompt="hi").budget is None  # unlimited by default


def test_unknown_wire_fields_are_ignored():
    body = GenerationRequest(prompt="hi").to_wire()
    body["from_the_future"] = 1
    assert GenerationRequest.from_wire(body).prompt == "hi"


@pytest.mark.parametrize(
    "field,value",
    [
        ("threshold", math.nan), ("threshold", -0.1), ("threshold", "1"), ("budget", -1), ("budget", 1.5),
        ("budget", True), ("max_tokens", 0), ("temperature", -1.0), ("temperature", math.inf), ("top_p", 0.0),
        ("top_p", 1.5), ("top_k", -1), ("seed", -5), ("mode", "both"), ("divergence", "hellinger"),
        ("stop", [""]), ("stop", "x"), ("raw", "yes"), ("prompt", 5), ("max_position", -1), ("schedule", "fast"),
        ("return_top", 21), ("return_top", -1),
    ],
)
def test_bad_fields_are_named(field, value):
    body = {"prompt": "hi", field: value}
    with pytest.raises(InvalidParameter, match=f"^{field}"):
        GenerationRequest.from_wire(body)


def test_missing_prompt_and_non_map_bodies():
    with pytest.raises(InvalidParameter, match="prompt: missing"):
        GenerationRequest.from_wire({})
    with pytest.raises(InvalidParameter):
        GenerationRequest.from_wire(["prompt"])


def test_infinite_threshold_is_allowed():
    assert GenerationRequest(prompt="x", threshold=math.inf).threshold == math.inf


def test_events_round_trip():
    ev = TokenEvent(position=2, token_id=7, text="é", source="reasoning", divergence=1.5, base_entropy=0.2, budget_left=3, t=0.25)
    assert TokenEvent.from_wire(ev.to_wire()) == ev and ev.to_wire()["type"] == "token"
    assert "top_k" not in ev.to_wire()  # opt-in: absent unless asked for
    top = TokenEvent(2, 7, "é", "base", None, 0.2, None, 0.25, top_k={"base": [(7, "é", 0.5), (3, "a", 0.25)]})
    assert TokenEvent.from_wire(top.to_wire()) == top
    s = Summary(n_tokens=3, n_takeovers=1, takeover_positions=(2,), finish_reason="stop", tokens_per_second=9.0, elapsed_s=0.3)
    assert Summary.from_wire(s.to_wire()) == s and s.to_wire()["type"] == "summary"
