"""SFT: response-only loss (hand-checked), packing = padding, accumulation invariance, loss goes down, the saved
HF checkpoint loads with the real loaders, resume reproduces an uninterrupted run, graceful stops, CLI."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from trainer import checkpoint
from trainer.config_tree import ConfigError, load_config
from trainer.sft import SFTConfig, SFTTrainer, run_sft
from trainer.sft_data import (IGNORE_INDEX, SFTExample, micro_batches, pack_rows, pad_batch, token_nll_sum,
                              tokenize_example)

pytestmark = pytest.mark.usefixtures("single_thread")


def _cfg(tmp_path, model_dir, **over):
    tree = {"model": {"pretrain": str(model_dir), "dtype": "float32"},
            "data": {"train": "synthetic", "synthetic": {"n": 64, "seed": 0, "max_ops": 2}, "max_len": 256},
            "train": {"lr": 3e-3, "batch_size": 8, "micro_batch_size": 4, "max_steps": 4, "seed": 0,
                      "lr_scheduler": "constant", "warmup_ratio": 0.0},
            "logging": {"output_dir": str(tmp_path / "sft"), "progress_bar": False}}
    overrides = [f"{k}={json.dumps(v)}" for k, v in over.items()]
    return load_config(SFTConfig, None, overrides, base=tree)


def test_loss_mask_and_nll_by_hand(tiny_tokenizer, tiny_model):
    ex = tokenize_example(tiny_tokenizer, "Mia has 3 apples. How many apples does Mia have?",
                          "Mia has 3.\nThe answer is \\boxed{3}.", "qwen_boxed")
    n_target = ex.num_target_tokens
    prompt_len = len(ex) - n_target
    # labels: -100 over the whole prompt, then exactly the response ids, ending with <|im_end|>
    assert ex.labels[:prompt_len] == [IGNORE_INDEX] * prompt_len
    assert ex.labels[prompt_len:] == ex.input_ids[prompt_len:]
    assert tiny_tokenizer.convert_ids_to_tokens(ex.labels[-1]) == "<|im_end|>"
    assert tiny_tokenizer.decode(ex.input_ids[:prompt_len]).endswith("<|im_start|>assistant\n")
    # a second, shorter example in the same padded batch
    ex2 = SFTExample(ex.input_ids[:prompt_len + 3], ex.labels[:prompt_len + 3])
    mb = pad_batch([ex, ex2], tiny_tokenizer.pad_token_id)
    assert mb.num_target_tokens == n_target + 3
    got = token_nll_sum(tiny_model, mb)
    # by hand: one sequence at a time, no padding, sum -log p(token_t | tokens_<t) over response positions
    want = 0.0
    for e in (ex, ex2):
        logits = tiny_model(input_ids=torch.tensor([e.input_ids])).logits[0].float()
        logp = torch.log_softmax(logits, -1)
        for t in range(1, len(e)):
            if e.labels[t] != IGNORE_INDEX:
                want -= float(logp[t - 1, e.input_ids[t]].detach())
    assert float(got.detach()) == pytest.approx(want, rel=1e-5)


def test_a_record_may_name_its_own_template(tiny_tokenizer):
    from mathrl_core.records import PromptRecord
    from mathrl_core.templates import TIR_INSTRUCTION
    from trainer.sft_data import tokenize_records

    q, a = "What is 2 + 2?", "4"
    recs = [PromptRecord(q, a, 0), PromptRecord(q, a, 1, {"template": "qwen_tir"})]
    plain, tir = (tiny_tokenizer.decode(e.input_ids) for e in tokenize_records(tiny_tokenizer, recs, "qwen_boxed", 256))
    assert TIR_INSTRUCTION in tir and TIR_INSTRUCTION not in plain and "step by step" in plain
    with pytest.raises(ValueError, match="unknown prompt template"):
        tokenize_records(tiny_tokenizer, [PromptRecord(q, a, 0, {"template": "nope"})], "qwen_boxed", 256)


def test_packing_gives_the_same_loss_and_gradient(tiny_tokenizer, tiny_model):
    qs = ["Ava has 5 coins. She finds 2 more coins. How many coins does Ava have now?",
          "Leo has 12 books. He sells 4 of the books. How many books does Leo have in the end?",
          "There are 6 kites in Sam's box. How many kites are in Sam's box at the end?"]
    rs = ["Ava starts with 5 coins.\nShe finds 2 more: 5 + 2 = 7.\nThe answer is \\boxed{7}.",
          "Leo starts with 12 books.\nHe sells 4: 12 - 4 = 8.\nThe answer is \\boxed{8}.",
          "The answer is \\boxed{6}."]
    exs = [tokenize_example(tiny_tokenizer, q, r) for q, r in zip(qs, rs)]
    pad = tiny_tokenizer.pad_token_id

    def loss_and_grad(mbs):
        tiny_model.zero_grad()
        total = sum(token_nll_sum(tiny_model, m) for m in mbs)
        total.backward()
        return float(total), [p.grad.clone() for p in tiny_model.parameters()]

    padded = micro_batches(exs, pad, micro_batch_size=3)
    packed = micro_batches(exs, pad, micro_batch_size=2, packing=True, pack_length=len(exs[0]) + len(exs[2]))
    assert packed[0].attention_mask is None and packed[0].input_ids.shape[0] == 2  # 3 examples in 2 rows
    assert sum(m.num_target_tokens for m in packed) == sum(e.num_target_tokens for e in exs)
    l1, g1 = loss_and_grad(padded)
    l2, g2 = loss_and_grad(packed)
    assert l2 == pytest.approx(l1, rel=1e-5)
    for a, b in zip(g1, g2):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    # without the position-id reset the examples would attend to each other: the loss must differ
    bad = packed[0]
    bad_pos = torch.arange(bad.input_ids.shape[1]).expand_as(bad.input_ids)
    leak = tiny_model(input_ids=bad.input_ids, position_ids=bad_pos).logits
    good = tiny_model(input_ids=bad.input_ids, position_ids=bad.position_ids).logits
    assert not torch.allclose(leak, good)


def test_pack_rows_first_fit():
    assert pack_rows([5, 3, 4, 2], 7) == [[0, 3], [2, 1]]
    with pytest.raises(ValueError, match="pack_length"):
        pack_rows([9], 8)


def test_accumulation_and_packing_do_not_change_the_update(tmp_path, tiny_model_dir):
    """The step's gradient (what AdamW receives) and loss are the same for any micro-batch size, with packing."""
    grads, losses = [], []
    for i, over in enumerate([{"train.micro_batch_size": 8}, {"train.micro_batch_size": 1},
                              {"train.micro_batch_size": 2, "train.packing": True, "train.pack_length": 400}]):
        trainer = SFTTrainer(_cfg(tmp_path / str(i), tiny_model_dir, **over))
        seen = []
        trainer.trainable.optimizer.step = lambda: seen.append(  # capture the clipped gradient, skip the update
            torch.cat([p.grad.flatten() for p in trainer.model.parameters()]))
        m = trainer.train_step([trainer.train_examples[r.index] for r in trainer.data.next_batch()])
        grads.append(seen[0])
        losses.append(m["train/loss"])
    for g, loss in zip(grads[1:], losses[1:]):
        torch.testing.assert_close(g, grads[0], rtol=1e-4, atol=1e-7)
        assert loss == pytest.approx(losses[0], rel=1e-5)


def test_loss_decreases_and_checkpoint_loads(tmp_path, tiny_model_dir):
    from mathrl_core.models.loading import load_causal_lm, load_tokenizer

    cfg = _cfg(tmp_path, tiny_model_dir, **{"train.max_steps": 30, "data.eval": "synthetic",
                                            "data.eval_limit": 16, "eval.every_steps": 30})
    trainer = SFTTrainer(cfg)
    before = trainer.eval_loss()
    model_dir = trainer.train()
    hist = [m for m in trainer.history if "train/loss" in m]
    assert len(hist) == 30
    first, last = sum(m["train/loss"] for m in hist[:3]) / 3, sum(m["train/loss"] for m in hist[-3:]) / 3
    assert last < 0.8 * first, (first, last)
    assert trainer.history[-1]["eval/loss"] < before
    # the HF directory loads with the real loaders (what `rl-train model.pretrain=...` does)
    model = load_causal_lm(str(model_dir), dtype="float32")
    tok = load_tokenizer(str(model_dir))
    assert tok.chat_template and tok("The answer is")["input_ids"] == trainer.tokenizer("The answer is")["input_ids"]
    ids = torch.tensor([trainer.train_examples[0].input_ids])
    torch.testing.assert_close(model(input_ids=ids).logits, trainer.model(input_ids=ids).logits)
    info = json.loads((model_dir / "sft_info.json").read_text())
    assert info["step"] == 30 and info["stop_reason"] == "max_steps"
    lines = [json.loads(x) for x in (tmp_path / "sft" / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines[:30]] == list(range(1, 31))


def test_resume_matches_uninterrupted(tmp_path, tiny_model_dir):
    full = SFTTrainer(_cfg(tmp_path / "full", tiny_model_dir, **{"train.max_steps": 4}))
    full.train()
    part_cfg = _cfg(tmp_path / "part", tiny_model_dir, **{"train.max_steps": 4, "logging.save_steps": 2})
    part = SFTTrainer(part_cfg)
    part.total_steps = 2  # "killed" right after the checkpoint at step 2
    part.train()
    resumed_dir = run_sft(part_cfg, resume=True)
    from mathrl_core.models.loading import load_causal_lm

    # the resumed run is the same run: its step-4 checkpoint carries the id of the step-2 one
    ckpts = sorted((tmp_path / "part" / "sft" / "checkpoints").glob("step_*"))
    assert [c.name for c in ckpts] == ["step_000002", "step_000004"]
    assert {checkpoint.load_state(c)["run_id"] for c in ckpts} == {part.run_id}

    resumed = load_causal_lm(str(resumed_dir), dtype="float32")
    for (n, a), b in zip(full.model.named_parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, msg=n)


def test_max_time_stops_early_and_saves(tmp_path, tiny_model_dir):
    cfg = _cfg(tmp_path, tiny_model_dir, **{"train.max_steps": 10_000, "train.max_time_s": 0.5})
    trainer = SFTTrainer(cfg)
    out = trainer.train()
    info = json.loads((out / "sft_info.json").read_text())
    assert info["stop_reason"] == "max_time_s" and 1 <= info["step"] < 10_000
    assert (out / "model.safetensors").is_file()


def test_config_errors_name_the_key(tmp_path, tiny_model_dir):
    with pytest.raises(ConfigError, match="train.lrr"):
        load_config(SFTConfig, None, ["train.lrr=1"])
    with pytest.raises(ConfigError, match="train.batch_size"):
        load_config(SFTConfig, None, ["train.batch_size=0"])
    with pytest.raises(ValueError, match="noise rates"):
        SFTTrainer(_cfg(tmp_path, tiny_model_dir, **{"data.synthetic": {"n": 16, "noise": {"slip": 0.8,
                                                                                             "no_box": 0.5}}}))


def test_jsonl_records_and_cli(tmp_path, tiny_model_dir, capsys):
    from trainer.sft_cli import main

    rows = [{"problem": f"What is {i} + 1?", "solution": f"{i} + 1 = {i + 1}. \\boxed{{{i + 1}}}"} for i in range(8)]
    path = tmp_path / "train.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    args = ["data.train=" + str(path), f"model.pretrain={tiny_model_dir}", "model.dtype=float32",
            "train.batch_size=4", "train.micro_batch_size=4", "train.max_steps=2",
            f"logging.output_dir={tmp_path / 'out'}", "logging.progress_bar=false"]
    assert main(["--dry-run", *args]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["records"] == 8 and plan["total_steps"] == 2
    assert main(args) == 0
    assert (tmp_path / "out" / "model" / "config.json").is_file()
    capsys.readouterr()
    assert main(args) == 2  # a new run in a directory that holds one: refused, nothing overwritten
    assert "already holds a run" in capsys.readouterr().err
    assert main([*args, "data.response_key=missing", f"logging.output_dir={tmp_path / 'out2'}"]) == 2
    assert "missing" in capsys.readouterr().err


def test_deepspeed_strategy_matches_torch(tmp_path, tiny_model_dir):
    """One-rank ZeRO-2 (DeepSpeed's engine around the same torch AdamW): the same losses and weights."""
    pytest.importorskip("deepspeed")
    from trainer.strategy import dist

    runs = []
    try:
        for strategy in ("torch", "deepspeed"):
            trainer = SFTTrainer(_cfg(tmp_path / strategy, tiny_model_dir, **{
                "train.strategy": strategy, "train.zero_stage": 2, "train.max_steps": 3}))
            model_dir = trainer.train()
            runs.append(([m["train/loss"] for m in trainer.history if "train/loss" in m],
                         torch.cat([p.detach().flatten() for p in trainer.model.parameters()]), model_dir))
    finally:
        dist.destroy()
    (loss_t, w_t, _), (loss_d, w_d, dir_d) = runs
    assert loss_d == pytest.approx(loss_t, rel=1e-5)
    torch.testing.assert_close(w_d, w_t, rtol=1e-4, atol=1e-6)
    from mathrl_core.models.loading import load_causal_lm

    assert load_causal_lm(str(dir_d), dtype="float32") is not None  # the gathered HF save loads


def test_imperfect_demonstrations():
    """Each kind of teacher mistake looks as documented, the rates hold, and the records are deterministic."""
    import re
    from collections import Counter

    from reward_service.grading import grade
    from trainer.data.synthetic import DemoNoise, STEP_RE, generate_problems, sft_records

    noise = DemoNoise(slip=0.3, wrong_box=0.1, no_box=0.1, skip_last=0.1)
    rows = sft_records(1000, seed=5, noise=noise)
    assert rows == sft_records(1000, seed=5, noise=noise)
    golds = {p.question: p for p in generate_problems(1000, "train", seed=5)}
    kinds = Counter(r["noise"] for r in rows)
    assert abs(kinds["slip"] / 1000 - 0.3) < 0.05 and abs(kinds["wrong_box"] / 1000 - 0.1) < 0.03
    assert abs(kinds["no_box"] / 1000 - 0.1) < 0.03 and 0.03 < kinds["skip_last"] / 1000 < 0.1  # multi-op only
    for r in rows:
        p = golds[r["question"]]
        verdict = grade(r["response"], p.answer).verdict
        lines = r["response"].split("\n")
        steps = [STEP_RE.search(x) for x in lines if STEP_RE.search(x)]
        if r["noise"] == "clean":
            assert r["response"] == p.solution and verdict == "correct"
        elif r["noise"] == "no_box":  # the right number, unboxed (our grader still reads "The answer is N")
            assert "\\boxed" not in r["response"] and lines[-1] == f"The answer is {p.answer}."
        else:
            assert verdict == "wrong"
        if r["noise"] in ("slip", "wrong_box", "skip_last"):
            cur = int(re.search(r"starts with (\d+)", lines[0]).group(1))
            wrong_steps = 0
            for m in steps:  # every trace is self-consistent from step to step
                a, op, b, c = int(m.group(1)), m.group(2), int(m.group(3)), int(m.group(4))
                assert a == cur
                wrong_steps += c != {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
                cur = c
            boxed = int(re.search(r"\\boxed\{(-?\d+)\}", lines[-1]).group(1))
            if r["noise"] == "slip":
                assert wrong_steps == 1 and boxed == cur
            elif r["noise"] == "wrong_box":
                assert wrong_steps == 0 and boxed != cur
            else:
                assert wrong_steps == 0 and boxed == cur and len(steps) == p.num_ops - 1 >= 1


RECIPES = sorted(p.name for p in (Path(__file__).parents[1] / "recipes").glob("*.yaml")
                 if p.name.startswith(("sft_", "quickstart_sft")))


@pytest.mark.parametrize("recipe", RECIPES)
def test_sft_recipes_dry_run(recipe, capsys):
    """Every SFT recipe resolves and prints its plan without loading weights (reads the local data files)."""
    from mathrl_core.data_files import data_dir
    from trainer.sft_cli import main

    if not data_dir().is_dir():
        pytest.skip(f"shared data not found at {data_dir()}")
    assert main(["--config", str(Path(__file__).parents[1] / "recipes" / recipe), "--dry-run"]) == 0
    plan = json.loads(capsys.readouterr().out)
    assert plan["records"] > 0 and plan["total_steps"] > 0


def test_deepspeed_two_ranks_match_one_process(tmp_path, tiny_model_dir):
    """ZeRO-2 on two ranks (two processes, gloo), each taking half of every step: the same losses and weights as
    one torch process on the whole batch (the token-mean normaliser is global)."""
    pytest.importorskip("deepspeed")
    import os
    import subprocess
    import sys

    from safetensors.torch import load_file

    from trainer.strategy.dist import free_port

    common = [f"model.pretrain={tiny_model_dir}", "model.dtype=float32", "data.train=synthetic",
              "data.synthetic.n=64", "data.synthetic.max_ops=2", "data.max_len=256", "train.lr=3e-3",
              "train.batch_size=8", "train.micro_batch_size=2", "train.max_steps=3", "train.seed=0",
              "train.lr_scheduler=constant", "train.warmup_ratio=0.0", "logging.progress_bar=false"]
    cli = [sys.executable, "-m", "trainer.sft_cli", *common]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    subprocess.run([*cli, "train.strategy=torch", f"logging.output_dir={tmp_path / 'torch'}"], env=env,
                   check=True, capture_output=True, timeout=300)
    port = str(free_port())
    ranks = [subprocess.Popen([*cli, "train.strategy=deepspeed", "train.zero_stage=2",
                               f"logging.output_dir={tmp_path / 'ds'}"],
                              env={**env, "MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port, "RANK": str(r),
                                   "WORLD_SIZE": "2", "LOCAL_RANK": str(r)},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT) for r in range(2)]
    for p in ranks:
        out, _ = p.communicate(timeout=300)
        assert p.returncode == 0, out.decode()[-3000:]

    def losses(d):
        return [json.loads(x)["train/loss"] for x in (d / "metrics.jsonl").read_text().splitlines()
                if "train/loss" in x]

    assert losses(tmp_path / "ds") == pytest.approx(losses(tmp_path / "torch"), rel=1e-5)
    a = load_file(str(tmp_path / "torch" / "model" / "model.safetensors"))
    b = load_file(str(tmp_path / "ds" / "model" / "model.safetensors"))
    for k in a:
        torch.testing.assert_close(b[k], a[k], rtol=1e-3, atol=1e-4)
