"""Ray placement: build the role groups on a cluster and run the same ``RLLoop``.

Roles and their resources (``ray.*`` in the config):
    policy     ``ray.actor_ranks`` DeepSpeed ranks, each ``ray.cpus_per_rank`` CPUs and ``ray.actor_num_gpus`` GPUs
    reference  ``ray.ref_ranks`` ranks (inference only); with ``ray.colocate_actor_ref`` on the policy's bundles
    critic     ``ray.critic_ranks`` DeepSpeed ranks (PPO with GAE only)
    rollout    ``rollout.num_engines`` vLLM engines of ``rollout.tensor_parallel_size`` GPUs each
With ``ray.colocate_all`` every role shares the policy's bundles (vLLM sleeps while the trainer works, where
vLLM supports sleep mode). Roles sharing a bundle split its GPU and CPU evenly.

Connect to a running cluster with ``ray.address`` (or ``RAY_ADDRESS``; ``ray start --head`` on the first node,
``ray start --address=<head>:6379`` on the others, then submit the recipe); without one a local cluster is
started. Checkpoints are written by the ranks themselves, so ``logging.output_dir`` must be on a file system
every node shares.
"""
from __future__ import annotations

import json
import logging
import os
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Optional

from trainer import checkpoint
from trainer.config import RLConfig
from trainer.config_tree import ConfigError, public_dict
from trainer.distributed.groups import RolloutGroup, TrainingGroup, WorkerFailure

logger = logging.getLogger(__name__)

ACTOR_ENV = {"OMP_NUM_THREADS": "1", "OMP_WAIT_POLICY": "PASSIVE", "TOKENIZERS_PARALLELISM": "false"}


def init_ray(cfg: RLConfig) -> None:
    import ray

    if ray.is_initialized():
        return
    address = cfg.ray.address or os.environ.get("RAY_ADDRESS")
    kwargs = dict(include_dashboard=False, log_to_driver=True,
                  runtime_env={"env_vars": {k: os.environ.get(k, v) for k, v in ACTOR_ENV.items()}})
    if address:
        ray.init(address=address, **kwargs)
    else:
        tmp = os.environ.get("RAY_TMPDIR")
        ray.init(num_cpus=cfg.ray.num_cpus, _temp_dir=tmp, **kwargs)


def _placement(bundles: list[dict], name: str, timeout_s: float):
    """A placement group of ``bundles`` and one scheduling strategy per bundle; a clear error when the cluster
    cannot host it (instead of waiting forever)."""
    import ray
    from ray.util.placement_group import placement_group
    from ray.util.scheduling_strategies import PlacementGroupSchedulingStrategy

    pg = placement_group(bundles, strategy="PACK", name=name)
    try:
        ray.get(pg.ready(), timeout=timeout_s)
    except ray.exceptions.GetTimeoutError:
        raise WorkerFailure(f"placement group {name} ({bundles}) could not be scheduled within {timeout_s:.0f}s: "
                            f"the cluster has {ray.cluster_resources()}") from None
    return [PlacementGroupSchedulingStrategy(placement_group=pg, placement_group_bundle_index=i)
            for i in range(len(bundles))]


def validate_ray(cfg: RLConfig) -> None:
    r = cfg.ray
    if cfg.rollout.backend != "vllm":
        raise ConfigError("ray.enabled needs rollout.backend=vllm (HF generate runs only in the local placement)")
    if r.actor_ranks > 1 and cfg.train.strategy != "deepspeed":
        raise ConfigError("ray.actor_ranks > 1 needs train.strategy=deepspeed")
    per_rank = cfg.samples_per_step / r.actor_ranks
    if cfg.train.minibatch_size % (cfg.train.micro_batch_size * r.actor_ranks) or per_rank != int(per_rank):
        raise ConfigError(f"train.minibatch_size ({cfg.train.minibatch_size}) must be a multiple of "
                          f"train.micro_batch_size x ray.actor_ranks ({cfg.train.micro_batch_size} x {r.actor_ranks})")
    if r.colocate_actor_ref and cfg.algorithm.kl_coef > 0 and r.ref_ranks != r.actor_ranks:
        raise ConfigError("ray.colocate_actor_ref needs ray.ref_ranks == ray.actor_ranks")
    if r.colocate_all:
        if cfg.rollout.num_engines > r.actor_ranks or cfg.rollout.tensor_parallel_size != 1:
            raise ConfigError("ray.colocate_all puts one vLLM engine on a policy rank's bundle: it needs "
                              "rollout.num_engines <= ray.actor_ranks and rollout.tensor_parallel_size == 1")
        if cfg.uses_critic and r.critic_ranks > r.actor_ranks:
            raise ConfigError("ray.colocate_all needs ray.critic_ranks <= ray.actor_ranks")


def ray_sync_backend(cfg: RLConfig) -> str:
    """Weight-sync route between Ray actors: ``nccl`` for GPU engines on their own devices (rank 0 broadcasts),
    ``cpu_reload`` on CPU and for colocated engines (rank 0's weights through Ray's object store)."""
    want = cfg.rollout.sync_backend
    if want == "ipc":
        raise ConfigError("rollout.sync_backend=ipc needs the engine in the trainer's process (local placement); "
                          "between Ray actors use nccl or cpu_reload")
    if want != "auto":
        return want
    return "nccl" if cfg.ray.actor_num_gpus > 0 and not cfg.ray.colocate_all else "cpu_reload"


def build_distributed_run(cfg: RLConfig, resume: bool = False):
    """The driver's side: data, reward, tracker; the roles as Ray groups; an ``RLLoop`` over them."""
    from trainer.build import build_eval_fn, filter_long_prompts, load_train_records, plan, resolve_model_path, \
        seed_everything
    from trainer.data.datasets import PromptDataset
    from trainer.models.loading import load_tokenizer
    from trainer.reward import RewardScorer
    from trainer.rl_loop import RLLoop
    from trainer.tracking import Tracker

    validate_ray(cfg)
    seed_everything(cfg.train.seed)
    r, out_dir = cfg.ray, Path(cfg.logging.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model_path = resolve_model_path(cfg)
    tokenizer = load_tokenizer(cfg.model.tokenizer or model_path, trust_remote_code=cfg.model.trust_remote_code)
    records = filter_long_prompts(load_train_records(cfg), tokenizer, cfg)
    data = PromptDataset(records, batch_size=cfg.rollout.prompts_per_step, seed=cfg.train.seed)
    p = plan(cfg, len(records))
    init_ray(cfg)
    cfg_dict = asdict(cfg)
    timeout = r.call_timeout_s
    gpu = r.actor_num_gpus > 0
    use_ref, use_critic = cfg.algorithm.kl_coef > 0, cfg.uses_critic

    # Which roles share the policy's bundles, and how each bundle is split among them.
    shared = ["policy"] + (["reference"] if use_ref and (r.colocate_actor_ref or r.colocate_all) else [])
    if r.colocate_all:
        shared += (["critic"] if use_critic else []) + ["rollout"]
    share = 1.0 / len(shared)
    train_bundle = {"CPU": r.cpus_per_rank, **({"GPU": r.actor_num_gpus} if gpu else {})}
    train_pg = _placement([train_bundle] * r.actor_ranks, f"{cfg.name}-train", timeout)

    def res(role):  # (num_cpus, num_gpus, placement) of one rank/engine of ``role``
        if role in shared:
            return r.cpus_per_rank * share, r.actor_num_gpus * share if gpu else 0, train_pg
        ranks = {"reference": r.ref_ranks, "critic": r.critic_ranks, "rollout": cfg.rollout.num_engines}[role]
        gpus = (cfg.rollout.tensor_parallel_size if role == "rollout" else r.actor_num_gpus) if gpu else 0
        bundle = {"CPU": r.cpus_per_rank, **({"GPU": gpus} if gpus else {})}
        return r.cpus_per_rank, gpus, _placement([bundle] * ranks, f"{cfg.name}-{role}", timeout)

    groups = {}
    try:
        cpus, gpus, pl = res("policy")
        groups["policy"] = TrainingGroup("policy", r.actor_ranks, cfg_dict=cfg_dict, model_path=model_path,
                                         total_updates=p["total_optimizer_updates"], num_cpus=cpus, num_gpus=gpus,
                                         placement=pl, timeout_s=timeout)
        if use_ref:
            cpus, gpus, pl = res("reference")
            groups["reference"] = TrainingGroup("reference", r.ref_ranks, cfg_dict=cfg_dict, model_path=model_path,
                                                total_updates=0, num_cpus=cpus, num_gpus=gpus, placement=pl,
                                                timeout_s=timeout)
        if use_critic:
            cpus, gpus, pl = res("critic")
            groups["critic"] = TrainingGroup("critic", r.critic_ranks, cfg_dict=cfg_dict, model_path=model_path,
                                             total_updates=p["total_optimizer_updates"], num_cpus=cpus,
                                             num_gpus=gpus, placement=pl, timeout_s=timeout)
        cpus, gpus, pl = res("rollout")
        ro = cfg.rollout
        engine_kwargs = dict(tensor_parallel_size=ro.tensor_parallel_size, dtype=cfg.model.dtype,
                             gpu_memory_utilization=ro.gpu_memory_utilization, enforce_eager=ro.enforce_eager,
                             enable_sleep_mode=ro.enable_sleep, seed=cfg.train.seed,
                             sync_backend=ray_sync_backend(cfg), colocated=r.colocate_all,
                             kv_cache_memory_bytes=ro.kv_cache_memory_bytes,
                             trust_remote_code=cfg.model.trust_remote_code,
                             max_model_len=cfg.data.max_prompt_tokens + ro.max_new_tokens)
        groups["rollout"] = RolloutGroup(ro.num_engines, model_path=model_path, engine_kwargs=engine_kwargs,
                                         num_cpus=cpus, num_gpus=gpus, placement=pl, timeout_s=timeout,
                                         env=ACTOR_ENV)
    except BaseException:
        shutdown_groups(groups)
        raise
    (out_dir / "ray_workers.json").write_text(json.dumps(
        {role: g.pids for role, g in groups.items()}, indent=2))  # for operators (and the fault test)

    reward = RewardScorer(cfg.reward)
    start_step = 0
    ckpt = checkpoint.latest(out_dir) if resume else None
    if ckpt is not None:
        start_step = int(checkpoint.load_state(ckpt)["step"])
    tracker = Tracker(out_dir, p["total_steps"], tensorboard=cfg.logging.tensorboard, wandb=cfg.logging.wandb,
                      wandb_project=cfg.logging.wandb_project, run_name=cfg.name, config=public_dict(cfg),
                      progress_bar=cfg.logging.progress_bar, resume_step=start_step)
    loop = RLLoop(cfg, tokenizer=tokenizer, data=data, rollout=groups["rollout"], reward=reward,
                  policy=groups["policy"], ref=groups.get("reference"), critic=groups.get("critic"),
                  tracker=tracker, eval_fn=build_eval_fn(cfg, tokenizer, groups["rollout"], out_dir, reward.url),
                  rollout_shares_policy=False, total_steps=p["total_steps"])
    loop.groups = groups
    if ckpt is not None:
        loop.restore(ckpt)
        logger.info("resumed from %s at step %d", ckpt, loop.step_num)
    return loop


def shutdown_groups(groups: dict) -> None:
    for name in ("rollout", "critic", "reference", "policy"):
        g = groups.get(name)
        if g is None:
            continue
        try:
            (g.close if name == "rollout" else g.shutdown)()
        except Exception as e:  # a dead actor: nothing to release
            logger.debug("shutdown %s: %s", name, e)


def run_distributed(cfg: RLConfig, resume: bool = False) -> int:
    """``rl-train`` with ``ray.enabled``: 0 on success, 1 (with a clear message) when a worker fails."""
    import ray

    loop: Optional[object] = None
    try:
        loop = build_distributed_run(cfg, resume)
        loop.run()
        return 0
    except WorkerFailure as e:
        ckpt = checkpoint.latest(cfg.logging.output_dir)
        print(f"rl-train: stopped: {e}\nrl-train: the last complete checkpoint is "
              f"{ckpt or 'none (no step finished saving)'}; continue with --resume", file=sys.stderr)
        return 1
    finally:
        if loop is not None:
            loop.reward.close()
            if loop.tracker:
                loop.tracker.close()
            shutdown_groups(getattr(loop, "groups", {}))
        if ray.is_initialized():
            ray.shutdown()
