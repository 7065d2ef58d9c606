"""Models: loading (LoRA, dtype, checkpointing), actor log-probs, critic with value head, tiny local checkpoints."""
