"""The numeric checker on math answers written every way a correct (or wrong) answer is written."""
from fractions import Fraction

import pytest

from tokint_local.datasets import MATH_INSTRUCTION, Item, check, final_answer, load_aime2025, load_gsm8k
from tokint_local.math_answers import boxed, check_numeric, extract_number, parse_numbers

RIGHT_18 = [
    "She sells 9 eggs at $2 each, so she makes \\boxed{18} dollars.",
    "9 * 2 = 18\n#### 18",
    "So the answer is 18.",
    "The final answer is: $18 per day",
    "Answer: 18 dollars",
    "\\boxed{\\$18}",
    "\\boxed{18.00}",
    "\\boxed{\\text{18 dollars}}",
    "\\boxed{18 \\text{ dollars}}",
    "\\boxed{x = 18}",
    "\\boxed{\\dfrac{36}{2}}",
    "\\boxed{\\frac{72}{4}}",
    "Total = 16 - 3 - 4 = 9 eggs; 9 x 2 = $18.",  # no marker: the last number
    "The answer is 16 - 3 - 4 = 9, times 2 = 18.",  # after the marker's last '='
    "\\boxed{18} is wrong, let me redo it. \\boxed{18}",
    "$\\boxed{18}$.",
    "The answer is \\(18\\).",
    "The answer is 36/2.",
    "\\boxed{18 \\text{ eggs/day}}",  # a unit per unit
    "\\boxed{\\$18/\\text{hour}}",
    "\\boxed{18 \\text{ m}^2}",  # a unit's power is no second number
    "\\boxed{18 \\text{ ft}^{2}}",
    "\\boxed{\\mathbf{18}}",
    "\\boxed{\\bf 18}",
    "\\boxed{\\approx 18}",
    "The answer is $18^\\circ$.",
    "The area is 18 m^2.",  # no box, no marker: the last number, not the unit's power
    "\\boxed{18 \\, \\text{cm}^3}",  # a unit after LaTeX spacing, or in \\mathrm
    "\\boxed{18 \\mathrm{cm}^2}",
    "\\boxed{\\sim 18}",
    "The answer is 18 (6 + 12).",
    "The answer is 18, which is 2 more than 16.",
]
WRONG_18 = [
    "\\boxed{19}",
    "#### 17",
    "The answer is 180.",
    "\\boxed{1.8}",
    "\\boxed{18.01}",
    "\\boxed{-18}",
    "I am not sure.",
    "\\boxed{18} ... no, it is \\boxed{20}",  # the last box counts
    "The answer is 18, wait, the answer is 81",
    "\\boxed{\\frac{18}{10}}",
    "\\boxed{}",
    "The answer is 18 or 20.",  # a hedge after a marker is no answer, though its first number is right
    "#### 18-20",
    "The answer is between 18 and 20",
    "The answer is (18, 3)",
    "The answer is 18 hours and 30 minutes.",
    "\\boxed{x^18}",
    "The answer is 18, or 20.",
    "The answer is 18 or maybe 20",
    "The answer is 18 (or 20)",
    "The answer is 18—20",
    "The answer is 18~20",
    "The answer is 18 through 20",
    "The answer is 18 ± 2",
    "#### 18 +/- 2",
    "The answer is 18 or twenty",
    "The answer is 18 thousand.",  # a scale word: 18000
    "\\boxed{18k}",
]


@pytest.mark.parametrize("response", RIGHT_18)
def test_right_answers_pass(response):
    assert check_numeric(response, "18") == (True, "")


@pytest.mark.parametrize("response", WRONG_18)
def test_wrong_answers_fail(response):
    ok, why = check_numeric(response, "18")
    assert not ok and why


@pytest.mark.parametrize("response, answer", [
    ("She paid \\boxed{\\$1,080} in all.", "1080"),
    ("#### 2,125", "2,125"),  # GSM8K writes some answers with separators too
    ("The answer is 1{,}450{,}000.", "1,450,000"),
    ("\\boxed{1\\,450\\,000}", "1450000"),
    ("The answer is 1,450,000 dollars.", "1450000"),
    ("\\boxed{25\\%}", "25"),
    ("He is 25% taller: \\boxed{25}%", "25"),
    ("\\boxed{336^\\circ}", "336^\\circ"),  # AIME 2025 II's one answer with a degree sign
    ("\\boxed{336^{\\circ}}", "336"),
    ("The angle is 336°.", "336^\\circ"),
    ("\\boxed{-7}", "-7"),
    ("\\boxed{−7}", "-7"),  # a Unicode minus
    ("\\boxed{\\frac{3}{4}}", "0.75"),
    ("\\boxed{\\dfrac34}", "3/4"),
    ("\\boxed{0.75}", "3/4"),
    ("\\boxed{6/8}", "3/4"),
    ("\\boxed{2\\frac{1}{2}}", "2.5"),
    ("It takes 2 1/2 hours. The answer is 2 1/2.", "5/2"),
    ("\\boxed{-\\frac{1}{2}}", "-0.5"),
    ("\\boxed{0.33}", "1/3"),  # a decimal of a fraction no decimal states exactly
    ("\\boxed{0.333}", "1/3"),
    ("\\boxed{0.67}", "2/3"),  # rounded
    ("\\boxed{0.66}", "2/3"),  # or cut

    ("\\boxed{£12.50}", "12.5"),
    ("\\boxed{18 000}", "18000"),  # thousands grouped by spaces, where one number is expected
    ("The answer is 1 450 000 dollars.", "1450000"),
    ("#### 18\u202f000", "18,000"),  # a narrow no-break space
    ("The answer is 1,00,000.", "100000"),  # the Indian grouping
    ("\\boxed{12,34,567}", "1234567"),
    ("\\boxed{2:00 \\text{ PM}}", "2"),  # GSM8K item 1001: "the latest time ... to start" is 2 (pm)
    ("The answer is 14:00.", "14"),
    ("\\boxed{.5}", "1/2"),
    ("\\boxed{\\left(\\frac{1}{3}\\right)}", "1/3"),
])
def test_the_forms_of_a_right_answer(response, answer):
    assert check_numeric(response, answer) == (True, "")


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{0.3}", "1/3"),  # one place: too coarse to count
    ("\\boxed{0.34}", "1/3"),  # off by more than its last place
    ("\\boxed{2.49}", "2.5"),  # 2.5 can be written exactly, so it must be
    ("\\boxed{1,450,001}", "1450000"),
    ("\\boxed{\\frac{2}{3}}", "3/4"),
    ("\\boxed{25}", "0.25"),
    ("\\boxed{335^\\circ}", "336^\\circ"),
    ("\\boxed{1.450}", "1450"),  # a decimal point is not a thousands separator
])
def test_near_misses_fail(response, answer):
    ok, why = check_numeric(response, answer)
    assert not ok and why.startswith("answered")


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{2^{10}}", "1024"),  # powers, products and scientific notation are worked out
    ("\\boxed{10^{6}}", "1000000"),
    ("\\boxed{1.5 \\times 10^3}", "1500"),
    ("The answer is 1e5.", "100000"),
    ("The answer is 5\u00b2.", "25"),
    ("\\boxed{100000000000000000000}", "1e+20"),  # a JSON answer written by json.dumps(1e20)
    ("\\boxed{\\frac{\\frac{1}{2}}{2}}", "1/4"),  # nested fractions, worked out exactly
    ("\\boxed{\\frac{\\frac34}{\\frac12}}", "3/2"),
    ("\\boxed{\\frac{1}{\\frac{1}{2}}}", "2"),
    ("\\boxed{-\\$5}", "-5"),  # a sign before a currency sign
    ("The answer is -$5.", "-5"),
    ("The answer is 2\u00bd hours.", "5/2"),
    ("The answer is 1\u20442.", "1/2"),
    ("The answer is not 18, it is 20.", "20"),  # "answer is not": the number after the one it denies
    ("The answer is not 18. Recounting: 5 + 15 = 20.", "20"),
    ("The answer is over 9 thousand... no: #### 18", "18"),  # the last marker counts
])
def test_worked_out_forms_of_a_right_answer(response, answer):
    assert check_numeric(response, answer) == (True, "")


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{2^{10}}", "2"),  # read as a whole, never as its first number
    ("\\boxed{2\\sqrt{3}}", "2"),
    ("\\boxed{\\sqrt{2}}", "2"),
    ("\\boxed{3\\pi}", "3"),
    ("The answer is 2\\sqrt{3}.", "2"),
    ("The answer is 10^100", "10"),
    ("\\boxed{\\frac{\\frac{1}{2}}{2}}", "1/2"),
    ("\\boxed{5 \\text{ or } 7}", "5"),  # a hedge is no answer
    ("\\boxed{2, 3}", "2"),
    ("\\boxed{(2, 3)}", "2"),
    ("\\boxed{10-12}", "10"),
    ("\\boxed{x \\neq 5}", "5"),
    ("\\boxed{1,0000}", "1000"),  # not a thousands separator
    ("\\boxed{18 00}", "1800"),  # groups of three digits only
    ("\\boxed{1,00,00}", "10000"),
    ("\\boxed{3:30}", "3"),  # only a time on the hour is its hour
    ("\\boxed{7:11}", "7"),  # a ratio is not
    ("She has 18 apples and 000 pears.", "18000"),  # in running text, spaces part numbers

    ("The answer is not 18, it is 20.", "18"),
    ("The answer is not 18.", "18"),  # denied, with nothing after it
    ("The answer is not 2 1/2.", "1/2"),  # the denied number is the whole mixed number, not its 2
    ("The answer is 2 (two) to 3 (three) hours.", "2"),  # a range, its numbers spelled out beside them
    ("\\boxed{x - 8}", "-8"),  # algebra is no number: a variable and a number joined by an operator
    ("\\boxed{total - 8}", "-8"),
    ("\\boxed{L-8}", "-8"),
    ("\\boxed{8 - x}", "8"),
    ("\\boxed{n + 5}", "5"),
    ("\\boxed{2x}", "2"),
    ("The answer is x - 8.", "-8"),
    ("\\boxed{\\text{not } 18}", "18"),  # a denial or a bound in a box, as after a marker
    ("\\boxed{\\text{at least } 18}", "18"),
    ("\\boxed{18 \\text{ or more}}", "18"),  # a bound or a guess after the number
    ("\\boxed{18 \\text{ or so}}", "18"),
    ("The answer is 18 or so.", "18"),
    ("The answer is 18+ apples.", "18"),
    ("So the answer is \\boxed{18", "18"),  # a box the response ends inside (of 180, cut off?)
    ("\\boxed{20} ... so the answer is \\boxed{18", "20"),
    ("The answer is $1.5M.", "1.5"),  # M is million
    ("The answer is at least 18.", "18"),  # a bound is no answer
    ("The answer is more than 18 apples.", "18"),
    ("#### < 18", "18"),
    ("The answer is up to $18.", "18"),
    ("\\boxed{-\\$5}", "5"),
    ("\\boxed{1}", "1e+20"),
    ("I got 18. The answer is " + "9" * 5000, "18"),  # a number too long to read is not skipped
    ("The answer is " + "9" * 4000 + "/0." + "0" * 4000 + "1", "1"),
])
def test_answers_that_are_not_the_number_fail(response, answer):
    ok, why = check_numeric(response, answer)
    assert not ok and why


def test_hostile_responses_are_read_not_choked_on():
    """An unclosed box used to make boxed() rescan the rest of the response (4,000 took 19 s, so
    these 40,000 would outlast the test timeout); a huge power used to overflow a float."""
    assert check_numeric("\\boxed{" * 40000, "1")[0] is False
    # whitespace used to be rescanned from every position (4,000 spaces 3 s, 20,000 over a minute)
    for spaces in (" " * 200_000, "\n" * 200_000, "\t" * 200_000):
        assert check_numeric("x" + spaces, "18") == (False, "no number in the answer")
        assert check_numeric("\\boxed{" + spaces + "18}", "18") == (True, "")
    assert check_numeric("\\frac{" * 10000 + "1" + "}" * 10000, "1") == (True, "")
    assert check_numeric("2^{9999}^{9999}" * 100, "1")[0] is False
    assert check_numeric("\\boxed{9^{9999}}", "9")[0] is False
    # a run of comma groups that is no number was rescanned from every group (64 KB: 53 s)
    for run in ("1" + ",00" * 40000, "1" + ",000" * 40000 + ",00", "The answer is 1" + ",00" * 40000):
        assert check_numeric(run, "1")[0] is False
    # digits past what Python turns into an int, before a scale word, a product or a power (a ValueError)
    for long in ("9" * 4299 + " million", "9" * 5000 + " \\times 2", "2 \\times " + "9" * 5000, "9" * 5000 + "^2",
                 "1" + ",000" * 4000 + " million", "The answer is " + "9" * 5000 + "k"):
        assert check_numeric(long, "5")[0] is False
        assert check_numeric("\\boxed{" + long + "}", "5")[0] is False


@pytest.mark.parametrize("response, answer", [
    ("The answer is 18 thousand.", "18000"), ("The answer is $18k", "18000"), ("\\boxed{18 \\text{ thousand}}", "18000"),
    ("The answer is 1.5 million dollars", "1500000"), ("The answer is 7 and 1/2 hours", "7.5"), ("The answer is 14:00.", "14"),
    ("The answer is 7 and 1/2.", "7.5"), ("\\boxed{\\$1.5M}", "1500000"), ("The answer is 18 hundred.", "1800"),
    ("\\boxed{18 \\text{ (pages)}}", "18"), ("\\boxed{-8}", "-8"), ("The answer is approximately -8.", "-8"),
    ("\\boxed{10 \\text{ s}}", "10"), ("\\boxed{\\$18/hour}", "18"),
    ("\x00\x00 18", "18"),  # a NUL of the response's own is no root or pi
])
def test_scale_words_and_spoken_mixed_numbers(response, answer):
    assert check_numeric(response, answer) == (True, "")


def test_what_the_checker_reads():
    assert boxed("a \\boxed{\\frac{1}{2}} b \\boxed{x^{2}+1} c") == "x^{2}+1"
    assert boxed("\\boxed{unclosed") is None and boxed("nothing") is None
    assert extract_number("no numbers here") is None
    assert parse_numbers("3/4 of 1,000 is 750.") == [Fraction(3, 4), 1000, 750]
    assert check_numeric("\\boxed{19}", "18") == (False, "answered 19")
    assert check_numeric("nothing", "18") == (False, "no number in the answer")
    assert check_numeric("\\boxed{4}", "four")[0] is False
    # without a box or marker, a refusal quotes the text around the number it read, not the response's start
    why = check_numeric("To solve this problem, we work it out step by step. " * 3 + "So x = 2\\sqrt{3}", "3")[1]
    assert why.startswith("the answer is more than a number: ") and "To solve" not in why and "√" in why
    assert final_answer("so \\boxed{\\frac{1}{2}}") == "\\frac{1}{2}"  # the exact checker reads nested boxes too


def test_gsm8k_and_aime_load_from_the_package_and_their_own_answers_pass():
    gsm8k, aime = load_gsm8k(), load_aime2025()
    assert len(gsm8k) == 1319 and len(aime) == 30
    assert gsm8k[0].id == "gsm8k/0" and gsm8k[0].answer == "18" and gsm8k[0].checker == "numeric"
    assert gsm8k[0].prompt.startswith("Janet") and gsm8k[0].prompt.endswith(MATH_INSTRUCTION)
    assert [i.id for i in aime[:2]] == ["AIME2025-I/1", "AIME2025-I/2"] and aime[-1].id == "AIME2025-II/15"
    assert len(load_gsm8k(25)) == 25
    for item in gsm8k + aime:
        # the reference solution's own last line, and the answer boxed, pass; one more does not
        assert check(item, f"\\boxed{{{item.answer}}}")[0], item.id
        assert not check(item, f"\\boxed{{{parse_numbers(item.answer)[0] + 1}}}")[0], item.id
    solution = "Janet sells 16 - 3 - 4 = <<16-3-4=9>>9 duck eggs a day.\nShe makes 9 * 2 = $<<9*2=18>>18 every day.\n#### 18"
    assert check(gsm8k[0], solution)[0]


def test_numeric_items_in_a_jsonl_file_use_the_same_checker():
    item = Item("q", "What is 1/8 as a decimal?", "numeric", answer="0.125")
    assert check(item, "It is \\boxed{\\frac{1}{8}}.")[0] and check(item, "Answer: 0.125")[0]
    assert not check(item, "Answer: 0.12")[0]


@pytest.mark.parametrize("response, where", [
    ("\\boxed{10^{100000000}}", "the box holds"), ("\\boxed{10^{-100000000}}", "the box holds"),
    ("\\boxed{0^{-1}}", "the box holds"), ("The answer is 10^{100000000}.", "the answer is"),
    ("#### 10^100000000", "the answer is"), ("so 5 and 10^{100000000}", "the answer is"),  # not its exponent
])
def test_a_power_too_large_to_work_out_is_named_as_such(response, where):
    """Powers past MAX_DIGITS are left as written: the verdict says so, never "several numbers" or the exponent."""
    assert check_numeric(response, "100000000") == (False, check_numeric(response, "5")[1])
    assert check_numeric(response, "5")[1].startswith(f"{where} a power too large (or undefined) to work out: ")


def test_a_response_cut_off_before_its_answer_fails():
    """At the length limit a response's last number is one of its steps ("3. Add the bolts": GSM8K's
    item 1 passed so, its answer being 3); with a box or a marker the answer was given before the cut."""
    steps = "1. Count the blue bolts.\n2. Halve them.\n3. Add the"
    assert check_numeric(steps, "3") == (True, "")  # a finished response: its last number counts
    assert check_numeric(steps, "3", cut_off=True) == (
        False, "cut off by the length limit before giving an answer (no box or marker)")
    assert check_numeric("So \\boxed{3}. To check: 1 + 2", "3", cut_off=True) == (True, "")
    assert check_numeric("#### 3\nThen 5", "3", cut_off=True) == (True, "")
    item = Item("q", "?", "numeric", answer="3")
    assert check(item, steps) == (True, "") and check(item, steps, cut_off=True)[0] is False
    # a box cut off before its brace is a box the response ends inside, cut off or not
    assert check_numeric("the money left is \\(\\boxed", "3")[1].startswith("the last box never closes")
    assert check_numeric("... R = 3 ... \\boxed  ", "3")[0] is False


def test_eval_tells_the_checker_which_responses_were_cut_off(tmp_path):
    from tokint_local.evaluation import run_eval
    from tokint_local.events import Summary
    from tokint_local.results_file import Config, ResultsFile

    items = [Item(f"q{i}", f"question {i}", "numeric", answer="3") for i in range(2)]
    reasons = {"question 0": "stop", "question 1": "length"}

    def generate(prompt, fields):
        return "1. Count.\n2. Halve.\n3. Add", Summary(3, 0, (), reasons[prompt], 1.0, 1.0)

    records = run_eval([(item, Config("base")) for item in items], generate, ResultsFile(tmp_path / "r.jsonl"), {})
    assert [(r["passed"], r["finish_reason"]) for r in records] == [(True, "stop"), (False, "length")]
    assert records[1]["why"].startswith("cut off by the length limit")


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{x=5, y=6}", "6"), ("\\boxed{a=5, b=6}", "5"), ("\\boxed{a = 5 \\text{ and } b = 6}", "6"),
    ("The answer is x = 6, y = 7", "6"), ("The answer is x = 6, y = 7", "7"), ("#### a=1; b=2", "1"),
])
def test_a_pair_of_assignments_is_no_answer(response, answer):
    """The box's or marker's text after its last = is read, but two assignments are a pair: neither passes."""
    assert check_numeric(response, answer)[0] is False


@pytest.mark.parametrize("response, answer", [
    ("\\boxed{x = 2+3 = 5}", "5"), ("The answer is: x = 2 + 3 = 5", "5"), ("\\boxed{x=5}", "5"),
    ("I have 5 K", "5"), ("$18k", "18000"), ("$1.5M", "1500000"),  # 5 K (a space): kelvin, not thousands
])
def test_a_chain_of_equals_and_a_spaced_unit_letter(response, answer):
    assert check_numeric(response, answer) == (True, "")
