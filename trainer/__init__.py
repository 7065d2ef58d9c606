"""OpenRLHF-style RL trainer for math reasoning: PPO with a critic (GAE) and the GRPO family.

One RL step (``rl_loop.RLLoop``): prompts -> rollout (n per prompt) -> reward service -> reference log-probs,
critic values -> advantages (``algorithms.estimators``) -> policy/critic updates -> weight sync -> metrics,
eval hook, checkpoint. The same loop drives local workers or Ray actor groups:

    config.py        every hyper-parameter (dataclass tree) and the rules derived from it
    plan.py          RunPlan: batch arithmetic, roles and resources, computed once (--dry-run prints it)
    roles.py         the role factory: policy / reference / critic / rollout for a local or Ray placement
    build.py         the driver side of a run and the local placement; distributed/ the Ray placement
    async_rl/        asynchronous RL: the rollout ahead of the trainer within rollout.max_staleness versions
    algorithms/      the math as pure tensor functions (advantage estimators are registrations)
    workers/         policy, reference and critic workers; worker_metrics.py declares how metrics combine
    sft.py           the SFT stage (its model and optimizer come from roles.build_trainable)

Shared with ``eval`` (templates, records, sampling, rollout backends, model loading): ``mathrl_core``.
"""
