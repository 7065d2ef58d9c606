"""Model loading and the token layout shared by rollout backends and the trainer."""
