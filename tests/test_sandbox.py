"""The executor's behaviour (outputs, errors, limits, the pool, restarts), its HTTP endpoint over a real uvicorn
server, and the ``code-sandbox`` CLI. Attacks: tests/test_sandbox_attacks.py."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time

import pytest

from sandbox import ExecResult, PythonExecutor, SandboxLimits
from sandbox.client import SandboxClient, SandboxUnavailable
from benchmarks.procs import survivors, tree

pytestmark = pytest.mark.slow

LIMITS = SandboxLimits(timeout_s=3.0, memory_mb=512, max_output_bytes=4096)


@pytest.fixture(scope="module")
def ex():
    with PythonExecutor(LIMITS, workers=2, preload=("math", "sympy"), show_last_expression=True) as executor:
        yield executor


def test_limits_validation():
    with pytest.raises(ValueError, match="timeout_s"):
        SandboxLimits(timeout_s=0)
    with pytest.raises(ValueError, match="memory_mb"):
        SandboxLimits(memory_mb=-1)
    assert SandboxLimits(timeout_s=2.4).cpu_seconds == 2 and SandboxLimits(timeout_s=2, cpu_s=7).cpu_seconds == 7


def test_result_round_trip():
    r = ExecResult("timeout", stdout="a", error="TimeoutError: x", signal="SIGKILL", wall_s=1.5)
    assert ExecResult.from_dict(json.loads(json.dumps(r.to_dict()))) == r
    with pytest.raises(ValueError, match="status"):
        ExecResult.from_dict({"status": "fine"})


def test_outputs(ex):
    r = ex.run("import sympy\nx = sympy.symbols('x')\nprint(sympy.solve(x**2 - 4, x))\nprint('to stderr', "
               "file=__import__('sys').stderr)")
    assert (r.status, r.stdout, r.stderr, r.error) == ("ok", "[-2, 2]\n", "to stderr\n", None), r
    assert r.wall_s > 0 and r.cpu_s >= 0


def test_last_expression_is_shown(ex):
    assert ex.run("a = 6\na * 7").stdout == "42\n"
    assert ex.run("print('x')\nNone").stdout == "x\n"  # None is not shown
    assert ex.run("for i in range(2):\n    i").stdout == ""  # only a final expression statement


def test_exception_traceback_shows_only_the_snippet(ex):
    r = ex.run("def f(x):\n    return 1 / x\n\nf(0)")
    assert r.status == "error" and r.error == "ZeroDivisionError: division by zero", r
    assert 'File "<snippet>", line 4' in r.stderr and 'File "<snippet>", line 2, in f' in r.stderr
    assert "_guest" not in r.stderr and "sandbox" not in r.stderr.replace("<snippet>", "")


def test_syntax_error(ex):
    r = ex.run("print(1 +)")
    assert r.status == "error" and r.error.startswith("SyntaxError"), r


def test_unicode_and_invalid_bytes(ex):
    r = ex.run("print('π ≈ 3.14159')\nimport sys\nsys.stdout.flush()\n_ = sys.stdout.buffer.write(b'\\xff\\n')")
    assert r.stdout == "π ≈ 3.14159\n\ufffd\n", r


def test_output_is_capped(ex):
    r = ex.run("print('a' * 10000)")
    assert r.status == "output_limit" and len(r.stdout) == LIMITS.max_output_bytes and r.output_truncated


def test_fresh_state_per_snippet(ex):
    ex.run("import math\nmath.pi = 3\nglobal_x = 1")
    r = ex.run("import math\nprint(math.pi)\nprint('global_x' in globals())")
    assert r.stdout == f"{3.141592653589793}\nFalse\n", r


def test_random_differs_between_snippets(ex):
    draws = {ex.run("import random\nprint(random.random())").stdout for _ in range(4)}
    assert len(draws) == 4


def test_run_many_keeps_order_and_runs_in_parallel(ex):
    codes = [f"import time\ntime.sleep(0.5)\nprint({i})" for i in range(4)]
    t0 = time.monotonic()
    results = ex.run_many(codes)
    assert [r.stdout for r in results] == [f"{i}\n" for i in range(4)]
    assert time.monotonic() - t0 < 4 * 0.5 + 0.9  # two workers: about half of the sequential time


def test_thread_safe_callers(ex):
    out = {}

    def call(i):
        out[i] = ex.run(f"print({i} ** 2)").stdout

    threads = [threading.Thread(target=call, args=(i,)) for i in range(6)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert out == {i: f"{i * i}\n" for i in range(6)}


def test_a_killed_worker_is_replaced():
    with PythonExecutor(LIMITS, workers=1, preload=()) as ex:
        victim = ex._all[0].proc
        started = {}

        def kill_soon():
            time.sleep(0.5)
            started["tree"] = tree(victim.pid)
            os.kill(victim.pid, signal.SIGKILL)

        t = threading.Thread(target=kill_soon)
        t.start()
        r = ex.run("import time\ntime.sleep(2)")
        t.join()
        assert r.status == "sandbox_error" and "replaced" in r.error, r
        assert not survivors(started["tree"], timeout=5), "the snippet outlived its sandbox process"
        assert ex.run("print(1)").stdout == "1\n"
        assert ex.stats()["restarts"] == 1 and ex.stats()["by_status"] == {"sandbox_error": 1, "ok": 1}


def test_close_leaves_nothing_behind():
    ex = PythonExecutor(LIMITS, workers=2, preload=())
    procs = [p for z in ex._all for p in tree(z.proc.pid)]
    root = ex._root
    ex.close()
    assert not survivors(procs, timeout=5) and not os.path.exists(root)
    with pytest.raises(RuntimeError, match="closed"):
        ex.run("print(1)")


def test_required_isolation_that_is_missing_fails_clearly(tmp_path):
    fake = tmp_path / "python"
    fake.write_text("#!/bin/sh\nexit 3\n")
    fake.chmod(0o755)
    from sandbox import SandboxStartError

    with pytest.raises(SandboxStartError, match="did not start"):
        PythonExecutor(workers=1, python=str(fake), start_timeout_s=10)
    with pytest.raises(ValueError, match="isolation"):
        PythonExecutor(workers=1, isolation="docker")


# ------------------------------------------------------------------------------------------------ HTTP endpoint
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def server():
    port = _free_port()
    env = dict(os.environ, SANDBOX_TOKEN="tok-123")
    proc = subprocess.Popen([sys.executable, "-m", "sandbox.cli", "serve", "--port", str(port), "--workers", "2",
                             "--timeout", "2", "--preload", "math", "--max-snippets", "8"], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    client = SandboxClient(url, token="tok-123", retries=0)
    deadline = time.monotonic() + 60
    while True:
        try:
            if client.health()["status"] == "ok":
                break
        except Exception:  # noqa: BLE001 -- not up yet
            if proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"sandbox server did not start: {proc.stderr.read().decode()[-2000:]}")
            time.sleep(0.3)
    yield url, client
    client.close()
    proc.terminate()
    proc.wait(timeout=30)


def test_http_execute(server):
    url, client = server
    results = client.run_many(["print(2 ** 10)", "while True: pass", "import socket\nsocket.socket()"])
    assert [r.status for r in results] == ["ok", "timeout", "error"] and results[0].stdout == "1024\n"
    assert "network" in results[2].error
    health = client.health()
    assert health["workers"] == 2 and health["isolation"] in ("namespaces", "rlimits")


def test_http_errors(server):
    import httpx

    url, _ = server
    assert httpx.post(f"{url}/v1/execute", json={"snippets": ["print(1)"]}).status_code == 401
    auth = {"authorization": "Bearer tok-123"}
    assert httpx.post(f"{url}/v1/execute", json={"snippets": ["1"] * 9}, headers=auth).status_code == 413
    assert httpx.post(f"{url}/v1/execute", json={"snippets": [1]}, headers=auth).status_code == 422
    assert httpx.post(f"{url}/v1/execute", json={"code": "1"}, headers=auth).status_code == 422
    with SandboxClient(url, token="wrong", retries=0) as bad:
        with pytest.raises(RuntimeError, match="401"):
            bad.run("print(1)")


def test_client_batches_and_unavailable(server):
    url, client = server
    small = SandboxClient(url, token="tok-123", batch_size=3)
    assert [r.stdout for r in small.run_many([f"print({i})" for i in range(7)])] == [f"{i}\n" for i in range(7)]
    small.close()
    down = SandboxClient(f"http://127.0.0.1:{_free_port()}", retries=1)
    with pytest.raises(SandboxUnavailable, match="unavailable after 2 attempts"):
        down.run("print(1)")


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_run_and_probe(tmp_path):
    snippet = tmp_path / "s.py"
    snippet.write_text("print(sum(range(10)))")
    out = subprocess.run([sys.executable, "-m", "sandbox.cli", "run", str(snippet), "--preload", ""],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)["stdout"] == "45\n", out.stderr
    snippet.write_text("1/0")
    out = subprocess.run([sys.executable, "-m", "sandbox.cli", "run", str(snippet), "--preload", ""],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 1 and json.loads(out.stdout)["status"] == "error"
    out = subprocess.run([sys.executable, "-m", "sandbox.cli", "probe"], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and json.loads(out.stdout)["isolation"] in ("namespaces", "rlimits")
