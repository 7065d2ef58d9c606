"""Math benchmark evaluation: pass@1, pass@k, maj@k, average pass rate and CoT length.

Generation goes through the rollout backends of ``mathrl_core.rollout`` (the trainer's own); grading through the
reward service's grader (killable pool, in-process, or HTTP with a scheme). ``eval`` never imports ``trainer``.
Add a benchmark with a ``BenchmarkSpec`` in ``benchmarks.py``.
"""
