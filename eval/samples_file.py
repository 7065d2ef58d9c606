"""Read a samples file made elsewhere (for ``rl-eval score``) into problems with their completions.

One JSON object per line; fields (first match wins, extra fields are ignored)::

    benchmark   benchmark | dataset | data_source | task           (default: the file's stem)
    id          id | idx | prompt_id | problem_id | unique_id       (default: the line number)
    gold        gold | answer | gt | ground_truth | label | final_answer | reference
                str, int, float or a list of accepted answers; a GSM8K rationale "... #### N" gives N,
                "$...$" delimiters are removed, integers lose zero padding ("025" -> "25", 27.0 -> "27")
    completions completions | responses | outputs | samples | generations  (a list of str or {"text": ...})
                or a single completion | response | output | text (str)
    num_tokens  optional token count per completion: num_tokens | token_counts | lengths (list or int)
    prompt      optional: prompt | question | problem (kept in the output records)

Lines with the same (benchmark, id) are merged in file order, so one-sample-per-line files work; their
golds must agree. The number of samples may differ between problems (pass@k / maj@k then count only
problems with at least k samples; the summary says how many).
"""
from __future__ import annotations

import json
import logging
import re
from pathlib import Path
from typing import Any, Optional, Union

from eval.benchmarks import Problem
from mathrl_core.data_files import iter_jsonl, read_utf8
from mathrl_core.records import gsm8k_gold, number_gold, strip_dollars
from mathrl_core.completion import Completion, as_completion
from eval.scoring import ProblemSamples

log = logging.getLogger(__name__)

BENCH_KEYS = ("benchmark", "dataset", "data_source", "task")
ID_KEYS = ("id", "idx", "prompt_id", "problem_id", "unique_id")
GOLD_KEYS = ("gold", "answer", "gt", "ground_truth", "label", "final_answer", "reference")
LIST_KEYS = ("completions", "responses", "outputs", "samples", "generations")
ONE_KEYS = ("completion", "response", "output", "text")
TOKEN_KEYS = ("num_tokens", "token_counts", "lengths")
PROMPT_KEYS = ("prompt", "question", "problem")


class SamplesFileError(ValueError):
    """A samples file line that cannot be used; the message names the file and line."""


def normalise_gold(g: Any) -> Union[str, list]:
    """Gold as the grader gets it: numbers canonical, "$" delimiters off, GSM8K rationales -> final number."""
    if isinstance(g, bool) or g is None or isinstance(g, dict):
        raise ValueError(f"unsupported gold {g!r}")
    if isinstance(g, (int, float)):
        return number_gold(g)
    if isinstance(g, (list, tuple)):
        out = [normalise_gold(x) for x in g if not (isinstance(x, str) and not x.strip())]
        if not out:
            raise ValueError("empty gold list")
        return [x for i, x in enumerate(out) if x not in out[:i]]
    s = str(g).strip()
    if not s:
        raise ValueError("empty gold")
    if "####" in s:
        return gsm8k_gold(s)
    if s.startswith("$") and s.endswith("$") and len(s) > 1:
        s = strip_dollars(s)
    return number_gold(s) if re.fullmatch(r"[+-]?\d+", s) else s


def _pick(row: dict, keys) -> tuple[Optional[str], Any]:
    for k in keys:
        if k in row and row[k] is not None:
            return k, row[k]
    return None, None


def read_samples_file(path: Union[str, Path]) -> list[ProblemSamples]:
    """Parse a samples file (see the module docstring) into :class:`ProblemSamples`, in first-seen order."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"samples file not found: {path}")
    merged: dict[tuple, ProblemSamples] = {}
    for lineno, row in _rows(path):
        where = f"{path}:{lineno}"
        if not isinstance(row, dict):
            raise SamplesFileError(f"{where}: expected a JSON object, got {type(row).__name__}")
        try:
            ps = _parse_row(row, path.stem, lineno)
        except (ValueError, TypeError) as e:
            raise SamplesFileError(f"{where}: {e}") from e
        key = (ps.problem.benchmark, ps.problem.id)
        if key in merged:
            prev = merged[key]
            if prev.problem.gold != ps.problem.gold:
                raise SamplesFileError(f"{where}: {key[0]}/{key[1]} appears again with another gold "
                                       f"({prev.problem.gold!r} vs {ps.problem.gold!r})")
            prev.completions.extend(ps.completions)
        else:
            merged[key] = ps
    if not merged:
        raise SamplesFileError(f"{path}: no samples")
    empty = [f"{b}/{i}" for (b, i), ps in merged.items() if not ps.completions]
    if empty:
        log.warning("%d problem(s) have no completions and are left out: %s", len(empty), ", ".join(empty[:10]))
    return [ps for ps in merged.values() if ps.completions]


def _rows(path: Path):
    """``(line number, parsed row)`` of a JSONL file; a file holding one JSON array is accepted too
    (its items are numbered from 1)."""
    try:
        text = read_utf8(path)
        if text.lstrip().startswith("["):
            try:
                data = json.loads(text)
            except json.JSONDecodeError:
                data = None
            if isinstance(data, list):
                yield from enumerate(data, 1)
                return
        yield from iter_jsonl(path, text)
    except ValueError as e:
        raise SamplesFileError(str(e)) from e


def _parse_row(row: dict, default_bench: str, lineno: int) -> ProblemSamples:
    _, bench = _pick(row, BENCH_KEYS)
    _, pid = _pick(row, ID_KEYS)
    gkey, gold = _pick(row, GOLD_KEYS)
    if gkey is None:
        raise ValueError(f"no gold field (one of {', '.join(GOLD_KEYS)}); fields: {sorted(row)}")
    lkey, comps = _pick(row, LIST_KEYS)
    if lkey is None:
        okey, one = _pick(row, ONE_KEYS)
        if okey is None:
            raise ValueError(f"no completions field (one of {', '.join(LIST_KEYS + ONE_KEYS)}); fields: {sorted(row)}")
        comps = [one]
    if isinstance(comps, (str, dict)):
        comps = [comps]
    if not isinstance(comps, list):
        raise ValueError(f"completions must be a list, got {type(comps).__name__}")
    completions = [as_completion(c) for c in comps]
    _, toks = _pick(row, TOKEN_KEYS)
    if toks is not None:
        toks = toks if isinstance(toks, list) else [toks]
        if len(toks) != len(completions):
            raise ValueError(f"{len(toks)} token counts for {len(completions)} completions")
        completions = [Completion(c.text, int(t) if t is not None else c.num_tokens, c.finish_reason)
                       for c, t in zip(completions, toks)]
    n = row.get("n")
    if isinstance(n, int) and n != len(completions):
        log.warning("line %d: n=%d but %d completions; using the completions", lineno, n, len(completions))
    _, prompt = _pick(row, PROMPT_KEYS)
    problem = Problem(str(bench) if bench is not None else default_bench,
                      str(pid) if pid is not None else str(lineno), str(prompt or ""), normalise_gold(gold))
    return ProblemSamples(problem, completions, str(prompt) if prompt is not None else None)
