r"""Grader generalisation (issue 13): answers written the way other people's models and graders write them.

Every widening of what is accepted comes with its "must still reject" twins (a false positive teaches the
policy to game the grader; it is worse than a false negative). Cases are ``(completion, gold, expected, why)``;
``benchmarks/redteam_vs_math_verify.py`` runs them through math-verify too. The generated corpus behind the
figures is ``benchmarks/grader_corpus.py``.

Policies decided here (and stated in the grading modules' docstrings):

* a bare completion made of words and a number ("lorem ipsum 9") does not state an answer: ``no_answer``;
  the number counts when the words state it ("The total is 9", "Answer: 9", "Total: 9", "Thus 9");
* a decimal is accepted for a non-terminating exact gold only as its correct rounding at the digits shown
  (``85.71`` = ``600/7``; ``85.72``, the truncation ``3.1415`` of pi, and an integer never are).
"""
import pytest

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, grade
from reward_service.grading.extract import extract, final_display
from reward_service.grading.normalize import clean, drop_spacing
from reward_service.grading.structure import parse, pm_variants

C, W, N = CORRECT, WRONG, NO_ANSWER

SPACING = [
    ("\\ 105\\ ", "105", C, "bare answer in control spaces"),
    ("$\\,2916\\,$", "2916", C, "bare math in thin spaces"),
    ("$\\,(-266,-3,-28)\\,$", "(-266,-3,-28)", C, "a tuple in thin spaces"),
    ("\\boxed{\\ -5\\ }", "-5", C, "a box in control spaces"),
    ("The answer is \\(\\ \\frac{35}{72}\\ \\).", "\\frac{35}{72}", C, "phrase, control spaces"),
    ("\\boxed{\\quad 12 \\quad}", "12", C, "quad"),
    ("\\boxed{1,\\;2,\\quad 3}", "1, 2, 3", C, "spaced list"),
    # twins
    ("\\ 106\\ ", "105", W, "control spaces around a wrong value"),
    ("$\\,3 + 4 =\\,$", "7", N, "a cut-off equation in thin spaces is not an answer"),
    ("$\\,x^2 +\\;$", "x^2", N, "ends on an operator behind spacing"),
    ("\\boxed{1\\,000}", "1", W, "a thin space inside a number is a thousands separator"),
]

DISPLAY = [
    ("Some reasoning here.\nSo we compute the sum.\n\\[ 42 \\]", "42", C, "display block at the end"),
    ("Calculamos la suma de los términos.\n\\[\n\\frac{3}{4}\n\\]", "3/4", C, "Spanish, display block"),
    ("我们计算得到\n\\[ x = 7 \\]", "7", C, "Chinese, display assignment"),
    ("The sum is computed as follows: 3+4.\n$$\\frac{7}{2}$$.", "7/2", C, "$$ block and a period"),
    ("Putting it together:\n\\[\n\\begin{aligned} S &= 3 + 4 \\\\ &= 7 \\end{aligned}\n\\]", "7", C,
     "last row of an aligned block"),
    ("Hence\n\\[ a_n = 2^n - 1 \\tag{1} \\]", "2^n - 1", C, "a tagged display"),
    # twins
    ("Some reasoning here.\n\\[ 41 \\]", "42", W, "display block with a wrong value"),
    ("We set up the equation.\n\\[ 3x + 4 = \\]", "7", N, "a cut-off display block"),
    ("First we find\n\\[ x = 7 \\]\nNext we need the value of y, which", "7", N, "a display block followed by more work"),
    ("Consider the sum\n\\[ 1 + 2 + 3 + 4 \\]\nand group the terms.", "10", N, "a display block mid-response"),
    ("Putting it together:\n\\[\n\\begin{aligned} S &= 3 + 4 \\\\ &= 8 \\end{aligned}\n\\]", "7", W,
     "last row of an aligned block, wrong"),
]

SIGNS = [
    ("\\boxed{\\{1\\pm\\sqrt5, -2\\}}", "\\{1+\\sqrt5, 1-\\sqrt5, -2\\}", C, "\\pm inside a set"),
    ("\\boxed{1+\\sqrt5, 1-\\sqrt5, -2}", "\\{1\\pm\\sqrt{5},-2\\}", C, "a gold with \\pm in a set"),
    ("\\boxed{-1, \\pm 2}", "-1,2,-2", C, "\\pm inside a list"),
    ("\\boxed{(\\pm\\sqrt2, 0, \\pm\\sqrt2)}",
     "(\\sqrt2,0,\\sqrt2),(\\sqrt2,0,-\\sqrt2),(-\\sqrt2,0,\\sqrt2),(-\\sqrt2,0,-\\sqrt2)", C, "a tuple with two \\pm"),
    ("\\boxed{(\\pm 3, \\pm 2)}", "(3,2),(-3,2),(3,-2),(-3,-2)", C, "sign choices of a point"),
    ("\\boxed{(\\pm 1, \\mp 1)}", "(1,-1),(-1,1)", C, "\\mp ties the signs"),
    ("\\boxed{\\frac{3 \\pm \\sqrt{21}}{2}, 1}", "1, \\frac{3+\\sqrt{21}}{2}, \\frac{3-\\sqrt{21}}{2}", C, "\\pm inside a fraction"),
    ("\\boxed{\\pm\\sqrt2 \\pm \\sqrt3}",
     "\\sqrt2+\\sqrt3, \\sqrt2-\\sqrt3, -\\sqrt2+\\sqrt3, -\\sqrt2-\\sqrt3", C, "two independent \\pm"),
    ("\\boxed{6, 2}", "1 \\pm 2 + 3", C, "\\pm binds like the sign it stands for"),
    ("\\boxed{x = \\pm 2 + i}", "2 + i, -2 + i", C, "an assignment with \\pm"),
    # twins
    ("\\boxed{\\pm 2}", "2", W, "\\pm v for a gold v"),
    ("\\boxed{2}", "\\pm 2", W, "v for a gold \\pm v"),
    ("\\boxed{(\\pm\\sqrt2, 0, \\sqrt2)}",
     "(\\sqrt2,0,\\sqrt2),(\\sqrt2,0,-\\sqrt2),(-\\sqrt2,0,\\sqrt2),(-\\sqrt2,0,-\\sqrt2)", W, "one \\pm left out"),
    ("\\boxed{\\{1+\\sqrt5, -2\\}}", "\\{1\\pm\\sqrt{5},-2\\}", W, "one sign of the gold's \\pm"),
    ("\\boxed{(\\pm 1, \\mp 1)}", "(1,1),(-1,-1)", W, "\\mp is the opposite sign"),
    ("\\boxed{(\\pm 1, \\pm 1)}", "(1,-1),(-1,1)", W, "independent \\pm give four points"),
    ("\\boxed{6, -4}", "1 \\pm 2 + 3", W, "\\pm does not bracket what follows"),
    ("\\boxed{\\pm\\sqrt2 \\pm \\sqrt3}", "\\sqrt2+\\sqrt3, -\\sqrt2-\\sqrt3", W, "two \\pm are four values"),
]

CASES = SPACING + DISPLAY + SIGNS


@pytest.mark.parametrize("completion,gold,expected,why", CASES, ids=[c[3] for c in CASES])
def test_generalisation(completion, gold, expected, why):
    g = grade(completion, gold)
    assert g.verdict == expected, f"{why}: got {g}"


def test_drop_spacing_and_trailing_control_space():
    assert drop_spacing("\\ 12\\") == " 12"
    assert drop_spacing("5\\\\") == "5\\\\"  # a LaTeX line break is not a control space
    assert clean("\\ 12\\") == "12" and clean("\\;\\frac{1}{2}\\;") == "\\frac{1}{2}"


def test_pm_variants():
    assert pm_variants("a \\pm b") == ["a + b", "a - b"]
    assert pm_variants("\\pm 1 \\mp 2") == ["+ 1 - 2", "- 1 + 2"]
    assert len(pm_variants("\\pm a \\pm b \\pm c")) == 8
    assert pm_variants("\\pmatrix") is None and pm_variants("5") is None
    n = parse("(\\pm 1, 0)")
    assert n.kind == "seq" and n.open == "" and [it.open for it in n.items] == ["(", "("]


def test_final_display():
    assert final_display("We get\n\\[ 42 \\]") == "42"
    assert final_display("We get\n$$ x = 1 $$ .") == "x = 1"
    assert final_display("\\[ 42 \\]") is None  # nothing before it: the bare-answer rule reads it
    assert final_display("We get\n\\[ 42 \\] and more") is None
    assert final_display("We get\n\\[ 3 + \\]") is None
    assert final_display("We get \\[ \\begin{aligned} x &= 1 + 1 \\\\ &= 2 \\end{aligned} \\]") == "2"
    assert extract("Thus:\n\\[ 42 \\]").method == "display"
    assert extract("\\boxed{5}\n\\[ 42 \\]").method == "boxed"  # a box always wins
