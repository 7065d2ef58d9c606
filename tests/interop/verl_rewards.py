"""verl's own reward managers calling reward_service/adapters.py against a live reward service.

    python tests/interop/verl_rewards.py URL TOKENIZER_DIR FLOW...       (one verl release first on PYTHONPATH)

A FLOW is ``legacy:MANAGER:FUNCTION`` or ``loop:MANAGER:FUNCTION``. The config is verl's own generated trainer
config (verl/trainer/config/_generated_ppo_trainer.yaml) with the overrides docs/deploy.md gives on the command
line: up to 0.7.0 ``custom_reward_function.path=<adapters.py> custom_reward_function.name=FUNCTION
reward_model.reward_manager=MANAGER`` (and ``reward_model.use_reward_loop=False`` for a legacy flow on 0.7.0);
from 0.7.1 ``reward.custom_reward_function.path=... reward.custom_reward_function.name=...
reward.reward_manager.name=MANAGER``.

- legacy: ``verl.trainer.ppo.reward.load_reward_manager`` (what main_ppo calls) builds the manager and loads the
  function from the file; the manager is called on the batch, as the trainer does with ``reward_fn(batch)``.
- loop, verl >= 0.7.1: ``RewardLoopWorker(config)`` (the reward loop's worker class; the Ray actor wraps it), then
  ``compute_score_batch(batch)``: one ``run_single`` per sample, all concurrently.
- loop, verl 0.7.0: its reward_loop package __init__ imports verl.workers.config, which needs
  transformers 4's ``AutoModelForVision2Seq`` (this environment has transformers 5); that __init__ is skipped and
  the reward_manager subpackage imported from its files. The manager class comes from its registry by
  ``reward_model.reward_manager`` and is built as RewardLoopWorker builds it (config, tokenizer,
  get_custom_reward_fn(config)); its ``run_single`` runs on every sample concurrently, as
  ``RewardLoopWorker.compute_score_batch`` does.

The batch (a DataProto) holds cases.py-like samples whose ground truths are numpy values, as verl reads them from
parquet. Prints {FLOW: {"rewards": [...], "requests": POSTs the service received} or {"error": "..."}}.
"""
import asyncio
import os
import sys
import types
from pathlib import Path

import httpx
import numpy as np
import torch
from omegaconf import OmegaConf
from transformers import AutoTokenizer

import reward_service.adapters as adapters
import verl
from upstream_harness import emit
from verl import DataProto

url, tokenizer_dir, *flows = sys.argv[1:]
os.environ["MATHRL_REWARD_URL"] = url
VERSION = tuple(int(x) for x in verl.__version__.split(".")[:3])
tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)

# (response, ground truth as verl holds it, extra_info): rewards 1, -0.5, -1, 1, 1, 0 (the last one `correctness`)
SAMPLES = [
    ("2 + 3 = 5, so the answer is \\boxed{5}.", np.int64(5), {}),
    ("Adding the fractions gives \\boxed{0.7}.", "3/4", {}),
    ("Let me think about it. 7*6 is", "42", {}),
    ("So it is \\boxed{0.75}.", np.array(["3/4"]), {}),
    ("Final answer: \\boxed{7}", np.float64(7.0), {}),
    ("I think it is \\boxed{2}.", np.str_("3"), {"reward_scheme": "correctness"}),
]


def batch() -> DataProto:
    prompt_len, response_len = 8, 24
    n = len(SAMPLES)
    prompt = tokenizer("What is the answer?", add_special_tokens=False)["input_ids"][-prompt_len:]
    prompts = torch.full((n, prompt_len), tokenizer.pad_token_id)
    responses = torch.full((n, response_len), tokenizer.pad_token_id)
    mask = torch.zeros(n, prompt_len + response_len, dtype=torch.long)
    for i, (text, _, _) in enumerate(SAMPLES):
        ids = tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        assert len(ids) <= response_len, text
        prompts[i, prompt_len - len(prompt):] = torch.tensor(prompt)  # left-padded prompt, right-padded response
        mask[i, prompt_len - len(prompt): prompt_len] = 1
        responses[i, : len(ids)] = torch.tensor(ids)
        mask[i, prompt_len: prompt_len + len(ids)] = 1
    return DataProto.from_dict(
        tensors={"prompts": prompts, "responses": responses, "attention_mask": mask,
                 "input_ids": torch.cat([prompts, responses], dim=1)},
        non_tensors={"data_source": np.array(["math"] * n, dtype=object),
                     "reward_model": np.array([{"ground_truth": g, "style": "rule"} for _, g, _ in SAMPLES], dtype=object),
                     "extra_info": np.array([dict(e) for _, _, e in SAMPLES], dtype=object)})


def config(manager: str, function: str, legacy: bool):
    """verl's generated trainer config with the command-line overrides docs/deploy.md gives for this release."""
    base = OmegaConf.load(Path(verl.__file__).parent / "trainer/config/_generated_ppo_trainer.yaml")
    over = [f"actor_rollout_ref.model.path={tokenizer_dir}"]
    if VERSION >= (0, 7, 1):  # the reward config moved under `reward.` (0.9's main_ppo no longer migrates old keys)
        over += [f"reward.custom_reward_function.path={adapters.__file__}",
                 f"reward.custom_reward_function.name={function}", f"reward.reward_manager.name={manager}"]
    else:
        over += [f"custom_reward_function.path={adapters.__file__}", f"custom_reward_function.name={function}",
                 f"reward_model.reward_manager={manager}"]
        if legacy and VERSION >= (0, 7):
            over.append("reward_model.use_reward_loop=False")
    return OmegaConf.merge(base, OmegaConf.from_dotlist(over))


def requests_so_far() -> float:
    text = httpx.get(url + "/metrics").text
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith("mathrl_reward_requests_total{") and 'path="/v1/score"' in line)


def legacy(manager: str, function: str) -> list:
    from verl.trainer.ppo.reward import load_reward_manager

    reward_fn = load_reward_manager(config(manager, function, legacy=True), tokenizer, num_examine=0)
    out = reward_fn(batch(), return_dict=True)["reward_tensor"]
    return out.sum(dim=-1).tolist()


async def reward_loop(manager: str, function: str) -> list:
    data = batch()
    cfg = config(manager, function, legacy=False)
    if VERSION >= (0, 7, 1):
        from verl.experimental.reward_loop import RewardLoopWorker

        outputs = await RewardLoopWorker(cfg).compute_score_batch(data)
    else:
        import verl.experimental

        package = types.ModuleType("verl.experimental.reward_loop")  # skip its __init__ (see the docstring)
        package.__path__ = [str(Path(verl.experimental.__file__).parent / "reward_loop")]
        sys.modules[package.__name__] = package
        from verl.experimental.reward_loop.reward_manager import get_reward_manager_cls
        from verl.trainer.ppo.reward import get_custom_reward_fn

        cls = get_reward_manager_cls(cfg.reward_model.reward_manager)
        loop_manager = cls(cfg, tokenizer, get_custom_reward_fn(cfg), None, None)
        outputs = await asyncio.gather(*(loop_manager.run_single(data[i: i + 1]) for i in range(len(data))))
    return [o["reward_score"] for o in outputs]


result = {"verl": verl.__version__}
for flow in flows:
    kind, manager, function = flow.split(":")
    before = requests_so_far()
    try:
        rewards = legacy(manager, function) if kind == "legacy" else asyncio.run(reward_loop(manager, function))
        result[flow] = {"rewards": [float(r) for r in rewards], "requests": requests_so_far() - before}
    except Exception as e:
        cause = e
        while cause.__cause__ is not None:  # verl wraps the loader's errors
            cause = cause.__cause__
        result[flow] = {"error": f"{type(e).__name__}: {e}", "cause": f"{type(cause).__name__}: {cause}"}
emit(result)
