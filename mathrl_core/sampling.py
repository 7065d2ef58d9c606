"""The sampling spec: how many samples per prompt and how to draw them. One spec for training rollouts and
evaluation (``rl-eval``), read by every rollout backend (``mathrl_core.rollout``).
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class SamplingConfig:
    n: int = 1                       # samples per prompt
    temperature: float = 1.0         # 0 = greedy
    top_p: float = 1.0
    top_k: int = -1                  # -1 or 0 = off (vLLM convention)
    max_new_tokens: int = 256
    stop: list[str] = field(default_factory=list)
    stop_token_ids: list[int] = field(default_factory=list)  # extra eos-like token ids (e.g. <|im_end|>)
    include_stop_str_in_output: bool = True
    seed: int | None = None          # None: draw from the global torch RNG (part of the run's RNG state)

    def __post_init__(self):
        if self.n < 1:
            raise ValueError(f"sampling.n must be >= 1, got {self.n}")
        if self.temperature < 0:
            raise ValueError(f"sampling.temperature must be >= 0, got {self.temperature}")
        if not 0.0 < self.top_p <= 1.0:
            raise ValueError(f"sampling.top_p must be in (0, 1], got {self.top_p}")
        if self.top_k < -1:
            raise ValueError(f"sampling.top_k must be -1 (off) or >= 0, got {self.top_k}")
        if self.max_new_tokens < 1:
            raise ValueError(f"sampling.max_new_tokens must be >= 1, got {self.max_new_tokens}")
        if isinstance(self.stop, str):
            self.stop = [self.stop]
        if any(not s for s in self.stop):
            raise ValueError("sampling.stop strings must be non-empty")

    @property
    def greedy(self) -> bool:
        return self.temperature == 0

    @property
    def logprob_temperature(self) -> float:
        """The temperature the reported log-probs use (:func:`logprob_temperature`)."""
        return logprob_temperature(self.temperature)


def logprob_temperature(temperature: float) -> float:
    """Log-probs are ``log softmax(logits / T)``; greedy decoding (T = 0) reports them at T = 1.

    The one rule every backend and every trainer forward (policy, reference, old log-probs) follows, so the
    numbers of a rollout and of the trainer's recomputation agree."""
    return temperature if temperature > 0 else 1.0
