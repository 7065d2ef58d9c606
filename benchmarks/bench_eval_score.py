"""How fast `rl-eval score` grades and clusters a realistic samples file (no model).

    python -m benchmarks.bench_eval_score [--benchmarks math500,gsm8k,aime24,olympiadbench] [--n 8] [--workers 2]

Builds n completions per real problem (golds from the shared data): the gold boxed verbatim, equivalent
rewrites of numeric golds (27 -> 27.0 / 54/2, 1/2 -> 0.5 / \\frac{1}{2}), wrong numbers, answers without a
box, and no answer at all; ~1 % pathological (an exponent tower). Then times, in one process:
  1. grading every sample through the worker pool,
  2. the full `score_samples` (grading + equivalence clustering for maj@k + metrics),
and prints items/s, the number of equivalence checks clustering needed, and the clustering overhead.
Timings on a shared machine are noisy; run it alone for figures you report.
"""
from __future__ import annotations

import argparse
import random
import re
import time
from fractions import Fraction

from eval.benchmarks import load_benchmarks
from eval.grading_backend import PoolBackend, grade_all
from eval.scoring import ProblemSamples, score_samples


def _forms(gold: str, rng: random.Random) -> list:
    """Equivalent spellings of a simple numeric gold (just the gold itself otherwise)."""
    g = gold.strip()
    out = [g]
    if re.fullmatch(r"-?\d+", g):
        v = int(g)
        out += [f"{v}.0", f"{2 * v}/2", f"\\frac{{{3 * v}}}{{3}}"]
    m = re.fullmatch(r"\\[dt]?frac\{(-?\d+)\}\{(\d+)\}", g)
    if m:
        f = Fraction(int(m[1]), int(m[2]))
        out += [f"{f.numerator}/{f.denominator}", f"\\dfrac{{{f.numerator}}}{{{f.denominator}}}"]
        if 10 ** 6 % f.denominator == 0:
            out.append(str(float(f)))
    return out


def make_samples(problems, n: int, seed: int = 0) -> list:
    rng = random.Random(seed)
    samples = []
    for p in problems:
        gold = p.gold[0] if isinstance(p.gold, list) else p.gold
        forms = _forms(gold, rng)
        comps = []
        for _ in range(n):
            r = rng.random()
            if r < 0.45:
                comps.append(f"Step by step ... so the final answer is $\\boxed{{{rng.choice(forms)}}}$.")
            elif r < 0.75:
                comps.append(f"We get ... thus \\boxed{{{rng.randint(-50, 999)}}}")
            elif r < 0.85:
                comps.append(f"Adding up, the answer is {rng.randint(0, 99)}.")
            elif r < 0.99:
                comps.append("Let me think step by step. First we compute the area, then we divide it by two.")
            else:
                comps.append("\\boxed{9^{9^{9^{9^{9}}}}}")
        samples.append(ProblemSamples(p, comps))
    return samples


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--benchmarks", default="math500,gsm8k,aime24,olympiadbench")
    ap.add_argument("--limit", type=int, default=None)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=2.0)
    a = ap.parse_args(argv)

    problems = [p for ps in load_benchmarks(a.benchmarks, limit=a.limit).values() for p in ps]
    samples = make_samples(problems, a.n)
    items = [(c, s.problem.gold) for s in samples for c in s.completions]
    print(f"{len(problems)} problems x n={a.n} = {len(items)} samples ({a.benchmarks}), {a.workers} grading workers")

    backend = PoolBackend(workers=a.workers, timeout=a.timeout)
    try:
        backend.pool.wait_ready(120, workers=a.workers)
        backend.pool.cache_size = 0  # measure grading, not the cache (the full run below starts cold too)
        t = time.perf_counter()
        grade_all(backend, items)
        grade_s = time.perf_counter() - t

        calls = []
        orig = backend.grade_many

        def counting(part, on_error="raise"):
            calls.append(len(part))
            return orig(part, on_error=on_error)

        backend.grade_many = counting
        t = time.perf_counter()
        res = score_samples(samples, backend, ks=sorted({1, a.n}))
        score_s = time.perf_counter() - t
    finally:
        backend.close()
    eq_checks = sum(calls) - len(items)
    s = res.summary
    print(f"grading only:   {grade_s:7.2f} s  {len(items) / grade_s:8.0f} samples/s")
    print(f"score_samples:  {score_s:7.2f} s  {len(items) / score_s:8.0f} samples/s "
          f"(+{eq_checks} equivalence checks for maj@{a.n}, {eq_checks / len(problems):.1f} per problem; "
          f"clustering overhead {max(0.0, score_s - grade_s) / grade_s * 100:.0f} % of grading)")
    print(f"average: pass@1 {s['average']['pass@1']:.3f}  maj@{a.n} {s['average'][f'maj@{a.n}']:.3f}  "
          f"pass@{a.n} {s['average'][f'pass@{a.n}']:.3f}  timeouts "
          f"{sum(m['timeouts'] for m in s['benchmarks'].values())}")


if __name__ == "__main__":
    main()
