"""The package boundaries the code relies on, checked on the source (fast, no imports of the packages):

- ``mathrl_core`` (the shared core) imports neither ``trainer`` nor ``eval``; ``eval`` never imports ``trainer``;
- ``sandbox`` (the code executor) imports nothing of the project;
- only the vLLM backend constructs ``vllm.LLM`` (so every engine gets its arguments from ``engine_args``);
- every package directory is shipped by ``setup.py``.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]


def _imported_roots(path: Path) -> set[str]:
    roots = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            roots |= {a.name.split(".")[0] for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            roots.add(node.module.split(".")[0])
    return roots


@pytest.mark.parametrize("package, forbidden", [("mathrl_core", {"trainer", "eval"}), ("eval", {"trainer"}),
                                                ("sandbox", {"trainer", "eval", "mathrl_core", "reward_service"})])
def test_import_boundaries(package, forbidden):
    bad = {str(p.relative_to(REPO)): sorted(_imported_roots(p) & forbidden)
           for p in (REPO / package).rglob("*.py") if _imported_roots(p) & forbidden}
    assert not bad, f"{package} must not import {sorted(forbidden)}: {bad}"


def _calls_llm(path: Path) -> bool:
    return any(isinstance(n, ast.Call) and getattr(n.func, "id", getattr(n.func, "attr", None)) == "LLM"
               for n in ast.walk(ast.parse(path.read_text(encoding="utf-8"))))


def test_only_the_vllm_backend_builds_an_engine():
    builders = [str(p.relative_to(REPO)) for pkg in ("mathrl_core", "trainer", "eval", "benchmarks", "scripts")
                for p in sorted((REPO / pkg).rglob("*.py")) if _calls_llm(p)]
    assert builders == ["mathrl_core/rollout/vllm_engine.py"]


def test_setup_ships_every_package():
    from setuptools import find_packages

    include = re.search(r"find_packages\(include=(\[[^\]]*\])\)", (REPO / "setup.py").read_text()).group(1)
    shipped = set(find_packages(where=str(REPO), include=ast.literal_eval(include)))
    top = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks", "scripts"}
    assert top <= shipped, f"not shipped: {sorted(top - shipped)}"


def test_trainer_image_copies_every_shipped_package():
    """The trainer image installs from copied sources: a package left out of its COPY lines breaks the image
    (the tool rollouts import ``sandbox``)."""
    copied = set(re.findall(r"^COPY (\w+) \./\1$", (REPO / "docker" / "trainer.Dockerfile").read_text(), re.M))
    top = {p.parent.name for p in REPO.glob("*/__init__.py")} - {"tests", "benchmarks", "scripts"}
    assert top <= copied, f"not copied into the trainer image: {sorted(top - copied)}"
