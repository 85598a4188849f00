"""Self-describing model files: safetensors weights with JSON metadata in the same file.

The metadata (under the ``strings`` key of the safetensors header) carries everything needed
to rebuild and trust the model: format version, model and preprocessing configs, alphabet,
training data, validation metrics. Nothing is ever unpickled.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from strings.config import ModelConfig, PreprocessConfig, from_dict, to_dict
from strings.models import DenseNetCTC, create_model

__all__ = [
    "FORMAT", "MAX_PARAMETERS", "CheckpointError", "atomic_write", "checked_build", "load_model", "read_metadata",
    "save_model", "sha256_file",
]

FORMAT = "strings.densenet_ctc/1"
MAX_HEIGHT = 256  # input height bound for untrusted metadata
META_KEY = "strings"
# Largest network a model file may describe: 50x the biggest named config (densenet_ctc_base,
# about 1 M), 200 MB of float32. Metadata is untrusted; the config bounds alone allow ~1e11.
MAX_PARAMETERS = 50_000_000

M = TypeVar("M", bound=torch.nn.Module)


class CheckpointError(ValueError):
    """A model file that is unreadable, not ours, or inconsistent with its own metadata."""


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def atomic_write(path: Path, write: Any) -> None:
    """Call ``write(tmp_path)`` then rename over ``path``: a crash leaves the old file intact."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; a model file is meant to be shared
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            kept = "the previous file is intact" if path.exists() else "nothing was written"
            raise OSError(exc.errno, f"disk full while writing {path} ({kept}); free space and rerun to resume") from None
        raise
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def save_model(
    path: str | os.PathLike,
    model: DenseNetCTC,
    preprocess: PreprocessConfig,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write weights + metadata atomically. ``tensors`` adds non-model tensors (training state)."""
    meta = {
        "format": FORMAT,
        "model": to_dict(model.cfg),
        "height": model.height,
        "preprocess": to_dict(preprocess),
        "alphabet": model.cfg.alphabet,
        **(extra or {}),
    }
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (tensors or {}).items():
        state[k] = v.detach().cpu().contiguous()
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={META_KEY: json.dumps(meta)}))


def read_metadata(
    path: str | os.PathLike, fmt: str = FORMAT, required: tuple[str, ...] = ("model", "height", "preprocess", "alphabet")
) -> dict[str, Any]:
    """The JSON metadata of a model file, validated for format ``fmt`` and for the ``required``
    keys (no weights are read). Other kinds of file (digit classifiers, SVM heads) pass theirs."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"model file not found: {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            header = fh.metadata() or {}
    except (SafetensorError, OSError, ValueError) as exc:
        raise CheckpointError(f"{path}: not a safetensors file ({exc})") from None
    if META_KEY not in header:
        raise CheckpointError(f"{path}: safetensors file without strings metadata")
    try:
        meta = json.loads(header[META_KEY])
    except json.JSONDecodeError as exc:
        raise CheckpointError(f"{path}: metadata is not valid JSON ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != fmt:
        got = meta.get("format") if isinstance(meta, dict) else type(meta).__name__
        raise CheckpointError(f"{path}: format {got!r} is not {fmt!r}")
    for key in required:
        if key not in meta:
            raise CheckpointError(f"{path}: metadata lacks {key!r}")
    return meta


def load_model(path: str | os.PathLike) -> tuple[DenseNetCTC, PreprocessConfig, dict[str, Any], dict[str, torch.Tensor]]:
    """Rebuild a model from its file. Returns (model in eval mode, preprocessing, metadata,
    the file's other tensors). Refuses files whose weights disagree with their metadata."""
    path = Path(path)
    meta = read_metadata(path)
    try:
        model_cfg = from_dict(ModelConfig, meta["model"])
        pre = from_dict(PreprocessConfig, meta["preprocess"])
    except (TypeError, ValueError) as exc:
        raise CheckpointError(f"{path}: metadata does not describe a model this version can build ({exc})") from None
    if model_cfg.alphabet != meta["alphabet"]:
        raise CheckpointError(f"{path}: alphabet {meta['alphabet']!r} disagrees with the model config's {model_cfg.alphabet!r}")
    if not isinstance(meta["height"], int) or not 8 <= meta["height"] <= MAX_HEIGHT or meta["height"] != pre.height:
        raise CheckpointError(f"{path}: model height {meta['height']!r} is not an integer in 8..{MAX_HEIGHT} equal to the preprocessing height {pre.height}")
    model = checked_build(path, lambda: create_model(model_cfg=model_cfg, height=meta["height"]))
    tensors = load_file(str(path))
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    model.eval()
    others = {k: v for k, v in tensors.items() if not k.startswith("model.")}
    return model, pre, meta, others


def _weight_shapes(path: Path) -> dict[str, tuple[int, ...]]:
    """The shape of every ``model.*`` tensor, from the safetensors header alone (nothing loaded)."""
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        return {k[len("model.") :]: tuple(fh.get_slice(k).get_shape()) for k in fh.keys() if k.startswith("model.")}


def checked_build(path: str | os.PathLike, build: Callable[[], M]) -> M:
    """Build the network a file's metadata describes only once it is known to be small enough
    and to match the file's weights: ``build`` runs first on the meta device (no memory), its
    parameter count is held against ``MAX_PARAMETERS`` and its state's shapes against the
    file's header, and only then for real. Every refusal is a ``CheckpointError``."""
    path = Path(path)
    try:
        with torch.device("meta"):
            skeleton = build()
    except (RuntimeError, ValueError, ZeroDivisionError) as exc:
        raise CheckpointError(f"{path}: metadata describes a network that cannot be built ({exc})") from None
    n_params = sum(p.numel() for p in skeleton.parameters())
    if n_params > MAX_PARAMETERS:
        raise CheckpointError(
            f"{path}: metadata describes a network of {n_params:,} parameters, over the limit of {MAX_PARAMETERS:,}"
        )
    expected = {k: tuple(v.shape) for k, v in skeleton.state_dict().items()}
    found = _weight_shapes(path)
    missing, unexpected = sorted(set(expected) - set(found)), sorted(set(found) - set(expected))
    if missing or unexpected:
        raise CheckpointError(
            f"{path}: weights do not match the metadata's model (missing {missing[:3]}, unexpected {unexpected[:3]})"
        )
    for k, shape in found.items():
        if shape != expected[k]:
            raise CheckpointError(f"{path}: weight {k} has shape {shape}, the metadata's model needs {expected[k]}")
    return build()
