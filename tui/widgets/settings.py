"""Generation settings: the system prompt, pair, thinking, mode, divergence, gate, threshold, budget,
temperature, max tokens, seed."""
from __future__ import annotations

import math
from typing import Optional

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Select

from tokint_local.divergence import DIVERGENCES
from tokint_local.errors import InvalidParameter
from tokint_local.events import DEFAULT_MAX_TOKENS, DEFAULT_THRESHOLD, MODES, GenerationRequest
from tokint_local.request import CONTROL_THRESHOLDS, with_pair_defaults
from tokint_local.gate import GATES
from tokint_local.status import PairListing

from ..plain import plain
from .prompt import PromptArea

# the threshold's meaning under each gate (request.CONTROL_THRESHOLDS, in a few words)
THRESHOLD_LABELS = {"divergence": "threshold (inf: never)", "entropy": "threshold (entropy, nats)",
                    "top1": "threshold (top-1 prob.)", "random": "threshold (probability)"}
NUMBER_FIELDS = ("threshold", "budget", "temperature", "max_tokens", "seed")
# the chat template's enable_thinking (Qwen3 and its kin): left to the model, or set for every turn
THINKING = {"model default": {}, "on": {"enable_thinking": True}, "off": {"enable_thinking": False}}


class SettingsPanel(VerticalScroll):
    """The form; ``request(prompt)`` or ``request(messages=...)`` turns it into a GenerationRequest or
    raises InvalidParameter naming the field (and the panel focuses that field)."""

    def compose(self):
        yield Label("system prompt")
        yield PromptArea(id="system", soft_wrap=True, compact=True, placeholder="none")
        yield Label("pair")
        yield Select([], prompt="(connecting…)", id="pair", compact=True, allow_blank=True)
        yield Label("", id="pair-files", classes="hint")
        yield Label("thinking (chat template)")
        yield Select([(k, k) for k in THINKING], value="model default", allow_blank=False, id="thinking", compact=True)
        yield Label("mode")
        yield Select([(m, m) for m in MODES], value="intervene", allow_blank=False, id="mode", compact=True)
        yield Label("divergence")
        yield Select([(d, d) for d in DIVERGENCES], value="kl", allow_blank=False, id="divergence", compact=True)
        yield Label("gate (takeover rule)")
        yield Select([(g, g) for g in GATES], value="divergence", allow_blank=False, id="gate", compact=True)
        yield Label(THRESHOLD_LABELS["divergence"], id="threshold-label")
        yield Input(str(DEFAULT_THRESHOLD), id="threshold", compact=True)
        yield Label("budget (empty: unlimited)")
        yield Input("", placeholder="unlimited", id="budget", compact=True)
        yield Label("temperature (0: greedy)")
        yield Input("0", id="temperature", compact=True)
        yield Label("max tokens")
        yield Input(str(DEFAULT_MAX_TOKENS), id="max_tokens", compact=True)
        yield Label("seed (empty: random)")
        yield Input("", placeholder="random", id="seed", compact=True)

    def set_pairs(self, pairs: list[PairListing], default: Optional[str]) -> None:
        """List ``pairs``; keep the one chosen, else select ``default``, else the first (models.toml may name no default)."""
        self._pairs = {p.name: p for p in pairs}
        select = self.query_one("#pair", Select)
        current = select.value if select.value in self._pairs else default
        if current not in self._pairs and pairs:
            current = pairs[0].name
        select.prompt = "choose a pair" if pairs else "no pairs in models.toml"
        select.set_options([(self._label(p), p.name) for p in pairs])
        if current in self._pairs:
            select.value = current
        self._show_files()
        self._apply_defaults()

    def disconnected(self) -> None:
        """No tokintd answers: the pair list says so, until set_pairs (the pairs, once it answers)."""
        select = self.query_one("#pair", Select)
        if not getattr(self, "_pairs", None):
            select.prompt = "(no tokintd)"

    @staticmethod
    def _label(p: PairListing) -> Text:
        ok = p.base.present and p.reasoning.present
        return plain(f"{p.name}{'' if ok else ' (files missing)'}")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "pair":
            self._show_files()
            self._apply_defaults()
        elif event.select.id == "gate":
            self._show_threshold()

    def _show_threshold(self) -> None:
        """The threshold for the gate chosen, in that gate's unit (CONTROL_THRESHOLDS): what was typed for
        it before, else for the divergence gate the pair's default, for a control nothing (it needs one
        of its own: a divergence there would fire almost anywhere)."""
        gate = self.query_one("#gate", Select).value
        field = self.query_one("#threshold", Input)
        typed = self.__dict__.setdefault("_typed", {})
        typed[getattr(self, "_gate", "divergence")] = field.value
        self._gate = gate
        self.query_one("#threshold-label", Label).update(THRESHOLD_LABELS[gate])
        field.placeholder = "needed" if gate in CONTROL_THRESHOLDS else ""
        default = "" if gate in CONTROL_THRESHOLDS else _shown(self._pair_defaults().get("threshold", DEFAULT_THRESHOLD))
        field.value = typed.get(gate, default)

    def _pair_defaults(self) -> dict:
        """The selected pair's defaults as request values (the wire writes infinity as "inf")."""
        pair = getattr(self, "_pairs", {}).get(self.query_one("#pair", Select).value)
        return {} if pair is None else {k: math.inf if v == "inf" else v for k, v in pair.defaults.items()}

    def _apply_defaults(self) -> None:
        """Put the selected pair's default settings (from models.toml) into the form; its threshold only
        with the divergence gate (a pair's default threshold is a divergence)."""
        control = self.query_one("#gate", Select).value in CONTROL_THRESHOLDS
        for key, value in self._pair_defaults().items():
            if key == "divergence":
                self.query_one("#divergence", Select).value = value
            elif key in NUMBER_FIELDS and not (key == "threshold" and control):
                self.query_one(f"#{key}", Input).value = _shown(value)
        if control:  # the divergence gate's threshold, when chosen again, is this pair's default
            self.__dict__.setdefault("_typed", {}).pop("divergence", None)

    def _show_files(self) -> None:
        pair = getattr(self, "_pairs", {}).get(self.query_one("#pair", Select).value)
        hint = self.query_one("#pair-files", Label)
        if pair is None:
            hint.update("")
            return
        missing = [f"{role}: {m.source}" for role, m in (("base", pair.base), ("reasoning", pair.reasoning)) if not m.present]
        hint.update(plain("files missing: " + "; ".join(missing) if missing else "files present" + (", loaded" if pair.loaded else "")))
        hint.set_class(bool(missing), "error")

    @property
    def system(self) -> str:
        return self.query_one("#system", PromptArea).text

    @system.setter
    def system(self, text: str) -> None:
        self.query_one("#system", PromptArea).text = text

    def request(self, prompt: Optional[str] = None, **overrides) -> GenerationRequest:
        """The form as a request for ``prompt``, or for ``messages=`` (a conversation) given among ``overrides``."""
        values = {name: self.query_one(f"#{name}", Input).value.strip() for name in NUMBER_FIELDS}
        pair = self.query_one("#pair", Select).value
        try:
            params = dict(
                prompt=None if "messages" in overrides else prompt,
                chat_template_kwargs=dict(THINKING[self.query_one("#thinking", Select).value]),
                pair=pair if isinstance(pair, str) else None,
                mode=self.query_one("#mode", Select).value,
                divergence=self.query_one("#divergence", Select).value,
                gate=self.query_one("#gate", Select).value,

                threshold=self._number("threshold", values["threshold"], float, empty=None),
                budget=self._number("budget", values["budget"], int, empty=None),
                temperature=self._number("temperature", values["temperature"], float),
                max_tokens=self._number("max_tokens", values["max_tokens"], int),
                seed=self._number("seed", values["seed"], int, empty=None),
            )
            params.update(overrides)
            if params["mode"] != "intervene":  # no takeovers: the gate and its threshold play no part
                params["gate"] = "divergence"
            if params["threshold"] is None:  # a control gate's empty threshold: refused, saying what it needs
                del params["threshold"]
                params = with_pair_defaults(self._pair_defaults(), params)
            return GenerationRequest(**params)
        except InvalidParameter as exc:
            field = str(exc).split(":", 1)[0]
            if field in NUMBER_FIELDS:
                self.query_one(f"#{field}", Input).focus()
            raise

    @staticmethod
    def _number(name: str, text: str, kind: type, empty: object = ...) -> object:
        if text == "" and empty is not ...:
            return empty
        try:
            value = kind(text)
        except ValueError:
            raise InvalidParameter(f"{name}: not a number (got {text!r})") from None
        if kind is float and math.isnan(value):
            raise InvalidParameter(f"{name}: must be a number, not NaN")
        return value


def _shown(value: object) -> str:
    """A number field's text for ``value``: empty for None, inf for infinity."""
    return "" if value is None else ("inf" if value == "inf" or value == float("inf") else str(value))
