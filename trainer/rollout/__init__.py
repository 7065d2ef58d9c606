"""Rollout backends behind one interface (``base.RolloutBackend``): HF generate here, vLLM elsewhere."""
