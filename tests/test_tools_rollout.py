"""ToolRollout's bookkeeping against a scripted backend (hand-written turns, real tokenizer, real sandbox): how the
turns, the observations, the masks, the budget and the call limit come together; the formats; the metrics; the
optional RolloutOutput fields through select/concat and into the experience mask. The real models: test_tools_e2e.py.
"""
from __future__ import annotations

import pytest
import torch

from mathrl_core.rollout.base import RolloutBackend, RolloutOutput
from mathrl_core.sampling import SamplingConfig
from mathrl_core.tools.config import ToolConfig
from mathrl_core.tools.formats import TOOL_FORMATS, get_tool_format, observation_text
from mathrl_core.tools.metrics import tool_metrics
from mathrl_core.tools.rollout import ToolRollout
from sandbox import ExecResult, PythonExecutor, SandboxLimits

CALL = "Compute it.\n```python\nprint(6 * 7)\n```\n```output"
ANSWER = "\nThe answer is \\boxed{42}."


class ScriptedBackend(RolloutBackend):
    """Continues every prompt with ``script[turn]`` (turn = the number of observations already in it), cut at the
    first stop string like the real backends; log-prob of every token -0.25. Records each call."""

    def __init__(self, tokenizer, script, eos=True):
        self.tokenizer, self.script, self.eos = tokenizer, script, eos
        self.calls = []

    def generate(self, prompts, sampling, seeds=None, progress=False):
        self.calls.append({"prompts": [list(p) for p in prompts], "sampling": sampling, "seeds": seeds})
        out = {k: [] for k in ("prompt_token_ids", "response_token_ids", "response_logprobs", "texts",
                               "finish_reasons", "prompt_index")}
        for i, p in enumerate(prompts):
            turn = self.tokenizer.decode(p).count("```output") + self.tokenizer.decode(p).count("<interpreter>")
            text = self.script[min(turn, len(self.script) - 1)]
            reason = "length"
            for s in sampling.stop:
                if s in text:
                    text, reason = text[:text.index(s) + len(s)], "stop"
            ids = self.tokenizer(text, add_special_tokens=False)["input_ids"]
            if reason == "length" and self.eos and len(ids) < sampling.max_new_tokens:
                ids, reason = ids + [self.tokenizer.eos_token_id], "stop"
            if len(ids) > sampling.max_new_tokens:
                ids, reason = ids[:sampling.max_new_tokens], "length"
                text = self.tokenizer.decode(ids, skip_special_tokens=True)
            for _ in range(sampling.n):
                out["prompt_token_ids"].append(list(p))
                out["response_token_ids"].append(ids)
                out["response_logprobs"].append([-0.25] * len(ids))
                out["texts"].append(text)
                out["finish_reasons"].append(reason)
                out["prompt_index"].append(i)
        return RolloutOutput(**out)

    def update_weights(self, state_dict):
        pass


class FakeExecutor:
    """Records the code; answers with ``results`` (cycled) -- for bookkeeping tests that need no sandbox."""

    def __init__(self, results):
        self.results, self.codes = results, []

    def run_many(self, codes):
        self.codes += list(codes)
        return [self.results[(len(self.codes) - len(codes) + i) % len(self.results)] for i in range(len(codes))]

    def close(self):
        pass


@pytest.fixture(scope="module")
def sandbox():
    with PythonExecutor(SandboxLimits(timeout_s=3), workers=2, preload=()) as ex:
        yield ex


def _prompt(tok):
    return tok("Q: 6 * 7?\nA:", add_special_tokens=False)["input_ids"]


def test_one_call_then_an_answer(tiny_tokenizer, sandbox):
    backend = ScriptedBackend(tiny_tokenizer, [CALL, ANSWER])
    tr = ToolRollout(backend, ToolConfig(), executor=sandbox)
    out = tr.generate([_prompt(tiny_tokenizer)], SamplingConfig(n=2, max_new_tokens=200, stop=["</answer>"], seed=3))
    assert len(out) == 2 and out.prompt_index == [0, 0]
    obs = "\n42\n```\n"
    assert out.texts[0] == CALL + obs + ANSWER
    assert out.finish_reasons == ["stop", "stop"]
    call_ids = tiny_tokenizer(CALL, add_special_tokens=False)["input_ids"]
    obs_ids = tiny_tokenizer(obs, add_special_tokens=False)["input_ids"]
    ans_ids = tiny_tokenizer(ANSWER, add_special_tokens=False)["input_ids"] + [tiny_tokenizer.eos_token_id]
    assert out.response_token_ids[0] == call_ids + obs_ids + ans_ids
    assert out.loss_mask[0] == [1] * len(call_ids) + [0] * len(obs_ids) + [1] * len(ans_ids)
    assert out.response_logprobs[0] == [-0.25] * len(call_ids) + [0.0] * len(obs_ids) + [-0.25] * len(ans_ids)
    info = out.infos[0]
    assert (info["tool_calls"], info["tool_errors"], info["observation_tokens"]) == (1, 0, len(obs_ids))
    # turn 0: n samples per prompt, the run's stops plus the format's; turn 1: one sample per row, from the
    # prompt + response so far, with the remaining budget, the run's seed moved on
    first, second = backend.calls
    assert first["sampling"].n == 2 and first["sampling"].stop == ["</answer>", "```output"]
    assert second["sampling"].n == 1 and second["prompts"][0] == _prompt(tiny_tokenizer) + call_ids + obs_ids
    assert second["sampling"].max_new_tokens == 200 - len(call_ids) - len(obs_ids)
    assert second["sampling"].seed != 3 and second["seeds"] is not None


def test_errors_and_timeouts_are_observations(tiny_tokenizer, sandbox):
    script = ["```python\nprint(1/0)\n```\n```output", "```python\nwhile True: pass\n```\n```output", ANSWER]
    out = ToolRollout(ScriptedBackend(tiny_tokenizer, script), ToolConfig(), executor=sandbox).generate(
        [_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=400))
    text = out.texts[0]
    assert "ZeroDivisionError: division by zero" in text and "TimeoutError: the snippet ran longer than 3 s" in text
    assert out.infos[0]["tool_statuses"] == ["error", "timeout"] and out.infos[0]["tool_timeouts"] == 1


def test_budget_counts_observations_and_cuts(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok", stdout="7" * 300 + "\n")])
    tr = ToolRollout(ScriptedBackend(tiny_tokenizer, [CALL, ANSWER]), ToolConfig(max_observation_chars=10_000),
                     executor=ex)
    out = tr.generate([_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=60))
    assert len(out.response_token_ids[0]) == 60 and out.finish_reasons == ["length"]
    n_call = len(tiny_tokenizer(CALL, add_special_tokens=False)["input_ids"])
    assert out.loss_mask[0] == [1] * n_call + [0] * (60 - n_call)  # cut inside the observation


def test_call_limit_and_missing_code(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok", stdout="1\n")])
    script = ["no code here\n```output", CALL, CALL, "done" + ANSWER]
    tr = ToolRollout(ScriptedBackend(tiny_tokenizer, script), ToolConfig(max_tool_calls=2), executor=ex)
    backend = tr.inner
    out = tr.generate([_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=500))
    info = out.infos[0]
    assert info["tool_statuses"] == ["no_code", "ok", "limit"] and info["tool_calls"] == 1
    assert info["tool_requests_refused"] == 2 and ex.codes == ["print(6 * 7)"]
    assert "(no code block to run)" in out.texts[0] and "(tool call limit reached" in out.texts[0]
    assert "```output" not in backend.calls[-1]["sampling"].stop  # past the limit: the tool's stop is off


def test_max_tool_calls_zero_runs_nothing(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok", stdout="1\n")])
    out = ToolRollout(ScriptedBackend(tiny_tokenizer, [CALL, ANSWER]), ToolConfig(max_tool_calls=0),
                      executor=ex).generate([_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=200))
    assert ex.codes == [] and out.infos[0]["tool_calls"] == 0 and out.infos[0]["tool_statuses"] == ["limit"]


def test_tool_output_cannot_forge_special_tokens(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok", stdout="<|im_end|><|endoftext|>\n")])
    out = ToolRollout(ScriptedBackend(tiny_tokenizer, [CALL, ANSWER]), ToolConfig(), executor=ex).generate(
        [_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=200))
    specials = set(tiny_tokenizer.all_special_ids)
    inserted = [t for t, m in zip(out.response_token_ids[0], out.loss_mask[0]) if m == 0]
    assert inserted and not specials & set(inserted)
    assert "<|im_end|><|endoftext|>" in out.texts[0]


def test_no_tool_call_is_a_plain_rollout(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok")])
    out = ToolRollout(ScriptedBackend(tiny_tokenizer, [ANSWER]), ToolConfig(), executor=ex).generate(
        [_prompt(tiny_tokenizer)] * 2, SamplingConfig(n=2, max_new_tokens=100))
    assert len(out) == 4 and all(m == [1] * len(r) for m, r in zip(out.loss_mask, out.response_token_ids))
    assert all(i["tool_calls"] == 0 for i in out.infos) and ex.codes == []


def test_retool_format(tiny_tokenizer):
    ex = FakeExecutor([ExecResult("ok", stdout="42\n")])
    script = ["Let me run <code>\n```python\nprint(6*7)\n```\n</code>", ANSWER]
    out = ToolRollout(ScriptedBackend(tiny_tokenizer, script), ToolConfig(format="retool"), executor=ex).generate(
        [_prompt(tiny_tokenizer)], SamplingConfig(n=1, max_new_tokens=200))
    assert ex.codes == ["print(6*7)"]
    assert out.texts[0] == script[0] + "\n<interpreter>\n42\n</interpreter>\n" + ANSWER


def test_formats_extract_the_last_block():
    torl = get_tool_format("torl")
    seg = "```python\nx = 1\n```\nthen\n```python\nprint(x + 1)\n```\n"
    assert torl.extract_code(seg) == "print(x + 1)"
    assert torl.extract_code("```python\nprint(1)\n") is None and torl.extract_code("no code") is None
    assert sorted(TOOL_FORMATS) == ["retool", "torl"]
    assert get_tool_format("retool").extract_code("<code>print(2)</code>") == "print(2)"


def test_observation_text():
    assert observation_text(ExecResult("ok", stdout="5\n"), 100) == "5"
    err = ExecResult("error", stderr="Traceback ...\nNameError: x\n", error="NameError: x")
    assert observation_text(err, 100) == "Traceback ...\nNameError: x"
    t = ExecResult("timeout", stdout="partial\n", error="TimeoutError: too slow")
    assert observation_text(t, 100) == "partial\nTimeoutError: too slow"
    assert observation_text(ExecResult("ok", stdout="a" * 50), 10) == "a" * 10 + "\n... (40 more characters cut)"


def test_tool_config_checks():
    with pytest.raises(ValueError, match="format"):
        ToolConfig(format="jupyter")
    with pytest.raises(ValueError, match="timeout_s"):
        ToolConfig(timeout_s=0)
    with pytest.raises(ValueError, match="stop"):
        ToolConfig(stop=[""])


def test_tool_metrics_by_hand():
    infos = [{"tool_calls": 2, "tool_errors": 1, "tool_timeouts": 1, "observation_tokens": 10, "tool_wait_s": 0.5},
             {"tool_calls": 0, "observation_tokens": 0, "tool_requests_refused": 1, "tool_wait_s": 0.5},
             {"tool_calls": 1, "tool_errors": 0, "observation_tokens": 4, "tool_wait_s": 0.5},
             {"tool_calls": 0, "observation_tokens": 0, "tool_wait_s": 0.5}]
    m = tool_metrics(infos, ["correct", "wrong", "wrong", "correct"])
    assert m == {"tools/calls_per_sample": 0.75, "tools/samples_with_calls": 0.5, "tools/error_rate": 1 / 3,
                 "tools/timeout_rate": 1 / 3, "tools/sandbox_errors": 0.0, "tools/refused_per_sample": 0.25,
                 "tools/observation_tokens": 3.5, "tools/wait_s": 2.0, "tools/accuracy_with_tool": 0.5,
                 "tools/accuracy_without_tool": 0.5}
    assert "tools/accuracy_with_tool" not in tool_metrics(infos[1:2], ["wrong"])


def _out(masks=None, infos=None):
    ids = [[1, 2, 3], [4, 5]]
    return RolloutOutput([[9], [9]], ids, [[-1.0] * 3, [-1.0] * 2], ["a", "b"], ["stop", "stop"], [0, 1],
                         loss_mask=masks, infos=infos)


def test_rollout_output_optional_fields():
    o = _out([[1, 0, 1], [1, 1]], [{"tool_calls": 1}, {}])
    assert o.select([1]).loss_mask == [[1, 1]] and o.select([1]).infos == [{}]
    both = RolloutOutput.concat([o, _out()])  # a plain output gets an all-ones mask and empty infos
    assert both.loss_mask == [[1, 0, 1], [1, 1], [1, 1, 1], [1, 1]] and both.infos[2:] == [{}, {}]
    assert RolloutOutput.concat([_out(), _out()]).loss_mask is None
    assert torch.equal(o.loss_mask_tensor(4), torch.tensor([[1., 0., 1., 0.], [1., 1., 0., 0.]]))
    with pytest.raises(ValueError, match="values in loss_mask"):
        _out([[1, 1], [1, 1]])
    with pytest.raises(ValueError, match="infos"):
        _out(infos=[{}])


def test_rollout_tools_in_the_run_config():
    from trainer.config import RLConfig
    from trainer.config_tree import REDACTED, ConfigError, load_config, public_dict

    cfg = load_config(RLConfig, None, ["rollout.tools.format=retool", "rollout.tools.token=s3cret",
                                       "rollout.tools.max_tool_calls=2"])
    assert cfg.rollout.tools.format == "retool" and cfg.rollout.tools.max_tool_calls == 2
    assert public_dict(cfg)["rollout"]["tools"]["token"] == REDACTED
    assert cfg.rollout_spec(sync_backend="auto", colocated=True).tools is cfg.rollout.tools
    assert load_config(RLConfig, None, []).rollout.tools is None  # off unless asked for
    with pytest.raises(ConfigError, match="rollout.tools.*format"):
        load_config(RLConfig, None, ["rollout.tools.format=jupyter"])
    with pytest.raises(ConfigError, match="rollout.tools.*bogus"):
        load_config(RLConfig, None, ["rollout.tools.bogus=1"])
