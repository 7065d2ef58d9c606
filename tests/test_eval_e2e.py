"""End to end: real benchmark files, the real grader pool, tiny local models through HF generate (the trainer's
rollout backend) and vLLM, the CLI and the trainer-facing evaluate() API."""
import json

import pytest

from eval.benchmarks import DEFAULT_BENCHMARKS, load_benchmark
from mathrl_core.data_files import data_dir as resolve_data_dir
from eval.cli import main

pytestmark = [pytest.mark.slow,
              pytest.mark.skipif(not (resolve_data_dir() / "math500.jsonl").is_file(), reason="shared data not found")]

VERDICTS = {"correct", "wrong", "no_answer"}


def test_evaluate_api_with_oracle_generations_on_every_benchmark():
    """generate_fn answers each real problem first with its gold, then with a wrong number: the harness must
    load every benchmark's gold format, grade through the pool and give pass@1 = 1/2, pass@2 = 1, maj@2 = 1
    (a 1-1 tie goes to the earliest cluster, the gold) exactly."""
    from eval.harness import evaluate

    golds = {}
    for b in DEFAULT_BENCHMARKS:
        for p in load_benchmark(b, limit=3):
            golds[p.question] = p.gold[0] if isinstance(p.gold, list) else p.gold
    calls = []

    def generate_fn(prompts, n):
        calls.append((len(prompts), n))
        return [[f"Reasoning... so the final answer is \\boxed{{{golds[q]}}}.",
                 {"text": "I think it is \\boxed{-987654321}", "num_tokens": 9}][:n] for q in prompts]

    m = evaluate(generate_fn, ",".join(DEFAULT_BENCHMARKS), n=2, ks=[1, 2], limit=3, template=None)
    assert calls == [(3 * len(DEFAULT_BENCHMARKS), 2)]
    for b in DEFAULT_BENCHMARKS:
        assert m[f"eval/{b}/pass@1"] == 0.5, b
        assert m[f"eval/{b}/pass@2"] == 1.0 and m[f"eval/{b}/maj@2"] == 1.0 and m[f"eval/{b}/maj@1"] == 1.0
        assert m[f"eval/{b}/no_answer_rate"] == 0.0
    assert m["eval/avg/pass@1"] == 0.5 and m["eval/avg/avg_pass_rate"] == 0.5
    with pytest.raises(ValueError, match="expected 2"):
        evaluate(lambda prompts, n: [["\\boxed{1}"] for _ in prompts], "aime24", n=2, limit=1, template=None)


@pytest.mark.usefixtures("single_thread")
def test_run_cli_hf_backend_tiny_model(tiny_model_dir, tiny_tokenizer, tmp_path):
    out = tmp_path / "run"
    args = ["run", "--model", str(tiny_model_dir), "--backend", "hf", "--benchmarks", "all", "--limit", "2",
            "--n", "2", "--temperature", "1.0", "--k", "1,2", "--max-tokens", "16", "--seed", "3",
            "--grader-workers", "1", "--no-progress"]
    assert main(args + ["--out", str(out)]) == 0
    summary = json.loads((out / "summary.json").read_text())
    assert list(summary["benchmarks"]) == list(DEFAULT_BENCHMARKS)
    assert summary["len_unit"] == "tokens" and summary["generator"] == "hf" and summary["sampling"]["n"] == 2
    for b, m in summary["benchmarks"].items():
        assert m["n_problems"] == 2 and m["n_samples"] == 4
        for k in ("pass@1", "pass@2", "maj@2", "avg_pass_rate", "no_answer_rate"):
            assert 0.0 <= m[k] <= 1.0
        assert 1 <= m["avg_len"] <= 16
    recs = [json.loads(x) for x in (out / "samples.jsonl").read_text().splitlines()]
    assert len(recs) == len(DEFAULT_BENCHMARKS) * 2 * 2
    assert all(r["verdict"] in VERDICTS and 1 <= r["len"] <= 16 for r in recs)
    # The prompt is the trainer's template (qwen_boxed through the chat template).
    from mathrl_core.templates import build_prompt
    q0 = load_benchmark("aime24", limit=1)[0].question
    assert next(r for r in recs if r["benchmark"] == "aime24")["prompt"] == build_prompt(tiny_tokenizer, q0, "qwen_boxed")
    assert "| Model | AIME24 | AIME25 | AMC23 | MATH500 | GSM8K | Minerva | OlympiadBench | Avg. |" in \
        (out / "table.md").read_text()

    # Re-grading the saved generations with `rl-eval score` gives the same metrics.
    assert main(["score", "--samples", str(out / "generations.jsonl"), "--k", "1,2", "--out", str(tmp_path / "re"),
                 "--grader", "inline", "--no-progress"]) == 0
    again = json.loads((tmp_path / "re" / "summary.json").read_text())
    for b, m in summary["benchmarks"].items():
        for k in ("pass@1", "pass@2", "maj@2", "avg_pass_rate", "no_answer_rate", "avg_len"):
            assert again["benchmarks"][b][k] == m[k], (b, k)

    # The same command (same seed, problems and batching) gives the same samples.
    assert main(args + ["--out", str(tmp_path / "run2")]) == 0
    second = [json.loads(x)["completion"] for x in (tmp_path / "run2" / "samples.jsonl").read_text().splitlines()]
    assert [r["completion"] for r in recs] == second


def test_run_cli_errors(tmp_path, capsys):
    assert main(["run", "--model", str(tmp_path), "--benchmarks", "math500,nope"]) == 2
    assert "unknown benchmark 'nope'" in capsys.readouterr().err
    assert main(["run", "--model", str(tmp_path), "--benchmarks", "aime24", "--data-dir", str(tmp_path)]) == 2
    assert "data file not found" in capsys.readouterr().err
    assert main(["run", "--model", str(tmp_path), "--benchmarks", "aime24", "--n", "4", "--temperature", "0"]) == 2
    assert "greedy" in capsys.readouterr().err
    assert main(["run", "--model", str(tmp_path), "--benchmarks", "aime24", "--n", "2", "--k", "1,4"]) == 2
    assert "between 1 and n=2" in capsys.readouterr().err


@pytest.fixture(scope="module")
def vllm_tiny_dir(tmp_path_factory):
    # vLLM's CPU attention kernels need head_dim >= 32: hidden 64 with 2 heads.
    from trainer.models.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("vllm_tiny") / "tiny", seed=0, vocab_size=1000,
                                hidden_size=64, num_layers=2, num_heads=2, num_kv_heads=1)


def test_run_cli_vllm_backend_tiny_model(vllm_tiny_dir, tmp_path, monkeypatch):
    """vLLM generation end to end (engine start dominates: enforce_eager skips graph compilation).
    Per-problem seeds make a problem's samples independent of which other problems are in the run."""
    monkeypatch.setenv("OMP_WAIT_POLICY", "PASSIVE")
    from eval.benchmarks import load_benchmarks
    from eval.generate import make_generator
    from eval.grading_backend import make_backend
    from eval.harness import run_eval
    from mathrl_core.sampling import SamplingConfig

    # a GPU memory fraction is ignored on CPU: the engine gets an explicit KV-cache size (engine_args)
    gen = make_generator("vllm", str(vllm_tiny_dir), dtype="float32", seed=0, max_model_len=1024,
                         gpu_memory_utilization=0.05, enforce_eager=True)
    backend = make_backend("pool", workers=1)
    try:
        spec = SamplingConfig(n=2, temperature=1.0, max_new_tokens=16, seed=7)
        probs = load_benchmarks("aime24,math500", limit=2)
        res = run_eval(gen, probs, spec, backend, ks=[1, 2], progress=False, out_dir=tmp_path / "v",
                       run_info={"model": str(vllm_tiny_dir)})
        assert set(res.summary["benchmarks"]) == {"aime24", "math500"}
        assert res.summary["generator"] == "vllm" and res.summary["len_unit"] == "tokens"
        assert len(res.records) == 8 and all(r["verdict"] in VERDICTS and 1 <= r["len"] <= 16 for r in res.records)
        # Only math500's second problem, alone: the same two samples as in the full run.
        alone = run_eval(gen, {"math500": probs["math500"][1:]}, spec, backend, ks=[1], progress=False)
        full = [r["completion"] for r in res.records if r["benchmark"] == "math500" and r["id"] == probs["math500"][1].id]
        assert [r["completion"] for r in alone.records] == full
        greedy = run_eval(gen, {"aime24": probs["aime24"]}, SamplingConfig(n=1, temperature=0.0, max_new_tokens=16),
                          backend, ks=[1], progress=False)
        assert greedy.summary["sampling"]["greedy"] is True and len(greedy.records) == 2
    finally:
        backend.close()
        gen.close()
    assert (tmp_path / "v" / "generations.jsonl").is_file() and (tmp_path / "v" / "table.md").is_file()


@pytest.mark.usefixtures("single_thread")
def test_trainer_eval_hook_logs_harness_metrics(tiny_model, tiny_tokenizer, tmp_path):
    """The trainer's eval hook (trainer.build.build_eval_fn) runs this harness on the in-memory policy through
    its rollout backend and returns metrics to log; the step's run files land under <output_dir>/eval."""
    from mathrl_core.rollout.hf import HFRollout
    from trainer.build import build_eval_fn
    from trainer.config import EvalConfig, RewardConfig, RLConfig
    from trainer.reward import RewardScorer

    cfg = RLConfig(eval=EvalConfig(every_steps=1, benchmarks=["aime24", "gsm8k"], limit=2, n=1,
                                   temperature=0.0, max_new_tokens=8))
    reward = RewardScorer(RewardConfig(workers=1))
    try:
        eval_fn = build_eval_fn(cfg, tiny_tokenizer, HFRollout(tiny_model, tiny_tokenizer), tmp_path, reward)
        m = eval_fn(3)
    finally:
        reward.close()
    for b in ("aime24", "gsm8k"):
        assert 0.0 <= m[f"eval/{b}/pass@1"] <= 1.0 and 1 <= m[f"eval/{b}/avg_len"] <= 8
    assert "eval/avg/pass@1" in m
    s = json.loads((tmp_path / "eval" / "step_000003" / "summary.json").read_text())
    assert s["step"] == 3 and s["template"] == "qwen_boxed" and s["len_unit"] == "tokens"
