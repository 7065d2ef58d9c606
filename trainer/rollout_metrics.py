"""Per-step statistics of the sampled responses (pure functions over lists)."""
from __future__ import annotations

import re
from typing import Sequence

# Reflection keywords SimpleRL-Zoo tracks to watch "aha" behaviour emerge (whole words, case-insensitive).
REFLECTION_WORDS = ("wait", "recheck", "re-check", "rethink", "reassess", "re-evaluate", "reevaluate",
                    "reconsider", "double-check", "double check", "check again", "let me verify",
                    "let me check", "verify", "alternatively", "however", "re-examine", "mistake")
_REFLECTION_RE = re.compile(r"\b(" + "|".join(re.escape(w) for w in REFLECTION_WORDS) + r")\b", re.IGNORECASE)


def reflection_rate(texts: Sequence[str]) -> float:
    """Fraction of responses that contain at least one reflection keyword."""
    if not texts:
        return 0.0
    return sum(1 for t in texts if _REFLECTION_RE.search(t)) / len(texts)


def verdict_rates(verdicts: Sequence[str]) -> dict[str, float]:
    n = max(len(verdicts), 1)
    return {"reward/accuracy": sum(v == "correct" for v in verdicts) / n,
            "reward/wrong_rate": sum(v == "wrong" for v in verdicts) / n,
            "reward/no_answer_rate": sum(v == "no_answer" for v in verdicts) / n}


def length_stats(lengths: Sequence[int], finish_reasons: Sequence[str]) -> dict[str, float]:
    n = max(len(lengths), 1)
    return {"response/length_mean": sum(lengths) / n,
            "response/length_max": float(max(lengths, default=0)),
            "response/length_min": float(min(lengths, default=0)),
            "response/truncated_frac": sum(r == "length" for r in finish_reasons) / n}
