"""What runs inside each Ray actor: one data-parallel rank of a training role, or one vLLM engine.

These are plain classes; ``trainer.distributed.groups`` wraps them with ``ray.remote`` and the resources of
their role. A training rank builds exactly the worker the single-process run uses (``PolicyWorker``,
``CriticWorker``, ``ReferenceWorker``), over a DeepSpeed engine joined to its role's process group.
"""
from __future__ import annotations

import dataclasses
import os
import socket
from typing import Any, Optional

import torch

from mathrl_core.rollout.weight_sync import EngineClient, FanOutClient, NcclWeightSender
from trainer.config import RLConfig
from trainer.config_tree import load_config
from trainer.roles import Placement, build_worker, seed_everything
from trainer.strategy import dist


def node_ip_and_free_port() -> tuple[str, int]:
    """This node's IP (as Ray sees it) and a free TCP port on it: the rendezvous of a process group."""
    import ray

    ip = ray.util.get_node_ip_address()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return ip, s.getsockname()[1]


class TrainingRank:
    """One rank of the policy, critic or reference group. A LoRA policy rank with a KL term also serves the
    reference role itself (``cfg.reference_is_policy_base``: its frozen base with the adapters disabled), so
    no reference group is started."""

    def __init__(self, role: str, rank: int, world_size: int):
        self.role, self.rank, self.world_size = role, rank, world_size
        self.workers: dict[str, Any] = {}

    @property
    def worker(self):
        return self.workers[self.role]

    def address(self) -> tuple[str, int]:
        return node_ip_and_free_port()

    def pid(self) -> int:
        return os.getpid()

    def setup(self, cfg_dict: dict, model_path: str, total_updates: int, master_addr: str, master_port: int) -> bool:
        """Join the role's process group and build the worker(s) through the role factory (collective)."""
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        cfg = load_config(RLConfig, None, base=cfg_dict)
        seed_everything(cfg.train.seed)
        here = Placement.ray_rank(self.rank, self.world_size, cfg.train.device)
        if here.device.type == "cuda":
            torch.cuda.set_device(here.device)
        if cfg.train.strategy == "torch" and self.world_size > 1 and self.role != "reference":
            raise ValueError(f"{self.role}: {self.world_size} ranks need train.strategy=deepspeed")
        # a reference rank is inference only: every rank holds a frozen copy and scores its shard
        self.workers[self.role] = build_worker(cfg, self.role, here, model_path=model_path,
                                               total_updates=total_updates)
        if self.role == "policy" and cfg.reference_is_policy_base:
            self.workers["reference"] = build_worker(cfg, "reference", here, model_path=model_path,
                                                     policy=self.worker)
        return True

    def call(self, method: str, *args, role: Optional[str] = None, **kwargs) -> Any:
        return getattr(self.workers[role or self.role], method)(*args, **kwargs)

    def weights_for_sync(self) -> Optional[dict]:
        """Full HF-named weights on rank 0, None elsewhere (every rank takes part in the ZeRO-3 gather)."""
        weights = self.worker.named_weights()
        return weights if self.rank == 0 else None

    # -- NCCL weight sync to vLLM engines on other GPUs (rank 0 broadcasts, one parameter at a time) -------
    def init_weight_sync(self, engines: list, workers_per_engine: int) -> bool:
        """Rank 0 opens the NCCL group ``[policy rank 0] + every engine worker`` (vLLM's weight-transfer
        engine, driven through the engines' ``transfer_*`` methods); the other ranks only take part in the
        ZeRO-3 gathers during a sync."""
        self._sender = None
        if self.rank == 0:
            import ray  # only inside a Ray actor

            client = FanOutClient([EngineClient(e, get=ray.get) for e in engines], workers_per_engine)
            addr, port = node_ip_and_free_port()
            self._sender = NcclWeightSender(client, master_address=addr, master_port=port,
                                            num_engine_workers=len(engines) * workers_per_engine)
        return True

    def broadcast_weights(self) -> float:
        """One full weight sync over NCCL (collective over the policy ranks under ZeRO-3)."""
        model = getattr(self.worker.trainable, "model", self.worker.model)
        state = model.state_dict(keep_vars=True)
        metadata = [(n, t.dtype, tuple(getattr(t, "ds_shape", t.shape))) for n, t in state.items()]
        full = getattr(self.worker.trainable, "named_full_weights", None)

        def iter_fn():
            if full is not None:
                yield from full(include_buffers=True)
            else:
                yield from ((n, t.detach()) for n, t in state.items())

        if self._sender is not None:
            return self._sender.send(metadata=metadata, iter_fn=iter_fn)
        with torch.no_grad():
            for _ in iter_fn():  # join the gathers; rank 0 sends
                pass
        return 0.0

    def shutdown(self) -> bool:
        if dist.is_initialized():
            dist.destroy()
        return True


class RolloutEngine:
    """One rollout engine (the role factory's ``rollout`` for a Ray placement: vLLM) in its own Ray actor."""

    def __init__(self, cfg_dict: dict, model_path: str, index: int, num_engines: int, env: Optional[dict] = None):
        os.environ.update(env or {})
        cfg = load_config(RLConfig, None, base=cfg_dict)
        here = Placement.ray_rank(index, num_engines, cfg.train.device)
        self.engine = build_worker(cfg, "rollout", here, model_path=model_path)
        self.version = 0  # the policy version of the engine's weights (asynchronous RL)

    def pid(self) -> int:
        return os.getpid()

    def generate(self, prompts, sampling, seeds=None):
        return self.engine.generate(prompts, sampling, seeds=seeds)

    def generate_versioned(self, prompts, sampling, seeds=None):
        """``generate`` with every token tagged by the version of the weights that generated it."""
        out = self.engine.generate(prompts, sampling, seeds=seeds)
        return dataclasses.replace(out, response_versions=[[self.version] * len(r) for r in out.response_token_ids])

    def update_weights(self, weights, version: Optional[int] = None) -> bool:
        self.engine.update_weights(weights)
        if version is not None:
            self.version = version
        return True

    def sleep(self, level: int = 1) -> bool:
        self.engine.sleep(level)
        return True

    def wake_up(self) -> bool:
        self.engine.wake_up()
        return True

    def close(self) -> bool:
        self.engine.close()
        return True

    # vLLM's weight-transfer control plane, called by the policy's rank 0 (``weight_sync.EngineClient``)
    def transfer_init(self, init_info: dict) -> None:
        self.engine.transfer_init(init_info)

    def transfer_start(self) -> None:
        self.engine.transfer_start()

    def transfer_chunk(self, update_info) -> None:
        self.engine.transfer_chunk(update_info)

    def transfer_finish(self) -> None:
        self.engine.transfer_finish()
