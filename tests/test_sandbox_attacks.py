"""Attacks on the executor: each ends with a clear per-snippet result, the host is untouched and the executor (and
this process, standing in for the trainer) carries on.

Three configurations: namespaces with the audit-hook guard (the default), namespaces *without* the guard (the
kernel alone must contain every attack) and the rlimits fallback with the guard (no namespaces: what a machine
without unprivileged user namespaces gets). The fallback is not run without its guard: there the guard is what
stands between a snippet and, e.g., signalling processes of the same user (docs/sandbox.md says so).
"""
from __future__ import annotations

import os
import socket
import threading

import pytest

from sandbox import PythonExecutor, SandboxLimits
from benchmarks.procs import tree

pytestmark = pytest.mark.slow

SECRET = "mathrl-test-secret-9f3a"
LIMITS = SandboxLimits(timeout_s=3.0, cpu_s=2.0, memory_mb=256, max_processes=4, max_output_bytes=64 * 1024,
                       max_file_mb=1, tmpfs_mb=8)
CONFIGS = {"namespaces+guard": dict(isolation="namespaces", guard=True),
           "namespaces-only": dict(isolation="namespaces", guard=False),
           "rlimits+guard": dict(isolation="rlimits", guard=True)}


def _namespaces_work() -> bool:
    try:
        with PythonExecutor(workers=1, isolation="namespaces", preload=()):
            return True
    except Exception:  # noqa: BLE001
        return False


NAMESPACES = _namespaces_work()


@pytest.fixture(scope="module", params=list(CONFIGS))
def ex(request):
    cfg = CONFIGS[request.param]
    if cfg["isolation"] == "namespaces" and not NAMESPACES:
        pytest.skip("unprivileged user namespaces are not available on this machine")
    os.environ["MATHRL_SANDBOX_TEST_TOKEN"] = SECRET  # what a trainer's environment would hold
    try:
        with PythonExecutor(LIMITS, workers=2, preload=("math",), **cfg) as executor:
            executor.name = request.param
            yield executor
    finally:
        os.environ.pop("MATHRL_SANDBOX_TEST_TOKEN", None)


def _still_works(ex) -> None:
    """After an attack: the executor answers normally and no snippet process is left behind."""
    r = ex.run("print(6 * 7)")
    assert r.status == "ok" and r.stdout == "42\n", r
    for z in ex._all:
        assert [p for p, _ in tree(z.proc.pid)] == [z.proc.pid], "a snippet process survived"


def _run(ex, code: str):
    r = ex.run(code)
    assert r.status != "sandbox_error", r  # the snippet's failure, never the sandbox's
    if r.status != "ok":
        assert r.error and len(r.error.splitlines()) == 1, r
    _still_works(ex)
    return r


def test_infinite_loop(ex):
    r = _run(ex, "while True:\n    pass")
    assert r.status in ("timeout", "cpu_limit") and r.wall_s < LIMITS.timeout_s + 2, r


def test_infinite_loop_ignoring_signals(ex):
    code = ("import signal\nfor s in (signal.SIGXCPU, signal.SIGTERM, signal.SIGINT):\n"
            "    signal.signal(s, signal.SIG_IGN)\nwhile True:\n    pass")
    r = _run(ex, code)
    assert r.status in ("timeout", "cpu_limit"), r


def test_fork_bomb(ex):
    r = _run(ex, "import os\nwhile True:\n    try:\n        os.fork()\n    except BlockingIOError:\n        pass")
    if ex.name == "namespaces-only":  # the kernel: at most max_processes tasks, killed with the snippet's namespace
        assert r.status in ("timeout", "cpu_limit"), r
    else:
        assert r.status == "error" and "starting processes" in r.error, r


def test_fork_bomb_with_multiprocessing(ex):
    code = ("import multiprocessing as mp\nps = [mp.Process(target=sum, args=([1],)) for _ in range(50)]\n"
            "[p.start() for p in ps]\nprint('started')")
    r = _run(ex, code)
    assert r.status in ("error", "timeout"), r
    assert "started" not in r.stdout


def test_memory_bomb(ex):
    r = _run(ex, "chunks = []\nwhile True:\n    chunks.append(bytearray(16 * 2**20))")
    assert r.status == "memory" and "MemoryError" in r.error, r


def test_one_huge_allocation(ex):
    r = _run(ex, "x = 'a' * (2 * 10**9)")
    assert r.status == "memory", r


def test_huge_output(ex):
    r = _run(ex, "while True:\n    print('x' * 1000)")
    assert r.status == "output_limit" and r.output_truncated, r
    assert len(r.stdout.encode()) <= LIMITS.max_output_bytes and r.stdout.startswith("x" * 1000)


def test_environment_is_scrubbed(ex):
    r = _run(ex, "import os\nprint(dict(os.environ))")
    assert r.status == "ok", r
    assert SECRET not in r.stdout and "MATHRL_SANDBOX_TEST_TOKEN" not in r.stdout
    assert "VIRTUAL_ENV" not in r.stdout and "PYTHONPATH" not in r.stdout


def test_parent_environment_not_readable(ex):
    r = _run(ex, f"print(open('/proc/{os.getpid()}/environ', 'rb').read())")
    assert r.status == "error" and SECRET not in r.stdout, r


def test_files_outside_not_readable(ex, tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text(SECRET)
    for path in (secret, __file__, "/etc/shadow", os.path.expanduser("~/.bashrc")):
        r = _run(ex, f"print(open({str(path)!r}).read())")
        assert r.status == "error" and SECRET not in r.stdout, (path, r)
        assert any(e in r.error for e in ("FileNotFoundError", "PermissionError")), r


def test_listing_the_host(ex, tmp_path):
    (tmp_path / "secret.txt").write_text(SECRET)
    r = _run(ex, f"import os\nprint(os.listdir({str(tmp_path)!r}))")
    assert "secret.txt" not in r.stdout, r


def test_writing_outside(ex, tmp_path):
    target = tmp_path / "pwned"
    code = (f"import os\nfor p in [{str(target)!r}, '/usr/pwned', {os.path.realpath(os.__file__) + '.pwned'!r}]:\n"
            "    try:\n        open(p, 'w').write('x')\n        print('wrote', p)\n"
            "    except OSError as e:\n        print('refused', p, type(e).__name__)")
    r = _run(ex, code)
    assert "wrote" not in r.stdout, r
    assert not target.exists() and not os.path.exists(os.path.realpath(os.__file__) + ".pwned")


def test_private_dir_is_writable_and_fresh(ex):
    r = _run(ex, "import os\nprint(sorted(os.listdir('.')))\nopen('scratch.txt', 'w').write('x' * 10)\n"
                 "print(open('scratch.txt').read())")
    assert r.status == "ok" and r.stdout == "[]\nxxxxxxxxxx\n", r
    r = _run(ex, "import os\nprint(sorted(os.listdir('.')))")
    assert r.stdout == "[]\n", "a snippet saw the previous snippet's files"


def test_file_size_limit(ex):
    r = _run(ex, "open('big.bin', 'wb').write(b'0' * (4 * 2**20))")
    assert r.status == "error" and ("File too large" in r.error or "No space" in r.error), r


def test_socket(ex):
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(0.2)
    port = server.getsockname()[1]
    accepted = []

    def accept():
        try:
            accepted.append(server.accept())
        except OSError:
            pass

    t = threading.Thread(target=accept)
    t.start()
    try:
        r = _run(ex, f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=1)\n"
                     "s.sendall(b'hello')\nprint('connected')")
        t.join()
    finally:
        server.close()
    assert r.status == "error" and "connected" not in r.stdout and not accepted, r


def test_dns(ex):
    r = _run(ex, "import socket\nprint(socket.getaddrinfo('pypi.org', 443))")
    assert r.status == "error", r


def test_killing_its_parent(ex):
    r = _run(ex, "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\nprint('sent')")
    # the guard refuses; the kernel: its parent is outside its PID namespace (ppid 0), and kill(0) reaches only the
    # snippet's own process group, where it is PID 1 (SIGKILL from inside is dropped). The supervisor lives on.
    assert r.status in ("error", "killed", "ok"), r


def test_killing_the_trainer(ex):
    r = _run(ex, f"import os, signal\nos.kill({os.getpid()}, signal.SIGKILL)\nprint('sent')")
    assert r.status == "error" and "sent" not in r.stdout, r  # no such process in its namespace, or refused


def test_kill_everything(ex):
    r = _run(ex, "import os, signal\nos.kill(-1, signal.SIGKILL)\nprint('sent')")
    assert r.status in ("error", "killed", "ok"), r  # with namespaces: only its own (empty) namespace


def test_os_exit(ex):
    r = _run(ex, "print('partial result')\nimport os\nos._exit(3)")
    assert r.status == "exited" and r.exit_code == 3 and r.stdout == "partial result\n", r
    assert "os._exit(3)" in r.error


def test_sys_exit(ex):
    assert _run(ex, "import sys\nprint('a')\nsys.exit(0)").status == "ok"
    r = _run(ex, "import sys\nsys.exit('bye')")
    assert r.status == "exited" and "bye" in r.stderr, r


def test_signals(ex):
    r = _run(ex, "import os, signal\nos.kill(os.getpid(), signal.SIGSEGV)\nprint('alive')")
    if ex.name == "namespaces-only":
        # the snippet is PID 1 of its namespace: the kernel drops signals it sends itself without a handler
        assert r.status == "ok" and r.stdout == "alive\n", r
    else:
        assert r.status == "error" and "sending signals" in r.error, r
    r = _run(ex, "import signal, time\nsignal.alarm(1)\ntime.sleep(2)\nprint('alive')")
    assert (r.status, r.signal) == ("killed", "SIGALRM") or (r.status, r.stdout) == ("ok", "alive\n"), r
    r = _run(ex, "import signal, time\ndef boom(*_):\n    raise TimeoutError('took too long')\n"
                 "signal.signal(signal.SIGALRM, boom)\nsignal.alarm(1)\ntime.sleep(2)")
    assert r.status == "error" and "took too long" in r.error, r  # a snippet's own timeout pattern works


def test_ctypes(ex):
    code = ("import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            "print('unshare', libc.unshare(0x00020000), ctypes.get_errno())\n"
            "print('mount', libc.mount(b'none', b'/usr', b'tmpfs', 0, None), ctypes.get_errno())\n"
            "print('setuid', libc.setuid(0), ctypes.get_errno())\n"
            "ctypes.string_at(0)")
    r = _run(ex, code)
    if ex.name == "namespaces-only":
        # ctypes loads, but without capabilities the kernel refuses; a wild read kills only the snippet
        assert r.stdout.startswith("unshare -1 1\nmount -1 1\nsetuid -1 "), r  # EPERM, EPERM, EPERM/EINVAL
        assert (r.status, r.signal) == ("killed", "SIGSEGV"), r
    else:
        assert r.status == "error" and "ctypes" in r.error, r


def test_no_capabilities_and_alone(ex):
    """The snippet holds no capability (the zygote's own ctypes helpers, still in sys.modules, say so) and, with
    namespaces, sees no other process."""
    r = _run(ex, "from sandbox import _jail\nimport os\nprint(_jail.capabilities_effective(), os.getpid())")
    if ex.name == "namespaces-only":
        assert (r.status, r.stdout) == ("ok", "0 1\n"), r
    else:
        assert r.status == "error" and "ctypes" in r.error, r  # the guard refuses any foreign call


def test_a_batch_of_attacks_and_normal_snippets(ex):
    """What a step does: many snippets at once, some hostile; the normal ones all get their right output."""
    normal = [f"print({i} * {i + 1})" for i in range(8)]
    hostile = ["while True: pass", "x = bytearray(10**10)", "import os\nos._exit(1)", "print('y' * 10**6)"]
    results = ex.run_many(normal + hostile)
    assert [r.stdout for r in results[:8]] == [f"{i * (i + 1)}\n" for i in range(8)]
    assert all(r.status != "ok" and r.status != "sandbox_error" for r in results[8:]), results[8:]
    _still_works(ex)
