"""``code-sandbox``: the sandboxed Python executor from the command line.

    code-sandbox probe                          which isolation this machine allows, and why not the strongest
    code-sandbox run FILE.py [--timeout 5]      run one snippet, print its ExecResult as JSON
    code-sandbox serve --port 8100 --workers 8  the HTTP endpoint (token: --token or $SANDBOX_TOKEN)
"""
from __future__ import annotations

import argparse
import json
import logging
import os
import sys
from typing import Optional, Sequence

import uvicorn

from sandbox.app import ServerSettings, create_app
from sandbox.executor import DEFAULT_PRELOAD, PythonExecutor, SandboxStartError
from sandbox.limits import ISOLATIONS, SandboxLimits


def _limit_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--timeout", type=float, default=5.0, help="wall-clock seconds per snippet")
    p.add_argument("--cpu", type=float, default=None, help="CPU seconds per snippet (default: the timeout)")
    p.add_argument("--memory-mb", type=int, default=1024, help="address-space limit per process")
    p.add_argument("--max-processes", type=int, default=4)
    p.add_argument("--max-output-bytes", type=int, default=1 << 20)
    p.add_argument("--isolation", choices=ISOLATIONS, default="auto")
    p.add_argument("--preload", default=",".join(DEFAULT_PRELOAD), help="comma-separated modules ('' for none)")
    p.add_argument("--show-last-expression", action="store_true")


def _limits(a) -> SandboxLimits:
    return SandboxLimits(timeout_s=a.timeout, cpu_s=a.cpu, memory_mb=a.memory_mb, max_processes=a.max_processes,
                         max_output_bytes=a.max_output_bytes)


def _preload(a) -> tuple:
    return tuple(m for m in a.preload.split(",") if m.strip())


def main(argv: Optional[Sequence[str]] = None) -> int:
    ap = argparse.ArgumentParser(prog="code-sandbox", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    pr = sub.add_parser("probe", help="the isolation available here")
    pr.add_argument("--isolation", choices=ISOLATIONS, default="auto")
    r = sub.add_parser("run", help="run one snippet file ('-' = stdin)")
    r.add_argument("file")
    _limit_args(r)
    s = sub.add_parser("serve", help="the HTTP endpoint")
    s.add_argument("--host", default="127.0.0.1")
    s.add_argument("--port", type=int, default=8100)
    s.add_argument("--workers", type=int, default=2)
    s.add_argument("--token", default=os.environ.get("SANDBOX_TOKEN"))
    s.add_argument("--max-snippets", type=int, default=1024)
    _limit_args(s)
    a = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    try:
        if a.cmd == "probe":
            with PythonExecutor(workers=1, isolation=a.isolation, preload=()) as ex:
                print(json.dumps({"isolation": ex.isolation, "warnings": ex.warnings}, indent=2))
            return 0
        if a.cmd == "run":
            code = sys.stdin.read() if a.file == "-" else open(a.file, encoding="utf-8").read()
            with PythonExecutor(_limits(a), workers=1, isolation=a.isolation, preload=_preload(a),
                                show_last_expression=a.show_last_expression) as ex:
                res = ex.run(code)
            print(json.dumps(res.to_dict(), indent=2))
            return 0 if res.ok else 1
    except SandboxStartError as e:
        print(f"code-sandbox: {e}", file=sys.stderr)
        return 2
    settings = ServerSettings(workers=a.workers, limits=_limits(a), isolation=a.isolation, preload=_preload(a),
                              show_last_expression=a.show_last_expression, token=a.token,
                              max_snippets=a.max_snippets)
    uvicorn.run(create_app(settings), host=a.host, port=a.port, log_level="info")
    return 0


if __name__ == "__main__":
    sys.exit(main())
