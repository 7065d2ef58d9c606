r"""A generated should-accept / should-reject corpus for the grader, built from the golds of ../shared/data.

    .venv/bin/python -m benchmarks.grader_corpus                     # build, grade with ours, print the table
    .venv/bin/python -m benchmarks.grader_corpus --math-verify       # math-verify 0.9 side by side
    .venv/bin/python -m benchmarks.grader_corpus --per-class 60 --seed 3 --write cases.jsonl --json out.json
    .venv/bin/python -m benchmarks.grader_corpus --solutions 3000    # drift check on real reference solutions

Golds: MATH train (7500), MATH test (MATH-500 and the rest of the test split kept in
``math_l3to5_simplerl_approx``), OlympiadBench (675) and Minerva (the accepted-answer lists of
``minerva_math_rllm``). Nothing from the data is stored in the repository: every run rebuilds the cases from
the files, deterministically for a given ``--seed``.

Each class below rewrites a sampled gold into an equivalent answer (``accept``) and builds near misses that
must still be refused (``reject``): a false positive is worse than a false negative, so every widening has its
twin. The rewritings are written here from the gold's text alone, independently of the grader's own parser:

* ``spacing``: the answer wrapped in / separated by ``\,`` ``\;`` ``\ `` ``\quad`` (boxed, bare, after a phrase);
* ``brackets``: ``\left( … \right)``, ``\big(``, ``\Bigl[`` around the gold's own brackets;
* ``display``: a response that ends on a display-math block ``\[ … \]`` / ``$$ … $$`` with no box or answer
  phrase, in six languages; rejects: a wrong value, or a block followed by more reasoning;
* ``labelled``: list golds given as ``Maximum = 2, Minimum = 1``, ``Alice: 18, Bob: 14``, ``a_1 = …``;
  rejects: one value changed, and a labelled pair whose last value alone is the (single) gold;
* ``pm``: ``\pm`` / ``\mp`` written for the gold's sign pairs, inside lists, sets and tuples (and the
  gold's own ``\pm`` expanded); rejects: ``\pm v`` for a gold ``v``, one sign left out;
* ``qualifier``: "only", "for all x", "where n is an integer" around the gold; rejects: the same around a
  wrong value, or a hedge ("G or W");
* ``rename``: ``f(x) = E(x)`` golds with the bound variable renamed; rejects: the left side renamed alone,
  and a free variable of an expression gold renamed (the problem fixes it);
* ``notation``: ``\text{sin}`` / ``\operatorname{sin}``, degree marks (``^{\circ}``, ``°``, ``\degree``,
  ``\textcirc``, degrees-minutes ``22^\circ 30'``), ordinal suffixes (``12^{\text{th}}``), ``\frac{a}{b}\pi``
  for ``\frac{a\pi}{b}``, ``\dfrac``; rejects: the next ordinal, other minutes, another function, ``\frac{b}{a}\pi``;
* ``order``: a bare list of solutions reordered (accept); a tuple or interval reversed (reject);
* ``rounding``: a non-terminating exact gold as its correct 4-significant-digit rounding (accept, the
  documented policy) and with the last digit off by one (reject);
* ``words``: policy for a bare number inside random words ("lorem ipsum 9": reject) against a labelled
  value ("Answer: 9", "Total: 9": accept);
* ``forms``: the value in another form (``27.0``, ``\\frac{54}{2}``, ``a/b``, a decimal for a terminating
  fraction, ``−`` / ``√`` / ``π``, a set or "x = a or x = b" for a list); rejects: a wrong value in that form,
  a set missing an element;
* ``near_miss``: the gold itself (accept) and the gold with a digit or sign changed, an element dropped or
  added (reject).

Boxed answers are written in one of six formats (a box after reasoning, "the final answer is $\\boxed{}$", an
``<answer>`` tag, Minerva's "Final Answer: … I hope it is correct.", a markdown "**Final Answer**" with a display
box, a Chinese sentence), picked by a checksum of the answer.

Reported per class: ours and math-verify (``parse`` + ``verify``, the gold wrapped in ``$…$``; see
``benchmarks/redteam_vs_math_verify.py``) as accepted-of-should-accept and false positives of should-reject.
"""
from __future__ import annotations

import argparse
import json
import random
import re
import time
from collections import Counter

from benchmarks.bench_reward_service import _jsonl
from benchmarks.corpus_golds import load_golds
from benchmarks.corpus_rewrites import ACCEPT, CLASSES, REJECT


def build(per_class: int = 150, seed: int = 0) -> list[dict]:
    """The corpus: for every class, golds are drawn (seeded) until ``per_class`` of them gave a should-accept
    case and ``per_class`` others gave should-reject cases only (or the golds run out)."""
    golds = load_golds()
    cases = []
    for name, fn in CLASSES.items():
        rng = random.Random(f"{seed}:{name}")
        order = golds[:]
        rng.shuffle(order)
        n_acc = n_rej = 0  # golds that gave a should-accept case / only should-reject cases
        for gd in order:
            if n_acc >= per_class and n_rej >= per_class:
                break
            made = fn(gd["g"], rng)
            has_acc = any(e == ACCEPT for e, _, _ in made)
            if not made or (n_acc >= per_class if has_acc else n_rej >= per_class):
                continue
            n_acc, n_rej = n_acc + has_acc, n_rej + (not has_acc)
            for expected, completion, note in made:
                cases.append({"cls": name, "expected": expected, "completion": completion, "gold": gd["gold"],
                              "src": gd["src"], "note": note})
    return cases


# ------------------------------------------------------------------------------------------------ report
def grade_ours(cases: list[dict]) -> tuple[list[bool], list[str], float]:
    from reward_service.grading import CORRECT, grade, warmup

    warmup()
    ok, reasons, worst = [], [], 0.0
    for c in cases:
        t = time.process_time()
        g = grade(c["completion"], c["gold"])
        worst = max(worst, time.process_time() - t)
        ok.append(g.verdict == CORRECT)
        reasons.append(f"{g.verdict}: {g.reason} [{g.answer!s:.60}]")
    return ok, reasons, worst


def table(cases: list[dict], cols: dict[str, list]) -> dict:
    """Per class: should-accept accepted and should-reject accepted (false positives), for each grader."""
    out = {}
    for cls in list(CLASSES) + ["all"]:
        idx = [i for i, c in enumerate(cases) if cls in ("all", c["cls"])]
        acc = [i for i in idx if cases[i]["expected"] == ACCEPT]
        rej = [i for i in idx if cases[i]["expected"] == REJECT]
        row = {"accept": len(acc), "reject": len(rej)}
        for name, col in cols.items():
            row[name] = {"accepted": sum(bool(col[i]) for i in acc), "false_pos": sum(bool(col[i]) for i in rej),
                         "right": sum(bool(col[i]) for i in acc) + sum(not col[i] for i in rej)}
        out[cls] = row
    names = list(cols)
    head = f"{'class':10s} {'acc':>4s} {'rej':>4s} " + " ".join(f"{n + ' acc/FP':>18s}" for n in names)
    print(head)
    for cls, row in out.items():
        cells = " ".join(f"{row[n]['accepted']:>8d} / {row[n]['false_pos']:<7d}" for n in names)
        print(f"{cls:10s} {row['accept']:>4d} {row['reject']:>4d} {cells}")
    for n in names:
        a = out["all"]
        print(f"{n}: right on {a[n]['right']}/{a['accept'] + a['reject']} "
              f"({a[n]['right'] / (a['accept'] + a['reject']):.1%}); should-accept accepted {a[n]['accepted']}/{a['accept']}, "
              f"false positives {a[n]['false_pos']}/{a['reject']}")
    return out


def solutions_check(n: int, seed: int = 0) -> dict:
    """Drift check on real text: the first ``n`` MATH train reference solutions with ``\\boxed{`` unwrapped (so
    the answer must be read from phrases, conclusions, statements or a display block), graded against their
    own answer and against another problem's answer. Prints the verdict counts and every "correct" against
    another problem's answer (a false positive unless the two answers agree)."""
    from reward_service.grading import grade

    rows = _jsonl("math_train")[:n]
    rng = random.Random(seed)
    own, other, fps = Counter(), Counter(), []
    for r in rows:
        text = re.sub(r"\\boxed\{", "{", r["solution"])
        own[grade(text, r["answer"]).verdict] += 1
        o = rng.choice(rows)["answer"]
        if o.strip() != r["answer"].strip():
            g = grade(text, o)
            other[g.verdict] += 1
            if g.verdict == "correct":
                fps.append((r["answer"], o, g.answer))
    print(f"{len(rows)} MATH solutions, box unwrapped: against their own answer {dict(own)}; against another "
          f"problem's answer {dict(other)}")
    for a, o, got in fps:
        print(f"  correct against another answer: own {a!r}, other {o!r}, read {got!r}")
    return {"own": dict(own), "other": dict(other)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--per-class", type=int, default=150, help="golds drawn per class")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--math-verify", action="store_true", help="also grade with math-verify (~30 cases/s)")
    ap.add_argument("--write", help="write the cases (JSONL) here")
    ap.add_argument("--json", help="write the per-case verdicts and the table here")
    ap.add_argument("--show", default="", help="print the cases ours gets wrong in these classes ('all' for every class)")
    ap.add_argument("--solutions", type=int, default=0, help="only run the drift check on N real MATH solutions")
    args = ap.parse_args(argv)
    if args.solutions:
        return solutions_check(args.solutions, args.seed)

    cases = build(args.per_class, args.seed)
    print(f"{len(cases)} cases ({Counter(c['expected'] for c in cases)}) from seed {args.seed}")
    if args.write:
        with open(args.write, "w") as f:
            for c in cases:
                f.write(json.dumps(c) + "\n")
    t = time.perf_counter()
    ours, reasons, worst = grade_ours(cases)
    print(f"ours: {time.perf_counter() - t:.1f}s, worst case {worst * 1000:.0f} ms CPU")
    cols = {"ours": ours}
    if args.math_verify:
        from benchmarks.redteam_vs_math_verify import run_math_verify

        t = time.perf_counter()
        cols["math_verify"] = run_math_verify([(c["completion"], c["gold"]) for c in cases])
        print(f"math-verify: {time.perf_counter() - t:.1f}s")
    summary = table(cases, cols)
    show = set(args.show.split(",")) if args.show else set()
    for i, c in enumerate(cases):
        if (c["cls"] in show or "all" in show) and ours[i] != (c["expected"] == ACCEPT):
            print(f"  [{c['cls']}/{c['expected']}] {c['note']}: {c['completion'][-90:]!r} | gold {str(c['gold'])[:50]!r}"
                  f" -> {reasons[i]}")
    if args.json:
        rows = [dict(c, ours=o, ours_reason=r, **({"math_verify": cols["math_verify"][i]} if args.math_verify else {}))
                for i, (c, o, r) in enumerate(zip(cases, ours, reasons))]
        with open(args.json, "w") as f:
            json.dump({"summary": summary, "rows": rows}, f, indent=1)
    return summary


if __name__ == "__main__":
    main()
