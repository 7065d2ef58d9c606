"""Benchmark the reward service end to end over HTTP, against math-verify on the same items in the same run.

    .venv/bin/python -m benchmarks.bench_reward_service                 # defaults: 2 workers, 2 s limit
    .venv/bin/python -m benchmarks.bench_reward_service --batches 40 --concurrent 64 --mv-items 400 --json out.json

The realistic mix is built from the golds of ../shared/data (MATH-500, GSM8K, AIME 24/25, OlympiadBench):
correct answers in equivalent forms (``\\frac{1}{2}`` vs ``0.5``, ``\\dfrac``, ``\\boxed{}`` at the end of a
chain of thought, ``<answer>`` tags, "The final answer is", GSM8K's last number), wrong answers, answerless or
truncated completions, and about 1 % pathological inputs (exponent towers, 100k-digit numbers, deep nesting).
Every item is unique (so the service's result cache does not flatter the numbers).

Reported: items/s and p50/p99 latency of sequential 256-item batches through HTTP; a run with N concurrent
clients (throughput, latency, error count); math-verify ``parse`` + ``verify`` on a sample of the same items
(run in a subprocess with a per-item watchdog, since its SIGALRM timeouts cannot interrupt big-integer work)
and the speed ratio. Targets (issue 2): >= 1000 items/s, >= 20x math-verify, p99 < 1 s, 0 errors.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Optional

import httpx

ROOT = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("MATHRL_DATA_DIR", ROOT.parent / "shared" / "data"))


# ------------------------------------------------------------------------------------------------ the mix


def _jsonl(name: str) -> list[dict]:
    with open(DATA / f"{name}.jsonl", encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _strip_dollars(s: str) -> str:
    s = s.strip()
    return s[1:-1].strip() if len(s) > 1 and s[0] == "$" and s[-1] == "$" else s


def load_problems() -> list[dict]:
    """[{source, gold (as the dataset gives it), answer (a clean answer string), cot (solution text)}]"""
    out = []
    for r in _jsonl("math500"):
        sol = re.sub(r"\\boxed\{", "", r["solution"])
        out.append(dict(source="math500", gold=r["answer"], answer=r["answer"], cot=sol))
    for r in _jsonl("gsm8k_test"):
        rationale, final = r["answer"].split("####")
        out.append(dict(source="gsm8k", gold=r["answer"], answer=final.strip().replace(",", ""),
                        cot=re.sub(r"<<[^>]*>>", "", rationale)))
    for name in ("aime24", "aime25"):
        for r in _jsonl(name):
            out.append(dict(source=name, gold=r["answer"], answer=str(int(r["answer"])),
                            cot=(r.get("solution") or r["problem"])[:1500]))
    for r in _jsonl("olympiadbench"):
        fa = r["final_answer"]
        out.append(dict(source="olympiadbench", gold=fa, answer=_strip_dollars(fa[0]),
                        cot=" ".join(r["solution"])[:1500] if r.get("solution") else r["question"]))
    return out


def _frac_forms(ans: str) -> list[str]:
    """Equivalent spellings of an answer: \\frac <-> \\dfrac, a/b, decimals for simple fractions and integers."""
    forms = []
    m = re.fullmatch(r"(-?)\\[dt]?frac\{(\d+)\}\{(\d+)\}", ans)
    if m:
        sign, p, q = m.group(1), int(m.group(2)), int(m.group(3))
        forms += [f"{sign}\\dfrac{{{p}}}{{{q}}}", f"{sign}{p}/{q}"]
        x = p / q
        if q and all(d in (2, 5) for d in _prime_factors(q)):  # terminating decimal
            forms.append(f"{'-' if sign else ''}{x:g}")
    elif re.fullmatch(r"-?\d+", ans):
        forms += [f"{ans}.0", f"{int(ans):,}".replace(",", "{,}") if abs(int(ans)) >= 1000 else ans]
    elif "\\frac" in ans:
        forms.append(ans.replace("\\frac", "\\dfrac"))
    if " " in ans:
        forms.append(ans.replace(" ", ""))
    return forms or [ans]


def _prime_factors(n: int) -> list[int]:
    out, d = [], 2
    while d * d <= n:
        while n % d == 0:
            out.append(d)
            n //= d
        d += 1
    if n > 1:
        out.append(n)
    return out


def _wrong(ans: str, rng: random.Random, other: str) -> str:
    m = re.search(r"\d+", ans)
    if m and rng.random() < 0.7:
        n = int(m.group(0))
        return ans[: m.start()] + str(n + rng.choice([1, 2, 3, 10])) + ans[m.end():]
    return other if other != ans else ans + "+1"


PATHOLOGICAL = [
    lambda k: "\\boxed{9^{9^{9^{9^{9^{9}}}}}}",
    lambda k: "\\boxed{" + str(k % 9 + 1) * 100_000 + "}",
    lambda k: "\\boxed{" + "\\frac{1}{" * 400 + "2" + "}" * 400 + "}",
    lambda k: "\\boxed{" + "(" * 3000 + "x" + ")" * 3000 + "}",
    lambda k: "\\boxed{10^{10^{10^{10}}} - 10^{10^{10^{10}}}}",
    lambda k: "\\boxed{" + "+".join(f"x^{{{i}}}" for i in range(3000)) + "}",
    lambda k: "\\boxed{(10^{100000})!}",
    lambda k: "<answer>" + "{" * 5000 + "}" * 5000 + "</answer>",
]


SOURCE_WEIGHTS = {"math500": 0.35, "gsm8k": 0.30, "olympiadbench": 0.25, "aime": 0.10}


def build_mix(n: int, seed: int = 0) -> list[dict]:
    """n unique scoring items {completion, gold, scheme?, kind}."""
    rng = random.Random(seed)
    probs = load_problems()
    by_source: dict = {}
    for p in probs:
        by_source.setdefault("aime" if p["source"].startswith("aime") else p["source"], []).append(p)
    sources, weights = zip(*SOURCE_WEIGHTS.items())
    items = []
    for k in range(n):
        p = rng.choice(by_source[rng.choices(sources, weights)[0]])
        cot = p["cot"][: rng.randint(300, 2500)]
        head = f"Attempt {k}. Let's solve this step by step.\n{cot}\n"
        ans = p["answer"]
        u = rng.random()
        scheme = None
        if u < 0.01:
            kind, body = "pathological", head + rng.choice(PATHOLOGICAL)(k)
        elif u < 0.46:
            kind = "correct"
            form = rng.choice(_frac_forms(ans) + [ans])
            style = rng.random()
            if style < 0.55:
                body = head + f"Therefore, the final answer is $\\boxed{{{form}}}$."
            elif style < 0.75:
                body = f"<think>{head}</think>\n<answer>{form}</answer>"
            elif style < 0.9:
                body = head + f"The final answer is {form}."
            else:
                body = head + f"Final Answer: The final answer is ${form}$. I hope it is correct."
        elif u < 0.52 and p["source"] == "gsm8k":
            kind, scheme = "gsm8k_last_number", "correctness"
            body = head + f"So the total is {ans} dollars."
        elif u < 0.82:
            kind = "wrong"
            w = _wrong(ans, rng, rng.choice(probs)["answer"])
            body = head + (f"So the answer is $\\boxed{{{w}}}$." if rng.random() < 0.7 else f"<answer>{w}</answer>")
        else:
            kind = "no_answer"  # the chain of thought cut before it states an answer (a reference CoT does)
            m = _ANSWER_STATED.search(head)
            if m:  # drop the whole sentence that states it
                pre = head[:m.start()]
                head = pre[:max(pre.rfind(". "), pre.rfind("\n")) + 1] + "\n"
            body = head + rng.choice(["Therefore the answer is \\boxed{", "<think>I am still thinking about",
                                      "I could not finish the computation in time, sorry."])
        it = {"completion": body, "gold": p["gold"], "kind": kind}
        if scheme:
            it["scheme"] = scheme
        items.append(it)
    return items


_ANSWER_STATED = re.compile(r"\\boxed|\\fbox|answer is|Answer|####", re.IGNORECASE)


def request_items(items: list[dict]) -> list[dict]:
    return [{k: v for k, v in it.items() if k != "kind"} for it in items]


# ------------------------------------------------------------------------------------------- measurements


def pct(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, max(0, int(round(q / 100 * (len(xs) - 1)))))]


def run_sequential(url: str, items: list[dict], batch: int, token: Optional[str]) -> dict:
    lat, verdicts = [], {}
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    with httpx.Client(base_url=url, timeout=120, headers=headers) as c:
        t0 = time.perf_counter()
        for i in range(0, len(items), batch):
            chunk = items[i:i + batch]
            t = time.perf_counter()
            r = c.post("/v1/score", json={"items": request_items(chunk)})
            lat.append(time.perf_counter() - t)
            r.raise_for_status()
            for it, res in zip(chunk, r.json()["results"]):
                verdicts.setdefault(it["kind"], {}).setdefault(res["verdict"], 0)
                verdicts[it["kind"]][res["verdict"]] += 1
        wall = time.perf_counter() - t0
    return {"items": len(items), "batches": len(lat), "seconds": wall, "items_per_s": len(items) / wall,
            "p50_s": pct(lat, 50), "p99_s": pct(lat, 99), "max_s": max(lat), "verdicts_by_kind": verdicts}


async def _concurrent(url: str, items: list[dict], clients: int, batch: int, token: Optional[str]) -> dict:
    batches = [items[i:i + batch] for i in range(0, len(items), batch)]
    queue: asyncio.Queue = asyncio.Queue()
    for b in batches:
        queue.put_nowait(b)
    lat, errors = [], []
    headers = {"Authorization": f"Bearer {token}"} if token else {}

    async def client() -> None:
        async with httpx.AsyncClient(base_url=url, timeout=300, headers=headers) as c:
            while not queue.empty():
                b = queue.get_nowait()
                t = time.perf_counter()
                try:
                    r = await c.post("/v1/score", json={"items": request_items(b)})
                    if r.status_code != 200 or len(r.json()["results"]) != len(b):
                        errors.append(f"{r.status_code}: {r.text[:200]}")
                except Exception as e:  # counted, never hidden
                    errors.append(f"{type(e).__name__}: {e}")
                lat.append(time.perf_counter() - t)

    t0 = time.perf_counter()
    await asyncio.gather(*(client() for _ in range(clients)))
    wall = time.perf_counter() - t0
    return {"clients": clients, "items": len(items), "batches": len(batches), "seconds": wall,
            "items_per_s": len(items) / wall, "p50_s": pct(lat, 50), "p99_s": pct(lat, 99), "errors": len(errors),
            "error_samples": errors[:5]}


def run_health_probe(url: str, token: Optional[str], k0: int = 10**6) -> dict:
    """Poll /health every 20 ms while the service grades a batch of pathological items (some time out)."""
    import threading

    items = [{"completion": f"probe {k}: " + PATHOLOGICAL[k % len(PATHOLOGICAL)](k), "gold": "42"}
             for k in range(k0, k0 + 48)]
    # nested \boxed{( ... : slow enough in the grader to hit the time limit
    items += [{"completion": f"probe {k}: " + "\\boxed{(" * 2000 + "1" + ")" * 2000 + "}", "gold": "1"} for k in range(4)]
    headers = {"Authorization": f"Bearer {token}"} if token else {}
    out: dict = {}

    def post():
        with httpx.Client(base_url=url, timeout=300, headers=headers) as c:
            t = time.perf_counter()
            r = c.post("/v1/score", json={"items": items})
            out.update(status=r.status_code, seconds=time.perf_counter() - t,
                       timeouts=sum(x["reason"] == "timeout" for x in r.json()["results"]) if r.status_code == 200 else None)

    th = threading.Thread(target=post)
    th.start()
    lat = []
    with httpx.Client(base_url=url, timeout=10) as h:
        time.sleep(0.05)
        while th.is_alive():
            t = time.perf_counter()
            h.get("/health")
            lat.append(time.perf_counter() - t)
            time.sleep(0.02)
    th.join()
    return {"batch_items": len(items), "batch_seconds": out.get("seconds"), "batch_status": out.get("status"),
            "batch_timeouts": out.get("timeouts"), "health_probes": len(lat), "health_p50_ms": 1000 * pct(lat, 50),
            "health_p99_ms": 1000 * pct(lat, 99), "health_max_ms": 1000 * max(lat) if lat else None}


_MV_CHILD = r"""
import json, sys, time
from math_verify import parse, verify
items = json.loads(sys.stdin.readline())
for i, (completion, gold) in enumerate(items):
    t = time.perf_counter()
    try:
        ok = bool(verify(parse(gold), parse(completion)))
    except Exception:
        ok = None
    print(json.dumps([i, ok, time.perf_counter() - t]), flush=True)
"""


def _mv_gold(gold: Any) -> str:
    if isinstance(gold, list):
        gold = gold[0]
    g = str(gold)
    if "####" in g:
        g = g.split("####")[-1].strip().replace(",", "")
    g = _strip_dollars(g)
    return f"${g}$"


def run_math_verify(items: list[dict], guard_s: float = 10.0) -> dict:
    """math-verify parse+verify per item in a subprocess; an item stuck > guard_s is killed and counted."""
    pending = [(it["completion"], _mv_gold(it["gold"])) for it in items]
    done, stuck, item_seconds = 0, 0, []
    t0 = time.perf_counter()
    while done < len(pending):
        p = subprocess.Popen([sys.executable, "-c", _MV_CHILD], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True, bufsize=1)
        p.stdin.write(json.dumps(pending[done:]) + "\n")
        p.stdin.flush()
        os.set_blocking(p.stdout.fileno(), True)
        import selectors

        sel = selectors.DefaultSelector()
        sel.register(p.stdout, selectors.EVENT_READ)
        last = time.perf_counter()
        while done < len(pending):
            if not sel.select(timeout=max(0.0, guard_s - (time.perf_counter() - last))):
                p.kill()  # stuck on item `done`
                p.wait()
                item_seconds.append(guard_s)
                stuck += 1
                done += 1
                break
            line = p.stdout.readline()
            if not line:
                p.wait()
                done += 1  # crashed on this item
                stuck += 1
                break
            _, _, sec = json.loads(line)
            item_seconds.append(sec)
            done += 1
            last = time.perf_counter()
        else:
            p.stdin.close()
            p.wait()
        sel.close()
    wall = time.perf_counter() - t0
    return {"items": len(pending), "seconds": wall, "items_per_s": len(pending) / wall, "stuck_or_crashed": stuck,
            "grading_seconds": sum(item_seconds)}


# ----------------------------------------------------------------------------------------------------- main


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--url", help="benchmark a running service instead of starting one")
    ap.add_argument("--token")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--timeout", type=float, default=2.0)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--batches", type=int, default=40, help="sequential batches")
    ap.add_argument("--concurrent", type=int, default=64, help="clients in the concurrency run")
    ap.add_argument("--concurrent-batches", type=int, default=128)
    ap.add_argument("--mv-items", type=int, default=300, help="items for the math-verify comparison (0: skip)")
    ap.add_argument("--grader", help="grading function import path for the service (default: the real grader); "
                    "a trivial one measures the service's own overhead")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--json", help="also write the results here")
    args = ap.parse_args(argv)

    n_seq = args.batch * args.batches
    n_conc = args.batch * args.concurrent_batches
    t = time.perf_counter()
    mix = build_mix(args.mv_items + n_seq + n_conc + args.batch, seed=args.seed)
    print(f"built {len(mix)} unique items in {time.perf_counter() - t:.1f}s "
          f"({sum(it['kind'] == 'pathological' for it in mix)} pathological) from {DATA}")
    warm, mix = mix[: args.batch], mix[args.batch:]
    mv_part, seq_part, conc_part = mix[: args.mv_items], mix[args.mv_items: args.mv_items + n_seq], mix[-n_conc:]

    from reward_service.client import start_service

    svc = None
    url = args.url
    if url is None:
        extra = ["--log-level", "warning"] + (["--grader", args.grader] if args.grader else [])
        svc = start_service(workers=args.workers, timeout=args.timeout, token=args.token, args=extra)
        url = svc.url
    results: dict = {"workers": args.workers, "time_limit_s": args.timeout, "cpus": os.cpu_count(), "batch": args.batch,
                     "grader": args.grader or "reward_service.grading:grade", "load_avg_at_start": os.getloadavg()}
    try:
        run_sequential(url, warm, args.batch, args.token)  # connection + first-request costs
        if args.mv_items:
            results["service_on_mv_items"] = run_sequential(url, mv_part, args.batch, args.token)
            s = results["service_on_mv_items"]
            print(f"service, the {len(mv_part)} math-verify items: {s['items_per_s']:.0f} items/s")
        seq = results["sequential"] = run_sequential(url, seq_part, args.batch, args.token)
        print(f"sequential {seq['batches']} x {args.batch} items: {seq['items_per_s']:.0f} items/s, "
              f"batch latency p50 {seq['p50_s'] * 1000:.0f} ms, p99 {seq['p99_s'] * 1000:.0f} ms, "
              f"max {seq['max_s'] * 1000:.0f} ms")
        print("  verdicts by kind:", json.dumps(seq["verdicts_by_kind"]))
        conc = results["concurrent"] = asyncio.run(_concurrent(url, conc_part, args.concurrent, args.batch, args.token))
        print(f"{args.concurrent} concurrent clients, {conc['batches']} x {args.batch} items: "
              f"{conc['items_per_s']:.0f} items/s, p50 {conc['p50_s'] * 1000:.0f} ms, p99 {conc['p99_s'] * 1000:.0f} ms, "
              f"errors {conc['errors']}")
        if conc["errors"]:
            print("  error samples:", conc["error_samples"])
        hp = results["health_during_pathological_batch"] = run_health_probe(url, args.token)
        print(f"/health during a {hp['batch_items']}-item pathological batch ({hp['batch_seconds']:.1f} s, "
              f"{hp['batch_timeouts']} timeouts): p50 {hp['health_p50_ms']:.1f} ms, p99 {hp['health_p99_ms']:.1f} ms, "
              f"max {hp['health_max_ms']:.1f} ms over {hp['health_probes']} probes")
        with httpx.Client(base_url=url, headers={"Authorization": f"Bearer {args.token}"} if args.token else {}) as c:
            metrics = c.get("/metrics").text
        results["service_timeouts"] = _metric(metrics, "mathrl_reward_timeouts_total")
        results["service_cache_hits"] = _metric(metrics, "mathrl_reward_cache_hits_total")
        print(f"service timeouts: {results['service_timeouts']:.0f}, cache hits: {results['service_cache_hits']:.0f}")
    finally:
        if svc is not None:
            svc.stop()
    if args.mv_items:
        mv = results["math_verify"] = run_math_verify(mv_part)
        same = results["service_on_mv_items"]["items_per_s"] / mv["items_per_s"]
        full = seq["items_per_s"] / mv["items_per_s"]
        results["ratio_same_items"], results["ratio_sequential_mix"] = same, full
        print(f"math-verify parse+verify on {mv['items']} of the same items: {mv['items_per_s']:.1f} items/s "
              f"({mv['stuck_or_crashed']} stuck/crashed, killed after 10 s)")
        print(f"speed ratio vs math-verify: {same:.0f}x on the same items, {full:.0f}x (sequential run vs sample)")
    if args.json:
        Path(args.json).write_text(json.dumps(results, indent=2))
    return results


def _metric(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " ") or line.startswith(name + "{"):
            return float(line.split()[-1])
    return float("nan")


if __name__ == "__main__":
    main()
