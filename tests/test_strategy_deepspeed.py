"""DeepSpeed strategy, for real: ZeRO-2 and ZeRO-3 over 2 gloo ranks (2 processes) on a tiny Qwen2, checked
against a single-process ``TorchTrainable`` run on the same total data.

Each ZeRO stage is one 2-rank launch of ``tests/ds_worker_script.py`` running several phases (see its
docstring); the single-process torch reference is computed here. Every launch has a deadline (ranks killed,
test failed with their logs) and the gloo collectives a timeout, so a hung rank fails the test.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

import ds_worker_script as W
from trainer.strategy import TorchTrainable
from trainer.strategy.deepspeed_strategy import ds_config
from trainer.strategy.dist import free_port

REPO = Path(__file__).resolve().parents[1]
WORLD = 2
LR, MAX_GRAD_NORM, SAVE_AFTER = 1e-2, 0.5, 1
LAUNCH_DEADLINE_S = 420  # per 2-rank launch (a few tens of seconds on an idle 2-core machine)


# ------------------------------------------------------------------------------------------ fast checks
def test_ds_config_fields_and_validation():
    cfg = ds_config(zero_stage=3, dtype="bf16", max_grad_norm=1.0, offload_optimizer=True, offload_params=True,
                    micro_batch_size=2, grad_accum_steps=4, world_size=2)
    assert cfg["train_batch_size"] == 16 and cfg["gradient_clipping"] == 1.0
    assert cfg["bf16"]["enabled"] and not cfg["fp16"]["enabled"]
    assert cfg["data_types"]["grad_accum_dtype"] == "fp32"
    z = cfg["zero_optimization"]
    assert z["stage"] == 3 and z["offload_optimizer"]["device"] == "cpu" and z["offload_param"]["device"] == "cpu"
    assert ds_config(zero_stage=2, dtype="float32", max_grad_norm=0)["gradient_clipping"] == 0.0
    with pytest.raises(ValueError, match="offload_params needs ZeRO stage 3"):
        ds_config(zero_stage=2, offload_params=True)
    with pytest.raises(ValueError, match="bf16 needs ZeRO stage >= 1"):
        ds_config(zero_stage=0, dtype="bfloat16")
    with pytest.raises(ValueError, match="zero_stage"):
        ds_config(zero_stage=4)
    with pytest.raises(ValueError, match="dtype"):
        ds_config(dtype="int8")


# ------------------------------------------------------------------------------------------ fixtures
@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    """The initial tiny model on disk, the data plan, and the single-process torch reference run."""
    from transformers import AutoModelForCausalLM

    root = tmp_path_factory.mktemp("ds")
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(W.tiny_qwen2_config()).save_pretrained(root / "init")
    plan = W.make_plan()
    torch.save(plan, root / "plan.pt")

    model = AutoModelForCausalLM.from_pretrained(root / "init", dtype=torch.float32)
    ref = TorchTrainable(model, lr=LR, weight_decay=0.1, betas=(0.9, 0.95), max_grad_norm=MAX_GRAD_NORM,
                         lr_lambda=W.lr_lambda)
    norms, lrs = [], []
    for u, batch in enumerate(plan["batches"]):
        lrs.append(ref.current_lr())
        # every rank's micro-batches in one process; the normaliser is the global count (world size 1)
        mbs = [(r, m, mb) for r in range(WORLD) for m, mb in enumerate(W.micro_batches(batch, r, WORLD))]
        for i, (r, m, (ids, mask)) in enumerate(mbs):
            kind = plan["skips"].get((u, r, m))
            loss = torch.zeros(()) if kind == "nograph" else W.sum_nll(model, ids, mask) / W.target_count(batch)
            norm = ref.micro_step(loss * 0 if kind == "times0" else loss, boundary=i == len(mbs) - 1)
        norms.append(norm)
    initial = AutoModelForCausalLM.from_pretrained(root / "init", dtype=torch.float32).state_dict()
    return {"root": root, "final": model.state_dict(), "norms": norms, "lrs": lrs, "initial": initial}


def launch(root: Path, name: str, spec: dict) -> Path:
    """Run the worker script on WORLD ranks (fresh processes, gloo, OMP_NUM_THREADS=1); returns its out dir."""
    out = root / name
    out.mkdir()
    spec = dict(spec, model_dir=str(root / "init"), data=str(root / "plan.pt"), out=str(out), lr=LR,
                max_grad_norm=MAX_GRAD_NORM, save_after=SAVE_AFTER, timeout_s=90)
    (out / "spec.json").write_text(json.dumps(spec))
    port = free_port()
    procs, logs = [], []
    for rank in range(WORLD):
        env = dict(os.environ, MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port), RANK=str(rank),
                   WORLD_SIZE=str(WORLD), LOCAL_RANK=str(rank), OMP_NUM_THREADS="1", OMP_WAIT_POLICY="PASSIVE")
        logs.append(out / f"rank{rank}.log")
        procs.append(subprocess.Popen([sys.executable, str(REPO / "tests" / "ds_worker_script.py"),
                                       str(out / "spec.json")], cwd=REPO, env=env,
                                      stdout=open(logs[-1], "w"), stderr=subprocess.STDOUT))
    deadline = time.monotonic() + LAUNCH_DEADLINE_S
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()
    failed = [(r, p.returncode) for r, p in enumerate(procs) if p.returncode != 0]
    if failed:
        tails = "\n".join(f"--- rank {r} (rc {rc}) ---\n" + logs[r].read_text()[-3000:] for r, rc in failed)
        pytest.fail(f"DeepSpeed ranks failed or timed out ({LAUNCH_DEADLINE_S}s): {failed}\n{tails}")
    return out


@pytest.fixture(scope="module")
def zero2(setup):
    return launch(setup["root"], "zero2", {
        "zero_stage": 2, "misuse": True,
        "phases": [{"name": "fp32", "dtype": "float32", "resume": True},
                   {"name": "bf16_offload", "dtype": "bfloat16", "offload_optimizer": True}]})


@pytest.fixture(scope="module")
def zero3(setup):
    return launch(setup["root"], "zero3", {
        "zero_stage": 3,
        "phases": [{"name": "fp32", "dtype": "float32", "resume": True, "save_pretrained": True},
                   {"name": "fp32_offload", "dtype": "float32", "offload_optimizer": True,
                    "offload_params": True}]})


def result(out: Path, phase: str) -> dict:
    return torch.load(out / f"result_{phase}.pt", weights_only=False)


def max_diff(a: dict, b: dict) -> float:
    assert set(a) == set(b), set(a) ^ set(b)
    return max((a[k].float() - b[k].float()).abs().max().item() for k in a)


def assert_matches_torch(res: dict, ref: dict, atol: float = 1e-5):
    # the updates really moved the weights (far more than the tolerance), and clipping was active
    assert max_diff(ref["final"], ref["initial"]) > 1e-2
    assert max(ref["norms"]) > MAX_GRAD_NORM
    assert max_diff(res["final"], ref["final"]) < atol
    assert res["norms"] == pytest.approx(ref["norms"], rel=1e-5)
    assert res["lrs"] == pytest.approx(ref["lrs"], rel=1e-12)


def assert_resume_identical(res: dict, ref: dict):
    assert res["resumed_lr"] == pytest.approx(ref["lrs"][SAVE_AFTER + 1], rel=1e-12)
    assert res["resumed_norms"] == res["norms"][SAVE_AFTER + 1:]
    assert max_diff(res["resumed_final"], res["final"]) == 0.0


# ------------------------------------------------------------------------------------------ ZeRO-2
@pytest.mark.slow
def test_zero2_two_ranks_match_single_process_torch(zero2, setup):
    """Gradient of the sum over ranks and micro-batches, skips (loss*0 on one rank, graph-less on all),
    clipping and the LR schedule: the same updates as one process on all the data."""
    assert_matches_torch(result(zero2, "fp32"), setup)


@pytest.mark.slow
def test_zero2_save_load_state_gives_identical_next_update(zero2, setup):
    assert_resume_identical(result(zero2, "fp32"), setup)


@pytest.mark.slow
def test_zero2_bf16_with_optimizer_offload_tracks_fp32(zero2, setup):
    res = result(zero2, "bf16_offload")
    assert res["lrs"] == pytest.approx(setup["lrs"], rel=1e-12)
    assert res["norms"] == pytest.approx(setup["norms"], rel=1e-2)  # bf16 forward/backward, fp32 master weights
    assert max_diff(res["final"], setup["initial"]) > 1e-2


@pytest.mark.slow
def test_zero2_refuses_bare_forward_and_mixed_graphless_skips_on_every_rank(zero2):
    for rank in range(WORLD):
        seen = json.loads((zero2 / f"misuse_{rank}.json").read_text())
        assert "through the DeepSpeed engine" in seen["bare_forward"]
        assert "1 of 2 ranks passed a loss without a graph" in seen["mixed_graphless"]


# ------------------------------------------------------------------------------------------ ZeRO-3
@pytest.mark.slow
def test_zero3_two_ranks_match_single_process_torch(zero3, setup):
    assert_matches_torch(result(zero3, "fp32"), setup)


@pytest.mark.slow
def test_zero3_with_optimizer_and_param_offload_matches_torch(zero3, setup):
    assert_matches_torch(result(zero3, "fp32_offload"), setup)


@pytest.mark.slow
def test_zero3_save_load_state_gives_identical_next_update(zero3, setup):
    assert_resume_identical(result(zero3, "fp32"), setup)


@pytest.mark.slow
def test_zero3_gathered_weights_and_save_pretrained_round_trip(zero3, setup):
    from transformers import AutoModelForCausalLM

    res = result(zero3, "fp32")
    full = res["final"]
    # named_full_weights: full shapes, HF names, and the tied lm_head that named_parameters() omits
    assert full["lm_head.weight"].shape == (96, 32)
    assert torch.equal(full["lm_head.weight"], full["model.embed_tokens.weight"])
    loaded = AutoModelForCausalLM.from_pretrained(zero3 / "hf_fp32", dtype=torch.float32)
    assert loaded.lm_head.weight.data_ptr() == loaded.model.embed_tokens.weight.data_ptr()  # still tied
    assert max_diff(loaded.state_dict(), full) == 0.0
    assert max_diff(loaded.state_dict(), setup["final"]) < 1e-5
