"""Rollouts with known rewards, shared by the interop tests and the upstream scripts they run.

Rewards are the service's default scheme, ``simplerl``: +1 correct, -0.5 wrong, -1 no answer.
"""
from __future__ import annotations

# Qwen2.5-Math's system prompt: it asks for a box, and the box it shows is empty.
SYSTEM = "Please reason step by step, and put your final answer within \\boxed{}."

# (problem, response, label, reward). Labels are what a JSONL data set holds: strings or numbers.
SAMPLES = [
    ("What is 2+3?", "2 + 3 = 5, so the answer is \\boxed{5}.", "5", 1.0),
    ("What is 1/2 + 1/4?", "Adding the fractions gives \\boxed{0.7}.", "3/4", -0.5),
    ("Compute 7*6.", "Let me think about it. 7*6 is", "42", -1.0),
    # a boxed example inside the prompt is not the answer: only the response is graded
    ("Example: \\boxed{9} is how to answer. What is 4+5?", "I am not sure.", "9", -1.0),
    ("What is 10-3?", "10 - 3 = 7.\n\nFinal answer: \\boxed{7}", 7, 1.0),
]


def messages(problem: str) -> list[dict]:
    return [{"role": "system", "content": SYSTEM}, {"role": "user", "content": problem}]


def big_batch(n_prompts: int, n: int, filler_words: int = 120) -> list[tuple[str, list[str], str, list[float]]]:
    """``n_prompts`` problems with ``n`` responses each (a whole OpenRLHF 0.9.0 rollout batch), a few hundred
    tokens of reasoning each: per prompt half of them right, a quarter wrong, a quarter without an answer.
    Returns (problem, responses, label, rewards) per prompt."""
    filler = " ".join(["so we add the two numbers carefully and check the sum once more"] * (filler_words // 12))
    out = []
    for i in range(n_prompts):
        a, b = 3 * i + 1, 7 * i + 2
        responses, rewards = [], []
        for j in range(n):
            kind = j % 4
            if kind in (0, 1):
                responses.append(f"We need {a} + {b}. {filler}. The answer is \\boxed{{{a + b}}}.")
                rewards.append(1.0)
            elif kind == 2:
                responses.append(f"We need {a} + {b}. {filler}. The answer is \\boxed{{{a + b + 1}}}.")
                rewards.append(-0.5)
            else:
                responses.append(f"We need {a} + {b}. {filler}. I ran out of time before")
                rewards.append(-1.0)
        out.append((f"What is {a} + {b}?", responses, str(a + b), rewards))
    return out


# A prompt longer than the prompt budget: OpenRLHF keeps its last tokens, so the query no longer starts with
# (or contains) the prompt it sends. The kept end of the user turn asks for the answer in an empty box, as many
# math data sets do; the response must be graded, never that instruction.
LONG_PREAMBLE = " ".join(f"Fact {i}: the number {i} is {'even' if i % 2 == 0 else 'odd'}." for i in range(60))
TRUNCATED = (LONG_PREAMBLE + " Now, what is 2+3? Put your final answer within \\boxed{}.",
             "2 + 3 = 5, so the answer is \\boxed{5}.", "5", 1.0)
TRUNCATED_KEEP = 48  # prompt tokens OpenRLHF keeps (max_len - max_new_tokens): the question and instruction
