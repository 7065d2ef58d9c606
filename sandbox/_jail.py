"""Kernel isolation for the sandbox process, without root: Linux namespaces, a private read-only root, and
dropping every capability (ctypes over libc; standard library only).

Runs inside the sandbox's own processes (``_zygote``), never in the trainer. The order matters:

1. :func:`isolate` (the zygote, once): a new user namespace (the only one an unprivileged process may create; it
   grants capabilities over the namespaces it owns and nothing else), and with it new mount, network, IPC and UTS
   namespaces. The network namespace has only a loopback device, and it is down: no network at all. A root
   caller becomes ``nobody`` first (see :func:`isolate`).
2. :func:`build_root` (inside :func:`isolate`): a tmpfs becomes the new root (``pivot_root``; the old root is detached,
   so no path leads back to it) holding read-only bind mounts of the system and Python directories only
   (``/usr``, ``/lib*``, the Python prefixes), ``/dev/{null,zero,random,urandom}`` and an empty ``/sandbox``;
   then the root itself is made read-only.
3. :func:`private_snippet_namespaces` (per snippet, in the snippet's supervisor): new mount and PID namespaces
   and a fresh size-limited tmpfs on ``/sandbox``. The snippet becomes PID 1 of its PID namespace, so when it dies
   the kernel kills everything it started, and it can see no other process.
4. :func:`drop_privileges` (the snippet itself, last): no-new-privs, the capability bounding set emptied, all
   capabilities dropped.
"""
from __future__ import annotations

import ctypes
import ctypes.util
import os
import platform
import stat
import sys

CLONE_NEWNS = 0x00020000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY, MS_NOSUID, MS_NODEV, MS_NOEXEC = 1, 2, 4, 8
MS_REMOUNT, MS_BIND, MS_REC, MS_PRIVATE = 32, 4096, 16384, 1 << 18
MNT_DETACH = 2
# statvfs f_flag bits that a remount inside a user namespace must keep (the kernel locks them)
_LOCKED_FLAGS = ((os.ST_RDONLY, MS_RDONLY), (os.ST_NOSUID, MS_NOSUID), (os.ST_NODEV, MS_NODEV),
                 (os.ST_NOEXEC, MS_NOEXEC))

PR_SET_PDEATHSIG, PR_SET_DUMPABLE, PR_SET_NO_NEW_PRIVS, PR_CAPBSET_DROP = 1, 4, 38, 24
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
# pivot_root has no libc wrapper: its syscall number per architecture
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203, "s390x": 217, "riscv64": 41}

SYSTEM_DIRS = ("/usr", "/lib", "/lib64", "/lib32", "/libx32", "/bin", "/sbin")
DEVICES = ("null", "zero", "random", "urandom")
NOBODY = 65534
WORK = "/sandbox"  # the private directory (a fresh tmpfs per snippet); /tmp points to it

_libc = ctypes.CDLL(ctypes.util.find_library("c") or None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
_libc.prctl.argtypes = [ctypes.c_int, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong, ctypes.c_ulong]


class JailError(OSError):
    pass


def _check(ret: int, what: str) -> None:
    if ret != 0:
        err = ctypes.get_errno()
        raise JailError(err, f"{what}: {os.strerror(err)}")


def _b(s):
    return s.encode() if isinstance(s, str) else s


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), f"unshare({flags:#x})")


def mount(source, target, fstype, flags: int, data=None) -> None:
    _check(_libc.mount(_b(source), _b(target), _b(fstype), flags, _b(data)), f"mount {target}")


def prctl(option: int, arg: int = 0) -> None:
    _check(_libc.prctl(option, arg, 0, 0, 0), f"prctl({option})")


def set_parent_death_signal(sig: int) -> None:
    """Die with ``sig`` when the parent process dies (no orphaned sandbox processes)."""
    prctl(PR_SET_PDEATHSIG, sig)


def _map_user(proc_self: int) -> None:
    """Map this process's uid/gid to 1000 in the user namespace it just created (``proc_self``: a descriptor of
    ``/proc/self`` opened before, so this works after ``pivot_root`` too)."""
    uid, gid = os.geteuid(), os.getegid()
    for name, text in (("setgroups", "deny"), ("uid_map", f"1000 {uid} 1"), ("gid_map", f"1000 {gid} 1")):
        fd = os.open(name, os.O_WRONLY, dir_fd=proc_self)
        try:
            os.write(fd, text.encode())
        finally:
            os.close(fd)


def isolate(new_root: str, tmpfs_mb: int = 16, extra_dirs=()) -> None:
    """Steps 1 and 2 of the module docstring, for a root or an unprivileged caller.

    Unprivileged: the user namespace comes first (it grants the capabilities the mounts need). Root: the mount and
    network namespaces and the new root are made with root's own privileges, then the process becomes ``nobody``
    and only then enters a user namespace (mapped to nobody). Root must not stay root: the kernel exempts uid 0
    from RLIMIT_NPROC even inside a user namespace, and any file on a bound directory would be root's to read.
    """
    proc_self = os.open("/proc/self", os.O_RDONLY | os.O_DIRECTORY)
    try:
        other = CLONE_NEWNS | CLONE_NEWNET | CLONE_NEWIPC | CLONE_NEWUTS
        if os.geteuid() == 0:
            unshare(other)
            mount(None, "/", None, MS_REC | MS_PRIVATE)  # nothing we mount propagates back to the host
            build_root(new_root, tmpfs_mb, extra_dirs)
            os.setgroups([])
            os.setresgid(NOBODY, NOBODY, NOBODY)
            os.setresuid(NOBODY, NOBODY, NOBODY)
            prctl(PR_SET_DUMPABLE, 1)  # after setuid /proc/self is root's until this (needed to write the maps)
            unshare(CLONE_NEWUSER)
            _map_user(proc_self)
            prctl(PR_SET_DUMPABLE, 0)
        else:
            unshare(CLONE_NEWUSER | other)
            _map_user(proc_self)
            mount(None, "/", None, MS_REC | MS_PRIVATE)
            build_root(new_root, tmpfs_mb, extra_dirs)
    finally:
        os.close(proc_self)


def _locked_flags(path: str) -> int:
    flags = os.statvfs(path).f_flag
    return sum(ms for st, ms in _LOCKED_FLAGS if flags & st)


def _bind_readonly(src: str, dst: str) -> None:
    mount(src, dst, None, MS_BIND | MS_REC)
    mount(None, dst, None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV | _locked_flags(src))


def read_only_dirs(extra=()) -> list[str]:
    """The directories a snippet may read: system libraries and the Python installation (its prefixes and the
    directories of ``sys.path`` inside them). Nothing else of the host's file system is visible."""
    prefixes = {os.path.realpath(p) for p in (sys.base_prefix, sys.prefix, sys.exec_prefix, sys.base_exec_prefix)}
    dirs = [p for p in SYSTEM_DIRS if os.path.lexists(p)] + sorted(prefixes) + list(extra)
    out: list[str] = []
    for d in dirs:
        if any(d == o or d.startswith(o.rstrip("/") + "/") for o in out if not os.path.islink(o)):
            continue
        out.append(d)
    return out


def build_root(new_root: str, tmpfs_mb: int = 16, extra_dirs=()) -> None:
    """Make a tmpfs with read-only binds of :func:`read_only_dirs` the root of this mount namespace (see the module
    docstring). ``new_root``: an existing empty directory to mount it on (it stays untouched on the host)."""
    mount("tmpfs", new_root, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,mode=0755")
    for d in read_only_dirs(extra_dirs):
        target = new_root + d
        if os.path.islink(d):  # merged /usr: /bin -> usr/bin
            os.makedirs(os.path.dirname(target), exist_ok=True)
            os.symlink(os.readlink(d), target)
            continue
        if not os.path.isdir(d):
            continue
        os.makedirs(target, exist_ok=True)
        _bind_readonly(d, target)
    os.makedirs(new_root + "/dev", exist_ok=True)
    for name in DEVICES:
        src = "/dev/" + name
        if os.path.exists(src) and stat.S_ISCHR(os.stat(src).st_mode):
            open(new_root + src, "w").close()
            mount(src, new_root + src, None, MS_BIND)
    if os.path.lexists(new_root + WORK):
        raise JailError(0, f"{WORK} is needed for the private directory but a read-only directory lies under it")
    os.makedirs(new_root + WORK, mode=0o755)
    if not os.path.lexists(new_root + "/tmp"):
        os.symlink(WORK, new_root + "/tmp")  # /tmp is the private directory too
    old = new_root + "/.old_root"
    os.makedirs(old)
    arch = platform.machine()
    if arch not in _SYS_PIVOT_ROOT:
        raise JailError(0, f"pivot_root: unknown syscall number on {arch}")
    _check(_libc.syscall(_SYS_PIVOT_ROOT[arch], _b(new_root), _b(old)), "pivot_root")
    os.chdir("/")
    _check(_libc.umount2(b"/.old_root", MNT_DETACH), "umount the old root")
    os.rmdir("/.old_root")
    mount(None, "/", None, MS_BIND | MS_REMOUNT | MS_RDONLY | MS_NOSUID | MS_NODEV)


def private_snippet_namespaces(tmpfs_mb: int) -> None:
    """New mount and PID namespaces for one snippet, with a fresh tmpfs of ``tmpfs_mb`` MiB on ``/sandbox``. The next
    child of this process is PID 1 of the new PID namespace; the tmpfs vanishes with the namespace."""
    unshare(CLONE_NEWNS | CLONE_NEWPID)
    mount("tmpfs", WORK, "tmpfs", MS_NOSUID | MS_NODEV, f"size={tmpfs_mb}m,mode=0700")


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32), ("permitted", ctypes.c_uint32), ("inheritable", ctypes.c_uint32)]


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except OSError:  # /proc is not mounted in the sandbox's root; 63 covers every kernel
        return 63


LAST_CAP = _last_cap()


def drop_privileges() -> None:
    """No new privileges (setuid binaries, file capabilities), an empty bounding set, no capabilities."""
    prctl(PR_SET_NO_NEW_PRIVS, 1)
    for cap in range(LAST_CAP + 1):
        if _libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0) != 0 and ctypes.get_errno() not in (1, 22):  # EPERM, EINVAL
            raise JailError(ctypes.get_errno(), f"dropping capability {cap} from the bounding set")
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capset(ctypes.byref(header), ctypes.byref(data)), "capset")


def capabilities_effective() -> int:
    """The effective capability mask of this process (a check that :func:`drop_privileges` worked)."""
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    _check(_libc.capget(ctypes.byref(header), ctypes.byref(data)), "capget")
    return data[0].effective | (data[1].effective << 32)
