"""What runs inside each Ray actor: one data-parallel rank of a training role, or one vLLM engine.

These are plain classes; ``trainer.distributed.groups`` wraps them with ``ray.remote`` and the resources of
their role. A training rank builds exactly the worker the single-process run uses (``PolicyWorker``,
``CriticWorker``, ``ReferenceWorker``), over a DeepSpeed engine joined to its role's process group.
"""
from __future__ import annotations

import os
import socket
from typing import Any, Optional


def node_ip_and_free_port() -> tuple[str, int]:
    """This node's IP (as Ray sees it) and a free TCP port on it: the rendezvous of a process group."""
    import ray

    ip = ray.util.get_node_ip_address()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("", 0))
        return ip, s.getsockname()[1]


class TrainingRank:
    """One rank of the policy, critic or reference group."""

    def __init__(self, role: str, rank: int, world_size: int):
        self.role, self.rank, self.world_size = role, rank, world_size
        self.worker = None

    def address(self) -> tuple[str, int]:
        return node_ip_and_free_port()

    def pid(self) -> int:
        return os.getpid()

    def setup(self, cfg_dict: dict, model_path: str, total_updates: int, master_addr: str, master_port: int) -> bool:
        """Join the role's process group and build the model, its optimizer and the worker (collective)."""
        os.environ.update(MASTER_ADDR=master_addr, MASTER_PORT=str(master_port), RANK=str(self.rank),
                          WORLD_SIZE=str(self.world_size), LOCAL_RANK="0")
        import torch

        from trainer.build import critic_loader, make_trainable, policy_loader, resolve_device, seed_everything
        from trainer.config import RLConfig
        from trainer.config_tree import load_config
        from trainer.models.loading import load_reference
        from trainer.strategy import dist
        from trainer.workers.critic import CriticWorker
        from trainer.workers.policy import PolicyWorker, ReferenceWorker

        cfg = load_config(RLConfig, None, base=cfg_dict)
        seed_everything(cfg.train.seed)
        device = resolve_device(cfg.train.device)
        if device.type == "cuda":
            torch.cuda.set_device(0)  # Ray sets CUDA_VISIBLE_DEVICES to this actor's GPU
        if self.role == "reference":
            # Inference only: every rank holds a frozen copy and scores its shard (no process group needed).
            self.worker = ReferenceWorker(cfg, load_reference(model_path, dtype=cfg.model.dtype, device=device,
                                                              trust_remote_code=cfg.model.trust_remote_code))
            return True
        if cfg.train.strategy == "torch" and self.world_size > 1:
            raise ValueError(f"{self.role}: {self.world_size} ranks need train.strategy=deepspeed")
        if self.role == "policy":
            trainable = make_trainable(cfg, lambda: policy_loader(cfg, model_path), cfg.train.actor_lr,
                                       total_updates, world_size=self.world_size)
            self.worker = PolicyWorker(cfg, trainable, world_size=self.world_size, all_reduce_sum=dist.all_reduce_sum)
        elif self.role == "critic":
            trainable = make_trainable(cfg, lambda: critic_loader(cfg, model_path), cfg.train.critic_lr,
                                       total_updates, world_size=self.world_size)
            self.worker = CriticWorker(cfg, trainable, world_size=self.world_size, all_reduce_sum=dist.all_reduce_sum)
        else:
            raise ValueError(f"unknown role {self.role!r}")
        return True

    def call(self, method: str, *args, **kwargs) -> Any:
        return getattr(self.worker, method)(*args, **kwargs)

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
            import ray

            from trainer.rollout.weight_sync import EngineClient, FanOutClient, NcclWeightSender

            client = FanOutClient([EngineClient(e, get=ray.get) for e in engines], workers_per_engine)
            addr, port = node_ip_and_free_port()
            self._sender = NcclWeightSender(client, master_address=addr, master_port=port,
                                            num_engine_workers=len(engines) * workers_per_engine)
        return True

    def broadcast_weights(self) -> float:
        """One full weight sync over NCCL (collective over the policy ranks under ZeRO-3)."""
        import torch

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
        from trainer.strategy import dist

        if dist.is_initialized():
            dist.destroy()
        return True


class RolloutEngine:
    """One vLLM engine (``trainer.rollout.vllm_engine.VLLMRollout``) in its own Ray actor."""

    def __init__(self, model_path: str, engine_kwargs: dict, env: Optional[dict] = None):
        os.environ.update(env or {})
        from trainer.rollout.vllm_engine import VLLMRollout

        self.engine = VLLMRollout(model_path, **engine_kwargs)

    def pid(self) -> int:
        return os.getpid()

    def generate(self, prompts, sampling):
        return self.engine.generate(prompts, sampling)

    def update_weights(self, weights) -> bool:
        self.engine.update_weights(weights)
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
