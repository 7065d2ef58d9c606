"""Time one OpenRLHF-0.9-style whole rollout batch on ``POST /get_reward`` over HTTP (issue 12, item 2).

    .venv/bin/python -m benchmarks.bench_openrlhf_batch                 # 8192 queries, a service with 2 workers
    .venv/bin/python -m benchmarks.bench_openrlhf_batch --n 16384 --json batch.json

OpenRLHF v0.9.0 sends the whole rollout batch (rollout_batch_size x n_samples_per_prompt, e.g. 1024 x 8) in one
request. Each query here is what it decodes: left padding, a Qwen2.5 ChatML prompt (system prompt asking for
\\boxed{}, a MATH-500 problem), then a response from ``bench_reward_service``'s realistic mix and
``<|im_end|>``; ``--truncated`` of them have their prompt's head cut off (OpenRLHF's left truncation), so the
prompt is not in the query and the service grades the text after the last assistant marker. Every item is
unique (the result cache does not help). Reported: body size, seconds for the request, queries/s, how many
prompts were not found / split at the marker, and /health latency (from a probe process) during the request.
"""
from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path

import httpx

from benchmarks.bench_load import Probe
from benchmarks.procs import rss_mb
from benchmarks.bench_reward_service import _jsonl, build_mix

SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."
PAD = "<|endoftext|>"


def chatml_prompt(problem: str) -> str:
    return (f"<|im_start|>system\n{SYSTEM}<|im_end|>\n<|im_start|>user\n{problem}<|im_end|>\n"
            "<|im_start|>assistant\n")


def build_batch(n: int, seed: int = 0, truncated: float = 0.05, response_chars: int = 3000) -> dict:
    """``{"query", "prompts", "labels"}`` as OpenRLHF 0.9 posts them, plus ``responses`` (what must be graded)
    and ``truncated`` (indices whose prompt head was cut off). Responses are lengthened with scratch work (other
    problems' worked solutions) to about ``response_chars`` characters (~800 tokens)."""
    rng = random.Random(seed)
    math500 = _jsonl("math500")
    problems = [r["problem"] for r in math500]
    scratch = " ".join(r["solution"].replace("\\boxed", "") for r in math500)
    items = build_mix(n, seed=seed)
    queries, prompts, labels, responses, cut = [], [], [], [], []
    for i, it in enumerate(items):
        prompt = chatml_prompt(rng.choice(problems))
        pad = max(0, int(rng.uniform(0.5, 1.5) * response_chars) - len(it["completion"]))
        start = rng.randrange(len(scratch) - pad) if pad else 0
        response = (f"Scratch work: {scratch[start:start + pad]}\n" if pad else "") + it["completion"] + "<|im_end|>"
        shown = prompt
        if rng.random() < truncated:
            shown = prompt[rng.randint(len(prompt) // 4, len(prompt) - 40):]
            cut.append(i)
        queries.append(PAD * rng.randint(0, 16) + shown + response)
        prompts.append(prompt)
        labels.append(it["gold"])
        responses.append(response)
    return {"query": queries, "prompts": prompts, "labels": labels, "responses": responses, "truncated": cut}


def post_batch(url: str, batch: dict, token=None, timeout: float = 600) -> tuple[dict, dict]:
    """POST the batch to /get_reward while a probe polls /health; returns (reply, figures)."""
    headers = {"Authorization": b"Bearer " + token.encode()} if token else {}
    payload = json.dumps({k: batch[k] for k in ("query", "prompts", "labels")}).encode()
    with httpx.Client(base_url=url, headers=headers, timeout=timeout) as c, Probe(url, headers) as probe:
        t0 = time.perf_counter()
        r = c.post("/get_reward", content=payload, headers={"content-type": "application/json"})
        seconds = time.perf_counter() - t0
    if r.status_code != 200:
        raise RuntimeError(f"/get_reward answered {r.status_code}: {r.text[:500]}")
    out = r.json()
    n = len(batch["query"])
    return out, {
        "queries": n, "body_mb": round(len(payload) / 2**20, 1), "seconds": round(seconds, 2),
        "queries_per_s": round(n / seconds, 1),
        "prompt_not_found": int(sum(out["extra_logs"]["prompt_not_found"])),
        "split_at_assistant_marker": int(sum(out["extra_logs"]["split_at_assistant_marker"])),
        "truncated_prompts_sent": len(batch["truncated"]),
        "accuracy": round(sum(out["extra_logs"]["accuracy"]) / n, 4),
        "timeouts": int(sum(out["extra_logs"]["timeout"])),
        "health_during": probe.summary(), "health_failures": probe.failures,
    }


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--n", type=int, default=8192)
    ap.add_argument("--truncated", type=float, default=0.05)
    ap.add_argument("--response-chars", type=int, default=3000, help="mean response length (characters)")
    ap.add_argument("--url", help="a running service (default: start one with the default limits)")
    ap.add_argument("--token")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--json", help="also write the figures here")
    args = ap.parse_args(argv)

    from reward_service.client import start_service

    t0 = time.perf_counter()
    batch = build_batch(args.n, truncated=args.truncated, response_chars=args.response_chars)
    print(f"built {args.n} queries in {time.perf_counter() - t0:.1f}s", file=sys.stderr)
    svc = None
    url = args.url
    if url is None:
        svc = start_service(workers=args.workers, token=args.token, args=["--log-level", "warning"])
        url = svc.url
    try:
        _, res = post_batch(url, batch, args.token)
        res["server_rss_mb_after"] = rss_mb(svc.process.pid) if svc else None
    finally:
        if svc:
            svc.stop()
    print(json.dumps(res, indent=2))
    if args.json:
        Path(args.json).write_text(json.dumps(res, indent=2))
    return res


if __name__ == "__main__":
    main()
