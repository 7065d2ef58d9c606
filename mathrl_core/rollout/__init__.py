"""Rollout backends behind one protocol (``base.RolloutBackend``), built by ``registry.make_rollout``."""
