"""Single-digit mode: one image of one digit -> its value and the class probabilities.

The pieces mirror the string recognizer's: ``normalize_digit`` (any image -> the model's
canvas), ``DigitClassifier`` (preprocessing + network + head under inference mode), model files
(safetensors weights + JSON metadata that say it is a digit classifier, its script and its
preprocessing), and bundled models listed in ``strings/weights/digits.json`` and checked by
sha256 on every load.

Example:
    >>> import strings
    >>> clf = strings.load_digits("mnist")             # doctest: +SKIP
    >>> p = clf.classify("seven.png")                  # doctest: +SKIP
    >>> p.digit, p.confidence, p.probabilities[7]      # doctest: +SKIP
    (7, 0.9991, 0.9991)

**Confidence**, defined once: with the softmax head, the largest class probability (softmax of
the logits in float64, so that confident predictions do not all tie at 1.0); with the SVM head,
the largest entry of the softmax of the SVM's one-vs-one scores (a ranking, not calibrated).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from strings.alphabet import script_of
from strings.models.checkpoint import CheckpointError, atomic_write, checked_build, read_metadata, sha256_file
from strings.config import DigitNetConfig, DigitPreprocessConfig, from_dict, to_dict
from strings.digits.svm import SVMHead, load_svm
from strings.models import DigitNet, create_digit_model
from strings.image import ImageInput, load_image

__all__ = [
    "DIGIT_FORMAT",
    "HEADS",
    "DigitClassifier",
    "DigitPrediction",
    "bundle_digit_model",
    "bundled_digit_models",
    "ink_is_dark",
    "list_digit_models",
    "load_digit_model",
    "load_digits",
    "normalize_digit",
    "resolve_digit_model",
    "save_digit_model",
    "svm_path_for",
    "weights_digest",
]

DIGIT_FORMAT = "strings.digit_classifier/1"
HEADS = ("softmax", "svm")
WEIGHTS_DIR = Path(__file__).resolve().parent.parent / "weights"  # strings/weights
MANIFEST_NAME = "digits.json"
_BUNDLE_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
_U8_MAX = 255


# --------------------------------------------------------------------------- preprocessing


def ink_is_dark(grey: np.ndarray, border: int = DigitPreprocessConfig.border) -> bool:
    """Whether a grey digit image is dark ink on light paper (else light ink on dark).

    Ink is the minority: of all pixels, and of the pixels on the image's outer frame, which is
    mostly background. Either cue alone fails on some real sets (strokes that fill a tight crop
    beat the first, strokes along the edges of a crop stretched to its frame beat the second),
    so the pixels darker than the mid-grey are counted both ways and the two shares averaged.
    Measured on the training splits of the eight digit sets, each image as stored and inverted
    (208,800 images), this misjudges 34: 18 USPS, 12 Bangla, 4 Telugu; none of MNIST's.
    A blank image counts as dark-on-light (the project's convention).
    """
    lo, hi = float(grey.min()), float(grey.max())
    if hi - lo < 1.0:
        return True
    dark = grey < (lo + hi) / 2.0
    h, w = grey.shape
    b = min(border, h // 2, w // 2)
    frame = dark.ravel() if b < 1 else np.concatenate(
        [dark[:b].ravel(), dark[-b:].ravel(), dark[b:-b, :b].ravel(), dark[b:-b, -b:].ravel()]
    )
    return 0.5 * float(dark.mean()) + 0.5 * float(frame.mean()) < 0.5


def normalize_digit(
    grey: ImageInput, cfg: DigitPreprocessConfig, name: str | None = None, dark_ink: bool | None = None
) -> np.ndarray:
    """Any digit image -> float32 (size, size) canvas, ink bright in [0, 1], background 0.

    Steps: polarity (``dark_ink``, or when None ``ink_is_dark``: dataset samples are dark on
    light by the project's convention, user images may be either), contrast stretch between
    two percentiles, the ink's bounding box scaled so its longer side is ``cfg.box`` (aspect
    kept), and placement by centre of mass on the canvas (clipped so the ink stays inside).
    Inputs that are not a 2-D uint8 array go through ``load_image`` first (paths, RGB, PIL...).
    """
    if not (isinstance(grey, np.ndarray) and grey.ndim == 2 and grey.dtype == np.uint8 and grey.size):
        grey = load_image(grey, name)
    if dark_ink is None:
        dark_ink = ink_is_dark(grey, cfg.border)
    ink = (_U8_MAX - grey if dark_ink else grey).astype(np.float32)  # (H0, W0)
    lo, hi = (float(v) for v in np.percentile(ink, (cfg.low_percentile, cfg.high_percentile)))
    if hi - lo < 1.0:  # less ink than the high percentile sees (a thin 1 on a big page)
        hi = float(ink.max())
    canvas = np.zeros((cfg.size, cfg.size), np.float32)
    if hi - lo < 1.0:  # blank
        return canvas
    ink = np.clip((ink - lo) / (hi - lo), 0.0, 1.0)
    mask = ink >= cfg.ink_threshold
    rows, cols = np.flatnonzero(mask.any(1)), np.flatnonzero(mask.any(0))
    crop = ink[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]  # (h, w), tight to the ink
    h, w = crop.shape
    scale = cfg.box / max(h, w)
    nh, nw = max(1, round(h * scale)), max(1, round(w * scale))
    small = cv2.resize(crop, (nw, nh), interpolation=cv2.INTER_AREA if scale < 1 else cv2.INTER_LINEAR)
    mass = float(small.sum())
    if mass <= 0.0:
        cy, cx = nh / 2, nw / 2
    else:  # centre of mass in pixel-centre coordinates
        cy = float(small.sum(1) @ (np.arange(nh) + 0.5)) / mass
        cx = float(small.sum(0) @ (np.arange(nw) + 0.5)) / mass
    top = min(max(int(round(cfg.size / 2 - cy)), 0), cfg.size - nh)
    left = min(max(int(round(cfg.size / 2 - cx)), 0), cfg.size - nw)
    canvas[top : top + nh, left : left + nw] = np.clip(small, 0.0, 1.0)
    return canvas


# --------------------------------------------------------------------------- results


@dataclass(frozen=True)
class DigitPrediction:
    """One classified digit. ``digit`` is the value (class k is the value k in every script),
    ``char`` the numeral in the model's script; confidence as defined in the module docstring."""

    digit: int
    char: str
    confidence: float
    probabilities: tuple[float, ...]
    source: str = ""

    @property
    def text(self) -> str:
        """The value as text: the label convention of every digit dataset, so that the one
        evaluation loop (``strings.train.loop.evaluate``) scores classifiers like string models."""
        return str(self.digit)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["probabilities"] = list(self.probabilities)
        return d


# --------------------------------------------------------------------------- predictor


class DigitClassifier:
    """Preprocessing, network and head (softmax, or an SVM on the pooled features); inference only.

    One instance may serve several threads at once: it holds no per-call state.
    """

    def __init__(
        self,
        model: DigitNet,
        preprocess: DigitPreprocessConfig,
        metadata: dict[str, Any] | None = None,
        device: str | torch.device = "cpu",
        head: str = "softmax",
        svm: SVMHead | None = None,
        dark_ink: bool | None = None,
    ) -> None:
        """``dark_ink``: the polarity of every image it will see (True for dataset samples, which
        are dark on light by convention), or None to decide per image (``ink_is_dark``)."""
        if head not in HEADS:
            raise ValueError(f"unknown head {head!r}; known: {', '.join(HEADS)}")
        if head == "svm" and svm is None:
            raise ValueError("head 'svm' needs a fitted SVM head (strings digits fit-svm)")
        if svm is not None and svm.feature_dim != model.feature_dim:
            raise ValueError(f"the SVM head takes {svm.feature_dim} features, the model gives {model.feature_dim}")
        self.model = model.to(device).eval()
        self.preprocess = preprocess
        self.metadata = metadata or {}
        self.device = torch.device(device)
        self.head = head
        self.svm = svm
        self.dark_ink = dark_ink

    @property
    def name(self) -> str:
        return str(self.metadata.get("name", "unnamed"))

    @property
    def symbols(self) -> str:
        return self.model.cfg.symbols

    def normalize(self, images: Sequence[ImageInput]) -> np.ndarray:
        """Canvases (N, S, S) float32 for the network."""
        size = self.preprocess.size
        if not images:
            return np.zeros((0, size, size), np.float32)
        return np.stack([normalize_digit(im, self.preprocess, dark_ink=self.dark_ink) for im in images])

    @torch.inference_mode()
    def _forward(self, canvases: np.ndarray, batch_size: int, features: bool) -> np.ndarray:
        out = []
        for lo in range(0, len(canvases), batch_size):
            x = torch.from_numpy(canvases[lo : lo + batch_size])[:, None].to(self.device)  # (B, 1, S, S)
            f = self.model.features(x)  # (B, D)
            y = f if features else self.model.head(f)  # (B, D) or (B, K) logits
            out.append(y.double().cpu().numpy())
        width = self.model.feature_dim if features else self.model.num_classes
        return np.concatenate(out) if out else np.zeros((0, width))

    def features(self, greys: Sequence[ImageInput], batch_size: int = 256) -> np.ndarray:
        """Pooled network features (N, D), float64: what the SVM head is fitted on."""
        return self._forward(self.normalize(greys), batch_size, features=True)

    def probabilities(self, greys: Sequence[ImageInput], batch_size: int = 256) -> np.ndarray:
        """Class probabilities (N, K), float64, from the chosen head."""
        canvases = self.normalize(greys)
        if self.head == "svm":
            assert self.svm is not None
            return self.svm.probabilities(self._forward(canvases, batch_size, features=True))
        logits = self._forward(canvases, batch_size, features=False)
        logits -= logits.max(1, keepdims=True)
        e = np.exp(logits)
        return e / e.sum(1, keepdims=True)

    def recognize_greys(
        self, greys: Sequence[np.ndarray], sources: Sequence[str] | None = None, batch_size: int = 256
    ) -> list[DigitPrediction]:
        """Classify loaded images (any polarity). Same call as ``Recognizer.recognize_greys``,
        which is what ``strings.train.loop.evaluate`` uses."""
        sources = sources if sources is not None else [""] * len(greys)
        probs = self.probabilities(greys, batch_size)
        out = []
        for p, src in zip(probs, sources):
            k = int(p.argmax())
            out.append(DigitPrediction(k, self.symbols[k], float(p[k]), tuple(float(v) for v in p), src))
        return out

    def classify(self, image: ImageInput) -> DigitPrediction:
        """One digit: a path, a numpy array (grey or colour) or a PIL image, either polarity."""
        return self.classify_batch([image])[0]

    def classify_batch(self, images: Iterable[ImageInput], batch_size: int = 256) -> list[DigitPrediction]:
        """Many digits; raises on the first unreadable item, naming it."""
        items = list(images)
        greys = [load_image(x) for x in items]
        return self.recognize_greys(greys, [str(x) if isinstance(x, (str, os.PathLike)) else "" for x in items], batch_size)


# --------------------------------------------------------------------------- model files


def weights_digest(model: torch.nn.Module) -> str:
    """sha256 of the network's tensors (names, dtypes, shapes, values): identifies the weights
    an SVM head was fitted on, whatever file or metadata they are later stored with."""
    h = hashlib.sha256()
    for k, v in sorted(model.state_dict().items()):
        t = v.detach().cpu().contiguous()
        h.update(f"{k}|{t.dtype}|{tuple(t.shape)}|".encode())
        h.update(t.numpy().tobytes())
    return h.hexdigest()


def save_digit_model(
    path: str | os.PathLike,
    model: DigitNet,
    preprocess: DigitPreprocessConfig,
    extra: dict[str, Any] | None = None,
    tensors: dict[str, torch.Tensor] | None = None,
) -> None:
    """Write weights + metadata atomically (``tensors`` adds training state)."""
    from safetensors.torch import save_file

    meta = {
        "format": DIGIT_FORMAT,
        "task": "classify",
        "model": to_dict(model.cfg),
        "size": model.height,
        "preprocess": to_dict(preprocess),
        "symbols": model.cfg.symbols,
        "script": script_of(model.cfg.symbols),
        "feature_dim": model.feature_dim,
        **(extra or {}),
    }
    state = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    for k, v in (tensors or {}).items():
        state[k] = v.detach().cpu().contiguous()
    atomic_write(Path(path), lambda tmp: save_file(state, tmp, metadata={"strings": json.dumps(meta)}))


def load_digit_model(
    path: str | os.PathLike,
) -> tuple[DigitNet, DigitPreprocessConfig, dict[str, Any], dict[str, torch.Tensor]]:
    """Rebuild a digit classifier from its file: (model in eval mode, preprocessing, metadata,
    the file's other tensors). Refuses files whose weights disagree with their metadata."""
    from safetensors.torch import load_file

    path = Path(path)
    meta = read_metadata(path, DIGIT_FORMAT, required=("model", "size", "preprocess", "symbols"))
    try:
        cfg = from_dict(DigitNetConfig, meta["model"])
        pre = from_dict(DigitPreprocessConfig, meta["preprocess"])
    except (TypeError, ValueError) as exc:
        msg = f"{path}: metadata does not describe a digit classifier this version can build ({exc})"
        raise CheckpointError(msg) from None
    if cfg.symbols != meta["symbols"] or meta["size"] != pre.size:
        raise CheckpointError(f"{path}: metadata disagrees with itself (symbols or canvas size)")
    model = checked_build(path, lambda: create_digit_model(model_cfg=cfg, size=pre.size))
    tensors = load_file(str(path))
    weights = {k[len("model.") :]: v for k, v in tensors.items() if k.startswith("model.")}
    model.load_state_dict(weights)
    model.eval()
    return model, pre, meta, {k: v for k, v in tensors.items() if not k.startswith("model.")}


def svm_path_for(model_path: str | os.PathLike) -> Path:
    """Where ``digits fit-svm`` writes a model's SVM head by default: beside it,
    ``best.safetensors`` -> ``best.svm.safetensors``."""
    p = Path(model_path)
    return p.with_name(p.name.removesuffix(".safetensors") + ".svm.safetensors")


# --------------------------------------------------------------------------- bundled models


def bundled_digit_models() -> dict[str, dict[str, Any]]:
    """Bundled digit model name -> manifest entry (``file``, ``sha256``, optional ``svm``)."""
    manifest = WEIGHTS_DIR / MANIFEST_NAME
    if not manifest.is_file():
        return {}
    return dict(json.loads(manifest.read_text(encoding="utf-8")))


def list_digit_models() -> list[str]:
    """Names accepted by ``load_digits``."""
    return sorted(bundled_digit_models())


def _checked(entry: dict[str, Any], what: str) -> Path:
    path = WEIGHTS_DIR / entry["file"]
    if not path.is_file():
        raise FileNotFoundError(f"{what} is missing from the install: {path}")
    actual = sha256_file(path)
    if actual != entry["sha256"]:
        raise CheckpointError(f"{what} failed its sha256 check ({actual} != {entry['sha256']})")
    return path


def resolve_digit_model(name_or_path: str | os.PathLike) -> Path:
    """A bundled digit model name (sha256-checked) or a path to a ``.safetensors`` file."""
    bundled = bundled_digit_models()
    if isinstance(name_or_path, str) and name_or_path in bundled:
        return _checked(bundled[name_or_path], f"bundled digit model {name_or_path!r}")
    path = Path(name_or_path)
    if not path.is_file():
        known = ", ".join(sorted(bundled)) or "none bundled"
        raise FileNotFoundError(f"no model file {path} and no bundled digit model of that name (bundled: {known})")
    return path


def _resolve_svm(name_or_path: str | os.PathLike, model_path: Path, svm: str | os.PathLike | None) -> Path:
    if svm is not None:
        return Path(svm)
    entry = bundled_digit_models().get(str(name_or_path)) if isinstance(name_or_path, str) else None
    if entry is not None:
        if "svm" not in entry:
            raise FileNotFoundError(f"bundled digit model {name_or_path!r} has no SVM head")
        return _checked(entry["svm"], f"the SVM head of bundled digit model {name_or_path!r}")
    path = svm_path_for(model_path)
    if not path.is_file():
        raise FileNotFoundError(f"no SVM head at {path}: fit one with `strings digits fit-svm --model {model_path}`")
    return path


def load_digits(
    name_or_path: str | os.PathLike = "mnist",
    device: str = "cpu",
    head: str = "softmax",
    svm: str | os.PathLike | None = None,
    dark_ink: bool | None = None,
) -> DigitClassifier:
    """Load a digit classifier: a bundled name (``strings digits list``) or a file path.

    ``head="svm"`` classifies with the SVM fitted on the model's features: ``svm`` names its
    file, else the bundled one, else ``<model>.svm.safetensors`` beside the model file.
    ``dark_ink`` fixes the polarity of the images (None: decided per image).
    """
    path = resolve_digit_model(name_or_path)
    model, pre, meta, _ = load_digit_model(path)
    meta = {**meta, "path": str(path)}
    meta.setdefault("name", str(name_or_path))
    head_obj = None
    if head == "svm":
        svm_path = _resolve_svm(name_or_path, path, svm)
        head_obj, svm_meta = load_svm(svm_path)
        if svm_meta["model_weights"] != weights_digest(model):
            raise CheckpointError(f"SVM head {svm_path} was fitted on other weights than {path}")
        meta["svm"] = {k: v for k, v in svm_meta.items() if k != "format"} | {"path": str(svm_path)}
    return DigitClassifier(model, pre, meta, device=device, head=head, svm=head_obj, dark_ink=dark_ink)


def bundle_digit_model(
    checkpoint: str | os.PathLike,
    name: str,
    svm: str | os.PathLike | None = None,
    extra: dict[str, Any] | None = None,
    weights_dir: str | os.PathLike | None = None,
) -> Path:
    """Copy a trained classifier (weights and metadata; no training state) and optionally its SVM
    head into the package as ``digits-NAME[.svm].safetensors`` and record their sha256 in
    ``digits.json``. ``extra`` adds fields to the manifest entry (test accuracy, say)."""
    from strings.digits.svm import save_svm

    if not _BUNDLE_NAME.match(name):
        raise ValueError(f"bundle name must be lower-case letters, digits, '-' or '_', got {name!r}")
    target = Path(weights_dir) if weights_dir is not None else WEIGHTS_DIR
    model, pre, meta, _ = load_digit_model(checkpoint)
    keep = {k: v for k, v in meta.items() if k not in ("optimizer", "grad_scaler", "format", "model", "size", "preprocess",
                                                         "symbols", "script", "feature_dim", "task")}
    keep["name"] = name
    out = target / f"digits-{name}.safetensors"
    save_digit_model(out, model, pre, keep)
    entry: dict[str, Any] = {"file": out.name, "sha256": sha256_file(out), "source": Path(checkpoint).as_posix(),
                             "script": script_of(model.cfg.symbols), **(extra or {})}
    if svm is not None:
        head, svm_meta = load_svm(svm)
        if svm_meta["model_weights"] != weights_digest(model):
            raise CheckpointError(f"SVM head {svm} was fitted on other weights than {checkpoint}")
        svm_out = target / f"digits-{name}.svm.safetensors"
        save_svm(svm_out, head, {k: v for k, v in svm_meta.items() if k not in ("format", "gamma", "feature_dim")})
        entry["svm"] = {"file": svm_out.name, "sha256": sha256_file(svm_out)}
    manifest_path = target / MANIFEST_NAME
    manifest = json.loads(manifest_path.read_text(encoding="utf-8")) if manifest_path.is_file() else {}
    manifest[name] = entry
    text = json.dumps(manifest, indent=2, ensure_ascii=False) + "\n"
    atomic_write(manifest_path, lambda tmp: Path(tmp).write_text(text, encoding="utf-8"))
    return out
