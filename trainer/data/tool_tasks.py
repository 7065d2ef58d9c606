"""Synthetic word problems a tiny model cannot do in its head but can with a calculator: multi-digit
multiplication and exact division, with tool-using and mental-arithmetic worked solutions (the CPU tool demo,
``trainer.tool_demo``).

Example (multiplication, 3 x 2 digits)::

    Q: A farm packs 347 boxes with 86 eggs in each box. How many eggs are there in all?
    tool-using (ToRL format, the output block is what the executor prints):
        We need 347 * 86.
        ```python
        print(347 * 86)
        ```
        ```output
        29842
        ```
        The answer is \\boxed{29842}.
    in its head (right: the teacher can multiply; a tiny student cannot):
        We need 347 * 86.
        347 * 86 = 29842.
        The answer is \\boxed{29842}.

Train and held-out problems never share a question (``trainer.data.synthetic.split_of``).
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from trainer.data.synthetic import draw_distinct

MUL = [("A farm packs {a} boxes with {b} eggs in each box. How many eggs are there in all?", "eggs"),
       ("A school orders {a} packs of {b} pencils each. How many pencils does the school get?", "pencils"),
       ("A train has {a} seats in each of its {b} cars. How many seats does the train have?", "seats"),
       ("Each of {a} shelves holds {b} books. How many books are on the shelves?", "books"),
       ("A baker fills {a} trays with {b} cookies each. How many cookies are there?", "cookies")]
DIV = [("{c} eggs are packed equally into {b} boxes. How many eggs are in each box?", "eggs"),
       ("A school shares {c} pencils equally among {b} classes. How many pencils does each class get?", "pencils"),
       ("{c} seats are split equally over {b} train cars. How many seats are in each car?", "seats"),
       ("{c} books are placed equally on {b} shelves. How many books are on each shelf?", "books"),
       ("A baker puts {c} cookies equally on {b} trays. How many cookies are on each tray?", "cookies")]


@dataclass(frozen=True)
class ToolTaskConfig:
    a_range: tuple[int, int] = (100, 999)   # the larger factor (and the quotient of a division)
    b_range: tuple[int, int] = (11, 99)     # the smaller factor (and the divisor)
    ops: tuple[str, ...] = ("mul", "div")
    heldout_fraction: float = 0.2

    def __post_init__(self):
        for name in ("a_range", "b_range"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        if not self.ops or set(self.ops) - {"mul", "div"}:
            raise ValueError(f"ops must be a non-empty subset of ('mul', 'div'), got {self.ops}")


@dataclass(frozen=True)
class ToolTask:
    question: str
    answer: str
    expression: str   # what to compute, as the solution writes it: "347 * 86" or "29842 / 86"
    code: str         # the Python a tool-using solution runs

    def tool_solution(self) -> str:
        return (f"We need {self.expression}.\n```python\n{self.code}\n```\n```output\n{self.answer}\n```\n"
                f"The answer is \\boxed{{{self.answer}}}.")

    def direct_solution(self) -> str:
        return f"We need {self.expression}.\n{self.expression} = {self.answer}.\nThe answer is \\boxed{{{self.answer}}}."


def make_task(rng: random.Random, cfg: ToolTaskConfig = ToolTaskConfig()) -> ToolTask:
    a, b = rng.randint(*cfg.a_range), rng.randint(*cfg.b_range)
    op = rng.choice(cfg.ops)
    if op == "mul":
        text, _ = rng.choice(MUL)
        return ToolTask(text.format(a=a, b=b), str(a * b), f"{a} * {b}", f"print({a} * {b})")
    text, _ = rng.choice(DIV)
    c = a * b
    return ToolTask(text.format(c=c, b=b), str(a), f"{c} / {b}", f"print({c} // {b})")


def generate_tasks(n: int, split: str = "train", seed: int = 0, config: ToolTaskConfig | None = None) -> list[ToolTask]:
    """``n`` distinct problems of ``split`` ("train" or "test"), deterministic given ``seed`` and ``config``."""
    cfg = config or ToolTaskConfig()
    return draw_distinct(lambda rng: make_task(rng, cfg), n, split, f"mathrl-tool-tasks-{seed}-{split}",
                         cfg.heldout_fraction, str(cfg))
