"""verl against the reward service: verl's own reward managers (releases pinned in scripts/upstream.py) load
reward_service/adapters.py by path, as ``custom_reward_function.path/name`` does, and score a DataProto batch whose
ground truths are numpy values (tests/interop/verl_rewards.py says what runs for each release). Plus the adapter's
own contract: numpy ground truths, the batching coroutine, and the clear error when the batch function is called
once per sample."""
from __future__ import annotations

import asyncio
import json

import httpx
import numpy as np
import pytest

import upstream_harness as up
from reward_service.adapters import compute_score, compute_score_async, compute_score_batch, plain
from reward_service.client import RewardServiceUnavailable, start_service

REWARDS = [1.0, -0.5, -1.0, 1.0, 1.0, 0.0]  # verl_rewards.SAMPLES under the default scheme (the last: correctness)
ONE_SAMPLE = "compute_score_batch was called with one sample"


@pytest.fixture(scope="module")
def service():
    with start_service(workers=2, args=["--log-level", "warning"]) as svc:
        yield svc


@pytest.fixture(scope="module")
def tokenizer_dir(tmp_path_factory):
    from trainer.models.tiny import default_corpus, train_tokenizer

    out = tmp_path_factory.mktemp("tok")
    train_tokenizer(default_corpus(), vocab_size=1000).save_pretrained(out)
    return out


def run_verl(version, service, tokenizer_dir, *flows):
    # a generous batching window: the test checks that a batch becomes one request, not how fast calls arrive
    return up.run_upstream("verl_rewards.py", up.roots("verl", version), service.url, str(tokenizer_dir), *flows,
                           env={"MATHRL_REWARD_BATCH_WINDOW": "0.5"})


@pytest.mark.slow
def test_verl_0_6_legacy_managers(service, tokenizer_dir):
    out = run_verl("0.6.1", service, tokenizer_dir, "legacy:naive:compute_score", "legacy:batch:compute_score_batch")
    assert out["verl"] == "0.6.1"
    assert out["legacy:naive:compute_score"] == {"rewards": REWARDS, "requests": len(REWARDS)}
    assert out["legacy:batch:compute_score_batch"] == {"rewards": REWARDS, "requests": 1}


@pytest.mark.slow
def test_verl_0_7_0_reward_loop_and_legacy_path(service, tokenizer_dir):
    out = run_verl("0.7.0", service, tokenizer_dir, "legacy:batch:compute_score_batch", "loop:naive:compute_score",
                   "loop:naive:compute_score_async", "loop:batch:compute_score_batch", "loop:naive:compute_score_batch")
    assert out["verl"] == "0.7.0"
    # the batch manager only with reward_model.use_reward_loop=False
    assert out["legacy:batch:compute_score_batch"] == {"rewards": REWARDS, "requests": 1}
    assert out["loop:naive:compute_score"] == {"rewards": REWARDS, "requests": len(REWARDS)}
    assert out["loop:naive:compute_score_async"] == {"rewards": REWARDS, "requests": 1}  # batched by the adapter
    assert out["loop:batch:compute_score_batch"]["error"] == "ValueError: Unknown reward manager: batch"
    assert ONE_SAMPLE in out["loop:naive:compute_score_batch"]["cause"]


@pytest.mark.slow
def test_verl_newest_reward_loop_worker(service, tokenizer_dir):
    out = run_verl(up.PINS.VERL[-1], service, tokenizer_dir, "loop:naive:compute_score",
                   "loop:naive:compute_score_async", "loop:batch:compute_score_batch", "loop:naive:compute_score_batch")
    assert out["verl"] == up.PINS.VERL[-1]
    assert out["loop:naive:compute_score"] == {"rewards": REWARDS, "requests": len(REWARDS)}
    assert out["loop:naive:compute_score_async"] == {"rewards": REWARDS, "requests": 1}
    assert "Unknown reward manager: batch" in out["loop:batch:compute_score_batch"]["cause"]
    assert ONE_SAMPLE in out["loop:naive:compute_score_batch"]["cause"]


# ------------------------------------------------------------------------------------- the adapter itself
def test_plain_turns_numpy_ground_truths_into_json():
    values = [np.int64(5), np.float32(0.5), np.bool_(True), np.str_("7"), np.array(["3/4", "0.75"]),
              np.array([[1, 2], [3, 4]]), (np.int32(1), "x"), {"a": np.int16(3)}, "s", 2, 1.5, None]
    out = [plain(v) for v in values]
    assert out == [5, 0.5, True, "7", ["3/4", "0.75"], [[1, 2], [3, 4]], [1, "x"], {"a": 3}, "s", 2, 1.5, None]
    assert [type(x) for x in out[:4]] == [int, float, bool, str]
    json.dumps(out)  # what the HTTP client does with them


def test_verl_functions_take_numpy_ground_truths(service, monkeypatch):
    monkeypatch.setenv("MATHRL_REWARD_URL", service.url)
    assert compute_score("math", "so \\boxed{5}", np.int64(5)) == 1.0
    assert compute_score("math", "so \\boxed{0.75}", np.array(["3/4", "1/2"])) == 1.0
    assert compute_score_batch(np.array(["a", "b"], dtype=object), ["\\boxed{7}", "\\boxed{2}"],
                               [np.float64(7.0), np.int64(3)],
                               np.array([{}, {"reward_scheme": "correctness"}], dtype=object)) == [1.0, 0.0]


def test_batch_function_called_per_sample_is_a_clear_error():
    with pytest.raises(TypeError, match=ONE_SAMPLE + r".*compute_score_async"):
        compute_score_batch(data_source="math", solution_str="\\boxed{1}", ground_truth="1", extra_info={})
    with pytest.raises(ValueError, match="2 solution_strs but 1 ground_truths"):
        compute_score_batch(["a", "b"], ["x", "y"], ["1"])


def _score_requests(url: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in httpx.get(url + "/metrics").text.splitlines()
               if line.startswith("mathrl_reward_requests_total{") and 'path="/v1/score"' in line)


def test_async_calls_on_one_loop_become_one_request(service, monkeypatch):
    monkeypatch.setenv("MATHRL_REWARD_URL", service.url)
    monkeypatch.setenv("MATHRL_REWARD_BATCH_WINDOW", "0.2")
    n = 40

    async def main():
        calls = [compute_score_async("math", f"so \\boxed{{{i}}}", np.int64(i if i % 2 else i + 1),
                                     extra_info={"reward_scheme": "correctness"} if i % 4 == 0 else {})
                 for i in range(n)]
        return await asyncio.gather(*calls)

    before = _score_requests(service.url)
    rewards = asyncio.run(main())
    assert _score_requests(service.url) - before == 1
    want = [1.0 if i % 2 else (0.0 if i % 4 == 0 else -0.5) for i in range(n)]  # per-sample schemes kept
    assert rewards == want


def test_async_cancelled_caller_leaves_the_others(service, monkeypatch):
    monkeypatch.setenv("MATHRL_REWARD_URL", service.url)
    monkeypatch.setenv("MATHRL_REWARD_BATCH_WINDOW", "0.2")

    async def main():
        tasks = [asyncio.ensure_future(compute_score_async("m", f"\\boxed{{{i}}}", str(i))) for i in range(3)]
        await asyncio.sleep(0.05)  # all three are waiting for the same request
        tasks[0].cancel()
        return await asyncio.gather(*tasks, return_exceptions=True)

    out = asyncio.run(main())
    assert isinstance(out[0], asyncio.CancelledError) and out[1:] == [1.0, 1.0]


def test_async_batch_failure_reaches_every_caller(monkeypatch):
    """A service that cannot be reached fails every waiting sample with the client's error, never a reward."""
    monkeypatch.setenv("MATHRL_REWARD_URL", "http://127.0.0.1:9")  # discard port: connection refused
    monkeypatch.setenv("MATHRL_REWARD_BATCH_WINDOW", "0")

    async def main():
        return await asyncio.gather(*(compute_score_async("m", "\\boxed{1}", "1") for _ in range(3)),
                                    return_exceptions=True)

    out = asyncio.run(main())  # after the client's retries with backoff (a few seconds)
    assert len(out) == 3 and all(isinstance(e, RewardServiceUnavailable) for e in out)


@pytest.mark.parametrize("window", ["-1", "soon", "nan"])
def test_async_window_must_be_a_number(monkeypatch, window):
    monkeypatch.setenv("MATHRL_REWARD_URL", "http://127.0.0.1:9")
    monkeypatch.setenv("MATHRL_REWARD_BATCH_WINDOW", window)
    with pytest.raises(ValueError, match=f"MATHRL_REWARD_BATCH_WINDOW must be .* not '{window}'"):
        asyncio.run(compute_score_async("m", "\\boxed{1}", "1"))
