"""Process-group helpers: a few visible lines around ``torch.distributed``.

Launchers (``torchrun``, the Ray actor groups, the test harness) set the usual variables and every rank calls
``init_from_env()``::

    MASTER_ADDR, MASTER_PORT   rendezvous address of rank 0
    RANK, WORLD_SIZE           this process's global rank and the number of ranks
    LOCAL_RANK                 rank on this node (picks the GPU)

Backend: ``nccl`` when CUDA is available, else ``gloo`` (CPU). Every collective has a bounded ``timeout`` so a
dead or hung rank raises on the others instead of hanging the run forever.
"""
from __future__ import annotations

import os
import socket
from datetime import timedelta
from typing import Optional

import torch
import torch.distributed as dist

ENV_VARS = ("MASTER_ADDR", "MASTER_PORT", "RANK", "WORLD_SIZE", "LOCAL_RANK")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port that was free a moment ago (for a local rendezvous)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def default_backend() -> str:
    return "nccl" if torch.cuda.is_available() else "gloo"


def init_from_env(backend: Optional[str] = None, timeout_s: float = 600.0) -> tuple[int, int]:
    """Join the process group described by the environment; returns ``(rank, world_size)``.

    Without ``WORLD_SIZE``/``RANK`` in the environment this starts a one-rank group on a free loopback port
    (single-process runs still get a valid group, which DeepSpeed needs). Already initialised: returns the
    current group's rank and size. On CUDA the device ``LOCAL_RANK`` is selected before NCCL starts.
    """
    if dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    backend = backend or default_backend()
    timeout = timedelta(seconds=timeout_s)
    if "WORLD_SIZE" not in os.environ or "RANK" not in os.environ:
        os.environ.update({"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": str(free_port()), "RANK": "0",
                           "WORLD_SIZE": "1", "LOCAL_RANK": "0"})
    missing = [v for v in ENV_VARS if v not in os.environ and v != "LOCAL_RANK"]
    if missing:
        raise RuntimeError(f"cannot join the process group: environment variables {missing} are not set "
                           f"(need all of {ENV_VARS})")
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    if backend == "nccl":
        torch.cuda.set_device(local_rank())
    dist.init_process_group(backend=backend, init_method="env://", rank=rank, world_size=world, timeout=timeout)
    return rank, world


def is_initialized() -> bool:
    return dist.is_available() and dist.is_initialized()


def rank() -> int:
    return dist.get_rank() if is_initialized() else 0


def world_size() -> int:
    return dist.get_world_size() if is_initialized() else 1


def local_rank() -> int:
    return int(os.environ.get("LOCAL_RANK", "0"))


def device() -> torch.device:
    """The device this rank computes on: ``cuda:LOCAL_RANK`` with CUDA, else CPU."""
    return torch.device("cuda", local_rank()) if torch.cuda.is_available() else torch.device("cpu")


def _collective_device() -> torch.device:
    return device() if is_initialized() and dist.get_backend() == "nccl" else torch.device("cpu")


def all_reduce_sum(value: float) -> float:
    """Σ over ranks of a Python number (the value itself without a process group). Float64 on the wire."""
    if not is_initialized():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return float(t.item())


def all_reduce_max(value: float) -> float:
    """max over ranks of a Python number."""
    if not is_initialized():
        return float(value)
    t = torch.tensor([float(value)], dtype=torch.float64, device=_collective_device())
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return float(t.item())


def barrier() -> None:
    if is_initialized():
        dist.barrier()


def destroy() -> None:
    """Leave and tear down the default process group (call at the end of every rank's run)."""
    if is_initialized():
        dist.destroy_process_group()
