"""Service settings: defaults < REWARD_SERVICE_* environment < flags; bad values fail at start, clearly."""
from __future__ import annotations

import pytest

from reward_service.cli import main
from reward_service.settings import Settings


def test_defaults():
    s = Settings.from_args([], environ={})
    assert (s.host, s.port, s.timeout, s.max_items, s.token, s.default_scheme) == (
        "127.0.0.1", 8000, 2.0, 32768, None, "simplerl")
    assert s.workers >= 1 and s.max_body_bytes == 128 * 1024 * 1024 and s.entry_points is True
    assert (s.max_items, s.max_pending_body_bytes, s.body_timeout) == (32768, 256 * 1024 * 1024, 60.0)


def test_env_then_flags():
    env = {"REWARD_SERVICE_PORT": "9001", "REWARD_SERVICE_WORKERS": "3", "REWARD_SERVICE_TIMEOUT": "0.5",
           "REWARD_SERVICE_TOKEN": "s3cret", "REWARD_SERVICE_PLUGINS": "a.b:f, c.d:g",
           "REWARD_SERVICE_ENTRY_POINTS": "off", "REWARD_SERVICE_HOST": ""}
    s = Settings.from_args([], environ=env)
    assert (s.port, s.workers, s.timeout, s.token, s.plugins, s.entry_points, s.host) == (
        9001, 3, 0.5, "s3cret", ("a.b:f", "c.d:g"), False, "127.0.0.1")
    s = Settings.from_args(["--port", "9002", "--plugin", "x.y:z", "--max-items", "10"], environ=env)
    assert (s.port, s.plugins, s.max_items, s.workers) == (9002, ("x.y:z",), 10, 3)
    assert s.public()["token"] == "set"  # never logged in clear


@pytest.mark.parametrize("env,msg", [
    ({"REWARD_SERVICE_WORKERS": "0"}, "workers"),
    ({"REWARD_SERVICE_TIMEOUT": "-1"}, "timeout"),
    ({"REWARD_SERVICE_ENTRY_POINTS": "maybe"}, "boolean"),
    ({"REWARD_SERVICE_PORT": "http"}, "invalid literal"),
    ({"REWARD_SERVICE_MAX_BODY_BYTES": str(2 ** 30)}, "max_pending_body_bytes"),
    ({"REWARD_SERVICE_BODY_TIMEOUT": "0"}, "body_timeout"),
])
def test_bad_values(env, msg):
    with pytest.raises(ValueError, match=msg):
        Settings.from_args([], environ=env)


def test_cli_refuses_bad_config(capsys, monkeypatch):
    monkeypatch.setenv("REWARD_SERVICE_DEFAULT_SCHEME", "nope")
    assert main([]) == 2
    assert "unknown reward scheme 'nope'" in capsys.readouterr().err
    monkeypatch.delenv("REWARD_SERVICE_DEFAULT_SCHEME")
    assert main(["--plugin", "no_such_module_xyz:f"]) == 2
    assert "cannot load reward scheme plugin" in capsys.readouterr().err
