"""Our grader against math-verify on the hand-decided red-team cases (``tests/test_grading_redteam.py``) and the
generalisation cases of issue 13 (``tests/test_grading_generalisation.py``: answers written the way other
people's models write them, each widening with its must-still-reject twins).

    .venv/bin/python -m benchmarks.redteam_vs_math_verify            # red-team + generalisation suites
    .venv/bin/python -m benchmarks.redteam_vs_math_verify --all      # + tests/test_grading_adversarial.py
    .venv/bin/python -m benchmarks.redteam_vs_math_verify --json out.json
    .venv/bin/python -m benchmarks.redteam_vs_math_verify --pathological   # CPU time of the hostile inputs only

math-verify has no "no answer" verdict, so both graders are scored on the correct / not-correct axis (a case
expected ``wrong`` or ``no_answer`` is right when the grader does not say correct); our three-way agreement is
reported too. math-verify runs ``verify(parse(gold), parse(completion))`` with its defaults, the gold wrapped in
``$...$`` (a list gold: any of its answers), in a subprocess with a per-case watchdog (its SIGALRM timeouts
cannot stop big-integer work). The script prints every case where the two graders disagree with the expected
verdict, with the counts.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import os
import selectors
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_CHILD = r"""
import json, sys
from math_verify import parse, verify
for line in sys.stdin:
    completion, golds = json.loads(line)
    ok = False
    try:
        pred = parse(completion)
        ok = any(bool(verify(parse(g), pred)) for g in golds)
    except Exception:
        ok = False
    print(json.dumps(ok), flush=True)
"""


def load_cases(include_old: bool) -> list[tuple]:
    def module(name):
        spec = importlib.util.spec_from_file_location(name, ROOT / "tests" / f"{name}.py")
        mod = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(mod)
        return mod

    cases = [(c, g, e, why, "redteam") for c, g, e, why in module("test_grading_redteam").CASES]
    cases += [(c, g, e, why, "generalisation") for c, g, e, why in module("test_grading_generalisation").CASES]
    if include_old:
        old = module("test_grading_adversarial")
        cases += [(c, g, e, why, "adversarial") for c, g, e, why in old.HACKS + old.FORMS + old.EXTRACTION]
        cases += [(c, g, e, "", "adversarial") for c, g, e in old.MORE_FORMS]
        cases += [(c, g, e, "", "adversarial") for c, g, e, kw in old.MORE_EXTRACTION if not kw]
    return cases


def _mv_golds(gold) -> list[str]:
    golds = gold if isinstance(gold, list) else [gold]
    out = []
    for g in golds:
        g = str(g).strip()
        out.append(g if g.startswith("$") or "\\boxed" in g else f"${g}$")
    return out


def run_math_verify(cases, guard_s: float = 10.0) -> list:
    """math-verify's verdict (True / False / None when stuck or crashed) for each case."""
    out = []
    p = sel = None
    for completion, gold, *_ in cases:
        if p is None:
            p = subprocess.Popen([sys.executable, "-c", _CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                 stderr=subprocess.DEVNULL, text=True, bufsize=1)
            sel = selectors.DefaultSelector()
            sel.register(p.stdout, selectors.EVENT_READ)
        p.stdin.write(json.dumps([completion, _mv_golds(gold)]) + "\n")
        p.stdin.flush()
        line = p.stdout.readline() if sel.select(timeout=guard_s) else ""
        if not line:
            p.kill()
            p.wait()
            p = None
            out.append(None)
            continue
        out.append(json.loads(line))
    if p is not None:
        p.stdin.close()
        p.wait()
    return out


def time_pathological(repeat: int = 3) -> dict:
    """CPU time of grade() on the red-team suite's pathological completions (up to 1M characters), against a
    numeric and a symbolic gold; the best of ``repeat`` runs per item (the machine is shared)."""
    from reward_service.grading import grade

    spec = importlib.util.spec_from_file_location("rt", ROOT / "tests" / "test_grading_redteam.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = []
    for k, c in enumerate(mod.PATHOLOGICAL):
        for gold in ("1", "x+1"):
            best = None
            for _ in range(repeat):
                t = time.process_time()
                g = grade(c, gold)
                dt = time.process_time() - t
                best = dt if best is None else min(best, dt)
            rows.append((best, k, len(c), gold, g.verdict, g.reason))
    rows.sort(reverse=True)
    for dt, k, n, gold, v, why in rows[:8]:
        print(f"  {dt * 1000:7.2f} ms  case {k:2d} ({n:>7} chars) gold {gold!r:6} -> {v} ({why})")
    worst = rows[0][0]
    print(f"{len(rows)} pathological gradings: worst {worst * 1000:.1f} ms CPU, "
          f"mean {sum(r[0] for r in rows) / len(rows) * 1000:.1f} ms")
    return {"worst_ms": worst * 1000, "items": len(rows)}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--all", action="store_true", help="also the cases of tests/test_grading_adversarial.py")
    ap.add_argument("--json", help="write the per-case results here")
    ap.add_argument("--pathological", action="store_true", help="only time the pathological inputs")
    args = ap.parse_args(argv)

    from reward_service.grading import CORRECT, grade, warmup

    warmup()
    if args.pathological:
        return time_pathological()
    cases = load_cases(args.all)
    t = time.perf_counter()
    ours = [grade(c, g) for c, g, *_ in cases]
    ours_s = time.perf_counter() - t
    t = time.perf_counter()
    mv = run_math_verify(cases)
    mv_s = time.perf_counter() - t

    rows = []
    for (c, g, e, why, suite), o, m in zip(cases, ours, mv):
        exp_c = e == CORRECT
        rows.append({"suite": suite, "why": why, "completion": c[:300], "gold": str(g)[:120], "expected": e,
                     "ours": o.verdict, "ours_reason": o.reason, "math_verify": m,
                     "ours_right": (o.verdict == CORRECT) == exp_c, "ours_exact": o.verdict == e,
                     "mv_right": m is not None and m == exp_c})
    n = len(rows)
    ours_right = sum(r["ours_right"] for r in rows)
    mv_right = sum(r["mv_right"] for r in rows)
    we_only = [r for r in rows if r["ours_right"] and not r["mv_right"]]
    mv_only = [r for r in rows if r["mv_right"] and not r["ours_right"]]
    both_wrong = [r for r in rows if not r["ours_right"] and not r["mv_right"]]
    mv_fp = [r for r in rows if r["math_verify"] and r["expected"] != CORRECT]
    mv_fn = [r for r in rows if not r["math_verify"] and r["expected"] == CORRECT]

    def show(title, rs):
        print(f"\n{title}: {len(rs)}")
        for r in rs:
            print(f"  [{r['expected'][:2]}] ours={r['ours']:9s} mv={r['math_verify']!s:5s}  {r['why'][:40]:40s} "
                  f"{r['completion'][:70]!r} | gold {r['gold'][:30]!r}")

    show("math-verify wrong, ours right", we_only)
    show("ours wrong, math-verify right", mv_only)
    show("both wrong", both_wrong)
    summary = {"cases": n, "ours_right": ours_right, "ours_exact_verdict": sum(r["ours_exact"] for r in rows),
               "math_verify_right": mv_right, "math_verify_false_positives": len(mv_fp),
               "math_verify_false_negatives": len(mv_fn), "mv_stuck_or_crashed": sum(m is None for m in mv),
               "ours_only_right": len(we_only), "mv_only_right": len(mv_only), "both_wrong": len(both_wrong),
               "ours_seconds": ours_s, "math_verify_seconds": mv_s}
    by_suite = {}
    for r in rows:
        st = by_suite.setdefault(r["suite"], {"cases": 0, "ours_right": 0, "math_verify_right": 0,
                                              "math_verify_false_positives": 0, "math_verify_false_negatives": 0})
        st["cases"] += 1
        st["ours_right"] += r["ours_right"]
        st["math_verify_right"] += r["mv_right"]
        st["math_verify_false_positives"] += bool(r["math_verify"]) and r["expected"] != CORRECT
        st["math_verify_false_negatives"] += not r["math_verify"] and r["expected"] == CORRECT
    summary["by_suite"] = by_suite
    for name, st in by_suite.items():
        print(f"{name}: {st['cases']} cases, ours right {st['ours_right']}, math-verify right {st['math_verify_right']} "
              f"(false positives {st['math_verify_false_positives']}, false negatives {st['math_verify_false_negatives']})")
    print(f"\n{n} cases: ours right {ours_right} ({summary['ours_exact_verdict']} with the exact three-way verdict), "
          f"math-verify right {mv_right} (false positives {len(mv_fp)}, false negatives {len(mv_fn)}, "
          f"stuck/crashed {summary['mv_stuck_or_crashed']}); only ours right {len(we_only)}, only math-verify "
          f"right {len(mv_only)}, both wrong {len(both_wrong)}; time ours {ours_s:.2f}s, math-verify {mv_s:.1f}s")
    if args.json:
        Path(args.json).write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))
    return summary


if __name__ == "__main__":
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    main()
