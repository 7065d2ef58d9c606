"""OpenRLHF 0.9.0's remote reward path, run on Ray against a live reward service.

    python tests/interop/openrlhf_batch_rm.py URL TOKENIZER_DIR CASE...     (openrlhf 0.9.0 first on PYTHONPATH)

A CASE is ``samples`` (tests/interop/cases.SAMPLES, 2 samples per prompt) or ``batch8192`` (1024 prompts x 8,
the recipe's rollout batch, in one request). What runs is OpenRLHF's own code: ``preprocess_data`` builds each prompt with the chat
template, ``SamplesGenerator.generate_samples`` tokenizes it, collects the engines' outputs into Experiences and,
given a ``remote_reward_model`` (as with --dynamic_filtering), decodes every query and asks
``RemoteRewardModel.get_rewards`` (a Ray actor) for the rewards of the whole batch at once, which posts them
through ``remote_rm_fn_ray`` / ``request_api_wrapper`` (requests, 180 s timeout, 5 tries) to --remote_rm_url;
``update_samples_with_rewards`` parses the answer into each Experience.

Stand-ins: the vLLM engines are a Ray actor that returns the scripted responses of cases.py as token ids (the
rollout's text must be known to check its reward), and the strategy is the few attributes generate_samples
reads. experience_maker.py imports flash-attn at the top (via openrlhf.models), which cannot load on CPU: its
Experience, SamplesGenerator and update_samples_with_rewards are executed from the file (load_defs).

Prints {CASE: {"rewards": [...], "scores": [...], "extra_logs": {...}, "queries": [first 3], "seconds": s}, ...},
or {CASE: {"error": "..."}} for a case whose reward call failed.
"""
import importlib.util
import json
import os
import sys
import time
from pathlib import Path
from types import SimpleNamespace
from typing import List

import ray
import torch
from transformers import AutoTokenizer

import cases
from upstream_harness import emit, load_defs

url, tokenizer_dir, *cases_wanted = sys.argv[1:]
from openrlhf.datasets.prompts_dataset import preprocess_data  # noqa: E402
from openrlhf.utils.remote_rm_utils import RemoteRewardModel  # noqa: E402
from openrlhf.utils.utils import remove_pad_token  # noqa: E402

pkg = Path(importlib.util.find_spec("openrlhf").submodule_search_locations[0])
em = load_defs(pkg / "trainer/ppo_utils/experience_maker.py",
               ["to", "pin_memory", "Experience", "update_samples_with_rewards", "SamplesGenerator"],
               torch=torch, ray=ray, List=List, remove_pad_token=remove_pad_token)

tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)


def rollouts(case):
    """(prompt rows, responses in generation order, samples per prompt) of a case."""
    if case == "samples":
        rows = [{"problem": p, "answer": label} for p, _, label, _ in cases.SAMPLES]
        return rows, [r for _, r, _, _ in cases.SAMPLES for _ in range(2)], 2
    if case == "batch8192":
        batch = cases.big_batch(1024, 8)
        return [{"problem": p, "answer": label} for p, _, label, _ in batch], [r for _, rs, _, _ in batch for r in rs], 8
    raise SystemExit(f"unknown case {case}")


os.environ.pop("RAY_ADDRESS", None)  # a local Ray, never a cluster the caller's shell points at
ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)


@ray.remote
class ScriptedEngine:
    """Stands in for OpenRLHF's vLLM engine actor: answers each request with the next scripted response."""

    def __init__(self, outputs):
        self.outputs, self.requests = outputs, []

    def add_requests(self, sampling_params, prompt_token_ids):
        self.requests = list(prompt_token_ids)

    def get_responses(self):
        return [SimpleNamespace(prompt_token_ids=p, outputs=[SimpleNamespace(token_ids=o, logprobs=None)])
                for p, o in zip(self.requests, self.outputs)]


def run(case):
    rows, responses, n = rollouts(case)
    prompts, labels = zip(*(preprocess_data(row, None, "problem", "answer", tokenizer.apply_chat_template)
                            for row in rows))
    all_prompts = [p for p in prompts for _ in range(n)]
    response_ids = [tokenizer(r, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id] for r in responses]
    args = SimpleNamespace(vllm_enable_sleep=False, n_samples_per_prompt=n, enable_vllm_is_correction=False,
                           micro_rollout_batch_size=2)
    generator = em.SamplesGenerator([ScriptedEngine.remote(response_ids)], SimpleNamespace(args=args), tokenizer,
                                    1024)  # --prompt_max_len 1024
    remote_rm = RemoteRewardModel.remote(args, [url])  # train_ppo_ray: args.remote_rm_url.split(",")
    start = time.perf_counter()
    try:
        samples = generator.generate_samples(list(prompts), list(labels), remote_reward_model=remote_rm,
                                             max_new_tokens=3000, n_samples_per_prompt=n)
    except Exception as e:  # request_api_wrapper gives up after 5 tries
        return {"error": f"{type(e).__name__}: {e}"}
    seconds = time.perf_counter() - start
    queries = [tokenizer.decode(remove_pad_token(s.sequences, s.attention_mask)[0], skip_special_tokens=False)
               for s in samples[:3]]
    skip = ("response_length", "total_length", "response_clip_ratio", "score", "reward")
    return {"rewards": [float(s.rewards[0]) for s in samples], "scores": [float(s.scores[0]) for s in samples],
            "extra_logs": {k: [float(s.info[k][0]) for s in samples] for k in samples[0].info if k not in skip},
            "n": len(samples), "queries": queries, "prompts": list(prompts[:2]), "seconds": seconds,
            "body_bytes": len(json.dumps({"query": [p + r for p, r in zip(all_prompts, responses)],
                                          "prompts": all_prompts, "labels": [lb for lb in labels for _ in range(n)]}))}


emit({case: run(case) for case in cases_wanted})
