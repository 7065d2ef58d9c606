"""Data: prompt records and resumable batches, prompt templates, synthetic arithmetic problems."""
