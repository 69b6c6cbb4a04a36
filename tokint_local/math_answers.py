"""Reading the final numeric answer out of a math response, and comparing numbers exactly.

Where the answer is (the first of these found):

1. the last ``\\boxed{...}`` (braces nested to any depth; ``\\fbox`` too); inside it, what follows
   the last ``=``. A box must hold one number, with units, currency, percent or degree signs and
   words around it at most: a box with two numbers (``5 \\text{ or } 7``, ``(2, 3)``, ``10-12``) or
   with anything that makes it more than a number (``2\\sqrt{3}``, ``3\\pi``, ``x \\neq 5``), algebra
   (``x - 8``, ``2x``), a bound or a guess (``\\text{at least } 18``, ``18 \\text{ or more}``, ``not 18``)
   states no answer this checker can read, and fails; so does a last box the response ends inside
   (``\\boxed{18`` cut off by the length limit: it may have been 180);
2. what follows the last ``####`` (GSM8K's own marker);
3. what follows the last "answer is", "answer:" or "answer =" (any case). A bound there instead of a
   number ("at least 18", "more than 18", "up to 18", "< 18", "18 or so", "18+"), or algebra ("x - 8"),
   states no answer, and fails; after
   "the answer is not 18" the answer is the last number that follows the 18 (none: it fails);
4. the whole response.

In 2-3 the first number there is the answer (it must not be part of a root or a multiple of pi), in
4 the last number; where 1-3 hold no number (an empty box, "the answer is below") the response's last
number is. A number may be written with thousands separators (``1,000``, ``1{,}000``, ``1\\,000``, the
Indian ``1,00,000``; spaces, ``18 000``, in a box or after a marker only, where one number is expected; there a
time on the hour, ``2:00 PM``, is its hour, as GSM8K's answers to "what time" are), a
sign, decimals (``18.00``), in scientific notation (``1.5e3``, ``1.5 \\times 10^3``), as a power
(``2^{10}``, ``5²``), as a fraction (``3/4``, ``\\frac{3}{4}``, ``\\dfrac34``, ``½``, nested fractions) or a
mixed number (``2\\frac{1}{2}``), with currency signs (``-\\$5`` is -5), percent signs, degree signs and
units around it, a scale word (``18 hundred``, ``$18k``, ``1.5 million``, ``$1.5M``), and a trailing period. Powers, products of two numbers (``\\times``, ``\\cdot``, ``*``) and
fractions are worked out exactly; a number of more than 4,000 digits is not read (an answer that needs
one fails).

Numbers compare exactly, as rationals (``Fraction``): ``18.00`` is 18, ``0.5`` is ``1/2``. A decimal of at
least two places also matches an answer no decimal states exactly when it is that answer rounded
or cut to its places (``0.33``, ``0.333``, ``0.67``, ``0.66`` for ``1/3`` and ``2/3``); an answer a decimal
can state (18, 2.5, 0.125) must be matched exactly.
"""
from __future__ import annotations

import re
from fractions import Fraction
from typing import Optional, Union

MAX_DIGITS = 4000  # longer numbers are not read (Python refuses int <-> str past 4,300 digits)

# 1,000,000; the Indian grouping 10,00,000 (a lakh of thousands); or plain digits. A grouped number never
# starts just after a digit and a comma, and its groups are taken atomically (giving one back never helps):
# otherwise each group of a long run that is no number (1,00,00,...,00) starts a scan to its end, quadratic.
_INTEGER = (r"(?<!\d,)(?:\d{1,3}(?>(?:,\d{3})+)(?![\d,])|\d{1,2}(?>(?:,\d{2}(?=,))+),\d{3}(?![\d,]))|\d+")
# thousands grouped by spaces (18 000, 1 450 000): read as one number only where the answer is
_ON_THE_HOUR = re.compile(r"(?<![\d:.,])(\d{1,2}):00(?![\d:,]|\.\d)")  # a time: 2:00 (pm)
_SPACED = re.compile(r"(?<![\d.,])\d{1,3}(?:[ \u00a0\u2009\u202f]\d{3})+(?![\d.,]|\s*/)")
_DECIMAL = rf"(?:(?:{_INTEGER})(?:\.\d+)?|\.\d+)(?:[eE][-+]?\d{{1,4}}(?!\w|\.\d))?"
# a number: sign, a mixed number or a fraction, else a decimal
_NUMBER = re.compile(
    rf"(?<![\w.])(?:(?P<sign>[-+])\s*)?(?:"  # whitespace only after a sign: a scan linear in the text
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
_PLAIN = r"\d+(?:\.\d+)?"
_POWER = re.compile(rf"(?<![\w.])({_PLAIN})\s*\^\s*(?:\{{\s*([-+]?\d{{1,4}})\s*\}}|(\d{{1,4}})(?!\d|\.\d))")
# a power normalize left as written (too large to work out, or 0 to a negative power): no one number
_UNWORKED_POWER = re.compile(r"\d\s*\^\s*\{?\s*[-+]?\d")
_PRODUCT = re.compile(rf"(?<![\w.])({_PLAIN})\s*(?:\\times|\\cdot|×|·|\*)\s*({_PLAIN})(?![\w.]|\s*\^)")
_IRRATIONAL = "\x00"  # stands for a root, pi or infinity: a number beside one is not the answer
_VULGAR = {"½": "1/2", "⅓": "1/3", "⅔": "2/3", "¼": "1/4", "¾": "3/4", "⅕": "1/5", "⅛": "1/8"}
_SUPERSCRIPT = {"²": "^2", "³": "^3"}
# what may sit around the one number in a box: currency, percent and degree signs, words (units), punctuation
_DECORATION = re.compile(r"\\?\$|\\%|%|\^\s*\{?\s*\\circ\s*\}?|\\circ|°|[£€¥]|\\approx|\\sim|≈|(?<!\\)\b[A-Za-z]+\b"
                         r"|/(?=\s*[A-Za-z])|\(\s*(?=[A-Za-z])|(?<=[A-Za-z])\s*\)|[\s.,:;~{}]")  # km/h, $/hour; 18 (pages)
# a unit's power (m^2, \text{ ft}^{2}): not a second number in the box
_UNIT_POWER = re.compile(r"(\d\s*(?:\\[,;:! ]\s*)*(?:\\(?:text|mathrm|textrm|mbox)\s*\{[^{}]*\}|\\?[A-Za-z]+))"
                         r"\s*\^\s*\{?\s*[23]\s*\}?")
# a number with a scale word: 18 hundred is 1800, $18k is 18000, 1.5 million and $1.5M are 1500000
# (not after a comma either: each group of 1,000,000,... would start a scan to the end, quadratic in the text)
_SCALE = re.compile(r"(?<![\w.,])(\d{1,3}(?:,\d{3})*(?:\.\d+)?|\d+(?:\.\d+)?)\s*"
                    r"((?i:hundred|thousand|million|billion)|(?<=\d)(?:k|K|M)\b)")  # M: $1.5M (m: metres); 5 K: kelvin
# a second assignment in a box (x=5, y=6; a = 5 \text{ and } b = 6)
_ASSIGNMENTS = re.compile(r"=[^=]*?(?:[,;]|\band\b)[\s}]*\\?[A-Za-z][\w{}]*\s*=")
_SCALES = {"hundred": 100, "thousand": 1000, "k": 1000, "million": 10**6, "m": 10**6, "billion": 10**9}
_WORD_NUMBERS = (r"(?:one|two|three|four|five|six|seven|eight|nine|ten|eleven|twelve|(?:thir|four|fif|six|seven|eigh|nine)teen|"
                 r"(?:twen|thir|for|fif|six|seven|eigh|nine)ty|hundred)")
# after the number a marker gives, another joined to it (5 or 7, 5-7, between 5 and 7, (2, 3), 2 hours and
# 30 minutes, 2 (two) to 3 (three)): more than one number
_HEDGE = re.compile(r"\s*(?:[A-Za-z]+\s*)?(?:\([^()\d]{1,40}\)\s*)?(?:,\s*|\(\s*)?(?:or|to|through|till|until|and|vs\.?|versus|-|—|~|…|\.\.\.|"
                    r",|;|:|±|\+/-|\\pm)\s*(?:maybe|possibly|perhaps|about|so)?\s*[-+]?(?:\\?\$)?\s*(?:\d|" + _WORD_NUMBERS + r")",
                    re.I)


# after a marker, a bound instead of a number: "the answer is at least 18" states no answer
_BOUND = re.compile(r"(?:at\s+(?:least|most)|(?:no\s+)?(?:more|less|fewer|greater|bigger|larger|smaller)\s+than|"
                    r"over|under|up\s+to|above|below|[<>≤≥]|\\[lg]eq?\b)\s*[-+]?(?:\\?\$)?\s*\d", re.I)


# after the number, a bound or a guess instead of the number: 18 or more, 18 or so, 18+
_BOUND_AFTER = re.compile(r"\s*(?:[A-Za-z]+\s*)?(?:or\s+(?:more|less|fewer|so|above|below|over|under|higher|lower|"
                          r"greater|smaller)\b|\+(?!\s*\d))", re.I)
# algebra, not a number: x - 8, total + 5, 2x (a variable beside a number by an operator, or a coefficient)
_EXPRESSION = re.compile(r"(?<![\\\w])[A-Za-z]\w*(?:\s+[-+*/]\s+|[-+*/])\d|\d[xyzn](?![\w.])")
_EXPRESSION_IN_BOX = re.compile(_EXPRESSION.pattern + r"|\d(?:\s+[-+*/]\s+|[-+*])[A-Za-z]")  # also 8 - x, 5+n


def boxed(response: str) -> Optional[str]:
    """The content of the last ``\\boxed{...}`` (or ``\\fbox{...}``) that closes, nested braces kept;
    None if none. One pass over the braces: linear in the length of ``response``."""
    found, start = None, -1
    open_boxes: list[tuple[int, int]] = []  # (brace depth outside the box, where its content starts)
    depth = 0
    for m in re.finditer(r"\\(?:boxed|fbox)\s*\{|[{}]", response):
        if m.group() == "}":
            depth = max(depth - 1, 0)
            if open_boxes and open_boxes[-1][0] == depth:
                _, begin = open_boxes.pop()
                if begin > start:  # the box that opens last wins (an inner box over its outer one)
                    found, start = response[begin : m.start()], begin
        else:
            if m.group() != "{":
                open_boxes.append((depth, m.end()))
            depth += 1
    return found


def _open_box(response: str) -> Optional[str]:
    """What follows the last ``\\boxed{`` (or ``\\fbox{``) where it never closes: the response ends
    inside it (cut off by the length limit, or malformed); else None. Linear in the length of ``response``."""
    if re.search(r"\\(?:boxed|fbox)\s*$", response[-200:]):  # cut off before its brace
        return ""
    last = None
    for last in re.finditer(r"\\(?:boxed|fbox)\s*\{", response):
        pass
    if last is None:
        return None
    depth = 1
    for brace in re.finditer(r"[{}]", response[last.end():]):
        depth += 1 if brace.group() == "{" else -1
        if depth == 0:
            return None
    return response[last.end():]


def answer_span(response: str) -> tuple[str, str]:
    """The part of ``response`` that holds the final answer, and where it came from: ``box``,
    ``marker`` (####, "the answer is"), ``bound`` (a marker followed by "at least", "more than" ...:
    no answer), ``open`` (the last box never closes: no answer) or ``response`` (the whole of it; after
    "the answer is not 18", what follows the 18)."""
    left_open = _open_box(response)
    if left_open is not None:
        return left_open, "open"
    box = boxed(response)
    if box is not None:
        if _ASSIGNMENTS.search(box):  # x=5, y=6: a pair, not what follows its last =
            return box, "box"
        return box.rsplit("=", 1)[-1], "box"
    for marker in _MARKERS:
        hits = list(marker.finditer(response))
        if hits:
            rest = response[hits[-1].end():].strip()
            line = rest.splitlines()[0] if rest else ""
            if _BOUND.match(rest):
                return line, "bound"
            if re.match(r"not\b", rest, re.I):  # "not 18, it is 20": what follows the number it denies
                denied = _NUMBER.search(rest)
                return (rest[denied.end():] if denied else ""), "response"
            return (line if _ASSIGNMENTS.search(line) else line.rsplit("=", 1)[-1]), "marker"
    return response, "response"


def normalize(text: str) -> str:
    """LaTeX and typography that hide a number, turned into plain text: fractions, powers and
    products of two numbers are worked out, thin spaces and ``{,}`` go, ``\\text{...}`` keeps its
    words, the Unicode minus becomes '-', a sign before a currency sign stays with the number."""
    text = text.replace("\\left", "").replace("\\right", "").replace("{,}", ",")
    text = re.sub(r"\\(?:mathbf|boldsymbol|bf|displaystyle)\b", "", text)  # typography: \mathbf{18} is 18
    text = re.sub(r"\\[,!;: ]", "", text)  # LaTeX spacing inside a number: 1\,000
    text = _TEXT.sub(r" \1 ", text)
    text = _SCALE.sub(_scaled, text)
    text = text.replace("\u2212", "-").replace("\u2013", "-").replace("\u2044", "/")
    for glyph, plain in {**_VULGAR, **_SUPERSCRIPT}.items():
        text = text.replace(glyph, (" " if glyph in _VULGAR else "") + plain)
    text = re.sub(r"\\sqrt|√|\\pi\b|π|\\infty|∞", _IRRATIONAL, text)
    text = re.sub(r"([-+])\s*(?:\\\$|\$|£|€|¥)", r"\1", text)  # -\$5 is -5
    for _ in range(8):  # innermost first: nested fractions, a power inside a fraction
        before = text
        text = _POWER.sub(_power, text)
        text = _PRODUCT.sub(_product, text)
        text = _FRAC.sub(_fraction, text)
        if text == before:
            break
    text = re.sub(r"(\d)\s*\(\s*(\d+)\s*\)/\(\s*(\d+)\s*\)", r"\1 \2/\3", text)  # 2\frac{1}{2}: a mixed number
    text = re.sub(r"(\d)\s+and\s+(\d+\s*/\s*\d+)(?!\d|\.\d)", r"\1 \2", text)  # 7 and 1/2: a mixed number
    return re.sub(r"\(\s*([-+]?[\d.,]+(?:\s*/\s*[\d.,]+)?)\s*\)", r"\1", text)  # parentheses around a number


def _exact(value: Fraction) -> str:
    """``value`` as text ``_NUMBER`` reads back exactly: an integer, or numerator/denominator."""
    if value.denominator == 1:
        return str(value.numerator)
    return f"{value.numerator}/{value.denominator}"


def _small(value: Fraction) -> bool:
    return max(value.numerator.bit_length(), value.denominator.bit_length()) <= MAX_DIGITS * 3.3


def _readable(*numbers: str) -> bool:
    """Whether every one of ``numbers`` is short enough to read (Python refuses int <-> str past 4,300 digits)."""
    return all(len(n) <= MAX_DIGITS for n in numbers)


def _scaled(m: re.Match) -> str:
    if not _readable(m.group(1)):
        return m.group()
    return f" {_exact(Fraction(_plain(m.group(1))) * _SCALES[m.group(2).lower()])} "


def _power(m: re.Match) -> str:
    if not _readable(m.group(1)):
        return m.group()  # too long to read: left as written
    base, exponent = Fraction(m.group(1)), int(m.group(2) or m.group(3))
    digits = max(base.numerator.bit_length(), base.denominator.bit_length()) * 0.30103  # of the base
    if abs(exponent) * max(digits, 1) > MAX_DIGITS:
        return m.group()  # too large to work out: left as written (and not read as its base)
    if base == 0 and exponent < 0:
        return m.group()
    return f" {_exact(base ** exponent)} "


def _product(m: re.Match) -> str:
    if not _readable(m.group(1), m.group(2)):
        return m.group()
    value = Fraction(m.group(1)) * Fraction(m.group(2))
    return f" {_exact(value)} " if _small(value) else m.group()


def _fraction(m: re.Match) -> str:
    """``\\frac{a}{b}`` with one number each side becomes a/b worked out; else ``(a)/(b)``."""
    top, bottom = m.group(1) or m.group(2), m.group(3) or m.group(4)
    a, b = _sole_number(normalize(top)), _sole_number(normalize(bottom))
    if isinstance(a, Fraction) and isinstance(b, Fraction) and b != 0:
        value = a / b
        return f" {'-' if value < 0 else ''}{_exact(abs(value))} " if _small(value) else m.group()
    return f" ({top})/({bottom}) "


def _sole_number(text: str) -> Union[Fraction, str, None]:
    """The one number ``text`` states (decorations aside), or why not: None for no number, a
    description for more than a number."""
    found = _numbers(text, normalized=True)
    rest = _DECORATION.sub("", _NUMBER.sub("", text))
    if not found:
        return None
    if len(found) > 1:
        return "several numbers"
    if rest or found[0][0] is None:
        return "more than a number"
    return found[0][0]


def one_number(text: str) -> Optional[Fraction]:
    """The one number ``text`` states (units, currency and words aside, as in a box), exactly; None
    where it states none, several, or more than a number (``1e99999``: an exponent past 4 digits)."""
    sole = _sole_number(normalize(text))
    return sole if isinstance(sole, Fraction) else None


def parse_numbers(text: str) -> list[Fraction]:
    """Every number in ``text`` (after ``normalize``), in order, as exact rationals."""
    return [value for value, _, _ in _numbers(text) if value is not None]


def _numbers(text: str, normalized: bool = False) -> list[tuple[Optional[Fraction], int, tuple[int, int]]]:
    """Every number in ``text``: its value (None: too long to read), the decimal places it was
    written with (0: an integer or fraction), and where it is in the normalized text."""
    text = text if normalized else normalize(text)
    return [n for n in map(_value, _NUMBER.finditer(text)) if n is not None]


def _value(m: re.Match) -> Optional[tuple[Optional[Fraction], int, tuple[int, int]]]:
    """One ``_NUMBER`` match read (see ``_numbers``); None where it is no number after all (x/0)."""
    if m.end() - m.start() > MAX_DIGITS:
        return None, 0, m.span()
    sign = -1 if m.group("sign") == "-" else 1
    places = 0
    try:
        if m.group("whole") is not None:
            value = Fraction(_plain(m.group("whole"))) + Fraction(int(m.group("mnum")), int(m.group("mden")))
        elif m.group("num") is not None:
            value = Fraction(_plain(m.group("num"))) / Fraction(_plain(m.group("den")))
        else:
            value = Fraction(_plain(m.group("dec")))
            mantissa = re.split(r"[eE]", m.group("dec"))[0]
            places = len(mantissa.partition(".")[2]) if mantissa == m.group("dec") else 0
    except (ValueError, ZeroDivisionError):
        return None
    return sign * value, places, m.span()


def _last_number(text: str) -> Optional[tuple[Optional[Fraction], int, tuple[int, int]]]:
    """The last number in ``text`` (already normalized), reading only that one."""
    for m in reversed(list(_NUMBER.finditer(text))):
        found = _value(m)
        if found is not None:
            return found
    return None


def _plain(number: str) -> str:
    return number.replace(",", "")


def _final(response: str) -> tuple[Optional[tuple[Fraction, int]], str]:
    """The final answer and its decimal places, or None and why there is none."""
    response = response.replace(_IRRATIONAL, "")  # normalize's placeholder for a root or pi: never the response's own
    span, source = answer_span(response)
    span = _UNIT_POWER.sub(r"\1", span)  # 18 m^2 is 18 (the 2 no number of its own)
    if source != "response":  # in a box or after a marker, 18 000 is one number; in running text, two
        span = _SPACED.sub(lambda m: re.sub(r"\s", "", m.group()), span)
        span = _ON_THE_HOUR.sub(r"\1", span)  # 2:00 PM states the hour: GSM8K's "what time" answers are hours
    if source == "bound":
        return None, f"the answer is a bound, not a number: {_clip(span)!r}"
    if source == "open":
        return None, f"the last box never closes (the response ends inside it): {_clip(span)!r}"
    if source == "box":
        text = normalize(span)
        if _BOUND.match(text.strip()) or re.match(r"\s*not\b", text, re.I):
            return None, f"the box holds a bound or a denial, not a number: {_clip(span)!r}"
        if _EXPRESSION_IN_BOX.search(text):
            return None, f"the box holds an expression, not a number: {_clip(span)!r}"
        if _UNWORKED_POWER.search(text):
            return None, f"the box holds a power too large (or undefined) to work out: {_clip(span)!r}"
        sole = _sole_number(text)
        if isinstance(sole, str):
            return None, f"the box holds {sole}: {_clip(span)!r}"
        if sole is not None:
            _, places, (_, end) = _numbers(text, normalized=True)[0]
            if _BOUND_AFTER.match(text[end:]):
                return None, f"the box holds a bound or a guess, not a number: {_clip(span)!r}"
            return (sole, places), ""
    else:
        text = normalize(span)
        chosen = _numbers(text[:MAX_DIGITS * 2], normalized=True)[:1] if source == "marker" else [_last_number(text)]
        if chosen and chosen[0] is not None:
            value, places, (start, end) = chosen[0]
            beside = text[max(start - 2, 0) : start] + text[end : end + 2]
            if value is None:
                return None, "the answer is a number too long to read"
            near = _clip(text[max(start - 20, 0) : end + 20].replace(_IRRATIONAL, "√") if source == "response" else span)
            if _UNWORKED_POWER.match(text[end - 1 : end + 8]) or re.search(r"\d\s*\^\s*\{?\s*$", text[:start]):
                return None, f"the answer is a power too large (or undefined) to work out: {near!r}"
            if _IRRATIONAL in beside or re.match(r"\s*\^(?!\s*\{?\s*\\circ)", text[end:]):
                return None, f"the answer is more than a number: {near!r}"
            if source == "marker":
                if _HEDGE.match(text[end:]) or _ASSIGNMENTS.search(text):
                    return None, f"the answer is more than one number: {near!r}"
                if _BOUND_AFTER.match(text[end:]):
                    return None, f"the answer is a bound or a guess, not a number: {near!r}"
                if _EXPRESSION.search(text[:end]):
                    return None, f"the answer is an expression, not a number: {near!r}"
            return (value, places), ""
        if source == "response":
            return None, "no number in the answer"
    last = _last_number(normalize(response))  # a box or a marker with no number in it: the response's last number
    if last is None or last[0] is None:
        return None, "no number in the answer"
    return last[:2], ""


def _clip(text: str, n: int = 60) -> str:
    text = text.strip()
    return text if len(text) <= n else text[: n - 3] + "..."


def extract_number(response: str) -> Optional[Fraction]:
    """The final numeric answer of ``response`` (see the module docstring), or None."""
    final, _ = _final(response)
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


def check_numeric(response: str, answer: str, cut_off: bool = False) -> tuple[bool, str]:
    """Whether ``response``'s final answer is the number ``answer``; and, when not, what it answered
    (or why no answer could be read). ``cut_off``: the response ended at the length limit; then,
    without a box or a marker, it gave no answer (its last number is one of its steps: "3. Add ...")."""
    wanted = parse_numbers(answer)
    if not wanted:
        return False, f"the item's answer {answer!r} is not a number"
    if cut_off and answer_span(response)[1] == "response":
        return False, "cut off by the length limit before giving an answer (no box or marker)"
    final, why = _final(response)
    if final is None:
        return False, why
    ok = same_number(final[0], wanted[0], final[1])
    return ok, "" if ok else f"answered {_show(final[0])}"


def _show(value: Fraction) -> str:
    digits = max(value.numerator.bit_length(), value.denominator.bit_length()) * 0.30103
    if digits > 60:
        return f"a number of about {digits:.0f} digits"
    return _exact(value)
