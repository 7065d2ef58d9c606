"""Synthetic arithmetic word problems with short worked solutions ending in ``\\boxed{answer}``.

Used by the CPU quickstart: SFT a tiny model on the solutions, then RL it against the reward service on
held-out problems. Everything is deterministic given the seed. Difficulty is tuned by the number of
operations per problem and the number ranges (:class:`SyntheticConfig`).

Train and held-out problems never share a question: a problem's split is a fixed function of its question
text (a SHA-256 bucket), so the held-out set is disjoint from every train set, whatever the seeds or sizes.

Example (2 operations)::

    Q: Mia has 7 marbles. She buys 5 more marbles. Then she gives 3 marbles to a friend.
       How many marbles does Mia have now?
    S: Mia starts with 7 marbles.
       She buys 5 more: 7 + 5 = 12.
       She gives 3 away: 12 - 3 = 9.
       The answer is \\boxed{9}.
"""
from __future__ import annotations

import hashlib
import json
import random
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable, Iterable, Optional, TypeVar

NAMES = [("Mia", "she"), ("Leo", "he"), ("Ava", "she"), ("Sam", "he"), ("Zoe", "she"), ("Max", "he"),
         ("Lily", "she"), ("Ben", "he"), ("Emma", "she"), ("Omar", "he"), ("Nora", "she"), ("Raj", "he"),
         ("Ivy", "she"), ("Tom", "he"), ("Sara", "she"), ("Eli", "he"), ("Maya", "she"), ("Jack", "he"),
         ("Ana", "she"), ("Kai", "he"), ("Lucy", "she"), ("Noah", "he"), ("Ella", "she"), ("Finn", "he")]
OBJECTS = ["apples", "marbles", "stickers", "books", "coins", "pencils", "cookies", "shells", "stamps",
           "cards", "balloons", "candies", "toy cars", "beads", "flowers", "eggs", "buttons", "crayons",
           "oranges", "rocks", "feathers", "puzzles", "kites", "bottles"]
OPENINGS = ["{name} has {n} {obj}.", "{name} starts with {n} {obj}.", "There are {n} {obj} in {name}'s box."]
QUESTIONS = ["How many {obj} does {name} have now?", "How many {obj} does {name} have in the end?",
             "How many {obj} are in {name}'s box at the end?"]
# Each phrase: (question sentence, solution verb phrase). {x} is the operand, {k} a factor.
PHRASES = {
    "add": [("{Pron} buys {x} more {obj}.", "buys {x} more"),
            ("{Pron} finds {x} more {obj}.", "finds {x} more"),
            ("A friend gives {obj_pron} {x} {obj}.", "gets {x} from a friend"),
            ("Then {pron} gets {x} more {obj} as a gift.", "gets {x} as a gift")],
    "sub": [("Then {pron} gives {x} {obj} to a friend.", "gives {x} away"),
            ("{Pron} loses {x} {obj}.", "loses {x}"),
            ("{Pron} sells {x} of the {obj}.", "sells {x}"),
            ("Then {pron} uses {x} {obj}.", "uses {x}")],
    "mul": [("Then {pron} ends up with {k} times as many {obj} as before.", "has {k} times as many"),
            ("Later the number of {obj} {pron} has becomes {k} times larger.", "has {k} times as many")],
    "div": [("{Pron} splits the {obj} into {k} equal groups and keeps one group.", "keeps one of {k} groups"),
            ("Then {pron} divides the {obj} equally among {k} boxes and keeps one box.", "keeps one of {k} boxes")],
}
SYMBOL = {"add": "+", "sub": "-", "mul": "*", "div": "/"}


@dataclass(frozen=True)
class SyntheticConfig:
    """Difficulty knobs. Numbers are drawn uniformly from the inclusive ranges."""

    min_ops: int = 1
    max_ops: int = 3
    start_range: tuple[int, int] = (2, 20)    # the starting amount
    operand_range: tuple[int, int] = (2, 10)  # amounts added / removed
    factor_range: tuple[int, int] = (2, 4)    # multiplication / division factors
    ops: tuple[str, ...] = ("add", "sub", "mul", "div")
    heldout_fraction: float = 0.2             # share of all possible questions reserved for the held-out split

    def __post_init__(self):
        if not 1 <= self.min_ops <= self.max_ops:
            raise ValueError(f"need 1 <= min_ops <= max_ops, got {self.min_ops}, {self.max_ops}")
        for name in ("start_range", "operand_range", "factor_range"):
            lo, hi = getattr(self, name)
            if not 1 <= lo <= hi:
                raise ValueError(f"{name} must satisfy 1 <= lo <= hi, got {(lo, hi)}")
        unknown = set(self.ops) - set(PHRASES)
        if unknown or not self.ops:
            raise ValueError(f"ops must be a non-empty subset of {sorted(PHRASES)}, got {self.ops}")
        if not 0.0 < self.heldout_fraction < 1.0:
            raise ValueError(f"heldout_fraction must be in (0, 1), got {self.heldout_fraction}")


@dataclass(frozen=True)
class SyntheticProblem:
    question: str
    solution: str  # a short worked solution ending in \boxed{answer}
    answer: str    # the gold answer (an integer, as text)
    num_ops: int
    ops: tuple[str, ...] = field(default=())

    def to_record(self) -> dict:
        d = asdict(self)
        d["ops"] = list(self.ops)
        return d


T = TypeVar("T")  # a generated problem: anything with a ``question``


def split_of(question: str, heldout_fraction: float = 0.2) -> str:
    """``"test"`` or ``"train"``: a fixed function of the question text (SHA-256 bucket)."""
    bucket = int(hashlib.sha256(question.encode("utf-8")).hexdigest()[:8], 16) / 0xFFFFFFFF
    return "test" if bucket < heldout_fraction else "train"


def _apply(op: str, cur: int, arg: int) -> int:
    return {"add": cur + arg, "sub": cur - arg, "mul": cur * arg, "div": cur // arg}[op]


def _choose_step(rng: random.Random, cur: int, cfg: SyntheticConfig) -> tuple[str, int] | None:
    """Pick an operation valid for the current amount (results stay positive integers)."""
    options = list(cfg.ops)
    rng.shuffle(options)
    for op in options:
        if op == "add":
            return op, rng.randint(*cfg.operand_range)
        if op == "sub":
            hi = min(cfg.operand_range[1], cur - 1)
            if hi >= cfg.operand_range[0]:
                return op, rng.randint(cfg.operand_range[0], hi)
        if op == "mul":
            return op, rng.randint(*cfg.factor_range)
        if op == "div":
            ks = [k for k in range(max(2, cfg.factor_range[0]), cfg.factor_range[1] + 1) if cur % k == 0]
            if ks:
                return op, rng.choice(ks)
    return None


def make_problem(rng: random.Random, cfg: SyntheticConfig = SyntheticConfig()) -> SyntheticProblem:
    """One random problem (consumes ``rng``)."""
    name, pron = rng.choice(NAMES)
    obj = rng.choice(OBJECTS)
    obj_pron = "her" if pron == "she" else "him"
    fmt = dict(name=name, pron=pron, Pron=pron.capitalize(), obj=obj, obj_pron=obj_pron)
    n_ops = rng.randint(cfg.min_ops, cfg.max_ops)
    cur = rng.randint(*cfg.start_range)
    sentences = [rng.choice(OPENINGS).format(n=cur, **fmt)]
    lines = [f"{name} starts with {cur} {obj}."]
    ops = []
    for _ in range(n_ops):
        step = _choose_step(rng, cur, cfg)
        if step is None:  # e.g. only "sub"/"div" allowed and nothing valid: stop early
            break
        op, arg = step
        text, verb = rng.choice(PHRASES[op])
        sentences.append(text.format(x=arg, k=arg, **fmt))
        new = _apply(op, cur, arg)
        lines.append(f"{pron.capitalize()} {verb.format(x=arg, k=arg)}: {cur} {SYMBOL[op]} {arg} = {new}.")
        ops.append(op)
        cur = new
    sentences.append(rng.choice(QUESTIONS).format(**fmt))
    lines.append(f"The answer is \\boxed{{{cur}}}.")
    return SyntheticProblem(" ".join(sentences), "\n".join(lines), str(cur), len(ops), tuple(ops))


def draw_distinct(make: Callable[[random.Random], T], n: int, split: str, rng_name: str, heldout_fraction: float,
                  what: str) -> list[T]:
    """``n`` distinct items of ``split`` ("train" or "test") drawn with ``make(rng)`` from ``random.Random(rng_name)``:
    an item belongs to the split that :func:`split_of` gives its ``question``, so train and test never share one.
    Gives up with a clear error after ``max(10000, 20 n)`` draws in a row without a new item of the split."""
    if split not in ("train", "test"):
        raise ValueError(f"split must be 'train' or 'test', got {split!r}")
    rng = random.Random(rng_name)
    seen: set[str] = set()
    out: list[T] = []
    misses, max_misses = 0, max(10_000, 20 * n)  # consecutive draws without a new problem of this split
    while len(out) < n:
        if misses > max_misses:
            raise ValueError(f"could only make {len(out)} distinct {split} problems out of {n} requested with "
                             f"{what}")
        item = make(rng)
        if item.question in seen or split_of(item.question, heldout_fraction) != split:
            misses += 1
            continue
        misses = 0
        seen.add(item.question)
        out.append(item)
    return out


def generate_problems(n: int, split: str = "train", seed: int = 0,
                      config: SyntheticConfig | None = None) -> list[SyntheticProblem]:
    """``n`` distinct problems of ``split`` ("train" or "test"), deterministic given ``seed`` and ``config``."""
    cfg = config or SyntheticConfig()
    return draw_distinct(lambda rng: make_problem(rng, cfg), n, split, f"mathrl-synthetic-{seed}-{split}",
                         cfg.heldout_fraction, f"{cfg}; widen the number ranges or allow more operations")


def synthetic_records(n: int, split: str = "train", seed: int = 0, config: SyntheticConfig | None = None) -> list[dict]:
    """Problems as JSON-able dicts with ``question``, ``answer``, ``solution`` (what ``load_records`` reads)."""
    return [p.to_record() for p in generate_problems(n, split, seed, config)]


def write_jsonl(path: str | Path, records: Iterable[dict]) -> Path:
    """Write records one JSON object per line (creates parent folders)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as f:
        for r in records:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


# ------------------------------------------------------------------------------------------------------------
# Imperfect demonstrations: worked solutions as a fallible teacher would write them.
#
# SFT data in SFT-then-RL pipelines is distilled from a teacher model, and a share of its traces is wrong: an
# arithmetic slip carried to the end, a right computation with a wrong number in the box, or an answer that
# is never boxed. Imitation learns those mistakes along with the skill; a correctness reward does not. The
# CPU quickstart uses such data (see ``trainer.quickstart``) so that it shows what RL adds over imitation.

STEP_RE = re.compile(r"(\d+) ([-+*/]) (\d+) = (-?\d+)\.$")
BOX_RE = re.compile(r"\\boxed\{(-?\d+)\}")
NOISE_KINDS = ("clean", "slip", "wrong_box", "no_box", "skip_last")


@dataclass(frozen=True)
class DemoNoise:
    """Per-solution rates of a fallible teacher's mistakes (they are exclusive; the rest is clean).

    - ``slip``: one step's result is off (by 1, 2 or 10, or a digit swap), and the following steps compute
      correctly from the wrong value, so the boxed answer is wrong but the trace is self-consistent.
    - ``wrong_box``: every step is right but the box holds an earlier number of the chain.
    - ``no_box``: the last line states the right answer without ``\\boxed{}`` (a format slip; graders that
      read "The answer is N", like ``reward_service.grading``, still count it correct).
    - ``skip_last``: (problems with two or more operations) the solution stops one operation early -- the story's
      last event is ignored -- and boxes the amount before it. On 1-operation problems this share is clean.
    """

    slip: float = 0.0
    wrong_box: float = 0.0
    no_box: float = 0.0
    skip_last: float = 0.0

    def __post_init__(self):
        for name in ("slip", "wrong_box", "no_box", "skip_last"):
            v = getattr(self, name)
            if not 0.0 <= v <= 1.0:
                raise ValueError(f"{name} must be in [0, 1], got {v}")
        if self.total > 1.0 + 1e-9:
            raise ValueError(f"noise rates sum to more than 1: {self}")

    @property
    def total(self) -> float:
        return self.slip + self.wrong_box + self.no_box + self.skip_last


@dataclass(frozen=True)
class SyntheticData(SyntheticConfig):
    """``data.synthetic`` of a recipe: the difficulty knobs, how many problems, their seed (default
    ``train.seed``) and, for SFT demonstrations, the teacher's mistake rates."""

    n: int = 2000
    seed: Optional[int] = None
    noise: Optional[DemoNoise] = None

    def __post_init__(self):
        super().__post_init__()
        if self.n < 1:
            raise ValueError(f"n must be >= 1, got {self.n}")


def _slipped(value: int, rng: random.Random) -> int:
    """A plausible wrong result for ``value``: off by 1, 2 or 10, or two digits swapped."""
    candidates = {value + 1, value - 1, value + 2, value - 2, value + 10, value - 10}
    s = str(value)
    if len(s) >= 2 and s[-1] != s[-2]:
        candidates.add(int(s[:-2] + s[-1] + s[-2]))
    candidates = sorted(c for c in candidates if c > 0 and c != value)
    return rng.choice(candidates)


def _slip_chain(lines: list[str], steps: list[int], at: int, rng: random.Random):
    """``(lines, final)`` with the result of step line ``at`` slipped and the later steps recomputed from it, or
    None when a later division is no longer exact or an amount drops to zero or below."""
    lines = list(lines)
    cur = None
    for i in steps:
        m = STEP_RE.search(lines[i])
        a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
        if cur is not None:
            a = cur
        if i < at:
            new = int(m.group(4))
        else:
            if op == "/" and a % b:
                return None
            new = {"+": a + b, "-": a - b, "*": a * b, "/": a // b}[op]
            if i == at:
                new = _slipped(new, rng)
        if new <= 0:
            return None
        lines[i] = lines[i][:m.start()] + f"{a} {op} {b} = {new}."
        cur = new
    return lines, cur


def imperfect_solution(problem: SyntheticProblem, rng: random.Random, noise: DemoNoise) -> tuple[str, str]:
    """``(solution, kind)``: the problem's worked solution, altered with the probabilities of ``noise``;
    ``kind`` is one of :data:`NOISE_KINDS`. Consumes ``rng``."""
    u = rng.random()
    lines = problem.solution.split("\n")
    steps = [i for i, line in enumerate(lines) if STEP_RE.search(line)]
    if u < noise.slip and steps:
        # A slip at a random step; later steps compute exactly from the wrong value. Retry where that makes a
        # later division inexact or lands on the right answer by chance; the last step always works.
        for attempt in range(8):
            at = rng.choice(steps) if attempt < 7 else steps[-1]
            slipped = _slip_chain(lines, steps, at, rng)
            if slipped is not None and slipped[1] != int(problem.answer):
                out, final = slipped
                out[-1] = f"The answer is \\boxed{{{final}}}."
                return "\n".join(out), "slip"
    if u < noise.slip + noise.wrong_box:
        chain = [int(re.search(r"starts with (\d+)", lines[0]).group(1))]
        chain += [int(STEP_RE.search(lines[i]).group(4)) for i in steps]
        others = sorted({v for v in chain if str(v) != problem.answer})
        if others:
            lines[-1] = f"The answer is \\boxed{{{rng.choice(others)}}}."
            return "\n".join(lines), "wrong_box"
        return problem.solution, "clean"
    if u < noise.slip + noise.wrong_box + noise.no_box:
        lines[-1] = f"The answer is {problem.answer}."
        return "\n".join(lines), "no_box"
    if u < noise.total and len(steps) >= 2:
        before = STEP_RE.search(lines[steps[-1]]).group(1)
        return "\n".join(lines[:steps[-1]] + [f"The answer is \\boxed{{{before}}}."]), "skip_last"
    return problem.solution, "clean"


def sft_records(n: int, seed: int = 0, config: SyntheticConfig | None = None,
                noise: DemoNoise | None = None) -> list[dict]:
    """``n`` train-split SFT records: ``question``, ``response`` (the possibly imperfect worked solution),
    ``answer`` (the true gold) and ``noise`` (which mistake, if any, the response has). Deterministic."""
    noise = noise or DemoNoise()
    rng = random.Random(f"mathrl-demo-noise-{seed}")
    out = []
    for p in generate_problems(n, "train", seed=seed, config=config):
        response, kind = imperfect_solution(p, rng, noise)
        out.append({"question": p.question, "response": response, "answer": p.answer, "noise": kind})
    return out


def main(argv=None) -> int:
    """``python -m trainer.data.synthetic --split test --n 300 --max-ops 1 --out FILE``: write problems as JSONL
    (``question``, ``answer``, ``solution``, ``id``), e.g. a held-out set for ``rl-eval run --benchmarks FILE``."""
    import argparse

    p = argparse.ArgumentParser(prog="python -m trainer.data.synthetic", description=main.__doc__)
    p.add_argument("--out", required=True)
    p.add_argument("--n", type=int, default=300)
    p.add_argument("--split", choices=["train", "test"], default="test")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--min-ops", type=int, default=1)
    p.add_argument("--max-ops", type=int, default=3)
    a = p.parse_args(argv)
    rows = synthetic_records(a.n, a.split, seed=a.seed, config=SyntheticConfig(min_ops=a.min_ops, max_ops=a.max_ops))
    if len(rows) < a.n:
        raise SystemExit(f"only {len(rows)} distinct {a.split} problems exist for these settings (asked {a.n})")
    print(write_jsonl(a.out, [{**r, "id": i} for i, r in enumerate(rows)]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
