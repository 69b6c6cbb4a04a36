"""Reading the final numeric answer out of a math response, and comparing numbers exactly.

Where the answer is (the first of these found):

1. the last ``\\boxed{...}`` (braces nested to any depth; ``\\fbox`` too); inside it, what follows
   the last ``=``;
2. what follows the last ``####`` (GSM8K's own marker);
3. what follows the last "answer is", "answer:" or "answer =" (any case);
4. the whole response.

In 1-3 the first number there is the answer, in 4 the last number. A number may be written with
thousands separators (``1,000``, ``1{,}000``, ``1\\,000``), a sign, decimals (``18.00``), as a fraction
(``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``) or a mixed number (``2\\frac{1}{2}``), with currency signs,
percent signs, degree signs and units around it, and a trailing period.

Numbers compare exactly, as rationals (``Fraction``): ``18.00`` is 18, ``0.5`` is ``1/2``. A decimal of at
least two places also matches an answer no decimal states exactly when it is that answer rounded
or cut to its places (``0.33``, ``0.333``, ``0.67``, ``0.66`` for ``1/3`` and ``2/3``); an answer a decimal
can state (18, 2.5, 0.125) must be matched exactly.

"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional

_INTEGER = r"\d{1,3}(?:,\d{3})+|\d+"
_DECIMAL = rf"(?:{_INTEGER})(?:\.\d+)?|\.\d+"
# a number: sign, a mixed number or a fraction, else a decimal
_NUMBER = re.compile(
    rf"(?<![\w.])(?P<sign>[-+]?)\s*(?:"
    rf"(?P<whole>{_INTEGER})\s+(?P<mnum>\d+)\s*/\s*(?P<mden>\d+)(?!\.?\d|\s*/)"  # 2 1/2 (a mixed number)
    rf"|(?P<num>{_DECIMAL})\s*/\s*(?P<den>{_DECIMAL})(?!\.?\d|\s*/)"  # 3/4, 1.5/2
    rf"|(?P<dec>{_DECIMAL}))"
)
_MARKERS = (
    re.compile(r"####"),
    re.compile(r"\banswer\s*(?:is\b|:|=)", re.I),
)
_FRAC = re.compile(r"\\[dt]?frac\s*(?:\{([^{}]*)\}|(\d))\s*(?:\{([^{}]*)\}|(\d))")
_TEXT = re.compile(r"\\(?:text|textbf|mathrm|mbox|textrm|operatorname)\s*\{([^{}]*)\}")


def boxed(response: str) -> Optional[str]:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``), nested braces kept; None if none."""
    found = None
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{", response):
        depth, i = 1, m.end()
        while i < len(response) and depth:
            depth += {"{": 1, "}": -1}.get(response[i], 0)
            i += 1
        if depth == 0:
            found = response[m.end() : i - 1]
    return found


def answer_span(response: str) -> tuple[str, bool]:
    """The part of ``response`` that holds the final answer, and whether it was marked (boxed, ####,
    "the answer is") rather than the whole response."""
    box = boxed(response)
    if box is not None:
        return box.rsplit("=", 1)[-1], True
    for marker in _MARKERS:
        hits = list(marker.finditer(response))
        if hits:
            rest = response[hits[-1].end():].strip()
            return (rest.splitlines()[0] if rest else "").rsplit("=", 1)[-1], True
    return response, False


def normalize(text: str) -> str:
    """LaTeX and typography that hide a number, turned into plain text: fractions become a/b,
    thin spaces and ``{,}`` go, ``\\text{...}`` keeps its words, the Unicode minus becomes '-'."""
    text = text.replace("\\left", "").replace("\\right", "").replace("{,}", ",")
    text = re.sub(r"\\[,!;: ]", "", text)  # LaTeX spacing inside a number: 1\,000
    text = _TEXT.sub(r" \1 ", text)
    for _ in range(3):  # nested \frac, innermost first
        text = _FRAC.sub(lambda m: f" ({m.group(1) or m.group(2)})/({m.group(3) or m.group(4)}) ", text)
    text = re.sub(r"(\d)\s*\(\s*(\d+)\s*\)/\(\s*(\d+)\s*\)", r"\1 \2/\3", text)  # 2\frac{1}{2}: a mixed number
    text = re.sub(r"\(\s*([-+]?[\d.,]+)\s*\)", r"\1", text)  # the parentheses a fraction left around a number
    text = text.replace("\u2212", "-").replace("\u2013", "-")
    return text


def parse_numbers(text: str) -> list[Fraction]:
    """Every number in ``text`` (after ``normalize``), in order, as exact rationals."""
    return [value for value, _ in _numbers(text)]


def _numbers(text: str) -> list[tuple[Fraction, int]]:
    """Every number in ``text`` and the decimal places it was written with (0: an integer or fraction)."""
    out = []
    for m in _NUMBER.finditer(normalize(text)):
        sign = -1 if m.group("sign") == "-" else 1
        places = 0
        try:
            if m.group("whole") is not None:
                value = Fraction(_plain(m.group("whole"))) + Fraction(int(m.group("mnum")), int(m.group("mden")))
            elif m.group("num") is not None:
                value = Fraction(_plain(m.group("num"))) / Fraction(_plain(m.group("den")))
            else:
                value = Fraction(_plain(m.group("dec")))
                places = len(m.group("dec").partition(".")[2])
        except (ValueError, ZeroDivisionError):
            continue
        out.append((sign * value, places))
    return out


def _plain(number: str) -> str:
    return number.replace(",", "")


def _final(response: str) -> Optional[tuple[Fraction, int]]:
    span, marked = answer_span(response)
    numbers = _numbers(span)
    if numbers:
        return numbers[0] if marked else numbers[-1]
    if marked:  # a marker with no number after it ("the answer is below"): the response's last number
        numbers = _numbers(response)
        return numbers[-1] if numbers else None
    return None


def extract_number(response: str) -> Optional[Fraction]:
    """The final numeric answer of ``response`` (see the module docstring), or None."""
    final = _final(response)
    return None if final is None else final[0]


def same_number(got: Fraction, want: Fraction, got_places: int = 0) -> bool:
    """Whether ``got`` states ``want``: exactly, or, for an answer no decimal states exactly (1/3),
    as a decimal of at least two places that is ``want`` rounded or cut to those places."""
    if got == want:
        return True
    if got_places < 2 or _terminates(want):
        return False
    unit = Fraction(1, 10**got_places)
    cut = Fraction(int(want / unit), 1) * unit  # toward zero
    return abs(got - want) <= unit / 2 or got == cut


def _terminates(value: Fraction) -> bool:
    """Whether a decimal states ``value`` exactly (its denominator has no prime factor but 2 and 5)."""
    d = value.denominator
    for p in (2, 5):
        while d % p == 0:
            d //= p
    return d == 1


def check_numeric(response: str, answer: str) -> tuple[bool, str]:
    """Whether ``response``'s final answer is the number ``answer``; and, when not, what it answered."""
    wanted = parse_numbers(answer)
    if not wanted:
        return False, f"the item's answer {answer!r} is not a number"
    final = _final(response)
    if final is None:
        return False, "no number in the answer"
    ok = same_number(final[0], wanted[0], final[1])
    return ok, "" if ok else f"answered {_show(final[0])}"



def _show(value: Fraction) -> str:
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"
