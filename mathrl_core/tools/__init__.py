"""Tool-integrated reasoning: multi-turn rollouts in which the policy runs Python through the sandbox.

    formats.py   how a tool call and its output look in the text (ToRL, ReTool): stop strings, code extraction,
                 the observation template (register_tool_format)
    config.py    ToolConfig (rollout.tools in the trainer, --tools in rl-eval) and the executor it builds
    rollout.py   ToolRollout: wraps any registered rollout backend (HF, vLLM): generate until a code block
                 closes, run it, append the output as an observation (masked out of the loss), continue
    metrics.py   per-step statistics: tool calls per sample, errors, timeouts, observation tokens, accuracy by
                 tool use

The executor itself is the ``sandbox`` package (usable alone, or as an HTTP service).
"""
