"""Start a vLLM CPU engine while vLLM sees a small NUMA node (4 GiB total, 3 GiB available), like the fresh machine
where a memory *fraction* made the engine refuse to start ("Available memory on node 0 (9.36/10.96 GiB) ...").

    python vllm_memory_view_script.py MODEL_DIR builder    # our engine builder (explicit KV-cache bytes): must start
    python vllm_memory_view_script.py MODEL_DIR fraction   # vllm.LLM with a memory fraction: must be refused

The engine runs in this process (VLLM_ENABLE_V1_MULTIPROCESSING=0) so that the patched view is the one it reads.
"""
import os
import sys

os.environ["VLLM_ENABLE_V1_MULTIPROCESSING"] = "0"
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import vllm.utils.cpu_resource_utils as cru  # noqa: E402
import vllm.v1.worker.cpu_worker as cpu_worker  # noqa: E402

GiB = 1 << 30


def small_node(node_id: int = 0):
    return cru.MemoryNodeInfo(total_memory=4 * GiB, available_memory=3 * GiB)


cru.get_memory_node_info = small_node
cpu_worker.get_memory_node_info = small_node

if __name__ == "__main__":
    model, mode = sys.argv[1], sys.argv[2]
    if mode == "fraction":
        from vllm import LLM

        LLM(model=model, dtype="float32", gpu_memory_utilization=0.15, enforce_eager=True, max_model_len=256)
    else:
        from eval.generate import make_generator
        from mathrl_core.sampling import SamplingConfig

        gen = make_generator("vllm", model, dtype="float32", enforce_eager=True, max_model_len=256,
                             gpu_memory_utilization=0.15)
        out = gen.generate(["What is 2+3?"], SamplingConfig(n=1, temperature=0.0, max_new_tokens=4))
        assert len(out) == 1 and len(out[0]) == 1
        # vLLM's own INFO log line is not reliable (its logging may be unconfigured); read the engine's config
        cache = gen.backend.llm.llm_engine.vllm_config.cache_config
        print(f"KV_CACHE_BYTES={cache.kv_cache_memory_bytes}")
    print("ENGINE STARTED")
