# The trainer: CUDA, torch 2.13.0, vLLM, DeepSpeed, flash-attn, bitsandbytes, Ray and this package (gpu extra).
# Build from the repository root:
#   docker build -f docker/trainer.Dockerfile -t mathrl/trainer .
#   docker run --gpus all --shm-size 16g -v /data/math:/data:ro -v $PWD/runs:/runs mathrl/trainer \
#     rl-train --config recipes/gsm8k_lora_grpo.yaml logging.output_dir=/runs/gsm8k reward.url=http://HOST:8000
# or with the reward service: docker compose -f docker/docker-compose.yml --profile train up (see docs/deploy.md).
#
# One stage on the CUDA *devel* image on purpose: Triton (inside vLLM and torch.compile) and DeepSpeed compile
# kernels at run time and need a C compiler, the Python headers and, for DeepSpeed's ops, nvcc and the CUDA
# headers. CUDA_VERSION must be one that torch 2.13.0's CUDA wheels run on (their CUDA major or newer).
ARG CUDA_VERSION=12.8.1
ARG UBUNTU_VERSION=24.04
FROM nvidia/cuda:${CUDA_VERSION}-cudnn-devel-ubuntu${UBUNTU_VERSION}

ENV DEBIAN_FRONTEND=noninteractive \
    PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    VIRTUAL_ENV=/opt/venv \
    PATH=/opt/venv/bin:$PATH

RUN apt-get update \
 && apt-get install -y --no-install-recommends python3 python3-venv python3-dev build-essential git ninja-build \
      ca-certificates curl tini \
 && rm -rf /var/lib/apt/lists/* \
 && python3 -m venv /opt/venv \
 && pip install --upgrade pip setuptools wheel packaging ninja

# torch first, pinned as in setup.py: vLLM, DeepSpeed and flash-attn resolve and build against it. The pin is
# also a constraint of every later pip install (a build arg is an environment variable of RUN, not of the image):
# a vLLM release that needs another torch fails the resolution instead of replacing torch.
ARG PIP_CONSTRAINT=/tmp/torch-pin.txt
RUN echo "torch==2.13.0" > /tmp/torch-pin.txt && pip install "torch==2.13.0"

WORKDIR /opt/mathrl
COPY setup.py README.md ./
COPY reward_service ./reward_service
COPY mathrl_core ./mathrl_core
COPY trainer ./trainer
COPY eval ./eval
COPY sandbox ./sandbox

# The gpu extra in two steps: flash-attn compiles against the installed torch (no build isolation), so first
# everything else of it, then flash-attn, then the extra itself, which finds all of it installed.
RUN pip install ".[train]" "vllm>=0.10" "bitsandbytes>=0.45"
ARG MAX_JOBS=8
RUN MAX_JOBS=${MAX_JOBS} pip install --no-build-isolation "flash-attn>=2.6"
# latex2sympy2 must not be installed (it pins antlr 4.7.2 and breaks math-verify): the check fails the build.
RUN pip install ".[gpu]" \
 && python -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('2.13.0') else f'torch {torch.__version__} replaced the pinned 2.13.0')" \
 && python -c "import importlib.util as u, sys; missing = [m for m in ('vllm', 'deepspeed', 'flash_attn', 'bitsandbytes', 'ray', 'peft', 'transformers') if u.find_spec(m) is None]; sys.exit(f'missing: {missing}' if missing else 0)" \
 && python -c "import importlib.util as u, sys; sys.exit('latex2sympy2 is installed' if u.find_spec('latex2sympy2') else 0)" \
 && python -c "import reward_service.app, mathrl_core.rollout.registry, trainer.cli, trainer.sft_cli, eval.cli"

COPY recipes ./recipes
# A smoke test of the installed CLI that needs no GPU, weights or network: the plan of a recipe.
RUN rl-train --config recipes/tiny_cpu_grpo.yaml --dry-run > /dev/null

RUN useradd --create-home --uid 10001 --shell /bin/bash trainer \
 && mkdir -p /data /runs /cache/huggingface \
 && chown trainer:trainer /runs /cache/huggingface
USER 10001:10001

# Data (the recipes' bare data names) is mounted at /data, runs go to /runs, hub downloads to a cache volume.
ENV MATHRL_DATA_DIR=/data \
    HF_HOME=/cache/huggingface \
    OMP_NUM_THREADS=1 \
    TOKENIZERS_PARALLELISM=false \
    RAY_TMPDIR=/tmp/ray
WORKDIR /opt/mathrl

# tini reaps Ray's and vLLM's worker processes and forwards SIGTERM, so a stopped container shuts the run down.
ENTRYPOINT ["/usr/bin/tini", "--"]
CMD ["rl-train", "--help"]
