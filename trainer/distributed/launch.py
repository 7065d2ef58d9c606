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
from typing import Optional

from mathrl_core.rollout.registry import get_backend
from trainer import checkpoint
from trainer.async_rl.errors import RolloutPipelineError
from trainer.build import make_loop, prepare_driver
from trainer.config import RLConfig
from trainer.config_tree import ConfigError
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
    if not get_backend(cfg.rollout.backend).remote_capable:
        raise ConfigError(f"ray.enabled needs a rollout backend that runs in its own actor (rollout.backend=vllm); "
                          f"{cfg.rollout.backend!r} generates with the policy module in the trainer's process")
    if r.actor_ranks > 1 and cfg.train.strategy != "deepspeed":
        raise ConfigError("ray.actor_ranks > 1 needs train.strategy=deepspeed")
    per_rank = cfg.samples_per_step / r.actor_ranks
    if cfg.train.minibatch_size % (cfg.train.micro_batch_size * r.actor_ranks) or per_rank != int(per_rank):
        raise ConfigError(f"train.minibatch_size ({cfg.train.minibatch_size}) must be a multiple of "
                          f"train.micro_batch_size x ray.actor_ranks ({cfg.train.micro_batch_size} x {r.actor_ranks})")
    if (r.colocate_actor_ref and cfg.uses_reference and not cfg.reference_is_policy_base
            and r.ref_ranks != r.actor_ranks):
        raise ConfigError("ray.colocate_actor_ref needs ray.ref_ranks == ray.actor_ranks")
    if r.colocate_all:
        if cfg.rollout.num_engines > r.actor_ranks or cfg.rollout.tensor_parallel_size != 1:
            raise ConfigError("ray.colocate_all puts one vLLM engine on a policy rank's bundle: it needs "
                              "rollout.num_engines <= ray.actor_ranks and rollout.tensor_parallel_size == 1")
        if cfg.uses_critic and r.critic_ranks > r.actor_ranks:
            raise ConfigError("ray.colocate_all needs ray.critic_ranks <= ray.actor_ranks")
    try:
        ray_sync_backend(cfg)
    except ValueError as e:
        raise ConfigError(f"rollout.sync_backend: {e}") from None
    if cfg.is_async and cfg.rollout.partial_rollout:
        raise ConfigError("rollout.partial_rollout is implemented for the local placement (the rollout process); "
                          "on Ray the engines finish each generation before they take new weights")
    if cfg.is_async and ray_sync_backend(cfg) == "nccl":
        raise ConfigError("rollout.max_staleness >= 1 on Ray pushes weights through the object store "
                          "(rollout.sync_backend=cpu_reload); an NCCL broadcast would wait for the engines' generation")


def ray_sync_backend(cfg: RLConfig) -> str:
    """Weight-sync route between Ray actors (``RLConfig.sync_backend`` for engines in other processes): ``nccl``
    for GPU engines on their own devices (rank 0 broadcasts), ``cpu_reload`` on CPU and for colocated engines
    (rank 0's weights through Ray's object store)."""
    return cfg.sync_backend(on_cpu=cfg.ray.actor_num_gpus == 0, same_process=False)


def build_distributed_run(cfg: RLConfig, resume: bool = False):
    """The driver's side (``trainer.build.prepare_driver``); the roles as Ray groups whose ranks build their
    workers with the role factory; an ``RLLoop`` over them (``trainer.build.make_loop``)."""
    validate_ray(cfg)
    d = prepare_driver(cfg, resume)
    init_ray(cfg)
    r, cfg_dict, timeout = cfg.ray, asdict(cfg), cfg.ray.call_timeout_s
    gpu = r.actor_num_gpus > 0
    ref_group = cfg.uses_reference and not cfg.reference_is_policy_base  # LoRA: the policy ranks serve it

    # Which roles share the policy's bundles, and how each bundle is split among them.
    shared = ["policy"] + (["reference"] if ref_group and (r.colocate_actor_ref or r.colocate_all) else [])
    if r.colocate_all:
        shared += (["critic"] if cfg.uses_critic else []) + ["rollout"]
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

    def training_group(role: str, ranks: int, total_updates: int) -> TrainingGroup:
        cpus, gpus, pl = res(role)
        return TrainingGroup(role, ranks, cfg_dict=cfg_dict, model_path=d.model_path, total_updates=total_updates,
                             num_cpus=cpus, num_gpus=gpus, placement=pl, timeout_s=timeout)

    groups: dict = {}
    updates = d.plan.total_optimizer_updates
    try:
        groups["policy"] = training_group("policy", r.actor_ranks, updates)
        if ref_group:
            groups["reference"] = training_group("reference", r.ref_ranks, 0)
        if cfg.uses_critic:
            groups["critic"] = training_group("critic", r.critic_ranks, updates)
        cpus, gpus, pl = res("rollout")
        groups["rollout"] = RolloutGroup(cfg.rollout.num_engines, cfg_dict=cfg_dict, model_path=d.model_path,
                                         sync_backend=ray_sync_backend(cfg),
                                         workers_per_engine=cfg.rollout.tensor_parallel_size, num_cpus=cpus,
                                         num_gpus=gpus, placement=pl, timeout_s=timeout, env=ACTOR_ENV,
                                         versioned=cfg.is_async)
    except BaseException:
        shutdown_groups(groups)
        raise
    (d.out_dir / "ray_workers.json").write_text(json.dumps(
        {role: g.pids for role, g in groups.items()}, indent=2))  # for operators (and the fault test)
    ref = groups.get("reference")
    if cfg.reference_is_policy_base:
        ref = groups["policy"].serving("reference")
    loop = make_loop(d, rollout=groups["rollout"], policy=groups["policy"], ref=ref, critic=groups.get("critic"))
    loop.groups = groups
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


def stopped_message(e: BaseException, output_dir) -> str:
    """What ``rl-train`` prints when a worker, engine or the asynchronous rollout fails mid-run."""
    ckpt = checkpoint.latest(output_dir)
    return (f"rl-train: stopped: {e}\nrl-train: the last complete checkpoint is "
            f"{ckpt or 'none (no step finished saving)'}; continue with --resume")


def run_distributed(cfg: RLConfig, resume: bool = False) -> int:
    """``rl-train`` with ``ray.enabled``: 0 on success, 1 (with a clear message) when a worker fails."""
    import ray

    loop: Optional[object] = None
    try:
        loop = build_distributed_run(cfg, resume)
        loop.run()
        return 0
    except (WorkerFailure, RolloutPipelineError) as e:
        print(stopped_message(e, cfg.logging.output_dir), file=sys.stderr)
        return 1
    finally:
        if loop is not None:
            loop.reward.close()
            if loop.tracker:
                loop.tracker.close()
            shutdown_groups(getattr(loop, "groups", {}))
        if ray.is_initialized():
            ray.shutdown()
