"""The reward service over real loopback HTTP: a real uvicorn subprocess with real grading workers.

The server grades with ``reward_service_fakes:scripted_or_real``: the real grader, except for completions
carrying a scripted marker (HANG/SPIN/NAP/DIE...) used to provoke timeouts and slow batches.
"""
from __future__ import annotations

import asyncio
import json
import os
import pickle
import signal
import statistics
import threading
import time
from pathlib import Path

import httpx
import pytest

from benchmarks.procs import worker_pids
from reward_service.adapters import TRLReward, compute_score, compute_score_batch
from reward_service.client import (
    AsyncRewardClient,
    RewardClient,
    RewardServiceError,
    RewardServiceUnavailable,
    start_service,
)

TOKEN = "test-token-123"
TIME_LIMIT = 1.0
TESTS_DIR = str(Path(__file__).resolve().parent)
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def service():
    env = dict(os.environ)
    env["PYTHONPATH"] = TESTS_DIR + os.pathsep + env.get("PYTHONPATH", "")
    svc = start_service(
        workers=2, timeout=TIME_LIMIT, token=TOKEN, env=env,
        args=["--grader", "reward_service_fakes:scripted_or_real", "--plugin", "reward_service_fakes:length_scheme",
              "--plugin", "reward_service_fakes:nan_scheme",
              "--max-items", "300", "--max-body-bytes", "1000000", "--log-level", "warning"],
    )
    yield svc
    svc.stop()
    # uvicorn re-raises SIGTERM after a graceful shutdown, so -15 is a clean exit here
    assert svc.process.returncode in (0, -signal.SIGTERM), svc.log_tail()
    assert "Traceback" not in svc.log_tail(100_000), svc.log_tail()


@pytest.fixture(scope="module")
def http(service):
    with httpx.Client(base_url=service.url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=60) as c:
        yield c


@pytest.fixture(scope="module")
def client(service):
    with service.client(max_batch=50) as c:
        yield c


def test_health_and_schemes(http, service):
    h = httpx.get(service.url + "/health").json()  # no token needed
    assert h["status"] == "ok" and h["workers_ready"] == 2
    s = http.get("/v1/schemes").json()
    assert s["default"] == "simplerl"
    assert {d["name"] for d in s["schemes"]} >= {"simplerl", "correctness", "rlinf", "length_scheme"}
    assert http.get("/openapi.json").json()["paths"].keys() >= {"/v1/score", "/get_reward", "/health", "/metrics"}


def test_score_batch_real_grading(http):
    items = [
        {"completion": "We get $x=\\frac{1}{2}$, so the answer is \\boxed{\\frac{1}{2}}.", "gold": "0.5"},
        {"completion": "Thus \\boxed{\\dfrac{3}{4}}", "gold": "\\frac34"},
        {"completion": "<think>maybe 41</think><answer>42</answer>", "gold": 42},
        {"completion": "So the result is \\boxed{7}.", "gold": "8"},
        {"completion": "Let us compute. The answer is \\boxed{", "gold": "8"},  # truncated: no answer
        {"completion": "She sells 9 eggs at $2, so 9 * 2 = 18 dollars every day.", "gold": "9 * 2 = 18\n#### 18",
         "scheme": "correctness"},  # GSM8K style: the last number counts
        {"completion": "\\boxed{027}", "gold": 27.0, "scheme": "rlinf"},
        {"completion": "\\boxed{2}", "gold": ["1", "2"], "scheme": "simplerl+format"},
    ]
    r = http.post("/v1/score", json={"items": items})
    assert r.status_code == 200, r.text
    res = r.json()["results"]
    assert [x["verdict"] for x in res] == ["correct", "correct", "correct", "wrong", "no_answer", "correct",
                                          "correct", "correct"]
    assert [x["reward"] for x in res] == pytest.approx([1.0, 1.0, 1.0, -0.5, -1.0, 1.0, 5.0, 1.1])
    assert res[2]["answer"] == "42" and res[4]["answer"] is None
    assert all(isinstance(x["reason"], str) and x["reason"] for x in res)
    assert all(x["timed_out"] is False and x["retries"] == 0 for x in res)


def test_openrlhf_get_reward(http):
    pad = "<|endoftext|><|endoftext|>"
    prompts = ["<|im_start|>user\nWhat is 1/2+1/4?<|im_end|>\n<|im_start|>assistant\n"] * 3
    responses = ["It is \\boxed{\\frac{3}{4}}<|im_end|>", "It is \\boxed{0.7}<|im_end|>", "So it is \\boxed{<|im_end|>"]
    body = {"query": [pad + p + r for p, r in zip(prompts, responses)], "prompts": prompts,
            "labels": ["0.75"] * 3, "datasources": ["math"] * 3}  # extra fields newer OpenRLHF sends: ignored
    out = http.post("/get_reward", json=body).json()
    assert out["rewards"] == pytest.approx([1.0, -0.5, -1.0])
    assert out["scores"] == [1.0, 0.0, 0.0]
    assert out["extra_logs"] == {"accuracy": [1.0, 0.0, 0.0], "no_answer": [0.0, 0.0, 1.0], "timeout": [0.0, 0.0, 0.0],
                                 "retried": [0.0, 0.0, 0.0], "prompt_not_found": [0.0, 0.0, 0.0],
                                 "split_at_assistant_marker": [0.0, 0.0, 0.0]}
    # the prompt is not graded: a boxed example in the prompt must not count as the answer
    q = "Example: \\boxed{3/4}. Question: 1/2+1/4? Answer: <think>no idea"
    out = http.post("/get_reward", json={"query": [q], "prompts": [q[: q.index("<think>")]], "labels": ["3/4"]}).json()
    assert out["rewards"] == [-1.0]
    r = http.post("/get_reward", json={"query": ["a", "b"], "prompts": ["a"], "labels": ["1", "2"]})
    assert r.status_code == 422 and "'prompts' has 1 entries but 'query' has 2" in r.json()["message"]
    r = http.post("/get_reward", json={"query": ["a"]})
    assert r.status_code == 422 and "labels" in r.json()["message"]


def test_truncated_prompt_grades_the_assistant_turn(http):
    """OpenRLHF left-truncated a long prompt: it is not in the query. The system prompt's empty \\boxed{} must not be
    read as the answer (it made a correct response no_answer, -1)."""
    system = "Please reason step by step, and put your final answer within \\boxed{}."
    prompt = (f"<|im_start|>system\n{system}<|im_end|>\n<|im_start|>user\n{'A long problem. ' * 200}What is 2+3?"
              "<|im_end|>\n<|im_start|>assistant\n")
    truncated = prompt[len(prompt) // 2:]  # the head (and the system prompt's tail end) cut off
    queries = [truncated + "2+3=5, so \\boxed{5}<|im_end|>", system + "<|im_end|>" + truncated + "So \\boxed{6}"]
    out = http.post("/get_reward", json={"query": queries, "prompts": [prompt, prompt], "labels": ["5", "5"]}).json()
    assert out["rewards"] == [1.0, -0.5]
    assert out["extra_logs"]["prompt_not_found"] == [1.0, 1.0]
    assert out["extra_logs"]["split_at_assistant_marker"] == [1.0, 1.0]


def test_auth(service):
    body = {"items": [{"completion": "\\boxed{1}", "gold": "1"}]}
    assert httpx.post(service.url + "/v1/score", json=body).status_code == 401
    r = httpx.post(service.url + "/v1/score", json=body, headers={"Authorization": "Bearer wrong"})
    assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
    assert httpx.get(service.url + "/metrics").status_code == 401
    assert httpx.get(service.url + "/health").status_code == 200
    with RewardClient(service.url) as c:  # a client without the token gets a clear error, not a reward
        with pytest.raises(RewardServiceError) as e:
            c.score(["\\boxed{1}"], ["1"])
        assert e.value.status_code == 401


def test_too_large_is_413(http):
    r = http.post("/v1/score", json={"items": [{"completion": "x", "gold": "1"}] * 301})
    assert r.status_code == 413 and "max_items" in r.json()["detail"]
    big = json.dumps({"items": [{"completion": "x" * 1_100_000, "gold": "1"}]}).encode()
    r = http.post("/v1/score", content=big, headers={"content-type": "application/json"})
    assert r.status_code == 413 and "max_body_bytes" in r.json()["detail"]

    def chunked():  # no Content-Length: the limit is enforced while streaming
        yield b'{"items": [{"completion": "'
        for _ in range(20):
            yield b"y" * 100_000
        yield b'", "gold": "1"}]}'

    r = http.post("/v1/score", content=chunked(), headers={"content-type": "application/json"})
    assert r.status_code == 413


@pytest.mark.parametrize("body,where", [
    (b'{"items": [', "malformed JSON"),
    (b'{"items": [{"completion": 5, "gold": "1"}]}', "items.0.completion"),
    (b'{"items": [{"completion": "x", "gold": []}]}', "items.0.gold"),
    (b'{"items": [{"completion": "x", "gold": null}]}', "items.0.gold"),
    (b'{"items": [{"completion": "x"}]}', "items.0.gold: Field required"),
    (b'{"itemz": []}', "itemz"),
    (b'[1, 2]', "body"),
])
def test_malformed_is_422_with_reason(http, body, where):
    r = http.post("/v1/score", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422
    assert where in r.json()["message"], r.json()


def test_gold_the_grader_rejects_is_422(http):
    r = http.post("/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"},
                                               {"completion": "\\boxed{1}", "gold": "#### "}]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "items.1.gold", r.text
    r = http.post("/get_reward", json={"query": ["\\boxed{1}"], "labels": ["\\boxed{}"]})
    assert r.status_code == 422 and r.json()["detail"][0]["loc"] == "labels.0", r.text


def test_unknown_scheme_is_400(http):
    r = http.post("/v1/score", json={"scheme": "simple", "items": [{"completion": "x", "gold": "1"}]})
    assert r.status_code == 400
    assert set(r.json()["known_schemes"]) >= {"simplerl", "correctness", "rlinf", "length_scheme"}
    r = http.post("/v1/score", json={"items": [{"completion": "x", "gold": "1", "scheme": "nope+format"}]})
    assert r.status_code == 400 and "nope+format" in r.json()["detail"]


def test_grader_failure_is_500_not_a_reward(http, service):
    r = http.post("/v1/score", json={"items": [{"completion": "\\boxed{1}", "gold": "1"},
                                               {"completion": "RAISE", "gold": "1"}]})
    assert r.status_code == 500
    assert r.json()["errors"] == [{"index": 1, "reason": "grader error: ArithmeticError: scripted failure"}]
    with service.client(retries=1, backoff=0.01) as c:
        with pytest.raises(RewardServiceUnavailable, match="grading function failed"):
            c.score(["RAISE"], ["1"])


def test_plugin_scheme_over_http(http):
    r = http.post("/v1/score", json={"scheme": "length_scheme", "items": [{"completion": "\\boxed{5}", "gold": "5"}]})
    assert r.json()["results"][0]["reward"] == pytest.approx(1.0 - 0.001 * len("\\boxed{5}"))
    r = http.post("/v1/score", json={"scheme": "nan_scheme", "items": [{"completion": "\\boxed{5}", "gold": "5"},
                                                                      {"completion": "\\boxed{4}", "gold": "5"}]})
    assert r.status_code == 500 and r.json()["detail"] == "reward scheme 'nan_scheme' returned nan for item 1"


def test_health_fast_during_pathological_batch(http, service):
    """Both workers stuck on items that never finish (killed at the limit) while /health is polled."""
    items = [{"completion": f"SPIN {i}", "gold": "1"} for i in range(2)]
    items += [{"completion": f"NAP health {i} \\boxed{{{i}}}", "gold": str(i)} for i in range(20)]
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http.post("/v1/score", json={"items": items})))
    t.start()
    time.sleep(0.2)
    lat = []
    with httpx.Client(base_url=service.url) as h:
        while t.is_alive() and len(lat) < 200:
            t0 = time.perf_counter()
            assert h.get("/health").status_code in (200, 503)
            lat.append(time.perf_counter() - t0)
            time.sleep(0.02)
    t.join(60)
    res = out["r"].json()["results"]
    assert [x["reason"] for x in res[:2]] == ["timeout"] * 2
    assert all(x["verdict"] == "correct" for x in res[2:])
    assert len(lat) >= 10
    p50 = statistics.median(lat)
    assert p50 < 0.05, f"/health median {p50 * 1000:.1f} ms during a pathological batch"
    assert max(lat) < 0.5, f"/health max {max(lat) * 1000:.1f} ms"


def test_worker_killed_mid_batch_request_completes(http, service):
    items = [{"completion": f"NAP kill {i} \\boxed{{{i}}}", "gold": str(i)} for i in range(40)]
    out = {}
    t = threading.Thread(target=lambda: out.update(r=http.post("/v1/score", json={"items": items})))
    t.start()
    time.sleep(0.3)
    pids = worker_pids(service.process.pid)
    assert len(pids) == 2
    os.kill(pids[0], signal.SIGKILL)
    t.join(60)
    r = out["r"]
    assert r.status_code == 200
    res = r.json()["results"]
    assert [x["answer"] for x in res] == [str(i) for i in range(40)]
    assert all(x["verdict"] == "correct" for x in res)
    deadline = time.time() + 30
    while len(worker_pids(service.process.pid)) < 2 and time.time() < deadline:
        time.sleep(0.1)
    assert pids[0] not in worker_pids(service.process.pid)


def test_real_pathological_items_do_not_hang(http):
    items = [
        {"completion": "\\boxed{9^{9^{9^{9^{9}}}}}", "gold": "1"},
        {"completion": "\\boxed{" + "\\frac{1}{" * 300 + "2" + "}" * 300 + "}", "gold": "1"},
        {"completion": "\\boxed{" + "9" * 200_000 + "}", "gold": "1"},
        {"completion": "\\boxed{(" * 2000 + "1" + ")" * 2000 + "}", "gold": "1"},
        {"completion": "\\boxed{\\frac{1}{2}}", "gold": "\\frac{1}{2}"},
    ]
    t0 = time.monotonic()
    res = http.post("/v1/score", json={"items": items}).json()["results"]
    assert time.monotonic() - t0 < 4 * TIME_LIMIT + 5
    assert all(x["verdict"] in ("wrong", "no_answer") for x in res[:4])
    assert res[4]["verdict"] == "correct"


def test_metrics(http):
    text = http.get("/metrics").text
    for name in ("mathrl_reward_items_total", "mathrl_reward_timeouts_total", "mathrl_reward_request_seconds_bucket",
                 "mathrl_reward_item_grading_seconds_bucket", "mathrl_reward_workers_ready",
                 "mathrl_reward_worker_restarts_total"):
        assert name in text
    timeouts = [ln for ln in text.splitlines() if ln.startswith("mathrl_reward_timeouts_total")]
    assert float(timeouts[0].split()[-1]) >= 2


def test_client_chunks_and_keeps_order(client):
    n = 130  # three requests of at most 50 items
    comps = [f"chunk {i}: \\boxed{{{i}}}" for i in range(n)]
    golds = [i if i % 3 else str(i) for i in range(n)]
    res = client.score(comps, golds)
    assert [r.answer for r in res] == [str(i) for i in range(n)]
    assert all(r.verdict == "correct" and r.reward == 1.0 for r in res)
    assert client.rewards(["\\boxed{1}"], ["2"], scheme="correctness") == [0.0]


def test_async_client(service):
    async def main():
        async with AsyncRewardClient(service.url, token=TOKEN, max_batch=40) as c:
            res = await c.score([f"async {i} \\boxed{{{i}}}" for i in range(100)], [str(i) for i in range(100)])
            schemes = await c.schemes()
            rr = await c.get_reward(["p \\boxed{2}"], ["p"], ["2"])
            return res, schemes, rr

    res, schemes, rr = asyncio.run(main())
    assert [r.answer for r in res] == [str(i) for i in range(100)]
    assert schemes["default"] == "simplerl" and rr["rewards"] == [1.0]


def test_trl_reward_func(service):
    reward = TRLReward(service.url, token=TOKEN, scheme="correctness")
    logged = {}
    prompts = [[{"role": "user", "content": "1+1?"}]] * 3
    completions = [[{"role": "assistant", "content": "It is \\boxed{2}."}],
                   [{"role": "assistant", "content": "It is \\boxed{3}."}],
                   [{"role": "assistant", "content": [{"type": "text", "text": "We get 1 + 1 = 2 apples."}]}]]
    out = reward(prompts=prompts, completions=completions, completion_ids=[[1], [2], [3]], answer=["2", "2", "2"],
                 trainer_state=object(), log_extra=lambda *a: None, log_metric=lambda k, v: logged.update({k: v}))
    assert out == [1.0, 0.0, 1.0]  # correctness: last-number fallback for the third
    assert logged["math_reward_correctness/accuracy"] == pytest.approx(2 / 3)
    assert reward.__name__ == "math_reward_correctness"
    plain = TRLReward(service.url, token=TOKEN)
    assert plain(prompts=["q"], completions=["\\boxed{5}"], solution=["5"]) == [1.0]
    with pytest.raises(KeyError):
        plain(prompts=["q"], completions=["\\boxed{5}"], nothing=["5"])
    clone = pickle.loads(pickle.dumps(reward))  # after use: the live HTTP client is not pickled
    assert clone(prompts=["q"], completions=["\\boxed{5}"], answer=["5"]) == [1.0]
    for r in (reward, plain, clone):
        r.close()


def test_verl_compute_score(service, monkeypatch):
    monkeypatch.setenv("MATHRL_REWARD_URL", service.url)
    monkeypatch.setenv("MATHRL_REWARD_TOKEN", TOKEN)
    assert compute_score("math500", "so \\boxed{\\frac{1}{2}}", "0.5") == 1.0
    assert compute_score("gsm8k", "She makes 9 * 2 = 18 dollars every day.", "#### 18",
                         extra_info={"reward_scheme": "correctness"}) == 1.0
    assert compute_score_batch(["a", "b"], ["\\boxed{1}", "<think>no"], ["1", "1"]) == [1.0, -1.0]
