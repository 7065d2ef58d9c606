"""Metric unit tests with hand-computed expectations (arithmetic in the comments)."""
from fractions import Fraction

import pytest

from eval.metrics import (ProblemOutcome, average_metrics, benchmark_metrics, cluster_answers,
                          cluster_answers_many, maj_at_k, majority_vote, mean_length, mean_pass_rate,
                          no_answer_rate, pass_at_k)


@pytest.mark.parametrize("n,c,k,expected", [
    (1, 1, 1, 1.0),                      # greedy, correct
    (1, 0, 1, 0.0),                      # greedy, wrong
    (10, 3, 1, 0.3),                     # k=1: 1 - C(7,1)/C(10,1) = 1 - 7/10 = 3/10
    (5, 2, 2, 0.7),                      # 1 - C(3,2)/C(5,2) = 1 - 3/10
    (4, 1, 2, 0.5),                      # 1 - C(3,2)/C(4,2) = 1 - 3/6
    (8, 2, 4, 11 / 14),                  # 1 - C(6,4)/C(8,4) = 1 - 15/70 = 55/70 = 11/14
    (10, 1, 5, 0.5),                     # 1 - C(9,5)/C(10,5) = 1 - 126/252
    (8, 0, 8, 0.0),                      # no correct sample
    (8, 5, 4, 1.0),                      # n - c = 3 < k: every 4-subset holds a correct one
    (16, 1, 16, 1.0),                    # pass@n = 1 as soon as one is correct
    (3, 1, 3, 1.0),
])
def test_pass_at_k_hand_values(n, c, k, expected):
    assert pass_at_k(n, c, k) == pytest.approx(expected, abs=1e-15)


def test_pass_at_k_large_n_is_stable_and_matches_product_form():
    # n=1000, c=3, k=100: 1 - prod_{i=998}^{1000} (1 - 100/i)
    prod = Fraction(1)
    for i in range(998, 1001):
        prod *= 1 - Fraction(100, i)
    assert pass_at_k(1000, 3, 100) == pytest.approx(float(1 - prod), rel=1e-15)
    # Huge binomials (C(4096, 1024) has >1000 digits) still give a finite value in [0, 1].
    v = pass_at_k(4096, 1, 1024)
    assert v == pytest.approx(0.25, abs=1e-12)  # 1 - C(4095,1024)/C(4096,1024) = 1 - 3072/4096


@pytest.mark.parametrize("args", [(0, 0, 1), (4, 5, 1), (4, 2, 5), (4, 2, 0), (4, -1, 1)])
def test_pass_at_k_rejects_bad_input(args):
    with pytest.raises(ValueError):
        pass_at_k(*args)


def test_mean_pass_rate_no_answer_rate_length():
    assert mean_pass_rate([True, False, True, True]) == 0.75      # 3/4
    assert no_answer_rate([False, True, False, False, True]) == 0.4  # 2/5
    assert mean_length([10, 20, None, 36]) == 22                   # (10+20+36)/3
    assert mean_length([None]) is None
    with pytest.raises(ValueError):
        mean_pass_rate([])


def _fraction_equiv(a, b):
    """A tiny stand-in oracle: numbers equal as fractions ("1/2" == "0.5" == "\\frac{1}{2}")."""
    def val(s):
        s = s.replace("\\frac{1}{2}", "1/2")
        try:
            return Fraction(s)
        except ValueError:
            return s
    return val(a) == val(b)


def test_clustering_equivalent_forms_vote_together():
    answers = ["1/2", "3", "0.5", None, "\\frac{1}{2}", "3", " 3"]
    ids = cluster_answers(answers, _fraction_equiv)
    assert ids == [0, 1, 0, None, 0, 1, 1]
    # String majority would be "3" (3 votes against 1 each for the three forms of a half);
    # clustered, the half has 3 votes and appeared first, so it wins the tie: sample 0 represents it.
    assert majority_vote(ids, 7) == 0
    # First 2 samples: one vote each; tie -> cluster that appeared first (sample 0).
    assert majority_vote(ids, 2) == 0
    assert majority_vote([None, 1, 0, 0], 4) == 2   # no-answer does not vote; cluster 0 has 2 votes
    assert majority_vote([None, None], 2) is None


def test_maj_at_k_uses_first_k_samples():
    # gold is 1/2; samples: 3 (wrong), 0.5 (right), 3 (wrong), 1/2, \frac{1}{2}
    answers = ["3", "0.5", "3", "1/2", "\\frac{1}{2}"]
    correct = [False, True, False, True, True]
    ids = cluster_answers(answers, _fraction_equiv)
    assert ids == [0, 1, 0, 1, 1]
    assert maj_at_k(ids, correct, 1) is False   # "3"
    # k=2: "3" (cluster 0, first at 0) and "0.5" (cluster 1) tie; the earlier cluster wins -> wrong.
    assert maj_at_k(ids, correct, 2) is False
    # k=5: the half has 3 votes in three different spellings, "3" has 2 -> right.
    assert maj_at_k(ids, correct, 5) is True


def test_maj_at_k_tie_breaks_to_earliest_cluster():
    ids, correct = [0, 1, 0, 1, 1], [False, True, False, True, True]
    assert majority_vote(ids, 2) == 0 and maj_at_k(ids, correct, 2) is False
    assert maj_at_k(ids, correct, 3) is False   # 2 votes vs 1
    assert maj_at_k(ids, correct, 4) is False   # 2-2 tie -> cluster 0 (first at sample 0)
    assert maj_at_k(ids, correct, 5) is True    # 3 votes for cluster 1
    assert maj_at_k([None, None, None], [False] * 3, 3) is False


def test_cluster_many_batches_rounds_and_checks_oracle():
    calls = []

    def oracle(pairs):
        calls.append(len(pairs))
        return [_fraction_equiv(a, b) for a, b in pairs]

    out = cluster_answers_many([["1", "2", "1.0"], ["x"], [None, None]], oracle)
    assert out == [[0, 1, 0], [0], [None, None]]
    # round 0: nothing to compare; round 1: "2" vs "1"; round 2: "1.0" vs "1", "2"
    assert calls == [1, 2]
    with pytest.raises(ValueError):
        cluster_answers_many([["1", "2"]], lambda pairs: [])


def test_benchmark_metrics_and_average():
    # Problem A: n=4, c=2, answers all given; clusters [0,1,0,1], correct when cluster 1.
    a = ProblemOutcome(correct=[False, True, False, True], no_answer=[False] * 4,
                       clusters=[0, 1, 0, 1], lengths=[10, 20, 30, 40])
    # Problem B: n=4, c=1, two no-answers.
    b = ProblemOutcome(correct=[True, False, False, False], no_answer=[False, True, True, False],
                       clusters=[0, None, None, 1], lengths=[5, 5, 5, 5])
    m = benchmark_metrics([a, b], ks=[1, 2, 4])
    assert m["n_problems"] == 2 and m["n_samples"] == 8
    assert m["pass@1"] == pytest.approx((2 / 4 + 1 / 4) / 2)                 # 0.375
    assert m["pass@2"] == pytest.approx(((1 - 1 / 6) + (1 - 3 / 6)) / 2)     # A: 1-C(2,2)/C(4,2); B: 1-C(3,2)/C(4,2)
    assert m["pass@4"] == pytest.approx(1.0)
    assert m["avg_pass_rate"] == pytest.approx(0.375)
    # maj@1: A sample0 wrong, B sample0 right -> 0.5; maj@2: A tie -> cluster 0 wrong; B only sample0 votes -> right
    assert m["maj@1"] == 0.5 and m["maj@2"] == 0.5
    # maj@4: A 2-2 tie -> cluster 0 (wrong); B clusters 0 and 1 one vote each -> cluster 0 (right)
    assert m["maj@4"] == 0.5
    assert m["no_answer_rate"] == pytest.approx((0 + 0.5) / 2)
    assert m["avg_len"] == pytest.approx((100 + 20) / 8)                    # micro over samples
    other = benchmark_metrics([ProblemOutcome([True], [False], [0], [7])], ks=[1, 2, 4])
    assert other["pass@2"] is None and other["counted"]["pass@2"] == 0
    avg = average_metrics({"A": m, "B": other})
    assert avg["pass@1"] == pytest.approx((0.375 + 1.0) / 2)
    assert avg["pass@2"] is None                          # benchmark B has no pass@2: no average either
    assert avg["benchmarks"] == 2


def test_benchmark_metrics_with_differing_n_leaves_short_problems_out_of_pass_at_k():
    a = ProblemOutcome([True, False], [False, False], [0, 1], [])
    b = ProblemOutcome([False, False, True, True], [False] * 4, [0, 0, 1, 1], [])
    m = benchmark_metrics([a, b], ks=[1, 4])
    assert m["pass@1"] == pytest.approx((1 / 2 + 2 / 4) / 2)
    assert m["pass@4"] == 1.0 and m["counted"]["pass@4"] == 1   # only b has 4 samples
    assert m["maj@4"] == 0.0                                     # b: 2-2 tie -> cluster 0 (wrong)
    assert m["samples_per_problem"] == [2, 4]
    assert m["avg_len"] is None
