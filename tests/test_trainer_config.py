"""Config tree: YAML + dotted overrides, errors that name the key, batch arithmetic checks."""
import pytest

from trainer.config import RLConfig
from trainer.config_tree import ConfigError, load_config, parse_overrides


def test_yaml_and_overrides(tmp_path):
    f = tmp_path / "r.yaml"
    f.write_text("name: t\nrollout:\n  n: 4\n  prompts_per_step: 4\ntrain:\n  minibatch_size: 8\n  micro_batch_size: 4\n"
                 "  actor_lr: 1e-6\n")
    cfg = load_config(RLConfig, f, ["train.actor_lr=3e-5", "rollout.stop=['</answer>']", "model.lora.rank=8"])
    assert cfg.name == "t" and cfg.rollout.n == 4
    assert cfg.train.actor_lr == pytest.approx(3e-5)  # override wins over the file
    assert cfg.rollout.stop == ["</answer>"] and cfg.model.lora.rank == 8
    assert cfg.samples_per_step == 16


@pytest.mark.parametrize("override,needle", [
    (["train.actr_lr=1"], "train.actr_lr"),
    (["nosuch.key=1"], "nosuch"),
    (["train.actor_lr=fast"], "train.actor_lr"),
    (["rollout.n=0"], "rollout.n"),
    (["algorithm.advantage=ppo2"], "algorithm.advantage"),
    (["train.minibatch_size=48"], "train.minibatch_size"),
    (["rollout.top_p=1.5"], "rollout.top_p"),
    (["algorithm.dual_clip=0.5"], "algorithm.dual_clip"),
    (["train.seed=1.5"], "train.seed"),
    (["logging.tensorboard=maybe"], "logging.tensorboard"),
    (["noequals"], "key.sub=value"),
    (["algorithm.kl_coef=0.01"], "algorithm.kl_mode"),  # GRPO + KL-in-reward would silently drop the KL
])
def test_bad_keys_and_values_name_the_key(override, needle):
    with pytest.raises(ConfigError, match=needle.replace(".", r"\.")):
        load_config(RLConfig, None, override)


def test_missing_file_is_clear(tmp_path):
    with pytest.raises(ConfigError, match="not found"):
        load_config(RLConfig, tmp_path / "nope.yaml")


def test_override_values_are_yaml():
    assert parse_overrides(["a.b=1", "c=[x, y]", "d=null", "e=true", "f=1e-5"]) == [
        ("a.b", 1), ("c", ["x", "y"]), ("d", None), ("e", True), ("f", "1e-5")]
    cfg = load_config(RLConfig, None, ["train.actor_lr=1e-5", "model.critic_pretrain=null"])
    assert cfg.train.actor_lr == 1e-5 and cfg.model.critic_pretrain is None
