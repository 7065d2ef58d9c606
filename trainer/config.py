"""The RL config tree: every hyper-parameter of a run in one place (CleanRL style), grouped by role.

Batch arithmetic (OpenRLHF naming in brackets):
    samples per step      = rollout.prompts_per_step [rollout_batch_size] x rollout.n [n_samples_per_prompt]
    optimizer steps/epoch = samples per step / train.minibatch_size [train_batch_size]
    grad accumulation     = train.minibatch_size / (train.micro_batch_size x data-parallel ranks)
    updates per step      = train.ppo_epochs x optimizer steps/epoch
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal, Optional

from mathrl_core.rollout.registry import ROLLOUT_BACKENDS, RolloutSpec
from mathrl_core.rollout.weight_sync import resolve_sync_backend
from mathrl_core.sampling import logprob_temperature
from mathrl_core.tools.config import ToolConfig
from trainer.algorithms.estimators import ADVANTAGE_ESTIMATORS, AdvantageEstimator, get_estimator
from trainer.algorithms.offpolicy import OFF_POLICY_CORRECTIONS
from trainer.config_tree import SECRET, ConfigError
from trainer.data.synthetic import SyntheticData
from trainer.models.tiny import TinyModelConfig


@dataclass
class LoraConfig:
    rank: int = 0                      # 0 disables LoRA
    alpha: int = 16
    dropout: float = 0.0
    target_modules: list[str] = field(default_factory=lambda: ["q_proj", "k_proj", "v_proj", "o_proj",
                                                               "gate_proj", "up_proj", "down_proj"])
    load_in_4bit: bool = False         # bitsandbytes, GPU only


@dataclass
class ModelConfig:
    pretrain: str = ""                 # hub id or local path of the policy (also the reference)
    critic_pretrain: Optional[str] = None  # defaults to `pretrain` (SimpleRL initialises the critic from the policy)
    tokenizer: Optional[str] = None    # defaults to `pretrain`
    dtype: Literal["float32", "bfloat16", "float16"] = "bfloat16"
    gradient_checkpointing: bool = False
    attn_implementation: Optional[str] = None
    trust_remote_code: bool = False
    lora: LoraConfig = field(default_factory=LoraConfig)
    # Build a tiny model + tokenizer locally (no hub) when `pretrain` is empty (trainer.models.tiny)
    tiny: Optional[TinyModelConfig] = None


@dataclass
class DataConfig:
    train: str = ""                    # file (.jsonl/.json/.parquet), hub id, or "synthetic"
    split: str = "train"
    question_key: Optional[str] = None
    answer_key: Optional[str] = None
    template: str = "qwen_boxed"
    max_prompt_tokens: int = 1024      # longer prompts are dropped (counted in metrics), never truncated
    limit: Optional[int] = None        # use only the first N records
    synthetic: Optional[SyntheticData] = None  # generator options when train == "synthetic"


@dataclass
class RolloutConfig:
    backend: str = "hf"                # a name in mathrl_core.rollout.registry.ROLLOUT_BACKENDS: hf | vllm
    prompts_per_step: int = 8
    n: int = 8                         # samples per prompt (the GRPO group size)
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = -1
    max_new_tokens: int = 512
    stop: list[str] = field(default_factory=list)
    include_stop_str_in_output: bool = True
    micro_batch_size: int = 64         # HF generate batch
    # HF generate with a preallocated KV cache, grouped-query decode attention, one prefill per distinct prompt
    # and sampling in our logits processor (mathrl_core/rollout/hf_decode.py); false = stock generate
    hf_fast_decode: bool = True
    # vLLM engines (distributed runtime)
    num_engines: int = 1
    tensor_parallel_size: int = 1
    gpu_memory_utilization: float = 0.8
    enforce_eager: bool = False
    enable_sleep: bool = False
    # weight sync into vLLM: cpu_reload (everywhere; the only route on CPU), nccl (GPU engines on other devices
    # or nodes: one broadcast per parameter from policy rank 0), ipc (engine on the trainer's GPU, local only)
    sync_backend: Literal["auto", "cpu_reload", "nccl", "ipc"] = "auto"
    kv_cache_memory_bytes: Optional[int] = None  # vLLM KV cache size (default on CPU: 1 GiB)
    # Asynchronous RL (trainer/async_rl): the rollout generates the next batches with the newest weights it has
    # while the trainer trains; a sample may come from weights up to max_staleness policy versions behind the
    # trainer's. 0 = synchronous (generate, then train, on the same weights).
    max_staleness: int = 0
    partial_rollout: bool = False      # async: unfinished sequences continue under new weights mid-generation
    partial_rollout_chunk: int = 16    # partial rollouts: new tokens generated between checks for new weights
    async_timeout_s: float = 600.0     # async: no batch (or a stuck rollout process) for this long stops the run
    # multi-turn tool use (mathrl_core.tools): the policy runs Python in a sandbox; max_new_tokens bounds the whole
    # response, tool output included (masked out of the loss, KL and entropy)
    tools: Optional[ToolConfig] = None


@dataclass
class RewardConfig:
    url: Optional[str] = None          # reward service; None starts one on a free loopback port
    token: Optional[str] = field(default=None, metadata=SECRET)  # bearer token (default: $REWARD_SERVICE_TOKEN)
    scheme: str = "simplerl"
    timeout_s: float = 120.0           # per HTTP request
    retries: int = 5
    workers: int = 2                   # grading processes of a locally started service
    grading_timeout_s: float = 2.0     # per item, locally started service
    # a sample the service could not grade in time (twice, on two workers: reward/timeout_rate) has no verdict:
    # true leaves it out of the loss (and gives it its group's mean reward) instead of its scheme's wrong reward
    exclude_timeouts: bool = False


@dataclass
class AlgorithmConfig:
    advantage: str = "grpo"            # a name in trainer.algorithms.estimators.ADVANTAGE_ESTIMATORS
    gamma: float = 1.0
    lam: float = 0.95
    group_eps: float = 1e-6
    whiten_advantages: bool = False    # batch whitening of GAE advantages
    # KL to the reference policy
    kl_coef: float = 0.0               # beta; 0 skips the reference model entirely
    kl_estimator: Literal["k1", "k2", "k3"] = "k1"
    kl_mode: Literal["reward", "loss"] = "reward"   # per-token reward penalty (PPO) or a loss term (GRPO)
    # policy loss
    clip_low: float = 0.2
    clip_high: float = 0.2             # > clip_low: DAPO clip-higher
    dual_clip: Optional[float] = None  # e.g. 3.0
    loss_agg: Literal["token_mean", "seq_mean_token_mean", "seq_sum"] = "token_mean"
    loss_constant: Optional[float] = None  # Dr.GRPO normaliser for seq_sum (default: max_new_tokens)
    entropy_coef: float = 0.0
    ratio_early_stop: Optional[float] = None  # RLinf: skip micro-batches whose mean ratio exceeds this
    # critic
    value_clip: Optional[float] = 0.2
    # DAPO options
    dynamic_sampling: bool = False
    dynamic_sampling_max_rounds: int = 3
    overlong_filter: bool = False      # truncated samples contribute no loss
    overlong_buffer: int = 0           # >0 enables soft overlong punishment over this many tokens
    overlong_penalty: float = 1.0
    # rollout/trainer mismatch correction (truncated importance sampling); None disables
    tis_cap: Optional[float] = None
    # off-policy correction of the behaviour (rollout) vs proximal (trainer) policy, trainer/algorithms/offpolicy.py;
    # with it the loss is the decoupled PPO objective. tis_cap: X is off_policy_correction=tis_token with cap X.
    off_policy_correction: Optional[str] = None  # a name of trainer.algorithms.offpolicy.OFF_POLICY_CORRECTIONS
    off_policy_cap: float = 2.0        # C: the truncation cap / mask threshold (icepop: the band [1/C, C])


@dataclass
class TrainConfig:
    strategy: Literal["torch", "deepspeed"] = "torch"
    zero_stage: int = 2
    offload_optimizer: bool = False
    offload_params: bool = False
    ppo_epochs: int = 1
    minibatch_size: int = 64           # samples per optimizer step
    micro_batch_size: int = 8          # samples per forward/backward
    # forward each distinct prompt of a micro-batch once and the n responses against its KV cache (same values
    # and gradients; off with gradient checkpointing, which disables the cache); minibatch rows are grouped by
    # prompt before the split into micro-batches (same minibatch gradient)
    shared_prompt_forward: bool = True
    actor_lr: float = 1e-6
    critic_lr: float = 9e-6
    weight_decay: float = 0.0
    adam_betas: list[float] = field(default_factory=lambda: [0.9, 0.95])
    max_grad_norm: float = 1.0
    lr_scheduler: Literal["cosine", "constant"] = "constant"
    warmup_ratio: float = 0.0
    min_lr_ratio: float = 0.1          # cosine decays to min_lr_ratio x lr
    total_steps: Optional[int] = None  # RL steps; default: episodes x ceil(len(data) / prompts_per_step)
    episodes: int = 1
    seed: int = 42
    device: str = "auto"               # "auto" -> cuda if available else cpu


@dataclass
class EvalConfig:
    every_steps: int = 0               # 0 disables the eval hook
    benchmarks: list[str] = field(default_factory=list)
    data: Optional[str] = None         # held-out file (e.g. synthetic held-out) instead of named benchmarks
    limit: Optional[int] = None
    n: int = 1
    temperature: float = 0.0
    max_new_tokens: Optional[int] = None
    data_dir: Optional[str] = None


@dataclass
class LoggingConfig:
    output_dir: str = "runs/default"
    save_steps: int = 0                # 0: save only at the end
    keep_checkpoints: int = 2
    tensorboard: bool = True
    wandb: bool = False
    wandb_project: str = "mathrl"
    progress_bar: bool = True


@dataclass
class RayConfig:
    enabled: bool = False
    address: Optional[str] = None      # RAY_ADDRESS / "auto"; None starts a local cluster
    num_cpus: Optional[int] = None
    actor_num_gpus: float = 0.0
    actor_ranks: int = 1
    critic_ranks: int = 1
    ref_ranks: int = 1
    colocate_actor_ref: bool = True
    colocate_all: bool = False
    cpus_per_rank: float = 1.0
    call_timeout_s: float = 1800.0     # bounded wait for every remote call


@dataclass
class RLConfig:
    name: str = "run"
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    rollout: RolloutConfig = field(default_factory=RolloutConfig)
    reward: RewardConfig = field(default_factory=RewardConfig)
    algorithm: AlgorithmConfig = field(default_factory=AlgorithmConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    eval: EvalConfig = field(default_factory=EvalConfig)
    logging: LoggingConfig = field(default_factory=LoggingConfig)
    ray: RayConfig = field(default_factory=RayConfig)

    def __post_init__(self):
        validate(self)

    @property
    def samples_per_step(self) -> int:
        return self.rollout.prompts_per_step * self.rollout.n

    @property
    def is_async(self) -> bool:
        """Asynchronous RL: the rollout runs ahead of the trainer by up to ``rollout.max_staleness`` versions."""
        return self.rollout.max_staleness > 0

    @property
    def off_policy(self) -> Optional[tuple[str, float]]:
        """The off-policy correction ``(kind, cap)`` (``trainer.algorithms.offpolicy``), or None."""
        a = self.algorithm
        if a.tis_cap is not None:
            return "tis_token", a.tis_cap
        if a.off_policy_correction is not None:
            return a.off_policy_correction, a.off_policy_cap
        return None

    # ---- rules derived from the config, computed here and nowhere else ----------------------------------
    @property
    def estimator(self) -> AdvantageEstimator:
        return get_estimator(self.algorithm.advantage)

    @property
    def uses_critic(self) -> bool:
        return self.estimator.needs_critic

    @property
    def uses_reference(self) -> bool:
        """A KL term needs the reference policy's log-probs; ``kl_coef = 0`` skips the reference entirely."""
        return self.algorithm.kl_coef > 0

    @property
    def kl_in_reward(self) -> bool:
        """The KL penalty goes into the per-token rewards (PPO style)."""
        return self.uses_reference and self.algorithm.kl_mode == "reward"

    @property
    def kl_in_loss(self) -> bool:
        """The KL is a loss term of the policy update (GRPO style)."""
        return self.uses_reference and self.algorithm.kl_mode == "loss"

    @property
    def reference_is_policy_base(self) -> bool:
        """LoRA: the frozen base under the adapters *is* the reference (read with the adapters disabled, no
        second copy of the model), as TRL and OpenRLHF do."""
        return self.uses_reference and self.model.lora.rank > 0

    @property
    def logprob_temperature(self) -> float:
        """The temperature of every log-prob the trainer computes (policy, reference, old): the rollout's."""
        return logprob_temperature(self.rollout.temperature)

    @property
    def max_model_len(self) -> int:
        """Prompt + response token budget of an engine (longer prompts are dropped, never truncated)."""
        return self.data.max_prompt_tokens + self.rollout.max_new_tokens

    def grad_accumulation(self, world_size: int = 1) -> int:
        """Micro-batches per optimizer step on each of ``world_size`` data-parallel ranks."""
        return max(1, self.train.minibatch_size // (self.train.micro_batch_size * world_size))

    def sync_backend(self, *, on_cpu: bool, same_process: bool) -> str:
        """The weight-sync route to the rollout engines (``rollout.sync_backend`` resolved for a placement):
        the local run's engine lives in the trainer's process; Ray engines are other processes, colocated on
        the policy's devices with ``ray.colocate_all``."""
        colocated = same_process or self.ray.colocate_all
        return resolve_sync_backend(self.rollout.sync_backend, on_cpu=on_cpu, colocated=colocated,
                                    same_process=same_process)

    def rollout_spec(self, *, sync_backend: str, colocated: bool) -> RolloutSpec:
        """The engine settings of this run's rollout backend (``mathrl_core.rollout.registry``)."""
        r, m = self.rollout, self.model
        return RolloutSpec(backend=r.backend, micro_batch_size=r.micro_batch_size, hf_fast_decode=r.hf_fast_decode,
                           dtype=m.dtype, tensor_parallel_size=r.tensor_parallel_size,
                           gpu_memory_utilization=r.gpu_memory_utilization,
                           kv_cache_memory_bytes=r.kv_cache_memory_bytes, enforce_eager=r.enforce_eager,
                           enable_sleep=r.enable_sleep, sync_backend=sync_backend, colocated=colocated,
                           max_model_len=self.max_model_len, seed=self.train.seed,
                           trust_remote_code=m.trust_remote_code, tools=r.tools)


def _positive(key: str, value, allow_zero: bool = False):
    if value is None:
        return
    if value < 0 or (value == 0 and not allow_zero):
        raise ConfigError(f"{key}: must be {'>= 0' if allow_zero else '> 0'}, got {value}")


def validate(cfg: RLConfig) -> None:
    """Range and consistency checks that the type annotations cannot express. Errors name the key."""
    r, t, a = cfg.rollout, cfg.train, cfg.algorithm
    for key, value in [("rollout.prompts_per_step", r.prompts_per_step), ("rollout.n", r.n),
                       ("rollout.max_new_tokens", r.max_new_tokens), ("train.ppo_epochs", t.ppo_epochs),
                       ("train.minibatch_size", t.minibatch_size), ("train.micro_batch_size", t.micro_batch_size),
                       ("train.actor_lr", t.actor_lr), ("train.episodes", t.episodes),
                       ("data.max_prompt_tokens", cfg.data.max_prompt_tokens), ("train.total_steps", t.total_steps)]:
        _positive(key, value)
    for key, value in [("rollout.temperature", r.temperature), ("algorithm.kl_coef", a.kl_coef),
                       ("algorithm.clip_low", a.clip_low), ("algorithm.clip_high", a.clip_high),
                       ("train.weight_decay", t.weight_decay), ("train.max_grad_norm", t.max_grad_norm),
                       ("algorithm.entropy_coef", a.entropy_coef)]:
        _positive(key, value, allow_zero=True)
    if not 0 < r.top_p <= 1:
        raise ConfigError(f"rollout.top_p: must be in (0, 1], got {r.top_p}")
    if not 0 <= a.gamma <= 1 or not 0 <= a.lam <= 1:
        raise ConfigError("algorithm.gamma and algorithm.lam must be in [0, 1]")
    if not 0 <= t.warmup_ratio < 1:
        raise ConfigError(f"train.warmup_ratio: must be in [0, 1), got {t.warmup_ratio}")
    if not 0 <= t.min_lr_ratio <= 1:
        raise ConfigError(f"train.min_lr_ratio: must be in [0, 1], got {t.min_lr_ratio}")
    if a.dual_clip is not None and a.dual_clip <= 1:
        raise ConfigError(f"algorithm.dual_clip: must be > 1, got {a.dual_clip}")
    if a.ratio_early_stop is not None and a.ratio_early_stop <= 1:
        raise ConfigError(f"algorithm.ratio_early_stop: must be > 1, got {a.ratio_early_stop}")
    if a.tis_cap is not None and a.tis_cap <= 0:
        raise ConfigError(f"algorithm.tis_cap: must be > 0, got {a.tis_cap}")
    if a.off_policy_correction is not None and a.off_policy_correction not in OFF_POLICY_CORRECTIONS:
        raise ConfigError(f"algorithm.off_policy_correction: unknown {a.off_policy_correction!r}; one of "
                          f"{sorted(OFF_POLICY_CORRECTIONS)}")
    if a.tis_cap is not None and a.off_policy_correction is not None:
        raise ConfigError("algorithm.tis_cap and algorithm.off_policy_correction both set: tis_cap: X is "
                          "off_policy_correction=tis_token with off_policy_cap=X; give one")
    if a.off_policy_cap <= 0 or (a.off_policy_correction == "icepop" and a.off_policy_cap <= 1):
        raise ConfigError(f"algorithm.off_policy_cap: must be > 0 (> 1 for icepop's band [1/C, C]), "
                          f"got {a.off_policy_cap}")
    _positive("rollout.max_staleness", r.max_staleness, allow_zero=True)
    _positive("rollout.partial_rollout_chunk", r.partial_rollout_chunk)
    _positive("rollout.async_timeout_s", r.async_timeout_s)
    if r.partial_rollout and r.max_staleness == 0:
        raise ConfigError("rollout.partial_rollout: needs asynchronous RL (rollout.max_staleness >= 1); a synchronous "
                          "run never updates the weights while it generates")
    if r.partial_rollout and r.tools is not None:
        raise ConfigError("rollout.partial_rollout with rollout.tools: a multi-turn tool rollout is not resumed in "
                          "chunks; asynchronous tool rollouts finish each sample under one version (drop "
                          "partial_rollout)")
    if r.max_staleness > 0 and r.enable_sleep:
        raise ConfigError("rollout.enable_sleep frees the engine's memory while the trainer works; with "
                          "rollout.max_staleness >= 1 the engine generates while the trainer works")
    if len(t.adam_betas) != 2:
        raise ConfigError(f"train.adam_betas: expected two numbers, got {t.adam_betas}")
    if t.zero_stage not in (0, 1, 2, 3):
        raise ConfigError(f"train.zero_stage: must be 0-3, got {t.zero_stage}")
    if t.minibatch_size % t.micro_batch_size:
        raise ConfigError(f"train.minibatch_size ({t.minibatch_size}) must be a multiple of "
                          f"train.micro_batch_size ({t.micro_batch_size})")
    samples = r.prompts_per_step * r.n
    if samples % t.minibatch_size:
        raise ConfigError(f"train.minibatch_size ({t.minibatch_size}) must divide the samples per step "
                          f"(rollout.prompts_per_step x rollout.n = {samples})")
    if a.advantage not in ADVANTAGE_ESTIMATORS:
        raise ConfigError(f"algorithm.advantage: {a.advantage!r} is not one of {list(ADVANTAGE_ESTIMATORS)}")
    if r.backend not in ROLLOUT_BACKENDS:
        raise ConfigError(f"rollout.backend: {r.backend!r} is not one of {list(ROLLOUT_BACKENDS)}")
    est = ADVANTAGE_ESTIMATORS[a.advantage]
    if not est.kl_in_reward and a.kl_coef > 0 and a.kl_mode == "reward":
        with_reward = [e.name for e in ADVANTAGE_ESTIMATORS.values() if e.kl_in_reward]
        raise ConfigError(f"algorithm.kl_mode: '{a.advantage}' takes the KL as a loss term (GRPO); set "
                          f"algorithm.kl_mode=loss, or use {' / '.join(with_reward)} for a KL reward")
    if r.n < est.min_group_size:
        raise ConfigError(f"rollout.n: group advantage '{a.advantage}' needs n >= {est.min_group_size}, got {r.n}")
