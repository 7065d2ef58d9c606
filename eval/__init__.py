"""Math benchmark evaluation: pass@1, pass@k, maj@k, average pass rate and CoT length."""
