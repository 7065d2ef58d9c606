"""How a tool call and its result look in the response text.

A format names the stop strings at which generation pauses for a tool call, how to find the code in the text the
model wrote since the last observation, and how the executor's result is written back (the observation; its
tokens are masked out of the policy loss).

- ``torl`` (ToRL, Qwen2.5-Math TIR): the model writes ```` ```python ... ``` ```` and then ```` ```output ````;
  generation stops there and the observation is the output followed by a closing fence::

      ```python
      print(123 * 456)
      ```
      ```output
      56088
      ```

- ``retool`` (ReTool): ``<code>```python ... ```</code>``, stop at ``</code>``, observation
  ``<interpreter>...</interpreter>``.

A new format is one :func:`register_tool_format` call.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Optional

from mathrl_core.registry import Registry
from sandbox.limits import ExecResult


@dataclass(frozen=True)
class ToolFormat:
    name: str
    stops: tuple[str, ...]          # generation pauses when the model writes one of these
    code_pattern: str               # regex (DOTALL) with one group: the code; the last match in the segment wins
    observation: str                # template with {output}: the text inserted after the stop string
    description: str = ""

    def extract_code(self, segment: str) -> Optional[str]:
        """The code of the last complete block in ``segment`` (the model's text since the last observation, up to
        and including the stop string)."""
        matches = re.findall(self.code_pattern, segment, flags=re.DOTALL)
        if not matches:
            return None
        code = matches[-1].strip("\n")
        return code if code.strip() else None

    def render(self, output: str) -> str:
        return self.observation.format(output=output)


TOOL_FORMATS: Registry[ToolFormat] = Registry("tool format")


def register_tool_format(fmt: ToolFormat, overwrite: bool = False) -> ToolFormat:
    return TOOL_FORMATS.add(fmt.name, fmt, overwrite)


def get_tool_format(name: str) -> ToolFormat:
    return TOOL_FORMATS.lookup(name)


register_tool_format(ToolFormat(
    "torl", stops=("```output",), code_pattern=r"```python[ \t]*\n(.*?)```", observation="\n{output}\n```\n",
    description="ToRL / Qwen2.5-Math TIR: ```python ... ``` then ```output (stop), the output and a closing fence"))
register_tool_format(ToolFormat(
    "retool", stops=("</code>",), code_pattern=r"<code>\s*(?:```(?:python)?[ \t]*\n)?(.*?)(?:```\s*)?</code>",
    observation="\n<interpreter>\n{output}\n</interpreter>\n",
    description="ReTool: <code>```python ... ```</code> (stop), then <interpreter>output</interpreter>"))

NO_CODE = "(no code block to run)"
LIMIT_REACHED = "(tool call limit reached: this code was not run)"


def observation_text(result: ExecResult, max_chars: int) -> str:
    """What the model reads back: stdout, then stderr (the snippet's traceback) and, for a limit or a sandbox
    failure, the one-line error; cut to ``max_chars`` (head kept, the cut marked)."""
    parts = [result.stdout.rstrip("\n")]
    if result.stderr.strip():
        parts.append(result.stderr.rstrip("\n"))
    if not result.ok and result.error and result.error not in result.stderr:
        parts.append(result.error)
    text = "\n".join(p for p in parts if p)
    if len(text) > max_chars:
        text = text[:max_chars] + f"\n... ({len(text) - max_chars} more characters cut)"
    return text
