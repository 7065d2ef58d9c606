"""In-process speed of ``reward_service.grading.grade`` against math-verify's ``parse`` + ``verify`` on the same
realistic mix (built by :func:`benchmarks.bench_reward_service.build_mix` from the golds of ../shared/data:
MATH-500, GSM8K, AIME 24/25, OlympiadBench; correct answers in equivalent forms, wrong answers, no answer,
~1 % pathological; every completion unique, golds repeat as they do across the n samples of a prompt).

    .venv/bin/python -m benchmarks.bench_grading                # 4000 items, math-verify on 300 of them
    .venv/bin/python -m benchmarks.bench_grading --items 10000 --mv-items 0 --profile

Reported: grade() mean / p50 / p99 / max per item and items/s on one core, the share of items that needed the
symbolic (sympy) path, verdicts by kind, and math-verify's items/s on a sample of the same items (in a
subprocess with a watchdog) with the ratio. The target behind issue 2 is well under 1 ms per item on average.
"""
from __future__ import annotations

import argparse
import json
import os
import statistics
import time

from benchmarks.bench_reward_service import build_mix, pct, run_math_verify


def run_grade(items: list[dict]) -> dict:
    from reward_service.grading import grade, symbolic

    times, verdicts = [], {}
    parses_before = symbolic.parse_latex.cache_info().misses
    t0, c0 = time.perf_counter(), time.process_time()
    for it in items:
        t = time.perf_counter()
        g = grade(it["completion"], it["gold"], last_number_fallback=it.get("scheme") == "correctness")
        times.append(time.perf_counter() - t)
        verdicts.setdefault(it["kind"], {}).setdefault(g.verdict, 0)
        verdicts[it["kind"]][g.verdict] += 1
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    return {"items": len(items), "seconds": wall, "items_per_s": len(items) / wall,
            "cpu_seconds": cpu, "cpu_ms_per_item": cpu / len(items) * 1000,
            "mean_ms": statistics.mean(times) * 1000, "p50_ms": pct(times, 50) * 1000,
            "p99_ms": pct(times, 99) * 1000, "max_ms": max(times) * 1000,
            "symbolic_parses": symbolic.parse_latex.cache_info().misses - parses_before,
            "verdicts_by_kind": verdicts}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--items", type=int, default=4000)
    ap.add_argument("--mv-items", type=int, default=300, help="items for math-verify (0: skip)")
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--profile", action="store_true", help="print a cProfile of the grade() run")
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    from reward_service.grading import warmup

    t = time.perf_counter()
    warmup()
    print(f"warmup (sympy + latex2sympy2-extended import, antlr parser): {time.perf_counter() - t:.2f}s")
    mix = build_mix(args.items, seed=args.seed)
    res: dict = {"load_avg_at_start": os.getloadavg()}
    if args.mv_items:
        # the math-verify sample first, with grade()'s caches still cold (fair comparison on the same items)
        sample = mix[: args.mv_items]
        ours = res["grade_on_mv_sample"] = run_grade(sample)
        mv = res["math_verify"] = run_math_verify(sample)
        res["ratio"] = ours["items_per_s"] / mv["items_per_s"]
        print(f"same {len(sample)} items, cold caches: grade() {ours['items_per_s']:.0f} items/s "
              f"(mean {ours['mean_ms']:.3f} ms), math-verify parse+verify {mv['items_per_s']:.1f} items/s "
              f"({mv['stuck_or_crashed']} stuck/crashed) -> {res['ratio']:.0f}x")
    if args.profile:
        import cProfile
        import pstats

        prof = cProfile.Profile()
        prof.enable()
    g = res["grade"] = run_grade(mix)
    if args.profile:
        prof.disable()
        pstats.Stats(prof).sort_stats("cumtime").print_stats(25)
    print(f"grade() on {g['items']} items: {g['items_per_s']:.0f} items/s on one core; per item mean "
          f"{g['mean_ms']:.3f} ms, p50 {g['p50_ms']:.3f} ms, p99 {g['p99_ms']:.2f} ms, max {g['max_ms']:.0f} ms; "
          f"{g['symbolic_parses']} symbolic parses; CPU time {g['cpu_ms_per_item']:.3f} ms per item")
    print("  verdicts by kind:", json.dumps(g["verdicts_by_kind"]))
    print(f"load average at start {res['load_avg_at_start']} (the machine's 2 cores are shared: timings are noisy)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)
    return res


if __name__ == "__main__":
    main()
