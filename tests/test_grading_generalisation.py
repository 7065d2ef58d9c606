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
from reward_service.grading.bound import renamed
from reward_service.grading.normalize import clean, drop_spacing
from reward_service.grading.notation import circled_numerals, rewrite
from reward_service.grading.screen import too_complex
from reward_service.grading.prose import stated_values
from reward_service.grading.qualifiers import family_rename, split
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
    ("Por lo tanto, la respuesta es 42.", "42", C, "Spanish answer phrase"),
    ("Donc la réponse est $42$.", "42", C, "French answer phrase"),
    ("Die Antwort ist 42.", "42", C, "German answer phrase"),
    ("Ответ: 42", "42", C, "Russian answer label"),
    ("答え：42", "42", C, "Japanese answer label"),
    ("Die Antwort ist 41.", "42", W, "German answer phrase, wrong"),
    ("Correspondence: 42 is what we check next", "42", N, "no answer word inside another word"),
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

LABELLED = [
    ("Maximum = 2, Minimum = 1", "2, 1", C, "labelled values, bare"),
    ("\\boxed{\\text{Maximum} = 2, \\text{Minimum} = 1}", "2, 1", C, "labelled values, boxed"),
    ("Alice: 18, Bob: 14, Carol: 7", "18, 14, 7", C, "colon labels"),
    ("\\boxed{\\text{Alice: } 18, \\text{Bob: } 14}", "18, 14", C, "colon labels in text, boxed"),
    ("\\boxed{a_1 = -1, a_2 = 1}", "-1, 1", C, "indexed labels"),
    ("The roots are $-3$ and $5$, and their sum is $2$.", "2", C, "in a sentence, premises then the result"),
    ("The answer is: Maximum = 2, Minimum = 1.", "2, 1", C, "labelled values after a phrase"),
    ("Result: \\frac{97}{36}", "\\frac{97}{36}", C, "one label, LaTeX outside $"),
    ("\\boxed{Total: -20}", "-20", C, "a colon label in a box"),
    ("The solutions are 1, 2, 3", "3, 1, 2", C, "a list after one label"),
    ("\\boxed{\\text{Maximum} = 2, \\text{Minimum} = 1}", "\\text{Maximum} = 2, \\text{Minimum} = 1", C, "labelled gold"),
    # twins: a labelled list is a list; it never answers the gold of one of its values
    ("Maximum = 2, Minimum = 1", "1", W, "two labelled values for a one-value gold"),
    ("Alice: 18, Bob: 14, Carol: 7", "7", W, "three labelled values for the last one"),
    ("\\boxed{a_1 = -1, a_2 = 1}", "1", W, "two indexed values for one"),
    ("The roots are $-3$ and $5$, and their sum is $2$.", "-3, 5", W, "a premise is not the result"),
    ("Alice: 18, Bob: 15, Carol: 7", "18, 14, 7", W, "one labelled value wrong"),
    ("\\boxed{\\text{Maximum} = 1, \\text{Minimum} = 2}", "\\text{Maximum} = 2, \\text{Minimum} = 1", W,
     "labels swapped against a labelled gold"),
    ("Result: \\frac{97}{37}", "\\frac{97}{36}", W, "one label, wrong fraction"),
    ("Result: \\frac{97}{36}", "36", W, "a fraction is not its denominator"),
    ("\\boxed{lambda: 5}", "5", W, "a lower-case word and a colon in a box is no label"),
    ("Thus, n = 5 and the answer is 10.", "10", C, "the clause labelled as the answer"),
    ("Therefore, x = 2, so y = 3.", "3", C, "clauses before so are premises"),
    ("Thus, n = 5 and the answer is 10.", "5", W, "a premise is not the answer"),
    ("The answer is 5, and the remainder is 2.", "5", C, "the value right after the answer phrase"),
    ("The answer is 5, and the remainder is 2.", "2", W, "a remark after the answer is not the answer"),
]

QUALIFIERS = [
    ("\\boxed{f(x) = 1 \\text{ for all } x \\in \\mathbb{Q}_{>0}}", "f(x)=1", C, "for all x in the domain"),
    ("\\boxed{0}", "\\text{only } x = 0", C, "a gold with only"),
    ("\\boxed{x = 0 \\text{ only}}", "0", C, "an answer with only"),
    ("\\boxed{f(x)=x \\quad \\forall x}", "f(x) = x", C, "forall"),
    ("\\boxed{n^2 + 1 \\text{ for every integer } n \\ge 1}", "n^2+1", C, "for every integer n"),
    ("\\boxed{x = k\\pi, k \\in \\mathbb{Z}}", "k\\pi", C, "a parameter declared in Z"),
    ("\\boxed{x = n\\pi \\text{ where } n \\text{ is an integer}}", "x = n\\pi", C, "where n is an integer"),
    ("\\boxed{f(x) = ax + b \\text{ with } a, b \\in \\mathbb{R}}", "f(x)=ax+b", C, "real constants declared"),
    # twins: a condition that restricts is kept, a hedge stays a hedge, a wrong value stays wrong
    ("\\boxed{x = k\\pi \\text{ where } k \\text{ is even}}", "k\\pi", W, "a restriction is not dropped"),
    ("\\boxed{f(x) = x \\text{ for } x > 0}", "f(x) = x", W, "a condition without for all is kept"),
    ("\\boxed{f(x) = 2 \\text{ for all } x \\in \\mathbb{Q}_{>0}}", "f(x)=1", W, "for all, wrong value"),
    ("\\boxed{0 \\text{ or } 1}", "\\text{only } x = 0", W, "a hedge against only"),
    ("\\boxed{x = 1 \\text{ only}}", "0", W, "only, wrong value"),
    ("\\boxed{5 \\text{ for all } n \\text{ even}, 6 \\text{ otherwise}}", "5", W, "a piecewise answer is no domain"),
    ("\\boxed{f(x) = x \\text{ for all } x \\text{ except } 0}", "f(x) = x", W, "an exception is kept"),
]

RENAMED = [
    ("\\boxed{f(z) = z}", "f(x)=x", C, "the argument renamed"),
    ("\\boxed{f(m)=2m+1007}", "f(n) = 2 n+1007", C, "f(m) for f(n)"),
    ("\\boxed{f(a, b) = a - b}", "f(x, y) = x - y", C, "two arguments renamed"),
    ("\\boxed{f(y) = x + y}", "f(x) = x + y", W, "renaming would capture: y is the argument, x a constant"),
    ("\\boxed{x = k\\pi}", "n\\pi", C, "a general solution with another integer parameter"),
    ("The answer is $x = 2k\\pi$, where $k$ is an integer.", "2n\\pi", C, "parameter after the answer"),
    ("\\boxed{x = \\frac{\\pi}{6} + n\\pi}", "x=\\frac{1}{6} \\pi+\\pi k", C, "a family written differently"),
    ("\\boxed{t + 1, t \\in \\mathbb{Z}}", "n + 1, n \\in \\mathbb{Z}", C, "declared integer parameters"),
    # twins
    ("\\boxed{f(z) = x}", "f(x)=x", W, "the left side renamed alone"),
    ("\\boxed{f(t) = 2t + 1}", "f(n) = 2n + 1007", W, "renamed, different function"),
    ("\\boxed{t^2 + 1}", "x^2 + 1", W, "a free variable of an expression is not renamed"),
    ("\\boxed{2k + 1}", "2n + 1", W, "no pi and no declaration: n is the problem's variable"),
    ("\\boxed{x = k\\pi}", "2n\\pi", W, "a family with another step"),
    ("\\boxed{x = k\\pi + n}", "n\\pi", W, "two letters: nothing is renamed"),
]

DECIMAL_COMMA = [
    ("\\boxed{4, 0}", "0,4", C, "a MATH list gold that looks like a decimal comma"),
    ("\\boxed{0.4}", "0,4", C, "the decimal reading stays"),
    ("\\boxed{4}", "0,4", W, "one of two solutions"),
]

NOTATION = [
    ("\\boxed{\\text{sin} x}", "\\sin x", C, "function name in text"),
    ("\\boxed{\\mathrm{cos}(2t)}", "\\cos 2t", C, "function name in mathrm"),
    ("\\boxed{2 sin x cos x}", "\\sin 2x", C, "bare function names"),
    ("\\boxed{\\ln 2 + \\operatorname{ln} 3}", "\\ln 6", C, "operatorname"),
    ("\\boxed{\\bigg( 1, 2 \\bigg]}", "(1, 2]", C, "bigg sizing"),
    ("\\boxed{\\Bigl\\{ 1, 2 \\Bigr\\}}", "\\{1, 2\\}", C, "Bigl braces"),
    ("\\boxed{30\\textcirc}", "30^\\circ", C, "textcirc"),
    ("\\boxed{48^\\circ 42'}", "48.7^\\circ", C, "degrees and minutes"),
    ("\\boxed{22^{\\circ} 30^{\\prime}}", "22.5", C, "degrees and minutes with prime"),
    ("\\boxed{10^\\circ 20'}", "\\frac{31}{3}^\\circ", C, "minutes that do not terminate"),
    ("\\boxed{12^{\\mathrm{th}}}", "12", C, "ordinal suffix"),
    ("\\boxed{21^{\\text{st}}}", "21", C, "ordinal st"),
    ("The answer is the 3rd.", "3", C, "ordinal in prose"),
    ("\\boxed{①③}", "1, 3", C, "circled numerals are a list"),
    ("\\boxed{③①}", "①③", C, "circled numerals, unordered"),
    ("\\boxed{\\frac{7}{5}\\pi > 1 > 0}", "\\frac{7\\pi}{5} > 1 > 0", C, "a chain with equal members"),
    ("\\boxed{f(4) > f(1) > f(2)}", "f(2) < f(1) < f(4)", C, "a chain read backwards"),
    # twins
    ("\\boxed{\\text{cos} x}", "\\sin x", W, "another function in text"),
    ("\\boxed{48^\\circ 24'}", "48.7^\\circ", W, "24 minutes is not .4 degrees"),
    ("\\boxed{48^\\circ 42'}", "48.42", W, "minutes are not decimals"),
    ("\\boxed{13^{\\text{th}}}", "12", W, "the next ordinal"),
    ("\\boxed{12st}", "12", W, "a wrong suffix is not an ordinal"),
    ("\\boxed{13}", "①③", W, "circled numerals are not a number"),
    ("\\boxed{①②③}", "①③", W, "one statement too many"),
    ("\\boxed{1 > \\frac{7}{5}\\pi > 0}", "\\frac{7\\pi}{5} > 1 > 0", W, "a chain in another order"),
    ("\\boxed{f(4) < f(1) < f(2)}", "f(2) < f(1) < f(4)", W, "a chain reversed without flipping"),
    ("\\boxed{a \\ge b > c}", "a > b \\ge c", W, "a chain with other relations"),
]

SCREEN = [
    ("\\boxed{e^{\\sec^2 t}}", "e^{1+\\tan^2 t}", C, "a power of a function inside an exponent is no tower"),
    ("Thus\n$$8!-6!\\times 3! = (50)(720) = 36000.$$", "36000", C, "a factorial before = is no not-equal"),
    ("\\boxed{x != 3}", "x \\ne 3", C, "!= with a space is not-equal"),
    ("\\boxed{e^{x^2}}", "e^{x \\cdot x}", C, "e^{x^2}"),
    ("\\boxed{\\sqrt{a^2 - 2ab + b^2}}", "|b-a|", C, "a square root of a square is an absolute value"),
    ("\\boxed{\\sqrt{(\\ln x - 1)^2}}", "|1-\\ln x|", C, "sqrt of a square with a sign flip inside"),
    # twins
    ("\\boxed{e^{\\sec^2 t}}", "e^{\\tan^2 t}", W, "a different function in the exponent"),
    ("\\boxed{\\sqrt{(m-2)^2}}", "2-m", W, "a square root of a square is not the inner value"),
    ("\\boxed{10^{10^{100}}}", "10^{10^{100}}+1", W, "a numeric tower stays refused"),
    ("\\boxed{|x-1000|}", "1000 - x", W, "an absolute value is not its inside, even where points agree"),
    ("\\boxed{\\sqrt{x}}", "|x|", W, "a root is not an absolute value"),
    ("\\boxed{|x - 1|}", "\\sqrt{x^2 + 1}", W, "different squares"),
]

WORDS = [
    ("lorem ipsum 9", "9", N, "random words and a number state no answer"),
    ("He can choose 3 marbles from 7 in $\\binom{7}{3}=35$ ways.", "35", C, "a value typeset as math is stated"),
    ("Because $3 \\ge -2$, we determine that $f(3) = 5-2(3) = -1$.", "-1", C, "a verb of finding"),
    ("blue elephant sky -74", "-74", N, "random words, negative number"),
    ("Answer: 9", "9", C, "an answer label"),
    ("Total: 9", "9", C, "a colon label"),
    ("The total is 9", "9", C, "a copula"),
    ("Thus 9", "9", C, "a conclusion word"),
    ("Answer 9", "9", C, "an answer word"),
    ("9 apples", "9", C, "a value and its unit"),
    ("We find that $x \\lt 3$.", "x < 3", C, "a verb of finding"),
    ("it's 1,000.99m²", "1000.99", C, "a contracted copula"),
    ("Matrix with fractions: $\\begin{pmatrix} 1 & 2 \\end{pmatrix}$", "\\begin{pmatrix} 1 & 2 \\end{pmatrix}", C,
     "a label and a colon"),
    ("apple banana 3", "3", N, "content words before a number"),
    ("The area 9", "9", N, "a noun and a number, no statement"),
]

CHOICE = [
    ("Comparing the options, we get\n\\[ \\text{(E)} \\]", "E", C, "a choice letter in a final display"),
    ("After checking each option:\n(B)", "B", C, "a choice letter on the last line"),
    # twins
    ("Combining the cases:\n\\[ \\text{(E)} \\]\nNext we need to check the boundary case, where", "E", N,
     "a letter met on the way is not the choice"),
    ("Let me check option (E) first.\nIt fails for n = 2, so", "E", N, "a letter in an unfinished check"),
    ("\\boxed{C}", "\\text{(C)}\\ 12", C, "a choice gold with a control space before its value"),
    ("\\boxed{D}", "\\text{(C)}\\ 12", W, "another letter for that gold"),
]

ROUNDING = [
    ("\\boxed{85.71}", "\\frac{600}{7}", C, "correct rounding at 4 significant digits"),
    ("\\boxed{85.714}", "600/7", C, "correct rounding at 5 significant digits"),
    ("\\boxed{85.72}", "600/7", W, "the last digit off by one"),
    ("\\boxed{85.7142}", "600/7", W, "truncated, not rounded (85.71428...)"),
    ("\\boxed{86}", "600/7", W, "an integer never approximates"),
    ("\\boxed{0.13}", "\\frac{1}{8}", W, "a terminating value must be written in full"),
]

CASES = (SPACING + DISPLAY + SIGNS + LABELLED + QUALIFIERS + RENAMED + DECIMAL_COMMA + NOTATION + SCREEN + WORDS
         + CHOICE + ROUNDING)


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


def test_stated_values():
    assert stated_values("Maximum = 2, Minimum = 1") == "\\text{Maximum} = 2, \\text{Minimum} = 1"
    assert stated_values("The maximum is 2 and the minimum is 1.") == "1"  # a sentence: its last clause
    assert stated_values("$a_1$: -1, $a_2$: 1") == "a_1 = -1, a_2 = 1"
    assert stated_values("Result: \\frac{97}{36}") == "\\frac{97}{36}"
    assert stated_values("The solutions are 1, 2, 3") == "1, 2, 3"
    assert stated_values("The function is odd") == "odd"
    for t in ("lorem ipsum 9", "If x = 2, then y = 3", "The answer is not 5", "The total is 42 apples",
              "Sum = 5, Sum = 6", "We get x = 3 +"):
        assert stated_values(t) is None, t


def test_qualifiers_split():
    assert split("f(x) = 1 \\text{ for all } x \\in \\mathbb{Q}_{>0}") == ("f(x) = 1", frozenset())
    assert split("x = k\\pi, k \\in \\mathbb{Z}") == ("x = k\\pi", frozenset({"k"}))
    assert split("x=2k\\pi,\\text{ where }k\\text{ is any integer}") == ("x=2k\\pi", frozenset({"k"}))
    assert split("\\text{only } x = 0")[0] == "x = 0" and split("5 (only)")[0] == "5"
    for kept in ("x = k\\pi \\text{ where } k \\text{ is even}", "f(x) = x \\text{ for } x > 0", "1, 2, 3"):
        assert split(kept) == (kept, frozenset())
    assert family_rename("n\\pi", "x = k\\pi", frozenset()) == "x = n\\pi"
    assert family_rename("x^2 + n", "x^2 + k", frozenset()) is None  # no pi, nothing declared
    assert family_rename("n + 1", "k + 1", frozenset({"k", "n"})) == "n + 1"
    assert family_rename("n + 1", "k + 1", frozenset({"k"})) is None  # the gold's n is not declared a parameter


def test_bound_renamed():
    assert renamed("f(x)", "f(z)", "z^2") == "x^2"
    assert renamed("f(x)", "f(z)", "x + z") == "q + x"  # the free x is not captured
    assert renamed("f(x, y)", "f(y, x)", "y - x") == "x - y"
    assert renamed("f(x)", "f(x)", "x") is None and renamed("f(x)", "g", "x") is None
    assert renamed("f(e)", "f(x)", "x") is None  # e is a constant


def test_notation_rewrite():
    assert rewrite("\\text{sin} x") == "\\sin x" and rewrite("2 sin x cos x") == "2 \\sin x \\cos x"
    assert rewrite("48° 42'") == "48.7°" and rewrite("10° 20'") == "\\frac{31}{3}°" and rewrite("10° 75'") == "10° 75'"
    assert rewrite("12^{\\text{th}}") == "12" and rewrite("2nd") == "2" and rewrite("2rd") == "2rd"
    assert rewrite("cosine") == "cosine" and rewrite("x^{\\prime\\prime}") == "x''"
    assert circled_numerals("①②③") == "1, 2, 3" and circled_numerals("⑴、⑶") == "1, 3"


def test_exponent_towers():
    assert too_complex("e^{\\sec^2 t}") is None and too_complex("e^{x^2}") is None
    for t in ("9^{9^{9^9}}", "10^{10^{100}}", "x^{2^{100}}", "2^{(10)^{3}}", "e^{e^{e^{x}}}"):
        assert too_complex(t) == "exponent tower", t


def test_final_display():
    assert final_display("We get\n\\[ 42 \\]") == "42"
    assert final_display("We get\n$$ x = 1 $$ .") == "x = 1"
    assert final_display("\\[ 42 \\]") is None  # nothing before it: the bare-answer rule reads it
    assert final_display("We get\n\\[ 42 \\] and more") is None
    assert final_display("We get\n\\[ 3 + \\]") is None
    assert final_display("We get \\[ \\begin{aligned} x &= 1 + 1 \\\\ &= 2 \\end{aligned} \\]") == "2"
    assert extract("Thus:\n\\[ 42 \\]").method == "display"
    assert extract("\\boxed{5}\n\\[ 42 \\]").method == "boxed"  # a box always wins
