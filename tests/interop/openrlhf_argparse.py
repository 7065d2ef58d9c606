"""Parse an OpenRLHF command line with the installed release's own train_ppo_ray argparse definitions.

    python tests/interop/openrlhf_argparse.py ARGV_JSON      (openrlhf's folder first on PYTHONPATH)

Prints {"version", "args": {dotted name: value}, "options": [every option string of the parser]}. An unknown
flag ends the run as it would end OpenRLHF: argparse's error message and exit status 2.

openrlhf/cli/train_ppo_ray.py imports its Ray actors at the top (vLLM engines, DeepSpeed strategies, flash-attn,
which cannot load on CPU), so its main block is run on its own (upstream_harness.main_block_args): the
release's ArgumentParser, parse_args and the checks that follow it, up to train(args).
"""
import importlib.metadata
import importlib.util
import json
import sys

from upstream_harness import emit, flat, main_block_args

argv = json.loads(sys.argv[1])
path = importlib.util.find_spec("openrlhf").submodule_search_locations[0] + "/cli/train_ppo_ray.py"
args, parser = main_block_args(path, argv)
values = {k: v if isinstance(v, (str, int, float, bool, type(None))) else
          [x if isinstance(x, (str, int, float, bool)) else repr(x) for x in v] if isinstance(v, (list, tuple))
          else repr(v) for k, v in flat(args).items()}
emit({"version": importlib.metadata.version("openrlhf"), "file": path, "args": values,
      "options": sorted(o for a in parser._actions for o in a.option_strings)})
