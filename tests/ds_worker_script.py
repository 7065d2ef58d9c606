"""One rank of a DeepSpeed data-parallel run for tests/test_strategy_deepspeed.py, and the helpers the test
shares with it (tiny model config, data plan, loss).

Launched once per rank with MASTER_ADDR/MASTER_PORT/RANK/WORLD_SIZE/LOCAL_RANK set::

    python tests/ds_worker_script.py SPEC.json

SPEC: model_dir (initial HF model), data (``make_plan`` file), out (directory), zero_stage, max_grad_norm, lr,
save_after, timeout_s, phases (list), misuse (bool). Each phase ``{name, dtype, offload_optimizer,
offload_params, resume, save_pretrained}`` builds an engine from the initial model and trains every update of
the plan on this rank's shards, recording grad norms and lrs, then rank 0 writes ``result_<name>.pt`` with the
gathered final weights. ``resume``: ``save_state`` after update ``save_after``, then a *fresh* engine loads it
and replays the remaining updates (its weights must equal the uninterrupted run's). ``save_pretrained``: the
gathered HF directory ``out/hf_<name>``. ``misuse``: feeds the two wrong inputs ``micro_step`` must refuse on
every rank and writes ``misuse_<rank>.json``.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch

MICRO = 2  # sequences per micro-batch


# ------------------------------------------------------------------------------ shared with the test
def tiny_qwen2_config():
    from transformers import Qwen2Config

    return Qwen2Config(vocab_size=96, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                       num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64,
                       tie_word_embeddings=True)


def make_plan(updates: int = 3, seqs: int = 8, length: int = 12, vocab: int = 96, seed: int = 0,
              skips: dict | None = None) -> dict:
    """``updates`` minibatches of ``seqs`` sequences with ragged masks, and which micro-batches are skipped.

    Skips (the ratio early stop), as ``(update, rank, micro) -> kind``: ``times0`` passes ``loss * 0`` on one
    rank only; ``nograph`` passes ``torch.zeros(())`` on every rank for the same micro-batch.
    """
    g = torch.Generator().manual_seed(seed)
    batches = []
    for _ in range(updates):
        ids = torch.randint(1, vocab, (seqs, length), generator=g)
        lengths = torch.randint(length // 2, length + 1, (seqs,), generator=g)
        mask = (torch.arange(length)[None, :] < lengths[:, None]).long()
        batches.append({"input_ids": ids, "attention_mask": mask})
    if skips is None:
        skips = {(1, 1, 1): "times0", (2, 0, 0): "nograph", (2, 1, 0): "nograph"}
    return {"batches": batches, "skips": skips}


def target_count(batch: dict) -> float:
    """Number of predicted tokens (the loss normaliser of the whole minibatch)."""
    return float(batch["attention_mask"][:, 1:].sum())


def micro_batches(batch: dict, rank: int, world: int):
    """This rank's contiguous shard of the minibatch, cut into micro-batches of MICRO sequences."""
    n = batch["input_ids"].size(0) // world
    ids, mask = (batch[k][rank * n:(rank + 1) * n] for k in ("input_ids", "attention_mask"))
    return [(ids[i:i + MICRO], mask[i:i + MICRO]) for i in range(0, n, MICRO)]


def sum_nll(model, ids: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Σ over valid target tokens of −log p(token | prefix)."""
    logits = model(input_ids=ids, attention_mask=mask).logits[:, :-1].float()
    logp = torch.log_softmax(logits, dim=-1).gather(-1, ids[:, 1:, None]).squeeze(-1)
    return -(logp * mask[:, 1:]).sum()


def lr_lambda(step: int) -> float:
    """Warmup then decay: the schedule must advance once per update in both strategies."""
    return [0.5, 1.0, 0.7, 0.4, 0.2][min(step, 4)]


def micro_loss(model, plan: dict, update: int, rank: int, world: int, micro: int, ids, mask) -> torch.Tensor:
    """The loss a worker passes for one micro-batch: Σ nll / (global_count / world), or a skip."""
    kind = plan["skips"].get((update, rank, micro))
    if kind == "nograph":
        return torch.zeros(())
    loss = sum_nll(model, ids, mask) / (target_count(plan["batches"][update]) / world)
    return loss * 0 if kind == "times0" else loss


def run_updates(trainable, plan: dict, rank: int, world: int, first: int = 0, last: int = None,
                after_update=None):
    """Updates ``first..last-1`` on this rank's shards; returns (grad norms, lrs before each update)."""
    last = len(plan["batches"]) if last is None else last
    norms, lrs = [], []
    for u in range(first, last):
        lrs.append(trainable.current_lr())
        mbs = micro_batches(plan["batches"][u], rank, world)
        for m, (ids, mask) in enumerate(mbs):
            norm = trainable.micro_step(micro_loss(trainable.module, plan, u, rank, world, m, ids, mask),
                                        boundary=m == len(mbs) - 1)
        norms.append(norm)
        if after_update is not None:
            after_update(u)
    return norms, lrs


# ------------------------------------------------------------------------------ one rank
def main(spec_path: str) -> None:
    spec = json.loads(Path(spec_path).read_text())
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)
    from transformers import AutoModelForCausalLM, Qwen2ForCausalLM  # noqa: F401  (before zero.Init)

    from trainer.strategy import dist
    from trainer.strategy.deepspeed_strategy import DeepSpeedTrainable, ds_config, load_model

    rank, world = dist.init_from_env(timeout_s=spec["timeout_s"])
    out = Path(spec["out"])
    plan = torch.load(spec["data"], weights_only=False)

    def build(phase: dict) -> DeepSpeedTrainable:
        cfg = ds_config(zero_stage=spec["zero_stage"], dtype=phase.get("dtype", "float32"),
                        max_grad_norm=spec["max_grad_norm"], offload_optimizer=phase.get("offload_optimizer", False),
                        offload_params=phase.get("offload_params", False), micro_batch_size=MICRO,
                        grad_accum_steps=len(micro_batches(plan["batches"][0], rank, world)))
        model = load_model(lambda: AutoModelForCausalLM.from_pretrained(spec["model_dir"], dtype=torch.float32),
                           cfg)
        return DeepSpeedTrainable(model, lr=spec["lr"], weight_decay=0.1, betas=(0.9, 0.95),
                                  max_grad_norm=spec["max_grad_norm"], lr_lambda=lr_lambda, config=cfg)

    def gathered(trainable) -> dict | None:
        full = {n: t.detach().clone().float() for n, t in trainable.named_full_weights()}
        return full if rank == 0 else None

    for phase in spec["phases"]:
        name, save_after = phase["name"], spec["save_after"]
        state_dir = out / f"engine_state_{name}"
        trainable = build(phase)
        save = (lambda u: trainable.save_state(state_dir) if u == save_after else None) if phase.get("resume") \
            else None
        norms, lrs = run_updates(trainable, plan, rank, world, after_update=save)
        result = {"final": gathered(trainable), "norms": norms, "lrs": lrs}
        if phase.get("save_pretrained"):
            trainable.save_pretrained(out / f"hf_{name}")
        del trainable
        if phase.get("resume"):
            resumed = build(phase)
            resumed.load_state(state_dir)
            result["resumed_lr"] = resumed.current_lr()
            result["resumed_norms"], _ = run_updates(resumed, plan, rank, world, first=save_after + 1)
            result["resumed_final"] = gathered(resumed)
            del resumed
        if rank == 0:
            torch.save(result, out / f"result_{name}.pt")

    if spec.get("misuse"):
        seen = {}
        trainable = build({"name": "misuse"})
        ids, mask = micro_batches(plan["batches"][0], rank, world)[0]
        try:  # a forward on the bare model skips the engine's hooks
            trainable.micro_step(sum_nll(trainable.model, ids, mask), boundary=False)
        except RuntimeError as e:
            seen["bare_forward"] = str(e)
        try:  # rank 1 skips with a graph-less zero, rank 0 runs a real backward
            loss = sum_nll(trainable.module, ids, mask) if rank == 0 else torch.zeros(())
            trainable.micro_step(loss, boundary=True)
        except ValueError as e:
            seen["mixed_graphless"] = str(e)
        (out / f"misuse_{rank}.json").write_text(json.dumps(seen))

    dist.barrier()
    dist.destroy()


if __name__ == "__main__":
    main(sys.argv[1])
