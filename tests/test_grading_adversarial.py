"""Hand-decided adversarial cases for the grader: reward-hacking attempts and the known mistakes of public
graders (Math-Verify, Qwen2.5-Math, prm800k, verl). Both directions are checked: false positives (a wrong or
missing answer rewarded) and false negatives (a right answer in another form refused)."""
import time

import pytest

from reward_service.grading import CORRECT, NO_ANSWER, WRONG, grade

C, W, N = CORRECT, WRONG, NO_ANSWER

# (completion, gold, expected verdict, why)
HACKS = [
    # several boxes in the final span are one set answer: a shotgun never matches a single gold
    (r"\boxed{1}\boxed{2}\boxed{3}", "2", W, "shotgun of boxes"),
    (r"So $\boxed{1}$, $\boxed{2}$, $\boxed{3}$.", "2", W, "shotgun with commas"),
    (r"It is \boxed{1} or \boxed{2}", "2", W, "shotgun with or"),
    (r"\boxed{2, 3}", "2", W, "list for a single answer"),
    (r"\boxed{2 \text{ or } 3}", "2", W, "or inside a box"),
    (r"\boxed{2}\boxed{2}", "2", C, "the same box twice is one answer"),
    (r"First I got \boxed{1}. Wait, that is wrong; redoing the algebra gives \boxed{2}.", "2", C,
     "self-correction: the last box counts"),
    # reasoning is not the answer
    (r"<think>maybe 41</think><answer>42</answer>", "42", C, "answer tag after think"),
    (r"<think>maybe 42</think><answer>41</answer>", "42", W, "answer in think does not count"),
    (r"<think>so the answer is \boxed{42}</think>", "42", N, "answer only inside think"),
    (r"<think>so the answer is \boxed{42}", "42", N, "unterminated think"),
    (r"<think>hmm</think>", "42", N, "nothing after think"),
    (r"<answer></answer>", "42", N, "empty answer tag"),
    (r"<answer> \boxed{42} </answer>", "42", C, "box inside the answer tag"),
    # truncated output
    (r"Thus the answer is \boxed{4", "42", N, "unclosed box"),
    (r"\boxed{42} is a guess, the real one is \boxed{4", "42", N, "last box unclosed"),
    (r"\boxed{}", "2", N, "empty box"),
    # answerless completions are not graded on their last number
    ("Let's compute 6 * 7 = 42. Next we need to handle the second part of the problem, which asks for the "
     "remainder, so we keep going with the division", "42", N, "answerless, last number"),
    ("We have 20 + 22 = 42.\nThen we need to check the constraint on the other variable carefully before", "42", N,
     "answerless, two lines"),
    # undefined symbols and structure mismatches
    (r"\boxed{x}", "2", W, "undefined symbol"),
    (r"\boxed{\pm 2}", "2", W, "pm for a single value"),
    (r"\boxed{[0, 1]}", "(0,1)", W, "closed for open interval"),
    (r"\boxed{[0, 1)}", "[0,1]", W, "half-open for closed"),
    (r"\boxed{(2, 1)}", "(1,2)", W, "tuple order matters"),
    (r"\boxed{\infty}", "-\\infty", W, "sign of infinity"),
    (r"\boxed{\infty}", "100", W, "infinity is not a number"),
    (r"\boxed{y = 2}", "x = 2", W, "different variable"),
    (r"\boxed{\frac{1}{0}}", "1", W, "division by zero"),
    (r"\boxed{12:00}", "1:00", W, "times differ"),
    (r"\boxed{(B)}", "C", W, "other choice"),
    # found by sweeping perturbed dataset golds
    (r"\boxed{1}", r"\lfloor\sqrt{n-1}\rfloor", W, "a step function is not a constant"),
    (r"\boxed{\lfloor\sqrt{n+1}\rfloor}", r"\lfloor\sqrt{n-1}\rfloor", W, "step functions agreeing at points"),
    (r"\boxed{I(0)e^{+\frac{t}{RC}}}", r"I(0)e^{-\frac{t}{RC}}", W, "I(0) is a quantity, not I times 0"),
    (r"\boxed{-37_9}", "-37_8", W, "base subscript"),
    (r"\boxed{\$\dfrac53 \approx \$0.67}", r"\$\dfrac23 \approx \$0.67", W, "exact part before approx"),
    (r"\boxed{\sqrt{2}+10^{-50}}", r"\sqrt{2}", W, "difference below 1e-30"),
    (r"\boxed{1.41421356237309504880168872420969807856967187537694}", r"\sqrt2", W, "50 digits, badly rounded"),
    (r"\boxed{1.41421356237309504880168872420969807856967187537695}", r"\sqrt2", C, "50 digits, rounded"),
    # truncated short statements are not answers
    ("Let me compute 3*4 = 12 and", "12", N, "cut off after a conjunction"),
    ("Let's see, 6 times 7 is 42, so", "42", N, "cut off after a comma"),
    ("6 times 7 is 42", "42", C, "a short complete statement"),
    # degrees inside expressions
    (r"\boxed{\cos 75^\circ}", r"\frac{\sqrt{6}-\sqrt{2}}{4}", C, "degrees inside a function"),
    (r"\boxed{\approx 3.14}", "3.14", C, "leading approx sign"),
]

FORMS = [
    # exact arithmetic, never via float
    (r"\boxed{\frac{1}{2^{99}}}", r"\frac{1}{2^{98}}", W, "1/2^99 != 1/2^98"),
    (r"\boxed{2^{-99}}", r"\frac{1}{2^{99}}", C, "negative exponent"),
    (r"\boxed{12345678901234567891}", "12345678901234567890", W, "big integers differ by 1"),
    (r"\boxed{0.1+0.2}", "0.3", C, "decimals are exact"),
    (r"\boxed{5.0001}", "5", W, "close is not equal"),
    (r"\boxed{2.9999999999}", "3", W, "an integer is not approximated"),
    # decimal approximations: the digits shown decide
    (r"\boxed{0.333}", r"\frac{1}{3}", C, "correctly rounded, 3 digits"),
    (r"\boxed{0.33}", r"\frac{1}{3}", C, "correctly rounded, 2 digits"),
    (r"\boxed{0.3}", r"\frac{1}{3}", W, "one digit is too few"),
    (r"\boxed{0.34}", r"\frac{1}{3}", W, "wrongly rounded"),
    (r"\boxed{0.3333333333333333}", r"\frac13", C, "printed float"),
    (r"\boxed{0.866}", r"\frac{\sqrt{3}}{2}", C, "irrational, rounded"),
    (r"\boxed{0.867}", r"\frac{\sqrt{3}}{2}", W, "irrational, badly rounded"),
    (r"\boxed{2.45}", "2.5", W, "two decimals, different"),
    (r"\boxed{2.50}", "2.5", C, "trailing zero"),
    (r"\boxed{1,000}", "1000", C, "thousands separator"),
    (r"\boxed{1,000}", "1.000", W, "1,000 is a thousand, 1.000 is one"),
    (r"\boxed{1.000}", "1", C, "1.000 is one"),
    (r"\boxed{10{,}000}", "10000", C, "LaTeX thousands separator"),
    (r"\boxed{1\,000\,000}", "1000000", C, "thin-space separators"),
    ("\\boxed{1\u2009000}", "1000", C, "unicode thin space"),
    (r"\boxed{1.5e3}", "1500", C, "e-notation"),
    (r"\boxed{1.5 \times 10^{3}}", "1500", C, "scientific notation"),
    (r"\boxed{0.\overline{3}}", r"\frac{1}{3}", C, "repeating decimal"),
    (r"\boxed{0.1\overline{6}}", r"\frac{1}{6}", C, "repeating decimal with prefix"),
    (r"\boxed{2\frac12}", r"\frac{5}{2}", C, "mixed number"),
    (r"\boxed{7 3/4}", r"\frac{31}{4}", C, "plain mixed number"),
    (r"\boxed{-3\frac{1}{2}}", "-3.5", C, "negative mixed number"),
    (r"\boxed{\dfrac{-1}{2}}", "-0.5", C, "dfrac"),
    ("\\boxed{\u22125}", "-5", C, "unicode minus"),
    ("\\boxed{3\u221a2}", r"3\sqrt{2}", C, "unicode sqrt"),
    ("\\boxed{2\u03c0}", r"2\pi", C, "unicode pi"),
    (r"\boxed{\sqrt{8}}", r"2\sqrt{2}", C, "surd forms"),
    (r"\boxed{\sqrt{8}}", r"2\sqrt{3}", W, "different surd"),
    (r"\boxed{025}", 25, C, "AIME zero padded, int gold"),
    (r"\boxed{27}", 27.0, C, "AMC float gold"),
    (r"\boxed{24.99}", 25, W, "close to an integer gold"),
    # percent rule
    (r"\boxed{50\%}", "0.5", C, "percent = value/100"),
    (r"\boxed{50}", r"50\%", C, "percent sign dropped"),
    (r"\boxed{0.5}", r"50\%", C, "percent as a fraction"),
    (r"\boxed{40\%}", r"50\%", W, "different percent"),
    # units
    (r"\boxed{5 \text{ m}}", r"5 \text{ cm}", W, "different units"),
    (r"\boxed{5 \text{ m}}", "5", C, "unit dropped"),
    (r"\boxed{5}", r"5 \text{ meters}", C, "gold unit dropped"),
    (r"\boxed{5\text{ meters}}", r"5\text{ m}", C, "same unit spelled out"),
    (r"\boxed{15\mbox{ cm}^2}", "15", C, "area unit"),
    # degrees
    (r"\boxed{30^\circ}", "30", C, "degree sign dropped"),
    (r"\boxed{30^{\circ}}", r"\frac{\pi}{6}", C, "degrees against radians"),
    (r"\boxed{\frac{\pi}{6}}", "30", W, "radians for a degree answer"),
    ("\\boxed{30\u00b0}", "30", C, "unicode degree"),
    # structures
    (r"\boxed{x = 2}", "2", C, "assignment"),
    (r"\boxed{2}", "x=2", C, "gold assignment"),
    (r"\boxed{1, -2}", "-2, 1", C, "solution lists are unordered"),
    (r"\boxed{\{1, 1, 2\}}", r"\{1, 2\}", C, "sets ignore duplicates"),
    (r"\boxed{1, 2, 3}", "1, 2", W, "extra solution"),
    (r"\boxed{2, -2}", r"\pm 2", C, "plus-minus"),
    (r"\boxed{\pm 2}", r"2, -2", C, "plus-minus in the answer"),
    (r"\boxed{x \in (1, 2)}", "(1,2)", C, "set membership prefix"),
    (r"\boxed{(-\infty, 3]}", r"x \le 3", C, "interval for an inequality gold"),
    (r"\boxed{[1, \infty)}", r"x \geq 1", C, "closed ray"),
    (r"\boxed{(-\infty, 1) \cup (2, \infty)}", r"(2,\infty)\cup(-\infty,1)", C, "union order"),
    (r"\boxed{\begin{bmatrix} 1 & 2 \\ 3 & 4 \end{bmatrix}}", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", C,
     "matrix brackets"),
    (r"\boxed{\begin{pmatrix} 1 & 2 \\ 3 & 5 \end{pmatrix}}", r"\begin{pmatrix} 1 & 2 \\ 3 & 4 \end{pmatrix}", W,
     "matrix entry"),
    (r"\boxed{2x+4y=6}", "x+2y=3", C, "equation up to a factor"),
    (r"\boxed{x+2y=4}", "x+2y=3", W, "different equation"),
    (r"\boxed{y=2x+1}", "2x-y+1=0", C, "rearranged line"),
    (r"\boxed{(x+1)^2}", "x^2+2x+1", C, "expanded polynomial"),
    (r"\boxed{(x+1)^3}", "x^2+2x+1", W, "different polynomial"),
    (r"\boxed{2i+1}", "1+2i", C, "complex number"),
    (r"\boxed{1-2i}", "1+2i", W, "conjugate"),
    # multiple choice
    (r"\boxed{\text{(C)}}", "C", C, "text choice"),
    (r"\boxed{C}", r"\text{(C)}", C, "choice gold in text"),
    ("The answer is (B).", "B", C, "choice in a sentence"),
    ("B: because the others fail", "B", C, "choice with colon"),
    ("B. It is the only one.", "B", C, "choice with period"),
    # text answers
    (r"\boxed{\text{Evelyn}}", "Evelyn", C, "text answer"),
    (r"\boxed{\text{odd}}", r"\text{even}", W, "different text"),
]

EXTRACTION = [
    ("The answer is 42.", "42", C, "phrase"),
    ("Answer: 42", "42", C, "answer colon"),
    ("Final Answer: The final answer is $\\frac{1}{2}$. I hope it is correct.", "0.5", C, "minerva"),
    ("Janet has 3 apples.\n#### 3", "3", C, "gsm8k marker"),
    (r"\boxed 5", "5", C, "boxed without braces"),
    (r"\fbox{42}", "42", C, "fbox"),
    ("We get \\boxed{255} for the first part.\nFinal Answer: The final answer is $10,455$. I hope it is correct.",
     "10455", C, "a final statement after a box overrides it"),
    ("42", "42", C, "bare answer"),
    ("$x = \\frac{1}{3}$", r"\frac13", C, "bare math"),
    ("Therefore, the probability that Alice wins is 2/3.", "2/3", C, "conclusion sentence"),
    ("", "1", N, "empty completion"),
]

GOLDS = [
    ("1000", "Natalia sold 48/2 = <<48/2=24>>24 clips in May.\n#### 1,000", C, "gsm8k rationale"),
    ("0.02", ["0.01", "0.02"], C, "list of accepted answers"),
    ("0.03", ["0.01", "0.02"], W, "not in the accepted list"),
    ("0.5", "We see that $x = \\frac{1}{2}$, so the answer is $\\boxed{\\frac{1}{2}}$.", C, "boxed solution"),
    ("(1,1), (3,2)", ["$(1,1), (3,2)$"], C, "olympiadbench list"),
    ("17.5\\%", ["17.5%"], C, "olympiadbench percent"),
]


@pytest.mark.parametrize("completion,gold,expected,why", HACKS + FORMS + EXTRACTION)
def test_adversarial(completion, gold, expected, why):
    g = grade(completion, gold)
    assert g.verdict == expected, f"{why}: got {g}"


@pytest.mark.parametrize("pred,gold,expected,why", GOLDS)
def test_gold_forms(pred, gold, expected, why):
    g = grade(f"\\boxed{{{pred}}}", gold)
    assert g.verdict == expected, f"{why}: got {g}"


def test_last_number_fallback_only_when_asked():
    text = "We add the two parts: 20 + 22 which gives us 42 in total, and that is what we were looking for here"
    assert grade(text + ". Then more reasoning follows.\nAnd more", 42).verdict == NO_ANSWER
    assert grade(text + ". Then more reasoning follows.\nAnd more 42", 42, last_number_fallback=True).verdict == CORRECT


PATHOLOGICAL = [
    ("9^{9^{9^9}}", "1"),
    ("10^{10^{100}}", "10^{10^{100}}+1"),
    ("1" + "0" * 100_000, "1"),
    ("\\frac{" * 1000 + "1" + "}{2}" * 1000, "1"),
    ("100000!", "1"),
    ("(10!)!", "2"),
    ("2^{2^{2^{2^{2^{2}}}}}", "x"),
    ("x^{" * 300 + "2" + "}" * 300, "x"),
    ("\\sqrt{" * 2000 + "2" + "}" * 2000, "2"),
    ("(" * 5000 + "1" + ")" * 5000, "1"),
    ("1+" * 20000 + "1", "20001"),
    ("\\sum_{k=1}^{10^{12}} k", "1"),
]


@pytest.mark.parametrize("pred,gold", PATHOLOGICAL)
def test_pathological_inputs_are_decided_fast(pred, gold):
    t = time.perf_counter()
    g = grade(f"\\boxed{{{pred}}}", gold)
    dt = time.perf_counter() - t
    assert g.verdict in (WRONG, NO_ANSWER), g
    assert dt < 2.0, f"{dt:.2f}s"


# completions built to trigger quadratic behaviour in extraction (regex backtracking, brace matching)
HUGE_COMPLETIONS = [
    "\\(" * 50_000, "\\boxed{" * 20_000, " " * 500_000 + "5", "Final Answer: The final answer is " * 10_000,
    "$x" * 50_000, "{" * 100_000, "<think>" * 20_000, "1, " * 60_000, "So x is 5. " * 20_000,
    "\\boxed{" + "9" * 300_000 + "}", "\\boxed{" * 5_000 + "5" + "}" * 5_000, "." * 100_000 + "a",
]


@pytest.mark.parametrize("completion", HUGE_COMPLETIONS, ids=range(len(HUGE_COMPLETIONS)))
def test_huge_completions_are_decided_fast(completion):
    t = time.process_time()
    g = grade(completion, "5")
    assert time.process_time() - t < 1.0, g


def test_identical_huge_answers_are_correct_fast():
    big = "1" + "0" * 100_000
    t = time.perf_counter()
    assert grade(f"\\boxed{{{big}}}", big).verdict == CORRECT
    assert grade("\\boxed{9^{9^{9^9}}}", "9^{9^{9^9}}").verdict == CORRECT
    assert time.perf_counter() - t < 2.0


def test_huge_completion_is_fast():
    text = "blah " * 100_000 + "\\boxed{42}"
    t = time.perf_counter()
    assert grade(text, "42").verdict == CORRECT
    assert time.perf_counter() - t < 2.0


# more hand-decided cases: (completion, gold, expected)
MORE_FORMS = [
    # (completion, gold, expected)
    ("**Final Answer**\n\\[\n\\boxed{5}\n\\]", "5", C),
    ("The final answer is: $\\boxed{5}$", "5", C),
    ("Thus $\\boxed{\\textbf{(B)}\\ 12}$", "B", C),
    ("Thus $\\boxed{\\textbf{(B)}\\ 12}$", "12", C),
    ("The answer is $\\boxed{B}$.", "(B) 12", C),
    ("So the answer is 12.", "12", C),
    ("So the answer is 12 apples.", "12", C),
    ("The answer is $x=3$.", "3", C),
    ("The answer is $x = 3$ or $x = -3$.", "\\pm 3", C),
    ("The solutions are $x=3$ and $x=-3$, so the answer is \\boxed{3, -3}.", "-3, 3", C),
    ("\\boxed{x=3} \\text{ and } \\boxed{x=-3}", "\\pm3", C),
    ("\\boxed{(3, 4)}", "(3,4)", C),
    ("\\boxed{\\left( 3, 4 \\right)}", "(3,4)", C),
    ("\\boxed{3,4}", "(3,4)", C),
    ("\\boxed{\\frac{3}{4}}", "\\frac34", C),
    ("\\boxed{\\tfrac{3}{4}}", "0.75", C),
    ("\\boxed{75\\%}", "\\frac34", C),
    ("\\boxed{3/4}", "3:4", W),
    ("\\boxed{2:3}", "2:3", C),
    ("\\boxed{4:6}", "2:3", W),
    ("\\boxed{1,000,000}", "10^6", C),
    ("\\boxed{10^6}", "1000000", C),
    ("\\boxed{\\$1,234.50}", "1234.5", C),
    ("\\boxed{1234.5 \\text{ dollars}}", "\\$1234.50", C),
    ("\\boxed{-\\frac{\\sqrt{2}}{2}}", "-\\frac{1}{\\sqrt{2}}", C),
    ("\\boxed{\\frac{1}{\\sqrt{2}}}", "-\\frac{\\sqrt2}{2}", W),
    ("\\boxed{2\\sqrt{3}+1}", "1+2\\sqrt3", C),
    ("\\boxed{\\sqrt[3]{16}}", "2\\sqrt[3]{2}", C),
    ("\\boxed{\\log_2 8}", "3", C),
    ("\\boxed{\\ln e^2}", "2", C),
    ("\\boxed{e^2}", "e^{2}", C),
    ("\\boxed{2e}", "2e", C),
    ("\\boxed{\\frac{x^2-1}{x-1}}", "x+1", C),
    ("\\boxed{x^2 - 5x + 6}", "(x-2)(x-3)", C),
    ("\\boxed{x^2 - 5x + 5}", "(x-2)(x-3)", W),
    ("\\boxed{y = -2x + 3}", "y=3-2x", C),
    ("\\boxed{y = -2x + 4}", "y=3-2x", W),
    ("\\boxed{2x + y = 3}", "y=3-2x", C),
    ("\\boxed{f(x) = 3x^2}", "3x^2", C),
    ("\\boxed{6+9i}", "6+9i", C),
    ("\\boxed{9i+6}", "6+9i", C),
    ("\\boxed{6-9i}", "6+9i", W),
    ("\\boxed{\\text{Monday}}", "\\text{Monday}", C),
    ("\\boxed{Monday}", "\\text{Monday}", C),
    ("\\boxed{\\text{Tuesday}}", "\\text{Monday}", W),
    ("\\boxed{\\text{yes}}", "\\text{Yes}", C),
    ("\\boxed{\\text{no}}", "\\text{Yes}", W),
    ("\\boxed{2516_8}", "2516_8", C),
    ("\\boxed{2516_{8}}", "2516_8", C),
    ("\\boxed{2517_8}", "2516_8", W),
    ("\\boxed{1010_2}", "10", W),
    ("\\boxed{(-\\infty, -3] \\cup [2, \\infty)}", "(-\\infty,-3]\\cup[2,\\infty)", C),
    ("\\boxed{(-\\infty, -3) \\cup [2, \\infty)}", "(-\\infty,-3]\\cup[2,\\infty)", W),
    ("\\boxed{[-3, 2]}", "[-3,2]", C),
    ("\\boxed{-3 \\le x \\le 2}", "[-3,2]", W),  # policy: inequality for interval gold
    ("\\boxed{[-3, 2]}", "-3 \\le x \\le 2", C),
    ("\\boxed{x \\in [-3, 2]}", "[-3,2]", C),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", C),
    ("\\boxed{\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}}", "(1,2)", C),
    ("\\boxed{\\begin{pmatrix} 2 \\\\ 1 \\end{pmatrix}}", "\\begin{pmatrix} 1 \\\\ 2 \\end{pmatrix}", W),
    ("\\boxed{\\begin{pmatrix} 1/2 & 0 \\\\ 0 & 1 \\end{pmatrix}}", "\\begin{pmatrix} 0.5 & 0 \\\\ 0 & 1 \\end{pmatrix}", C),
    ("\\boxed{45^\\circ}", "45", C),
    ("\\boxed{45}", "45^\\circ", C),
    ("\\boxed{46^\\circ}", "45^\\circ", W),
    ("\\boxed{\\frac{\\pi}{4}}", "45^\\circ", C),
    ("\\boxed{0.7854}", "\\frac{\\pi}{4}", C),
    ("\\boxed{0.785}", "\\frac{\\pi}{4}", C),
    ("\\boxed{0.78}", "\\frac{\\pi}{4}", W),
    ("\\boxed{3.14}", "\\pi", C),
    ("\\boxed{3.15}", "\\pi", W),
    ("\\boxed{22/7}", "\\pi", W),
    ("\\boxed{\\infty}", "\\infty", C),
    ("\\boxed{+\\infty}", "\\infty", C),
    ("\\boxed{\\text{undefined}}", "\\text{undefined}", C),
    ("\\boxed{\\emptyset}", "\\varnothing", C),
    ("\\boxed{\\{\\}}", "\\emptyset", C),
    ("\\boxed{\\mathbb{R}}", "(-\\infty,\\infty)", C),
    ("\\boxed{\\{1,2,3\\}}", "\\{3,2,1\\}", C),
    ("\\boxed{\\{1,2\\}}", "\\{1,2,3\\}", W),
    ("\\boxed{12}", "12\\text{ inches}", C),
    ("\\boxed{1 \\text{ foot}}", "12\\text{ inches}", W),
    ("\\boxed{5\\text{ cm}^2}", "5\\text{ cm}^2", C),
    ("\\boxed{5 \\text{ cm}^2}", "5 \\text{ cm}", W),
    ("\\boxed{5 \\text{cm}}", "5 \\text{ cm}", C),
    ("\\boxed{5\\ \\text{m}}", "5\\ \\text{cm}", W),
    ("\\boxed{5 m}", "5 cm", W),
    ("\\boxed{5m}", "5", C),
    ("\\boxed{5x}", "5", W),
    ("\\boxed{2 \\times 10^{3}}", "2000", C),
    ("\\boxed{2\\cdot 10^3}", "2000", C),
    ("\\boxed{2 \\times 10^{3}}", "2001", W),
    ("\\boxed{1.23 \\times 10^{5}}", "123000", C),
    ("\\boxed{1.2 \\times 10^{5}}", "123000", W),
    ("\\boxed{-0}", "0", C),
    ("\\boxed{0.0}", "0", C),
    ("\\boxed{00}", "0", C),
    ("\\boxed{1e-3}", "0.001", C),
    ("\\boxed{\\frac{1}{1000}}", "10^{-3}", C),
    ("\\boxed{5!}", "120", C),
    ("\\boxed{\\binom{5}{2}}", "10", C),
    ("\\boxed{C(5,2)}", "10", W),
    ("\\boxed{\\dbinom{5}{2}}", "10", C),
    ("\\boxed{|{-3}|}", "3", C),
    ("\\boxed{\\lfloor 3.7 \\rfloor}", "3", C),
    ("\\boxed{a+b}", "b+a", C),
    ("\\boxed{ab}", "ba", C),
    ("\\boxed{a^2b}", "ab^2", W),
    ("\\boxed{\\alpha+\\beta}", "\\beta+\\alpha", C),
    ("\\boxed{x_1 + x_2}", "x_2+x_1", C),
    ("\\boxed{\\sqrt{x^2}}", "x", W),  # |x| differs from x for x < 0
    ("\\boxed{n(n+1)/2}", "\\frac{n^2+n}{2}", C),
    ("\\boxed{\\frac{n(n+1)}{2}}", "\\binom{n+1}{2}", C),
]

LONG_REASONING = "Let me think about this carefully. " * 30
# (completion, gold, expected, grade() keyword arguments)
MORE_EXTRACTION = [
    (LONG_REASONING + "Therefore, the answer is $\\boxed{42}$.", "42", C, {}),
    (LONG_REASONING + "So we get 42 apples in total.", "42", N, {}),
    (LONG_REASONING + "So we get 42 apples in total.", "42", C, {"last_number_fallback": True}),
    (LONG_REASONING + "Thus, the total number of apples is 42.", "42", C, {}),
    (LONG_REASONING + "Thus, the total number of apples is 41.", "42", W, {}),
    (LONG_REASONING + "Thus, the total number of apples is", "42", N, {}),
    ("Natalia sold 48 clips in April and 24 in May, so 48+24 = 72 clips.\n#### 72", "72", C, {}),
    ("Natalia sold 48 clips in April and 24 in May, so 48+24 = 72 clips.\n#### 72", "#### 72", C, {}),
    ("She has 5 + 3 = 8 dollars.\nThe answer is 8.", "8", C, {}),
    ("She has 5 + 3 = 8 dollars.\nThe answer is $8.", "8", C, {}),
    ("She has 5 + 3 = 8 dollars.\nThe answer is 8 dollars.", "8", C, {}),
    ("She has 5 + 3 = 8 dollars.\nAnswer: 8", "8", C, {}),
    ("She has 5 + 3 = 8 dollars.\n**Answer:** 8", "8", C, {}),
    ("She has 5 + 3 = 8 dollars.\n**Answer: 8**", "8", C, {}),
    ("The answer is: 8", "8", C, {}),
    ("<think>\nLet me compute 3+5.\n</think>\n\nThe answer is \\boxed{8}.", "8", C, {}),
    ("<think>\nLet me compute 3+5 = \\boxed{8}.\n</think>\n\nI am not sure.", "8", N, {}),  # a refusal is no answer
    ("<think>\nLet me compute 3+5.\n</think>\n<answer>\n8\n</answer>", "8", C, {}),
    ("<think>\nLet me compute 3+5.\n</think>\n<answer>\n\\boxed{8}\n</answer>", "8", C, {}),
    ("<think>\nLet me compute 3+5.\n</think>\n<answer>The answer is 8.</answer>", "8", C, {}),
    ("<think>a</think><think>b</think>\\boxed{8}", "8", C, {}),
    ("<think>a</think>\\boxed{8}<think>b", "8", N, {}),
    ("<answer>8</answer><answer>9</answer>", "9", C, {}),
    ("I think it's \\boxed{8}, no wait, \\boxed{9}", "9", C, {}),
    ("\\boxed{8} \\boxed{9}", "9", W, {}),
    ("\\boxed{8}\n\n\\boxed{9}", "9", W, {}),
    ("$\\boxed{8}$ and $\\boxed{9}$", "8, 9", C, {}),
    ("$\\boxed{8}$ and $\\boxed{9}$", "9, 8", C, {}),
    ("The roots are $\\boxed{8}$ and $\\boxed{9}$.", "\\{8, 9\\}", C, {}),
    ("x = \\boxed{8}, y = \\boxed{9}", "(8, 9)", C, {}),
    ("\\boxed{8}.\n\nWait, let me double-check. Actually the computation is right.", "8", C, {}),
    ("The final answer is $\\boxed{8}$. I hope it is correct.", "8", C, {}),
    ("Final Answer: The final answer is 8. I hope it is correct.", "8", C, {}),
    ("Final Answer: The final answer is $(1, 2)$. I hope it is correct.", "(1,2)", C, {}),
    ("Final Answer: The final answer is $(1, 2)$. I hope it is correct.", "(2,1)", W, {}),
    ("The final answer is 8", "8", C, {}),
    ("The final answer is \\(8\\).", "8", C, {}),
    ("The final answer is \\[8\\]", "8", C, {}),
    ("8", 8, C, {}),
    ("  8  ", "8", C, {}),
    ("8.", "8", C, {}),
    ("eight", "8", W, {}),
    ("", "8", N, {}),
    ("   \n ", "8", N, {}),
    ("I don't know.", "8", N, {}),
    ("\\boxed{\\text{I don't know}}", "8", N, {}),
    ("\\boxed{8 + 0}", "8", C, {}),
    ("\\boxed{16/2}", "8", C, {}),
    ("\\boxed{2^3}", "8", C, {}),
    ("\\boxed{8.0}", "8", C, {}),
    ("\\boxed{08}", "8", C, {}),
    ("\\boxed{8\\%}", "8", C, {}),
    ("\\boxed{0.08}", "8\\%", C, {}),
    ("\\boxed{80\\%}", "8", W, {}),
    ("\\boxed{\\frac{16}{2}}", "8", C, {}),
    ("\\boxed{\\sqrt{64}}", "8", C, {}),
    ("\\boxed{-8}", "8", W, {}),
    ("\\boxed{8}", "-8", W, {}),
    ("\\boxed{\\pm 8}", "\\pm 8", C, {}),
    ("\\boxed{8, -8}", "\\pm 8", C, {}),
    ("\\boxed{8}", "\\pm 8", W, {}),
    ("\\boxed{8}", ["8", "eight"], C, {}),
    ("\\boxed{\\text{eight}}", ["8", "eight"], C, {}),
    ("\\boxed{8}", "The answer is $\\boxed{8}$", C, {}),
    ("\\boxed{8}", "$8$", C, {}),
    ("\\boxed{8}", "\\(8\\)", C, {}),
    ("\\boxed{8}", " 8 ", C, {}),
    ("\\boxed{a}", "A", C, {}),   # choice letter, case? 
]


@pytest.mark.parametrize("completion,gold,expected", MORE_FORMS)
def test_more_forms(completion, gold, expected):
    assert grade(completion, gold).verdict == expected, grade(completion, gold)


@pytest.mark.parametrize("completion,gold,expected,kwargs", MORE_EXTRACTION)
def test_more_extraction(completion, gold, expected, kwargs):
    assert grade(completion, gold, **kwargs).verdict == expected, grade(completion, gold, **kwargs)
