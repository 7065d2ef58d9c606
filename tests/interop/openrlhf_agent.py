"""OpenRLHF's per-sample remote reward path (0.9.1 and later), run against a live reward service.

    python tests/interop/openrlhf_agent.py URL TOKENIZER_DIR CASE...     (openrlhf first on PYTHONPATH)

A CASE is ``samples`` (tests/interop/cases.SAMPLES) or ``truncated`` (cases.TRUNCATED: a prompt longer than
the prompt budget). What runs is OpenRLHF's own code: ``preprocess_data`` builds the prompt with the chat
template; ``SingleTurnAgentExecutor(remote_rm_url).execute`` (what every vLLM rollout actor runs per sample)
tokenizes it, left-truncates it to max_length - max_tokens, asks the engine for a continuation, decodes the
query and posts {"query", "prompts", "labels"} with aiohttp (180 s timeout, 5 tries) to the URL, and keeps
"rewards", "scores" (or "rewards"), "extra_logs"; ``SamplesGenerator._process_response_into_experience`` turns
that into the Experience the trainer uses.

Stand-in: the vLLM engine (the rollout actor's ``generate``) answers with the case's scripted response, since the
rollout's text must be known to check its reward. A failed reward call is logged and swallowed by OpenRLHF
(the Experience then has no reward): the script reports it as ``"reward": null``.

Prints {CASE: [{"reward", "score", "extra_logs", "query", "prompt", "truncated_prompt"}, ...], "version": ...}.
"""
import asyncio
import importlib.metadata
import sys
from types import SimpleNamespace

from transformers import AutoTokenizer
from vllm import SamplingParams

import cases
from upstream_harness import emit

url, tokenizer_dir, *wanted = sys.argv[1:]
from openrlhf.datasets.prompts_dataset import preprocess_data  # noqa: E402
from openrlhf.trainer.ppo_utils.samples_generator import SamplesGenerator  # noqa: E402
from openrlhf.utils.agent import SingleTurnAgentExecutor  # noqa: E402

tokenizer = AutoTokenizer.from_pretrained(tokenizer_dir)


class ScriptedEngine:
    """Stands in for the vLLM rollout actor: ``generate`` returns the scripted response's tokens."""

    def __init__(self, response: str):
        self.ids = tokenizer(response, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        self.prompt_token_ids = None

    async def generate(self, prompt_token_ids, sampling_params, multi_modal_data=None):
        self.prompt_token_ids = list(prompt_token_ids)
        ids = self.ids[: sampling_params.max_tokens]
        out = SimpleNamespace(token_ids=ids, text=tokenizer.decode(ids), logprobs=None,
                              finish_reason="stop" if len(ids) == len(self.ids) else "length")
        return SimpleNamespace(outputs=[out], prompt_token_ids=self.prompt_token_ids)


async def one(executor, problem, response, label, max_len, max_new_tokens):
    prompt, label = preprocess_data({"problem": problem, "answer": label}, None, "problem", "answer",
                                    tokenizer.apply_chat_template)
    engine = ScriptedEngine(response)
    params = SamplingParams(temperature=0.6, top_p=1.0, max_tokens=max_new_tokens, skip_special_tokens=False)
    out = await executor.execute(prompt=prompt, label=label, sampling_params=params, max_length=max_len,
                                 hf_tokenizer=tokenizer, llm_engine=engine)
    exp = object.__new__(SamplesGenerator)._process_response_into_experience(out, max_len=max_len)
    info = {k: float(v.flatten()[0]) for k, v in exp.info.items() if k not in ("reward", "score")}
    return {"reward": None if exp.rewards is None else float(exp.rewards.flatten()[0]),
            "score": None if exp.scores is None else float(exp.scores.flatten()[0]), "extra_logs": info,
            "query": tokenizer.decode(out["observation_tokens"], skip_special_tokens=False), "prompt": prompt,
            "truncated_prompt": len(engine.prompt_token_ids) < len(tokenizer(prompt, add_special_tokens=False)["input_ids"])}


async def main():
    executor = SingleTurnAgentExecutor(url)  # RolloutRayActor: SingleTurnAgentExecutor(remote_rm_url)
    result = {"version": importlib.metadata.version("openrlhf")}
    if "samples" in wanted:  # the recipe's lengths: max_len 4024 = 1024 prompt + 3000 new tokens
        result["samples"] = await asyncio.gather(*(one(executor, p, r, lb, 4024, 3000) for p, r, lb, _ in cases.SAMPLES))
    if "truncated" in wanted:  # max_len - max_new_tokens = TRUNCATED_KEEP prompt tokens are kept
        problem, response, label, _ = cases.TRUNCATED
        result["truncated"] = [await one(executor, problem, response, label, cases.TRUNCATED_KEEP + 64, 64)]
    return result


emit(asyncio.run(main()))
