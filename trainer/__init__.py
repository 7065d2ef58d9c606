"""OpenRLHF-style RL trainer for math reasoning: PPO with a critic (GAE) and the GRPO family."""
