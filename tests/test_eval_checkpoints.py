"""`rl-eval curve` over a trainer-style run directory, and LoRA-adapter checkpoints through the HF backend."""
import json

import pytest
import torch
import yaml

from eval.checkpoints import find_checkpoints, resolve_tokenizer
from eval.cli import main

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("single_thread")]


def _fake_run(tmp_path, tiny_model):
    """The trainer's layout: config.yaml naming the tokenizer, checkpoints/step_*/policy/model without one."""
    run = tmp_path / "run"
    (run / "checkpoints").mkdir(parents=True)
    (run / "config.yaml").write_text(yaml.safe_dump({"model": {"pretrain": str(tiny_model.name_or_path),
                                                               "tokenizer": None}}))
    for step in (2, 4):
        d = run / "checkpoints" / f"step_{step:06d}"
        with torch.no_grad():
            for p in tiny_model.parameters():
                p.add_(0.01 * torch.randn_like(p))
        tiny_model.save_pretrained(d / "policy" / "model")
        (d / "trainer_state.json").write_text(json.dumps({"step": step}))
    (run / "checkpoints" / "latest").write_text("step_000004")
    return run


def test_curve_over_checkpoints(tiny_model_dir, tiny_model, tmp_path, capsys):
    run = _fake_run(tmp_path, tiny_model)
    ckpts = find_checkpoints(run)
    assert [s for s, _ in ckpts] == [2, 4] and all(m.endswith("policy/model") for _, m in ckpts)
    assert resolve_tokenizer(ckpts[0][1], run) == str(tiny_model_dir)   # from the run's config.yaml
    args = ["curve", "--run", str(run), "--base", str(tiny_model_dir), "--backend", "hf",
            "--benchmarks", "aime24,amc23", "--limit", "2", "--max-tokens", "8", "--grader-workers", "1",
            "--no-progress"]
    assert main(args) == 0
    out = run / "eval_curve"
    steps = [json.loads((out / f"step_{s:06d}" / "summary.json").read_text())["step"] for s in (0, 2, 4)]
    assert steps == [0, 2, 4]
    png = out / "curve_pass_at_1.png"
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    md = (out / "curve.md").read_text()
    assert all(f"| step {s} |" in md for s in (0, 2, 4))
    capsys.readouterr()
    # Evaluated steps are kept: a second call only re-plots.
    before = (out / "step_000002" / "summary.json").stat().st_mtime_ns
    assert main(args) == 0
    assert (out / "step_000002" / "summary.json").stat().st_mtime_ns == before
    with pytest.raises(FileNotFoundError, match="no HF model"):
        (tmp_path / "empty" / "step_000001").mkdir(parents=True)
        find_checkpoints(tmp_path / "empty")


def test_lora_adapter_checkpoint_is_merged_for_hf(tiny_model_dir, tiny_tokenizer, tmp_path):
    from mathrl_core.models.loading import LoraSpec, apply_lora, load_causal_lm
    from mathrl_core.sampling import SamplingConfig
    from mathrl_core.rollout.hf import HFRollout

    from eval.generate import make_generator

    model = apply_lora(load_causal_lm(str(tiny_model_dir)), LoraSpec(rank=4))
    with torch.no_grad():  # LoRA B starts at zero: make the adapter matter
        for n, p in model.named_parameters():
            if "lora_B" in n:
                p.normal_(0, 0.5)
    model.save_pretrained(tmp_path / "adapter")
    assert resolve_tokenizer(tmp_path / "adapter") == str(tiny_model_dir)  # the adapter's base model
    prompts = ["What is 2+3?", "Compute 7*6."]
    want = HFRollout(model.eval(), tiny_tokenizer).generate(prompts, SamplingConfig(n=1, temperature=0.0,
                                                                                   max_new_tokens=12)).texts
    gen = make_generator("hf", str(tmp_path / "adapter"), str(tiny_model_dir))
    got = [c[0].text for c in gen.generate(prompts, SamplingConfig(n=1, temperature=0.0, max_new_tokens=12))]
    base = HFRollout(load_causal_lm(str(tiny_model_dir)).eval(), tiny_tokenizer).generate(
        prompts, SamplingConfig(n=1, temperature=0.0, max_new_tokens=12)).texts
    assert got == want and got != base
