"""Parse OpenRLHF command lines with each release's own train_ppo_ray argparse definitions.

    python tests/interop/openrlhf_argparse.py JOBS_JSON      (openrlhf's support folder on PYTHONPATH)

JOBS_JSON is a file holding [{"root": <folder of one openrlhf release>, "argv": [...]}, ...]. For each job the
release's folder goes first on sys.path (the previous release's openrlhf modules are dropped, so releases never
mix; the heavy libraries they import stay loaded, which keeps eleven releases to one interpreter start).
Prints [{"version", "file", "args": {dotted name: value}, "options": [every option string of the parser]}
or {"version", "error": argparse's message}, ...] in job order: an unknown flag ends a release's parse as it would
end OpenRLHF, with argparse's error (exit status 2).

openrlhf/cli/train_ppo_ray.py imports its Ray actors at the top (vLLM engines, DeepSpeed strategies, flash-attn,
which cannot load on CPU), so its main block is run on its own (upstream_harness.main_block_args): the
release's ArgumentParser, parse_args and the checks that follow it, up to train(args).
"""
import contextlib
import importlib
import importlib.metadata
import importlib.util
import io
import json
import sys

from upstream_harness import emit, flat, main_block_args


def plain(v):
    if isinstance(v, (str, int, float, bool, type(None))):
        return v
    if isinstance(v, (list, tuple)):
        return [x if isinstance(x, (str, int, float, bool)) else repr(x) for x in v]
    return repr(v)


def parse(root: str, argv: list) -> dict:
    for name in [m for m in sys.modules if m == "openrlhf" or m.startswith("openrlhf.")]:
        del sys.modules[name]
    sys.path.insert(0, root)
    importlib.invalidate_caches()
    try:
        version = importlib.metadata.version("openrlhf")
        path = importlib.util.find_spec("openrlhf").submodule_search_locations[0] + "/cli/train_ppo_ray.py"
        err = io.StringIO()
        try:
            with contextlib.redirect_stderr(err):
                args, parser = main_block_args(path, argv)
        except SystemExit as e:
            return {"version": version, "error": f"exit {e.code}: {err.getvalue()[-2000:]}"}
        return {"version": version, "file": path, "args": {k: plain(v) for k, v in flat(args).items()},
                "options": sorted(o for a in parser._actions for o in a.option_strings)}
    finally:
        sys.path.remove(root)


jobs = json.load(open(sys.argv[1]))
emit([parse(job["root"], job["argv"]) for job in jobs])
