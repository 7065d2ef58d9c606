"""What a snippet may use (``SandboxLimits``) and what running it gave (``ExecResult``): plain data shared by the
executor, the HTTP endpoint and the sandbox process itself (standard library only)."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field, fields
from typing import Optional

# ExecResult.status values: "ok" is the only success; every other one comes with a one-line ``error``.
OK = "ok"                      # ran to the end (sys.exit(0) included)
ERROR = "error"                # raised an exception (SyntaxError, ZeroDivisionError, a blocked operation, ...)
TIMEOUT = "timeout"            # ran past the wall-clock limit and was killed
CPU_LIMIT = "cpu_limit"        # used up its CPU seconds (RLIMIT_CPU) and was killed
MEMORY = "memory"              # MemoryError at the address-space limit (RLIMIT_AS)
OUTPUT_LIMIT = "output_limit"  # wrote more than max_output_bytes to stdout/stderr and was killed
KILLED = "killed"              # died of a signal it did not get from the limits (SIGSEGV, its own SIGKILL, ...)
EXITED = "exited"              # left early without finishing: os._exit(n), sys.exit(n != 0)
SANDBOX_ERROR = "sandbox_error"  # the sandbox itself failed (its process died, a protocol error); not the snippet
STATUSES = (OK, ERROR, TIMEOUT, CPU_LIMIT, MEMORY, OUTPUT_LIMIT, KILLED, EXITED, SANDBOX_ERROR)

ISOLATIONS = ("auto", "namespaces", "rlimits")


@dataclass(frozen=True)
class SandboxLimits:
    """Hard limits for one snippet, enforced by the kernel in the snippet's process (see docs/sandbox.md).

    - ``timeout_s``: wall clock; the snippet's process (and, with namespaces, everything it started) is killed.
    - ``cpu_s``: RLIMIT_CPU per process (default: the wall timeout).
    - ``memory_mb``: RLIMIT_AS, the address space of each process (the preloaded modules count towards it).
    - ``max_processes``: RLIMIT_NPROC; processes and threads the snippet may run at once, itself included.
    - ``max_file_mb``: RLIMIT_FSIZE, the largest file it may write; ``tmpfs_mb``: the size of its private
      directory (namespaces only: a fresh tmpfs per snippet).
    - ``max_output_bytes``: stdout and stderr are captured up to this many bytes each; a snippet that writes more
      is killed (``output_limit``) and the captured head is returned.
    - ``max_open_files``: RLIMIT_NOFILE.
    """

    timeout_s: float = 5.0
    cpu_s: Optional[float] = None
    memory_mb: int = 1024
    max_processes: int = 4
    max_file_mb: int = 16
    tmpfs_mb: int = 64
    max_output_bytes: int = 1 << 20
    max_open_files: int = 64

    def __post_init__(self):
        for f in fields(self):
            v = getattr(self, f.name)
            if v is not None and not v > 0:
                raise ValueError(f"SandboxLimits.{f.name} must be > 0, got {v}")

    @property
    def cpu_seconds(self) -> int:
        return max(1, int(round(self.cpu_s if self.cpu_s is not None else self.timeout_s)))

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class ExecResult:
    """The outcome of one snippet. ``stdout``/``stderr`` are what it wrote (up to ``max_output_bytes`` each,
    decoded as UTF-8 with replacement); ``error`` is a one-line description for every status but ``ok``."""

    status: str
    stdout: str = ""
    stderr: str = ""
    error: Optional[str] = None
    exit_code: Optional[int] = None
    signal: Optional[str] = None
    wall_s: float = 0.0
    cpu_s: float = 0.0
    output_truncated: bool = False
    extra: dict = field(default_factory=dict)

    @property
    def ok(self) -> bool:
        return self.status == OK

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "ExecResult":
        known = {f.name for f in fields(cls)}
        if "status" not in d or d["status"] not in STATUSES:
            raise ValueError(f"not an ExecResult: status {d.get('status')!r}")
        return cls(**{k: v for k, v in d.items() if k in known})

    @classmethod
    def failure(cls, message: str, **kw) -> "ExecResult":
        """A ``sandbox_error``: the sandbox, not the snippet, failed."""
        return cls(SANDBOX_ERROR, error=message, **kw)
