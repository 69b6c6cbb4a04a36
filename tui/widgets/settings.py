"""Generation settings: pair, mode, divergence, threshold, budget, temperature, max tokens, seed."""
from __future__ import annotations

import math
from typing import Optional

from rich.text import Text
from textual.containers import VerticalScroll
from textual.widgets import Input, Label, Select

from tokint_local.divergence import DIVERGENCES
from tokint_local.errors import InvalidParameter
from tokint_local.events import DEFAULT_MAX_TOKENS, DEFAULT_THRESHOLD, MODES, GenerationRequest
from tokint_local.status import PairListing

from ..plain import plain

NUMBER_FIELDS = ("threshold", "budget", "temperature", "max_tokens", "seed")


class SettingsPanel(VerticalScroll):
    """The form; ``request(prompt)`` turns it into a GenerationRequest or raises InvalidParameter
    naming the field (and the panel focuses that field)."""

    def compose(self):
        yield Label("pair")
        yield Select([], prompt="(connecting…)", id="pair", compact=True, allow_blank=True)
        yield Label("", id="pair-files", classes="hint")
        yield Label("mode")
        yield Select([(m, m) for m in MODES], value="intervene", allow_blank=False, id="mode", compact=True)
        yield Label("divergence")
        yield Select([(d, d) for d in DIVERGENCES], value="kl", allow_blank=False, id="divergence", compact=True)
        yield Label("threshold (inf: never)")
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

    @staticmethod
    def _label(p: PairListing) -> Text:
        ok = p.base.present and p.reasoning.present
        return plain(f"{p.name}{'' if ok else ' (files missing)'}")

    def on_select_changed(self, event: Select.Changed) -> None:
        if event.select.id == "pair":
            self._show_files()
            self._apply_defaults()

    def _apply_defaults(self) -> None:
        """Put the selected pair's default settings (from models.toml) into the form."""
        pair = getattr(self, "_pairs", {}).get(self.query_one("#pair", Select).value)
        if pair is None:
            return
        for key, value in pair.defaults.items():
            if key == "divergence":
                self.query_one("#divergence", Select).value = value
            elif key in NUMBER_FIELDS:
                shown = "" if value is None else ("inf" if value == "inf" or value == float("inf") else str(value))
                self.query_one(f"#{key}", Input).value = shown

    def _show_files(self) -> None:
        pair = getattr(self, "_pairs", {}).get(self.query_one("#pair", Select).value)
        hint = self.query_one("#pair-files", Label)
        if pair is None:
            hint.update("")
            return
        missing = [f"{role}: {m.source}" for role, m in (("base", pair.base), ("reasoning", pair.reasoning)) if not m.present]
        hint.update(plain("files missing: " + "; ".join(missing) if missing else "files present" + (", loaded" if pair.loaded else "")))
        hint.set_class(bool(missing), "error")

    def request(self, prompt: str, **overrides) -> GenerationRequest:
        values = {name: self.query_one(f"#{name}", Input).value.strip() for name in NUMBER_FIELDS}
        pair = self.query_one("#pair", Select).value
        try:
            params = dict(
                prompt=prompt,
                pair=pair if isinstance(pair, str) else None,
                mode=self.query_one("#mode", Select).value,
                divergence=self.query_one("#divergence", Select).value,
                threshold=self._number("threshold", values["threshold"], float),
                budget=self._number("budget", values["budget"], int, empty=None),
                temperature=self._number("temperature", values["temperature"], float),
                max_tokens=self._number("max_tokens", values["max_tokens"], int),
                seed=self._number("seed", values["seed"], int, empty=None),
            )
            params.update(overrides)
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
