"""Ray actor groups with the same methods as the local workers, so ``RLLoop`` drives either.

``TrainingGroup`` shards each experience batch over its data-parallel ranks and gathers the results;
``RolloutGroup`` splits prompts over vLLM engines. Every remote call is a bounded wait: a rank that dies
raises ``WorkerFailure`` at once (``ray.wait`` returns its error without waiting for the others), and a call
that does not finish within ``ray.call_timeout_s`` raises it too -- the run never hangs.
"""
from __future__ import annotations

import copy
import logging
import time
from typing import Any, Optional, Sequence

import torch

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from trainer.experience import Experience
from trainer.worker_metrics import combine_ranks

logger = logging.getLogger(__name__)


class WorkerFailure(RuntimeError):
    """A Ray actor died, raised, or did not answer in time."""


def wait_all(refs: Sequence, what: str, timeout_s: float) -> list:
    """``ray.get`` of all ``refs``, failing fast on the first error and after ``timeout_s`` in total."""
    import ray

    pending = list(refs)
    deadline = time.monotonic() + timeout_s
    while pending:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise WorkerFailure(f"{what}: no answer from {len(pending)} of {len(refs)} actors within "
                                f"{timeout_s:.0f}s (ray.call_timeout_s)")
        ready, pending = ray.wait(pending, num_returns=1, timeout=remaining)
        for ref in ready:
            try:
                ray.get(ref)
            except ray.exceptions.RayActorError as e:
                raise WorkerFailure(f"{what}: a worker died ({type(e).__name__}): {str(e).splitlines()[0]}") from e
            except ray.exceptions.RayTaskError as e:
                raise WorkerFailure(f"{what}: a worker raised: {e}") from e
    return ray.get(list(refs))


class TrainingGroup:
    """``num_ranks`` ``TrainingRank`` actors of one role (policy, critic or reference)."""

    def __init__(self, role: str, num_ranks: int, *, cfg_dict: dict, model_path: str, total_updates: int,
                 num_cpus: float, num_gpus: float, placement: Optional[list] = None, timeout_s: float = 1800.0,
                 runtime_env: Optional[dict] = None):
        import ray

        from trainer.distributed.actors import TrainingRank

        self.role, self.timeout_s = role, timeout_s
        self.serves: Optional[str] = None  # None: the group's own role
        cls = ray.remote(TrainingRank)
        self.actors = []
        for rank in range(num_ranks):
            opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": 0,
                                    "name": None, "runtime_env": runtime_env or {}}
            if placement is not None:
                opts["scheduling_strategy"] = placement[rank]
            self.actors.append(cls.options(**opts).remote(role, rank, num_ranks))
        addr, port = self._get([self.actors[0].address.remote()], "address")[0]
        self._get([a.setup.remote(cfg_dict, model_path, total_updates, addr, port) for a in self.actors], "setup")
        self.pids = self._get([a.pid.remote() for a in self.actors], "pid")
        logger.info("%s group ready: %d ranks (pids %s)", role, num_ranks, self.pids)

    @property
    def world_size(self) -> int:
        return len(self.actors)

    def _get(self, refs, what: str) -> list:
        return wait_all(refs, f"{self.role}.{what}", self.timeout_s)

    def _scatter(self, method: str, exp: Experience, *args) -> list:
        shards = exp.shard(self.world_size)
        return self._get([a.call.remote(method, s, *args, role=self.serves) for a, s in zip(self.actors, shards)],
                         method)

    def serving(self, role: str) -> "TrainingGroup":
        """The same ranks seen as another role they hold (a LoRA policy's ranks serve the reference)."""
        view = copy.copy(self)
        view.serves = role
        return view

    # -- the local workers' methods ---------------------------------------------------------------------
    def compute_logprobs(self, exp: Experience) -> torch.Tensor:
        return _cat_to_width(self._scatter("compute_logprobs", exp), exp.response_mask.shape[1])

    def compute_values(self, exp: Experience) -> torch.Tensor:
        return _cat_to_width(self._scatter("compute_values", exp), exp.response_mask.shape[1])

    def fit(self, exp: Experience, step: int) -> dict:
        return combine_ranks(self._scatter("fit", exp, step))

    def named_weights(self):
        """A Ray object reference to rank 0's full weights (never copied through the driver)."""
        refs = [a.weights_for_sync.remote() for a in self.actors]
        self._get(refs, "named_weights")
        return refs[0]

    def init_weight_sync(self, engines: list, workers_per_engine: int) -> None:
        self._get([a.init_weight_sync.remote(engines, workers_per_engine) for a in self.actors], "init_weight_sync")

    def broadcast_weights(self) -> None:
        self._get([a.broadcast_weights.remote() for a in self.actors], "broadcast_weights")

    def save(self, path) -> None:
        self._get([a.call.remote("save", path) for a in self.actors], "save")

    def load(self, path) -> None:
        self._get([a.call.remote("load", path) for a in self.actors], "load")

    def shutdown(self) -> None:
        import ray

        for a in self.actors:
            try:
                ray.get(a.shutdown.remote(), timeout=30)
            except Exception:  # already dead: nothing to release
                pass
            ray.kill(a)


def _cat_to_width(parts: list[torch.Tensor], width: int) -> torch.Tensor:
    return torch.cat([torch.nn.functional.pad(p, (0, width - p.shape[1])) for p in parts])


class RolloutGroup(RolloutBackend):
    """Rollout engines in Ray actors (each built by the role factory); prompts are split into contiguous chunks,
    one per engine."""

    shares_policy = False

    def __init__(self, num_engines: int, *, cfg_dict: dict, model_path: str, sync_backend: str,
                 workers_per_engine: int, num_cpus: float, num_gpus: float, placement: Optional[list] = None,
                 timeout_s: float = 1800.0, env: Optional[dict] = None, versioned: bool = False):
        """``versioned`` (asynchronous RL): outputs carry ``response_versions`` and weights arrive through
        :meth:`push_weights`."""
        import ray

        from trainer.distributed.actors import RolloutEngine

        self.timeout_s = timeout_s
        self.versioned = versioned
        self._pushes: list = []  # weight updates submitted by push_weights and not yet seen finished
        self.sync_backend = sync_backend
        self.workers_per_engine = workers_per_engine
        self._nccl_ready = False
        cls = ray.remote(RolloutEngine)
        self.engines = []
        for i in range(num_engines):
            opts: dict[str, Any] = {"num_cpus": num_cpus, "num_gpus": num_gpus, "max_restarts": 0}
            if placement is not None:
                opts["scheduling_strategy"] = placement[i]
            self.engines.append(cls.options(**opts).remote(cfg_dict, model_path, i, num_engines, env))
        self.pids = wait_all([e.pid.remote() for e in self.engines], "rollout.start", timeout_s)

    def generate(self, prompts: list, sampling, seeds=None, progress: bool = False) -> RolloutOutput:
        k = len(self.engines)
        bounds = [round(i * len(prompts) / k) for i in range(k + 1)]
        jobs = [(e, bounds[i], bounds[i + 1]) for i, e in enumerate(self.engines) if bounds[i + 1] > bounds[i]]
        method = "generate_versioned" if self.versioned else "generate"
        outs = wait_all([getattr(e, method).remote(prompts[a:b], sampling, None if seeds is None else list(seeds[a:b]))
                         for e, a, b in jobs], "rollout.generate", self.timeout_s)
        for (_, a, _), out in zip(jobs, outs):  # engine-local prompt indices -> batch indices
            out.prompt_index = [a + i for i in out.prompt_index]
        return RolloutOutput.concat(outs)

    def sync_from(self, policy: "TrainingGroup") -> None:
        """Sync the policy's weights into every engine: over NCCL from policy rank 0 (``sync_backend=nccl``,
        set up once), otherwise rank 0's full state dict through Ray's object store (``cpu_reload``)."""
        if self.sync_backend == "nccl":
            if not self._nccl_ready:
                policy.init_weight_sync(self.engines, self.workers_per_engine)
                self._nccl_ready = True
            policy.broadcast_weights()
        else:
            self.update_weights(policy.named_weights())

    def push_weights(self, weights, version: int) -> None:
        """Asynchronous RL: submit ``weights`` (a dict or a Ray object reference) as ``version`` to every engine
        and return without waiting. An engine takes them after the generation it is running (a Ray actor runs
        its calls in order); an earlier push that failed raises ``WorkerFailure`` here."""
        import ray

        if self._pushes:
            done, self._pushes = ray.wait(self._pushes, num_returns=len(self._pushes), timeout=0)
            wait_all(done, "rollout.push_weights", self.timeout_s)
        self._pushes += [e.update_weights.remote(weights, version) for e in self.engines]

    def update_weights(self, weights) -> None:
        """``weights``: a dict of HF-named tensors or a Ray object reference to one (from ``TrainingGroup``)."""
        wait_all([e.update_weights.remote(weights) for e in self.engines], "rollout.update_weights", self.timeout_s)

    def sleep(self) -> None:
        wait_all([e.sleep.remote() for e in self.engines], "rollout.sleep", self.timeout_s)

    def wake_up(self) -> None:
        wait_all([e.wake_up.remote() for e in self.engines], "rollout.wake_up", self.timeout_s)

    def close(self) -> None:
        import ray

        for e in self.engines:
            try:
                ray.get(e.close.remote(), timeout=30)
            except Exception:
                pass
            ray.kill(e)
