"""Unit tests of the grading modules: exact numbers, extraction, normalisation, structures, screen, golds."""
from fractions import Fraction

import pytest

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, GoldError, Grade, grade
from reward_service.grading.compare import answers_equal
from reward_service.grading.expr import evaluate
from reward_service.grading.extract import extract, find_boxes, split_think
from reward_service.grading.gold import gold_answers
from reward_service.grading.identity import equations_proportional, same_function
from reward_service.grading.normalize import clean, split_unit, units_conflict
from reward_service.grading.numbers import TooLarge
from reward_service.grading.screen import too_complex
from reward_service.grading.structure import parse


# ---------------------------------------------------------------------------------------------- numbers
@pytest.mark.parametrize("text,value", [
    ("42", Fraction(42)), ("-5", Fraction(-5)), ("004", Fraction(4)), (".4", Fraction(2, 5)),
    ("\\frac{1}{2^{99}}", Fraction(1, 2 ** 99)), ("2^{-3}", Fraction(1, 8)), ("2^10", Fraction(1024)),
    ("2\\frac12", Fraction(5, 2)), ("-3\\frac{1}{2}", Fraction(-7, 2)), ("7 3/4", Fraction(31, 4)),
    ("3 1\\frac{1}{2}", Fraction(9, 2)), ("3.1 \\frac{1}{2}", Fraction(31, 20)), ("2\\frac{3}{2}", Fraction(3)),
    ("0.\\overline{3}", Fraction(1, 3)), ("0.1\\overline{6}", Fraction(1, 6)), ("1.5e-3", Fraction(3, 2000)),
    ("1.5\\times10^{-3}", Fraction(3, 2000)), ("28%", Fraction(7, 25)), ("\\binom{16}{2}", Fraction(120)),
    ("5!", Fraction(120)), ("\\sqrt{\\frac{9}{4}}", Fraction(3, 2)), ("\\sqrt[3]{-8}", Fraction(-2)),
    ("8^{2/3}", Fraction(4)), ("(-7.13)(1.5)", Fraction(-2139, 200)), ("|{-3}|", Fraction(3)),
    ("\\lfloor 3.7 \\rfloor", Fraction(3)), ("\\lceil 3.2 \\rceil", Fraction(4)),
])
def test_exact_values(text, value):
    v = evaluate(text)
    assert v is not None and v.q == value


def test_decimal_literal_records_digits_shown():
    v = evaluate("0.333")
    assert v.q == Fraction(333, 1000) and v.dec_ulp == Fraction(1, 1000) and v.dec_sig == 3
    assert evaluate("1/3").dec_ulp is None


def test_irrational_values_and_flags():
    assert evaluate("\\sqrt{2}").q is None
    assert evaluate("2\\pi").has_pi
    assert evaluate("90°").deg and evaluate("90°").q == 90
    assert evaluate("\\infty").inf == 1 and evaluate("-\\infty").inf == -1


@pytest.mark.parametrize("text", ["x+1", "\\sum_{k=1}^n k", "\\{1,2\\}", "1/0", "\\sqrt{-4}", ""])
def test_not_closed_numbers(text):
    assert evaluate(text) is None


@pytest.mark.parametrize("text", ["9^{9^{9^9}}", "10^{10^{100}}", "100000!", "1" + "0" * 5000, "2^{10^{7}}"])
def test_huge_numbers_raise(text):
    with pytest.raises(TooLarge):
        evaluate(text)


def test_identity_test_with_variables():
    assert same_function("(x+1)^2", "x^2+2x+1") is True
    assert same_function("(x+1)^2", "x^2+2x+2") is False
    assert same_function("\\sin^2 x + \\cos^2 x", "1") is True
    assert same_function("\\frac{x^2-1}{x-1}", "x+1") is True
    assert same_function("\\log_2 x", "\\frac{\\ln x}{\\ln 2}") is True
    assert same_function("\\sum_{k=1}^n k", "n") is None  # not ours: left to sympy
    assert equations_proportional(("2x+4y", "6"), ("x+2y", "3")) is True
    assert equations_proportional(("x+2y", "4"), ("x+2y", "3")) is False


# ---------------------------------------------------------------------------------------------- extraction
def test_extraction_methods():
    assert extract("<think>41</think><answer>42</answer>").method == "answer_tag"
    e = extract("so \\boxed{1} and \\boxed{2}")
    assert e.method == "boxed" and e.answer == "1, 2" and e.parts == ["1", "2"]
    assert extract("The final answer is $7$.").method == "phrase"
    assert extract("Final Answer: The final answer is 7. I hope it is correct.").method == "minerva"
    assert extract("blah\n#### 7").method == "gsm8k"
    assert extract("7").method == "bare"
    long_text = "We compute many things here and there. " * 10 + "The value 7 appears"
    assert extract(long_text).answer is None
    assert extract(long_text, last_number_fallback=True).method == "last_number"


def test_think_and_truncation():
    assert split_think("<think>a</think>b") == ("b", None)
    assert split_think("<think>a")[1] == "unterminated <think>"
    assert split_think("x</think>y") == ("y", None)
    assert extract("\\boxed{4").reason == "unclosed \\boxed"
    assert find_boxes("\\boxed{a{b}c} \\fbox{d} \\boxed 5")[0][2] == "a{b}c"
    assert [b[2] for b in find_boxes("\\boxed{a{b}c} \\fbox{d} \\boxed 5.")] == ["a{b}c", "d", "5"]


def test_grade_fields_and_errors():
    g = grade("\\boxed{5}", "5")
    assert isinstance(g, Grade) and g.to_dict() == {"verdict": CORRECT, "answer": "5", "reason": "identical",
                                                    "method": "boxed"}
    assert grade("nothing here at all, just words and more words and even more words. " * 3, "5").answer is None
    with pytest.raises(TypeError):
        grade(None, "5")
    for bad in ("", "  ", [], True, None, {"a": 1}, float("nan")):
        with pytest.raises(GoldError):
            grade("5", bad)


# ---------------------------------------------------------------------------------------------- normalize
@pytest.mark.parametrize("raw,cleaned", [
    ("$\\dfrac{1}{2}$.", "\\frac{1}{2}"), ("\\left( 1, 2 \\right)", "( 1, 2 )"), ("10{,}000", "10000"),
    ("1,000,000", "1000000"), ("\u22125", "-5"), ("90^{\\circ}", "90°"), ("50\\%", "50%"),
    ("28 percent", "28%"), ("\\text{(C)}", "(C)"), ("\\frac12", "\\frac{1}{2}"), ("x \\geq 5", "x \\ge 5"),
    ("\\emptyset", "\\{\\}"), ("\\$5", "5"), ("**7**", "7"),
])
def test_clean(raw, cleaned):
    assert clean(raw) == cleaned


def test_units():
    assert split_unit("15 \\text{ cm}^2") == ("15", "cm^2")
    assert split_unit("5 meters") == ("5", "m")
    assert split_unit("2x") == ("2x", None)
    assert units_conflict("m", "cm") and not units_conflict("m", None) and not units_conflict("m", "m")


# ---------------------------------------------------------------------------------------------- structure
def test_structures():
    assert parse("(1, 2)").kind == "seq" and parse("(1, 2)").open == "("
    assert parse("1, 2, 3").open == ""
    assert parse("[0, 1) \\cup (2, 3]").kind == "union"
    assert parse("x = 5").kind == "assign"
    assert parse("2x + 4y = 3").kind == "eq"
    n = parse("x \\ge 5")
    assert (n.kind, n.open, n.close, n.from_ineq) == ("seq", "[", ")", True)
    assert parse("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}").kind == "matrix"
    assert len(parse("p=5,q=2;p=7,q=2").items) == 2


def test_answers_equal_reasons():
    assert answers_equal("5 \\text{ cm}", "5 \\text{ m}") == (False, "different units (m vs cm)")
    assert answers_equal("(1,2)", "[1,2]")[0] is False
    assert answers_equal("\\frac{1}{3}", "0.333") == (True, "equal value")


# ---------------------------------------------------------------------------------------------- screen, golds
def test_screen():
    assert too_complex("x^2+1") is None
    assert too_complex("9^{9^{9^9}}") == "exponent tower"
    assert too_complex("\\frac{" * 40 + "1" + "}{2}" * 40) == "nesting too deep"
    assert too_complex("1" * 200) == "number too long"
    assert too_complex("1000!") == "factorial too large"
    assert too_complex("(n-1)!") is None


@pytest.mark.parametrize("gold,answers,choice", [
    ("#### 1,000", ("1,000",), None),
    ("Natalia sold 48/2 = 24 clips.\n#### 72", ("72",), None),
    (27.0, ("27",), None), (25, ("25",), None), (0.5, ("0.5",), None),
    (["$(1,1)$", "3"], ("$(1,1)$", "3"), None),
    ("so the answer is $\\boxed{\\frac{1}{2}}$.", ("\\frac{1}{2}",), None),
    ("(D) Alina", ("(D) Alina",), "D"), ("C", ("C",), "C"), ("A:B=1", ("A:B=1",), None),
])
def test_gold_forms(gold, answers, choice):
    assert gold_answers(gold) == (answers, choice)


def test_verdict_constants():
    assert (CORRECT, WRONG, NO_ANSWER) == ("correct", "wrong", "no_answer")


# ---------------------------------------------------------------------------------------------- added rules
from reward_service.grading.identity import _points  # noqa: E402
from reward_service.grading.normalize import to_ascii_latex  # noqa: E402
from reward_service.grading.choice import MULTI, extract_choice  # noqa: E402
from reward_service.grading.prose import bare_answer, non_answer  # noqa: E402
from reward_service.grading.screen import too_deep  # noqa: E402
from reward_service.grading.structure import clock_time  # noqa: E402


@pytest.mark.parametrize("text,reason", [
    ("I don't know", "refusal"), ("\\text{not sure}", "refusal"), ("no idea", "refusal"), ("?", "placeholder answer"),
    ("\\ldots", "placeholder answer"), ("\\text{answer}", "placeholder answer"), ("N/A", "placeholder answer"),
    ("5", None), ("\\text{no solution}", None), ("\\text{cannot be determined}", None), ("no ideal", None),
])
def test_non_answer(text, reason):
    assert non_answer(text) == reason


@pytest.mark.parametrize("text,answer", [
    ("42", "42"), ("x = 5", "x = 5"), ("Evelyn", "Evelyn"), ("The total is 42 apples.", "42 apples"),
    ("We first compute 3+4=7 and then we get stuck.", None), ("Wait", None), ("The answer", None),
    ("Let me compute 2+3=5", None), ("3 + 4 =", None), ("42\n43", None), ("x = 3\ny = 4", "x = 3, y = 4"),
])
def test_bare_answer(text, answer):
    got = bare_answer(text)
    assert (got[0] if got else None) == answer


@pytest.mark.parametrize("text,letter", [
    ("(B)", "B"), ("\\text{(B) } 5", "B"), ("B, C", MULTI), ("(A) or (B)", MULTI), ("I choose B.", "B"),
    ("A good choice is C.", "C"), ("The answer is for sure D, it can't be A or B", "D"),
])
def test_extract_choice(text, letter):
    assert extract_choice(text) == letter


def test_unicode_and_screen_and_points():
    assert to_ascii_latex("2\u00b9\u2070") == "2^{10}" and to_ascii_latex("\uff14\uff12") == "42"
    assert to_ascii_latex("\u221a(x+1)") == "\\sqrt{x+1}" and to_ascii_latex("4\u200b2\u00ad") == "42"
    assert too_deep("(" * 30 + ")" * 30) and too_deep("x" * 5000) and not too_deep("(1, 2)")
    signs = {tuple(v > 0 for v in pt.values()) for pt in _points({"x", "y", "z"})}
    assert len(signs) == 8  # every sign combination of three variables is sampled
    assert clock_time("3:00 \\text{ PM}") == (3 * 3600, "p") and clock_time("3:5") is None
