"""The shared core of training and evaluation: everything ``trainer`` and ``eval`` both need. It imports neither.

    templates.py      prompt templates (register_template) and prompt encoding
    records.py        prompt/answer records, the field-name lists, gold helpers (one place for both)
    data_files.py     the data directory and the one JSONL / JSON / Parquet reader
    sampling.py       SamplingConfig: n, temperature, top-p/k, max tokens, stop, seed (one spec)
    completion.py     Completion and the one adapter from a rollout's output to per-prompt completions
    registry.py       Registry: the named extension points (templates, rollout backends, advantage estimators)
    models/           loading (HF hub ids and local paths, LoRA, 4-bit), the token layout and prompt-sharing forward
    rollout/          the RolloutBackend protocol, HF generate and vLLM backends, the one vLLM engine-argument
                      builder (engine_args), weight sync into vLLM, and the registry/factory (make_rollout)

Where to add things: a rollout backend is one ``register_rollout_backend`` call in ``rollout/registry.py`` (or your
own module) plus its test; a prompt template is one ``register_template`` call.
"""
