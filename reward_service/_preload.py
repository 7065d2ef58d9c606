"""Imported once by the multiprocessing fork server of ``GradingPool(start_method="forkserver")``.

It loads and warms the default grading stack (sympy, the LaTeX parser, the grader's caches) in the fork server,
so every grading worker forked from it starts warm in milliseconds instead of re-importing for seconds.
Do not import this module anywhere else.
"""
try:
    from reward_service.worker import warm_up_grader

    warm_up_grader()
except Exception:  # never take the fork server down: workers then warm up themselves
    pass
