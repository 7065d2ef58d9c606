"""The plan of a run, computed once from the config and the data size: batch arithmetic, roles, resources.

``--dry-run`` prints it, the local builder (``trainer.build``) and the Ray launcher (``trainer.distributed.launch``)
read it; nothing re-derives these numbers.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional

from trainer.config import RLConfig


@dataclass
class RunPlan:
    records: int
    prompts_per_step: int
    samples_per_prompt: int
    samples_per_step: int
    minibatch_size: int
    micro_batch_size: int
    grad_accumulation: int
    ppo_epochs: int
    data_parallel_ranks: int
    optimizer_updates_per_step: int
    steps_per_epoch: int
    total_steps: int
    total_optimizer_updates: int
    roles: list[str]
    resources: Optional[dict] = field(default=None)  # Ray placement only

    def as_dict(self) -> dict:
        d = asdict(self)
        if d["resources"] is None:
            d.pop("resources")
        return d


def make_plan(cfg: RLConfig, num_records: int) -> RunPlan:
    r, t = cfg.rollout, cfg.train
    ranks = cfg.ray.actor_ranks if cfg.ray.enabled else 1
    steps_per_epoch = max(1, num_records // r.prompts_per_step)
    total_steps = t.total_steps or t.episodes * steps_per_epoch
    updates_per_step = t.ppo_epochs * (cfg.samples_per_step // t.minibatch_size)
    roles = (["policy", "rollout", "reward"] + (["reference"] if cfg.uses_reference else [])
             + (["critic"] if cfg.uses_critic else []))
    return RunPlan(records=num_records, prompts_per_step=r.prompts_per_step, samples_per_prompt=r.n,
                   samples_per_step=cfg.samples_per_step, minibatch_size=t.minibatch_size,
                   micro_batch_size=t.micro_batch_size,
                   grad_accumulation=t.minibatch_size // (t.micro_batch_size * ranks), ppo_epochs=t.ppo_epochs,
                   data_parallel_ranks=ranks, optimizer_updates_per_step=updates_per_step,
                   steps_per_epoch=steps_per_epoch, total_steps=total_steps,
                   total_optimizer_updates=total_steps * updates_per_step, roles=roles,
                   resources=ray_resources(cfg) if cfg.ray.enabled else None)


def ray_resources(cfg: RLConfig) -> dict:
    """Ranks, engines and GPUs of each role on a Ray cluster (what the launcher asks Ray for)."""
    r, gpu = cfg.ray, cfg.ray.actor_num_gpus
    res = {"policy": {"ranks": r.actor_ranks, "gpus_per_rank": gpu, "cpus_per_rank": r.cpus_per_rank},
           "rollout": {"engines": cfg.rollout.num_engines, "tensor_parallel_size": cfg.rollout.tensor_parallel_size,
                       "gpus_per_engine": cfg.rollout.tensor_parallel_size if gpu else 0}}
    if cfg.uses_reference:
        if cfg.reference_is_policy_base:
            res["reference"] = {"ranks": 0, "colocated_with_policy": True, "is_policy_base": True}
        else:
            res["reference"] = {"ranks": r.ref_ranks, "colocated_with_policy": r.colocate_actor_ref or r.colocate_all}
    if cfg.uses_critic:
        res["critic"] = {"ranks": r.critic_ranks, "gpus_per_rank": gpu, "colocated_with_policy": r.colocate_all}
    own = [k for k, v in res.items() if not v.get("colocated_with_policy")]
    res["total_gpus"] = (r.actor_ranks * gpu + (r.critic_ranks * gpu if "critic" in own else 0)
                         + (r.ref_ranks * gpu if "reference" in own else 0)
                         + (0 if r.colocate_all else cfg.rollout.num_engines * res["rollout"]["gpus_per_engine"]))
    return res
