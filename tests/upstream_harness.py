"""Running the upstream trainers' own code (OpenRLHF and verl releases) in subprocesses, for the interop tests.

scripts/upstream.py pins the releases and installs each into its own folder under ``.venv/upstream``
(``make test`` -> scripts/setup_venv.sh does it). A test runs one of the scripts in tests/interop/ with
:func:`run_upstream`: a fresh interpreter whose PYTHONPATH starts with one release's folder and its support
folder, so two versions of one package never meet in a process and nothing of theirs leaks into the suite.
The scripts print one JSON object on their last line of stdout; that is what the test checks.

Two helpers are for the scripts themselves, for modules whose import chain cannot load on CPU (each use says
why): :func:`main_block_args` runs a CLI module's own ``if __name__ == "__main__":`` block (its argparse
definitions and argument checks) without the module's heavy top-level imports, and :func:`load_defs`
executes chosen top-level definitions of a source file.
"""
from __future__ import annotations

import ast
import importlib.util
import json
import os
import subprocess
import sys
import types
from pathlib import Path
from types import SimpleNamespace
from typing import Any, Iterable, Sequence

TESTS = Path(__file__).resolve().parent
REPO = TESTS.parent
INTEROP = TESTS / "interop"


def _pins():
    spec = importlib.util.spec_from_file_location("mathrl_upstream_pins", REPO / "scripts" / "upstream.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


PINS = _pins()
UPSTREAM_DIR = Path(os.environ.get("MATHRL_UPSTREAM_DIR", PINS.DEFAULT_DEST))


class UpstreamMissing(RuntimeError):
    pass


def _installed(path: Path) -> Path:
    if not (path / ".complete").is_file():
        raise UpstreamMissing(f"{path} is not installed: run `python scripts/upstream.py fetch` "
                              f"(scripts/setup_venv.sh does it for the dev extras)")
    return path


def release(name: str, version: str) -> Path:
    """The folder holding upstream ``name`` at ``version`` (a pinned release)."""
    return _installed(PINS.release_dir(UPSTREAM_DIR, name, version))


def support(name: str) -> Path:
    """The folder with what ``name``'s modules import beyond this project's environment."""
    return _installed(PINS.support_dir(UPSTREAM_DIR, name))


def roots(name: str, version: str) -> list[Path]:
    return [release(name, version), support(name)]


def upstream_env(paths: Iterable[Path], extra: dict | None = None) -> dict:
    """The environment of a subprocess that imports from ``paths`` first, then this repo and tests/."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([*map(str, paths), str(REPO), str(TESTS)])
    env.setdefault("OMP_NUM_THREADS", "1")
    env["PYTHONUNBUFFERED"] = "1"
    env.update(extra or {})
    return env


def run_upstream(script: str, paths: Iterable[Path], *args: str, env: dict | None = None,
                 timeout: float = 600) -> Any:
    """Run tests/interop/``script`` with ``paths`` first on its PYTHONPATH; return the JSON of its last stdout
    line. A non-zero exit is an AssertionError carrying the script's output."""
    cmd = [sys.executable, str(INTEROP / script), *args]
    r = subprocess.run(cmd, env=upstream_env(paths, env), capture_output=True, text=True, timeout=timeout,
                       cwd=str(REPO))
    if r.returncode != 0:
        raise AssertionError(f"{script} {' '.join(args)} exited with {r.returncode}:\n"
                             f"{r.stdout[-4000:]}\n{r.stderr[-8000:]}")
    lines = [line for line in r.stdout.splitlines() if line.strip()]
    if not lines:
        raise AssertionError(f"{script} printed nothing:\n{r.stderr[-8000:]}")
    return json.loads(lines[-1])


def emit(obj: Any) -> None:
    """A script's answer: one JSON line, last on stdout."""
    sys.stdout.write("\n" + json.dumps(obj) + "\n")
    sys.stdout.flush()


# ------------------------------------------------------------------------ for the scripts in tests/interop/

def _stdlib_imports(tree: ast.Module) -> list[ast.stmt]:
    keep = []
    for node in tree.body:
        if isinstance(node, ast.Import) and all(a.name.split(".")[0] in sys.stdlib_module_names for a in node.names):
            keep.append(node)
        elif (isinstance(node, ast.ImportFrom) and node.level == 0 and node.module
              and node.module.split(".")[0] in sys.stdlib_module_names):
            keep.append(node)
    return keep


class _Parsed(Exception):
    def __init__(self, args):
        super().__init__("parsed")
        self.args_ = args


def main_block_args(path: str | Path, argv: Sequence[str]) -> tuple[Any, Any]:
    """Run the ``if __name__ == "__main__":`` block of the CLI module at ``path`` with ``sys.argv[1:] = argv``
    and return the ``args`` it hands to ``train(args)`` and its ``parser``.

    The block is the release's own code: its ArgumentParser with every ``add_argument``, ``parse_args`` and the
    checks and rewrites that follow (argparse errors exit with status 2 and a message, as on the command line).
    Only the module's standard-library imports are executed first: its other top-level imports (Ray actors,
    vLLM engines, DeepSpeed, flash-attn) are what ``train`` needs, and flash-attn cannot load on CPU.
    """
    path = Path(path)
    tree = ast.parse(path.read_text(), str(path))
    main = [n for n in tree.body if isinstance(n, ast.If) and isinstance(n.test, ast.Compare)
            and isinstance(n.test.left, ast.Name) and n.test.left.id == "__name__"]
    if len(main) != 1:
        raise ValueError(f"{path} has {len(main)} `if __name__ == '__main__'` blocks")
    module = ast.Module(body=[*_stdlib_imports(tree), *main[0].body], type_ignores=[])

    def train(args):
        raise _Parsed(args)

    namespace = {"__name__": "__main__", "__file__": str(path), "train": train}
    saved = sys.argv
    sys.argv = [str(path), *argv]
    try:
        exec(compile(module, str(path), "exec"), namespace)
    except _Parsed as done:
        return done.args_, namespace.get("parser")
    finally:
        sys.argv = saved
    raise RuntimeError(f"{path}: the main block ended without calling train(args)")


def flat(args: Any, prefix: str = "") -> dict:
    """argparse results as ``{"dotted.name": value}``: a Namespace, or OpenRLHF's nested SimpleNamespaces."""
    out = {}
    for key, value in vars(args).items():
        if isinstance(value, SimpleNamespace):
            out.update(flat(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def load_defs(path: str | Path, names: Sequence[str], **globals_: Any) -> SimpleNamespace:
    """Execute only the top-level functions and classes ``names`` of the source file ``path`` (with its
    standard-library imports and ``globals_``) and return them: for a module whose own imports cannot load here."""
    path = Path(path)
    tree = ast.parse(path.read_text(), str(path))
    found = {n.name: n for n in tree.body if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef))}
    missing = [n for n in names if n not in found]
    if missing:
        raise ValueError(f"{path} defines no {missing}")
    code = ast.Module(body=[*_stdlib_imports(tree), *(found[n] for n in names)], type_ignores=[])
    module = types.ModuleType(f"upstream_{path.stem}")  # registered: dataclasses look their module up
    module.__file__ = str(path)
    module.__dict__.update(globals_)
    sys.modules[module.__name__] = module
    exec(compile(code, str(path), "exec"), module.__dict__)
    return SimpleNamespace(**{n: module.__dict__[n] for n in names})
