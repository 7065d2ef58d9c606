"""The sandbox process ("zygote"): started once per executor worker, it isolates itself, preloads modules, then
runs one snippet per request in a fresh process forked from its pristine state.

    python -I -B sandbox/_zygote.py CONFIG_JSON      (started by ``sandbox.executor``; never by hand)

Protocol on stdin/stdout: frames of a 4-byte big-endian length and UTF-8 JSON. First the zygote sends its hello
(``{"ready": true, "isolation": ..., "preloaded": [...]}`` or ``{"ready": false, "error": ...}``); then for each
request ``{"code": ...}`` one ExecResult dict. EOF on stdin ends it.

Per snippet (the zygote itself never runs snippet code, so every snippet starts from the same state):

    zygote --fork--> supervisor (new mount + PID namespaces, fresh tmpfs on /sandbox)
                         --fork--> snippet: PID 1 of its namespace; limits, no privileges, guard, the code
    The supervisor enforces the wall timeout and the output cap, kills the snippet (with namespaces the kernel
    then kills everything the snippet started), classifies how it ended and sends the result to the zygote.

Isolation ``auto`` tries namespaces in a throw-away child first and falls back to ``rlimits`` (the same limits
and guard, without namespaces: see docs/sandbox.md for what that leaves open).
"""
from __future__ import annotations

import gc
import importlib
import json
import os
import select
import shutil
import signal
import stat
import struct
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from sandbox import _guest, _jail  # noqa: E402
from sandbox.limits import (CPU_LIMIT, KILLED, OUTPUT_LIMIT, TIMEOUT, ExecResult)  # noqa: E402

del sys.path[0]  # the package's parent (maybe the repository) is not part of the snippet's world
NOBODY = _jail.NOBODY
_HEADER = struct.Struct(">I")


# ------------------------------------------------------------------------------------------------ framing
def read_frame(fd: int):
    head = _read_exact(fd, _HEADER.size)
    if head is None:
        return None
    body = _read_exact(fd, _HEADER.unpack(head)[0])
    if body is None:
        return None
    return json.loads(body.decode("utf-8"))


def _read_exact(fd: int, n: int):
    buf = bytearray()
    while len(buf) < n:
        chunk = os.read(fd, n - len(buf))
        if not chunk:
            return None
        buf += chunk
    return bytes(buf)


def write_frame(fd: int, obj) -> None:
    data = json.dumps(obj).encode("utf-8")
    data = _HEADER.pack(len(data)) + data
    while data:
        data = data[os.write(fd, data):]


# ------------------------------------------------------------------------------------------------ isolation
def probe_namespaces(root_dir: str, tmpfs_mb: int) -> str | None:
    """Try the namespace setup in a throw-away child: None if it works, else the reason it does not."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        msg = ""
        try:
            _jail.isolate(tempfile.mkdtemp(dir=root_dir), tmpfs_mb)
            _jail.private_snippet_namespaces(1)
        except BaseException as e:  # noqa: BLE001 -- any failure means: no namespaces here
            msg = f"{type(e).__name__}: {e}" or "failed"
        os.write(w, msg.encode()[:4000])
        os._exit(0)
    os.close(w)
    msg = b""
    while True:
        chunk = os.read(r, 4096)
        if not chunk:
            break
        msg += chunk
    os.close(r)
    os.waitpid(pid, 0)
    for leftover in os.listdir(root_dir):  # the probe's mount point (the tmpfs lived in its namespace only)
        shutil.rmtree(os.path.join(root_dir, leftover), ignore_errors=True)
    return msg.decode() or None


def _world_readable(path: str) -> bool:
    """Whether uid nobody can reach and read ``path`` (every ancestor searchable, the directory readable)."""
    path = os.path.realpath(path)
    parts = path.split("/")
    for i in range(2, len(parts) + 1):
        mode = os.stat("/".join(parts[:i]) or "/").st_mode
        if not mode & stat.S_IXOTH:
            return False
    return bool(os.stat(path).st_mode & stat.S_IROTH)


def setup(cfg: dict) -> dict:
    """Isolate this process as ``cfg["isolation"]`` asks; the hello message (mode, warnings)."""
    hello = {"ready": True, "warnings": [], "pid": os.getpid(), "python": sys.version.split()[0]}
    want = cfg["isolation"]
    mode = "rlimits"
    if want in ("auto", "namespaces"):
        reason = probe_namespaces(cfg["root_dir"], 16)
        if reason is None:
            _jail.isolate(cfg["root_dir"], 16)
            mode = "namespaces"
        elif want == "namespaces":
            return {"ready": False, "error": f"isolation=namespaces is not available here: {reason}"}
        else:
            hello["warnings"].append(f"namespaces unavailable ({reason}); using rlimits + guard only")
    hello["isolation"] = mode
    cfg["as_nobody"] = False
    if mode == "rlimits" and os.geteuid() == 0:
        if all(_world_readable(d) for d in _jail.read_only_dirs() if os.path.isdir(d)):
            cfg["as_nobody"] = True
            os.chmod(cfg["root_dir"], 0o711)  # nobody reaches its own snippet directory, lists nothing
        else:
            hello["warnings"].append("running as root without namespaces and the Python installation is not "
                                     "readable by nobody: snippets run as root (guard and rlimits only)")
    cfg["read_roots"] = _jail.read_only_dirs() if mode == "rlimits" else ["/"]
    loaded = []
    for name in cfg.get("preload", []):
        try:
            importlib.import_module(name)
            loaded.append(name)
        except Exception as e:  # noqa: BLE001 -- a missing optional module is reported, not fatal
            hello["warnings"].append(f"preload {name}: {type(e).__name__}: {e}")
    hello["preloaded"] = loaded
    gc.collect()
    gc.freeze()  # the preloaded objects: never scanned by a snippet's collector, so their pages stay shared
    return hello


# ------------------------------------------------------------------------------------------------ one snippet
def supervise(code: str, cfg: dict, report_fd: int) -> dict:
    """Runs in the supervisor process: start the snippet, watch it, return its ExecResult dict. The snippet's pid
    goes to ``report_fd`` first, so the zygote can clean up after it should this process die."""
    limits = cfg["limits"]
    namespaces = cfg["mode"] == "namespaces"
    _jail.set_parent_death_signal(signal.SIGKILL)
    if namespaces:
        _jail.private_snippet_namespaces(limits["tmpfs_mb"])
        workdir = _jail.WORK
    else:
        workdir = tempfile.mkdtemp(dir=cfg["root_dir"], prefix="snippet_")
        if cfg["as_nobody"]:
            os.chown(workdir, NOBODY, NOBODY)
    pipes = [os.pipe() for _ in range(3)]  # stdout, stderr, status
    t0 = time.monotonic()
    pid = os.fork()
    if pid == 0:
        try:
            for r, _ in pipes:
                os.close(r)
            if cfg["as_nobody"]:
                os.setgroups([])
                os.setresgid(NOBODY, NOBODY, NOBODY)
                os.setresuid(NOBODY, NOBODY, NOBODY)
            _guest.run(code, cfg, workdir, tuple(w for _, w in pipes), namespaces)
        finally:
            os._exit(70)
    for _, w in pipes:
        os.close(w)
    write_frame(report_fd, {"pid": pid})
    try:
        return _watch(pid, [r for r, _ in pipes], limits, t0)
    finally:
        if not namespaces:
            _kill_group(pid)  # what the snippet started (with namespaces the kernel has killed it all)
            shutil.rmtree(workdir, ignore_errors=True)


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _watch(pid: int, fds: list[int], limits: dict, t0: float) -> dict:
    cap = limits["max_output_bytes"]
    bufs = {fd: bytearray() for fd in fds}
    open_fds = list(fds)
    pidfd = os.pidfd_open(pid)
    deadline = t0 + limits["timeout_s"]
    killed_for = None
    exited = False
    while open_fds and killed_for is None:
        wait = deadline - time.monotonic()
        if wait <= 0:
            killed_for = TIMEOUT
            break
        ready, _, _ = select.select(open_fds + ([] if exited else [pidfd]), [], [], wait)
        if pidfd in ready:
            exited = True  # keep reading until every pipe is closed (with namespaces: at once)
        for fd in ready:
            if fd == pidfd:
                continue
            chunk = os.read(fd, 1 << 16)
            if not chunk:
                open_fds.remove(fd)
                continue
            bufs[fd] += chunk
            if fd != fds[2] and len(bufs[fd]) > cap:
                killed_for = OUTPUT_LIMIT
        if exited and not ready:
            break
    if killed_for is not None:
        os.kill(pid, signal.SIGKILL)
    _, wstatus, usage = os.wait4(pid, 0)
    wall = time.monotonic() - t0
    os.close(pidfd)
    for fd in fds:
        os.close(fd)
    out, err, status_line = (bytes(bufs[fd]) for fd in fds)
    res = {"stdout": out[:cap].decode("utf-8", "replace"), "stderr": err[:cap].decode("utf-8", "replace"),
           "wall_s": round(wall, 4), "cpu_s": round(usage.ru_utime + usage.ru_stime, 4),
           "output_truncated": len(out) > cap or len(err) > cap}
    res.update(_classify(wstatus, status_line, killed_for, limits, res["cpu_s"]))
    return res


def _classify(wstatus: int, status_line: bytes, killed_for, limits: dict, cpu_s: float) -> dict:
    if killed_for == TIMEOUT:
        return {"status": TIMEOUT, "signal": "SIGKILL",
                "error": f"TimeoutError: the snippet ran longer than {limits['timeout_s']:g} s (wall clock) and was killed"}
    if killed_for == OUTPUT_LIMIT:
        return {"status": OUTPUT_LIMIT, "signal": "SIGKILL",
                "error": f"the snippet wrote more than {limits['max_output_bytes']} bytes of output and was killed"}
    reported = None
    for line in status_line.decode("utf-8", "replace").splitlines():
        try:
            reported = json.loads(line)  # the last complete line wins
        except ValueError:
            pass
    if os.WIFSIGNALED(wstatus):
        sig = os.WTERMSIG(wstatus)
        name = signal.Signals(sig).name if sig in signal.Signals._value2member_map_ else str(sig)
        if sig == signal.SIGXCPU or (sig == signal.SIGKILL and cpu_s >= limits["cpu_seconds"] - 0.05):
            return {"status": CPU_LIMIT, "signal": name,
                    "error": f"the snippet used up its {limits['cpu_seconds']} s of CPU time and was killed"}
        return {"status": KILLED, "signal": name, "error": f"the snippet was killed by signal {name}"}
    code = os.WEXITSTATUS(wstatus)
    if reported is None:
        return {"status": "exited", "exit_code": code,
                "error": f"the snippet's process exited with code {code} before finishing"}
    out = {"exit_code": reported.get("exit_code", code), "status": reported["status"]}
    if reported.get("error"):
        out["error"] = reported["error"]
    return out


def run_one(code: str, cfg: dict) -> dict:
    """Fork the supervisor for one snippet and return its result (a sandbox_error if it died)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        os.close(r)
        try:
            result = supervise(code, cfg, w)
        except BaseException as e:  # noqa: BLE001 -- reported as a sandbox failure of this snippet only
            result = ExecResult.failure(f"sandbox supervisor: {type(e).__name__}: {e}").to_dict()
        try:
            write_frame(w, result)
        finally:
            os._exit(0)
    os.close(w)
    started = read_frame(r)
    result = read_frame(r) if started is not None else None
    os.close(r)
    _, wstatus = os.waitpid(pid, 0)
    if result is None and started is not None:
        _kill_group(started["pid"])  # the supervisor died: do not leave its snippet running
    if result is None:
        how = (f"signal {os.WTERMSIG(wstatus)}" if os.WIFSIGNALED(wstatus) else f"exit code {os.WEXITSTATUS(wstatus)}")
        result = ExecResult.failure(f"the snippet's supervisor died ({how}) before reporting; the snippet may "
                                    "have killed it").to_dict()
    return result


def main() -> int:
    cfg = json.loads(sys.argv[1])
    # No parent-death signal here: it would fire when the *thread* that started this process ends. EOF on stdin
    # (the executor closed it or died) ends the zygote; its supervisors and snippets have the signal.
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # a Ctrl-C of the trainer is the trainer's to handle
    hello = setup(cfg)
    write_frame(1, hello)
    if not hello["ready"]:
        return 1
    cfg["mode"] = hello["isolation"]
    while True:
        req = read_frame(0)
        if req is None:
            return 0
        write_frame(1, run_one(req["code"], cfg))


if __name__ == "__main__":
    sys.exit(main())
