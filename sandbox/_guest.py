"""The snippet's own process: resource limits, privileges dropped, the audit-hook guard, then the code.

Runs in a process forked for one snippet (``_zygote.supervise``); it never returns: it reports on the status
pipe and leaves with ``os._exit``. Two layers stand between the code and the host:

- the kernel (always): rlimits on CPU, address space, processes, file size and open files; no capabilities and
  no-new-privs; with namespaces also a private root, PID namespace and no network (``_jail``);
- the audit-hook guard (``guard=True``, the default; ``sys.addaudithook``, PEP 578): operations a math snippet
  has no use for fail with ``PermissionError("sandbox: ...")``: starting processes, signals, sockets, ctypes,
  opening files for writing outside the private directory or for reading outside the Python/system directories.
  It turns a forbidden call into a clear error message; it is not the security boundary (C code can bypass
  audit hooks), the kernel is.
"""
from __future__ import annotations

import ast
import io
import json
import os
import random
import resource
import signal
import sys
import traceback

from sandbox import _jail

SNIPPET_FILENAME = "<snippet>"
_EXIT_MARK = "__sandbox_exit__"
_SNIPPET_PID = -1  # set once the snippet's process is ready: only it reports (fd 3)

# audit events a math snippet never needs (exact names, then prefixes)
_BLOCKED = {
    "os.system": "starting processes", "os.exec": "starting processes", "os.posix_spawn": "starting processes",
    "os.spawn": "starting processes", "os.fork": "starting processes", "os.forkpty": "starting processes",
    "subprocess.Popen": "starting processes", "pty.spawn": "starting processes",
    "os.kill": "sending signals", "os.killpg": "sending signals", "signal.pthread_kill": "sending signals",
    "socket.__new__": "network access", "socket.connect": "network access", "socket.bind": "network access",
    "socket.getaddrinfo": "network access", "socket.gethostbyname": "network access",
    "urllib.Request": "network access", "http.client.connect": "network access",
    "sys.remote_exec": "debugger attachment",
}
_BLOCKED_PREFIXES = {"ctypes.": "ctypes", "_posixsubprocess": "starting processes", "winreg.": "the registry"}
_BLOCKED_IMPORTS = {"ctypes", "_ctypes", "cffi", "_cffi_backend"}
_PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.symlink", "os.link", "os.truncate",
                "os.chmod", "os.chown", "os.utime", "os.mkfifo", "os.mknod", "shutil.rmtree", "shutil.copyfile",
                "shutil.move", "os.listdir", "os.scandir", "glob.glob", "os.chdir"}
_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND


def _inside(path: str, roots) -> bool:
    return any(path == r or path.startswith(r.rstrip("/") + "/") for r in roots)


def make_guard(workdir: str, read_roots):
    """The audit hook: raises ``PermissionError`` for what :data:`_BLOCKED` lists, for importing ctypes/cffi,
    for writing (or changing) any path outside ``workdir`` and for reading outside ``read_roots``."""
    write_roots = [os.path.realpath(workdir), "/dev/null"]
    read_roots = [os.path.realpath(r) for r in read_roots] + write_roots + ["/dev/urandom", "/dev/random",
                                                                           "/dev/zero"]

    def deny(what: str):
        raise PermissionError(f"sandbox: {what} is not allowed")

    def path_of(p):
        if isinstance(p, int):
            return None  # an already-open descriptor
        if isinstance(p, bytes):
            p = os.fsdecode(p)
        return os.path.realpath(os.path.join(os.getcwd(), os.fspath(p)))

    def hook(event: str, args: tuple) -> None:
        reason = _BLOCKED.get(event)
        if reason is None:
            for prefix, why in _BLOCKED_PREFIXES.items():
                if event.startswith(prefix):
                    reason = why
                    break
        if reason is not None:
            deny(f"{reason} ({event})")
        if event == "import" and args and str(args[0]).split(".")[0] in _BLOCKED_IMPORTS:
            deny(f"importing {args[0]}")
        if event == "open" and args:
            path = path_of(args[0])
            if path is None:
                return
            mode, flags = (args[1] if len(args) > 1 else None), (args[2] if len(args) > 2 else 0) or 0
            writing = bool(flags & _WRITE_FLAGS) or (isinstance(mode, str) and any(c in mode for c in "wax+"))
            if writing and not _inside(path, write_roots):
                deny(f"writing {path} (only {write_roots[0]} is writable)")
            if not writing and not _inside(path, read_roots):
                deny(f"reading {path}")
        elif event in _PATH_EVENTS and args and isinstance(args[0], (str, bytes, os.PathLike)):
            path = path_of(args[0])
            roots = read_roots if event in ("os.listdir", "os.scandir", "glob.glob", "os.chdir") else write_roots
            if not _inside(path, roots):
                deny(f"{event} on {path}")
            if event in ("os.rename", "os.symlink", "os.link", "shutil.copyfile", "shutil.move") and len(args) > 1 \
                    and isinstance(args[1], (str, bytes, os.PathLike)) and not _inside(path_of(args[1]), write_roots):
                deny(f"{event} to {path_of(args[1])}")

    return hook


def set_limits(limits: dict, base_processes: int) -> None:
    """Kernel limits of this process (inherited by anything it starts). ``base_processes``: tasks of the same
    user that exist before the snippet (its supervisor, the zygote), added to ``max_processes``."""
    cpu = int(limits["cpu_seconds"])
    mb = 1 << 20
    for res, value in ((resource.RLIMIT_CPU, (cpu, cpu + 1)),
                       (resource.RLIMIT_AS, (limits["memory_mb"] * mb,) * 2),
                       (resource.RLIMIT_FSIZE, (limits["max_file_mb"] * mb,) * 2),
                       (resource.RLIMIT_NPROC, (limits["max_processes"] + base_processes,) * 2),
                       (resource.RLIMIT_NOFILE, (limits["max_open_files"],) * 2),
                       (resource.RLIMIT_CORE, (0, 0))):
        resource.setrlimit(res, value)


def _snippet_traceback(exc: BaseException) -> str:
    """The traceback from the snippet's first frame on (the sandbox's own frames left out)."""
    tb = exc.__traceback__
    while tb is not None and tb.tb_frame.f_code.co_filename != SNIPPET_FILENAME:
        tb = tb.tb_next
    return "".join(traceback.format_exception(type(exc), exc, tb))


def _compile(code: str, show_last_expression: bool):
    """``(body, last)``: the module code and, with ``show_last_expression``, the final expression statement
    compiled apart so its value can be shown (as a notebook cell does)."""
    tree = ast.parse(code, SNIPPET_FILENAME, "exec")
    last = None
    if show_last_expression and tree.body and isinstance(tree.body[-1], ast.Expr):
        last = compile(ast.Expression(tree.body.pop().value), SNIPPET_FILENAME, "eval")
    return compile(tree, SNIPPET_FILENAME, "exec"), last


def run(code: str, cfg: dict, workdir: str, fds: tuple[int, int, int], namespaces: bool) -> None:
    """Set the process up and run ``code``; writes one JSON status line to ``fds[2]`` and exits."""
    out_fd, err_fd, status_fd = fds
    os.setsid()  # its own session and process group: kill(0, ...) reaches only the snippet and its children
    null = os.open("/dev/null", os.O_RDONLY)
    os.dup2(null, 0)
    os.dup2(out_fd, 1)
    os.dup2(err_fd, 2)
    os.dup2(status_fd, 3)
    os.closerange(4, 1 << 16)
    _jail.set_parent_death_signal(signal.SIGKILL)
    os.chdir(workdir)
    os.environ.update(HOME=workdir, TMPDIR=workdir)
    set_limits(cfg["limits"], base_processes=2 if namespaces else 0)
    if namespaces or os.geteuid() != 0:
        _jail.drop_privileges()
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGPIPE):
        signal.signal(sig, signal.SIG_DFL)
    random.seed()  # every snippet starts from the zygote's state: give it its own random stream
    if "numpy.random" in sys.modules:  # (imported later, it seeds itself)
        sys.modules["numpy.random"].seed(int.from_bytes(os.urandom(4), "little"))
    # line-buffered: what a snippet printed before it hung or crashed is part of its result
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    sys.stderr = io.TextIOWrapper(io.FileIO(2, "w", closefd=False), encoding="utf-8", errors="backslashreplace",
                                  line_buffering=True)
    real_exit = os._exit
    global _SNIPPET_PID
    _SNIPPET_PID = os.getpid()  # a process the snippet forks (multiprocessing) inherits fd 3: it must not report

    def flushing_exit(code: int = 0):  # os._exit would drop what is still in the buffers
        _flush()
        _report({"status": "exited", "exit_code": int(code), "error": f"the snippet called os._exit({code})"})
        real_exit(int(code))

    os._exit = flushing_exit
    for name in [m for m in sys.modules if m.split(".")[0] in _BLOCKED_IMPORTS]:
        del sys.modules[name]  # a fresh import of ctypes goes through the guard
    glb = {"__name__": "__main__", "__builtins__": __builtins__}
    if cfg.get("guard", True):
        sys.addaudithook(make_guard(workdir, cfg["read_roots"]))
    try:
        body, last = _compile(code, cfg.get("show_last_expression", False))
        exec(body, glb)
        if last is not None:
            value = eval(last, glb)
            if value is not None:
                print(repr(value))
        status = {"status": "ok"}
    except SystemExit as e:
        code_ = e.code
        if code_ is None or code_ == 0:
            status = {"status": "ok"}
        elif isinstance(code_, int):
            status = {"status": "exited", "exit_code": code_, "error": f"the snippet called sys.exit({code_})"}
        else:
            print(code_, file=sys.stderr)
            status = {"status": "exited", "exit_code": 1, "error": f"the snippet called sys.exit({str(code_)[:200]!r})"}
    except MemoryError as e:
        status = {"status": "memory", "error": f"MemoryError: the snippet ran out of its memory limit "
                                               f"({cfg['limits']['memory_mb']} MiB){': ' + str(e) if str(e) else ''}"}
        _write_traceback(e)
    except BaseException as e:  # noqa: BLE001 -- every exception of the snippet is its result
        status = {"status": "error", "error": _last_line(e)}
        _write_traceback(e)
    _flush()
    _report(status)
    real_exit(0)


def _last_line(e: BaseException) -> str:
    try:
        return traceback.format_exception_only(type(e), e)[-1].strip()[:500]
    except Exception:  # noqa: BLE001
        return type(e).__name__


def _write_traceback(e: BaseException) -> None:
    try:
        sys.stderr.write(_snippet_traceback(e))
    except BaseException:  # noqa: BLE001 -- e.g. MemoryError again: the status line still goes out
        pass


def _flush() -> None:
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except BaseException:  # noqa: BLE001 -- a closed or broken stream: the status still goes out
            pass


def _report(status: dict) -> None:
    if os.getpid() != _SNIPPET_PID:  # a child of the snippet: the snippet's own process reports its result
        return
    try:
        os.write(3, (json.dumps(status) + "\n").encode())
    except OSError:
        pass
