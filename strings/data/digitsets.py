"""Readers for the isolated handwritten numerals of Indian scripts (``<data root>/indic``, laid
out as its README describes). Labels are the digit values ``"0"``..``"9"`` in every script.

What each reader does beyond reading, following that README:

- **Repeats across splits are dropped from the test split.** Some mirrors hold test images
  pixel-identical to training images (Bangla 7, Devanagari 14, Telugu 3, Gurmukhi 4); scoring
  them would reward memory. The count is on the dataset (``repeats_dropped``) and in ``note``.
- **Extra copies within a training split are dropped** (``duplicates_dropped``): otherwise the
  validation slice carved from it could hold copies of images the model fits on.
- **Kannada:** the Kannada-MNIST training images are not staged, so ``train`` is Dig-MNIST
  (10,240 images by other writers) and ``test`` the official Kannada-MNIST test set.
- **Gujarati has no split:** ``GUJARATI_SPLIT`` is a seeded, per-class split of the *unique*
  images (copies of one image always fall on the same side, then count once).
- **Gurmukhi:** ``train.zip`` is the train split and ``val.zip`` (178 images) the test split.
- The CMATERdb splits are the mirror's own (first 500/250 files per class in glob order), not
  an official CMATER protocol.
"""

from __future__ import annotations

import io
import re
import zipfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from strings.data.base import ArrayDataset, DatasetError
from strings.data.readers import MAX_DECOMPRESSED_BYTES, _need_dir, read_idx
from strings.image import InvalidImageError, display_name

__all__ = [
    "CMATER_DIRS",
    "DIGIT_DATASETS",
    "GUJARATI_SPLIT",
    "SCRIPT_DATASETS",
    "DigitSet",
    "read_cmater",
    "read_gujarati",
    "read_gurmukhi",
    "read_kannada",
]

INDIC_DIR = "indic"
CMATER_DIRS = {
    "bangla": "cmaterdb-3.1.1-bangla",
    "devanagari": "cmaterdb-3.2.1-devanagari",
    "telugu": "cmaterdb-3.4.1-telugu",
}
KANNADA_DIR = "kannada-mnist"
KANNADA_FILES = {  # split -> (images, labels); see the module docstring for why train is Dig-MNIST
    "train": ("X_dig_MNIST-idx3-ubyte.gz", "y_dig_MNIST-idx1-ubyte.gz"),
    "test": ("X_kannada_MNIST_test-idx3-ubyte.gz", "y_kannada_MNIST_test-idx1-ubyte.gz"),
}
GUJARATI_DIR = "gujarati-digits"
GUJARATI_FILE = "gujarati_digits.npz"
# The Gujarati set ships without a split: this seed and share of each class's unique images
# make the test split (documented in data/README.md; changing them changes every Gujarati number).
GUJARATI_SPLIT = {"seed": 20452, "test_fraction": 0.2}
GURMUKHI_DIR = "gurmukhi-digits"
GURMUKHI_ZIPS = {"train": "train.zip", "test": "val.zip"}
_GURMUKHI_MEMBER = re.compile(r"^(?:train|val)/(?P<label>[0-9])/(?P<n>[0-9]+)\.(?:bmp|tiff?|png)$", re.IGNORECASE)
_MAX_MEMBER_BYTES = 1 << 20  # one 32x32 digit is a few hundred bytes; anything this large is not one

# Registered dataset name of each script's isolated digits (for string synthesis and the CLI).
SCRIPT_DATASETS = {
    "latin": "mnist",
    "bangla": "bangla",
    "devanagari": "devanagari",
    "telugu": "telugu",
    "kannada": "kannada",
    "gujarati": "gujarati",
    "gurmukhi": "gurmukhi",
}
DIGIT_DATASETS = ("mnist", "usps", "bangla", "devanagari", "telugu", "kannada", "gujarati", "gurmukhi")


class DigitSet(ArrayDataset):
    """An ``ArrayDataset`` of single digits that also says what the reader removed."""

    def __init__(
        self,
        images: np.ndarray,
        labels: Sequence[str],
        name: str,
        ink_bright: bool,
        repeats_dropped: int = 0,
        duplicates_dropped: int = 0,
    ) -> None:
        super().__init__(images, labels, name, ink_bright)
        self.repeats_dropped = repeats_dropped  # test images identical to a training image
        self.duplicates_dropped = duplicates_dropped  # extra copies of an image within this split

    @property
    def note(self) -> str:
        parts = []
        if self.repeats_dropped:
            parts.append(f"{self.repeats_dropped} images identical to training images dropped")
        if self.duplicates_dropped:
            parts.append(f"{self.duplicates_dropped} duplicate copies dropped")
        return "; ".join(parts)


def _folder(root: Path, name: str, what: str) -> Path:
    for cand in (root / INDIC_DIR / name, root / name):
        if cand.is_dir():
            return cand
    return _need_dir(root / INDIC_DIR / name, what)


def _check_split(dataset: str, split: str) -> None:
    if split not in ("train", "test"):
        raise DatasetError(f"{dataset}: split must be train or test, got {split!r}")


def _load_npz(path: Path, keys: Sequence[str]) -> dict[str, np.ndarray]:
    """Arrays of an .npz file (never unpickled); any problem is a DatasetError naming it."""
    if not path.is_file():
        raise DatasetError(f"npz file not found: {display_name(path)}")
    try:
        with np.load(path, allow_pickle=False) as z:
            missing = [k for k in keys if k not in z.files]
            if missing:
                raise DatasetError(f"{display_name(path)}: lacks arrays {missing} (has {z.files})")
            return {k: z[k] for k in keys}
    except DatasetError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise DatasetError(f"{display_name(path)}: not a readable npz file ({exc!s:.200})") from None


def _grey_stack(images: np.ndarray, path: Path) -> np.ndarray:
    """(N, H, W) or (N, H, W, C) uint8 -> (N, H, W) uint8 (the CMATERdb copies are 3 equal channels)."""
    if images.dtype != np.uint8 or images.ndim not in (3, 4) or images.shape[1] == 0 or images.shape[2] == 0:
        raise DatasetError(f"{display_name(path)}: images must be uint8 (N, H, W[, C]), got {images.dtype} {images.shape}")
    if images.ndim == 4:
        images = np.round(images[..., :3].astype(np.float32).mean(-1)).astype(np.uint8)
    return np.ascontiguousarray(images)


def _labels(labels: np.ndarray, n: int, path: Path) -> list[str]:
    if labels.ndim != 1 or len(labels) != n or labels.dtype.kind not in "iu":
        raise DatasetError(f"{display_name(path)}: expected {n} integer labels, got {labels.dtype} {labels.shape}")
    bad = np.flatnonzero((labels < 0) | (labels > 9))
    if len(bad):
        raise DatasetError(f"{display_name(path)}: label {int(labels[bad[0]])} at index {bad[0]} is not a digit 0-9")
    return [str(int(v)) for v in labels]


def _keys(images: np.ndarray) -> list[bytes]:
    return [row.tobytes() for row in images.reshape(len(images), -1)]


def _first_copies(images: np.ndarray) -> np.ndarray:
    """Boolean mask keeping the first copy of each exact image."""
    seen: set[bytes] = set()
    keep = np.zeros(len(images), bool)
    for i, k in enumerate(_keys(images)):
        if k not in seen:
            seen.add(k)
            keep[i] = True
    return keep


def _train_and_test(
    train: tuple[np.ndarray, list[str]], test: tuple[np.ndarray, list[str]] | None, split: str, name: str, ink_bright: bool
) -> DigitSet:
    """The requested split, with train copies and test repeats of train images dropped."""
    x, y = train
    keep = _first_copies(x)
    if split == "train":
        return DigitSet(x[keep], [y[i] for i in np.flatnonzero(keep)], f"{name}-train", ink_bright,
                        duplicates_dropped=int((~keep).sum()))
    assert test is not None
    tx, ty = test
    seen = set(_keys(x))
    fresh = np.array([k not in seen for k in _keys(tx)], bool)
    return DigitSet(tx[fresh], [ty[i] for i in np.flatnonzero(fresh)], f"{name}-test", ink_bright,
                    repeats_dropped=int((~fresh).sum()))


def read_cmater(root: Path, script: str, split: str) -> DigitSet:
    """CMATERdb 3.1.1 / 3.2.1 / 3.4.1 (Bangla, Devanagari, Telugu): ``training-images.npz`` and
    ``testing-images.npz``, each with ``images`` (N, 32, 32, 3) black ink on white and ``labels``."""
    if script not in CMATER_DIRS:
        raise DatasetError(f"CMATERdb: script must be one of {', '.join(CMATER_DIRS)}, got {script!r}")
    _check_split(script, split)
    folder = _folder(root, CMATER_DIRS[script], f"CMATERdb {script}")

    def part(fname: str) -> tuple[np.ndarray, list[str]]:
        path = folder / fname
        arrays = _load_npz(path, ("images", "labels"))
        images = _grey_stack(arrays["images"], path)
        return images, _labels(arrays["labels"], len(images), path)

    train = part("training-images.npz")
    test = part("testing-images.npz") if split == "test" else None
    return _train_and_test(train, test, split, script, ink_bright=False)


def read_kannada(root: Path, split: str) -> DigitSet:
    """Kannada-MNIST (IDX files, white digit on black): train = Dig-MNIST, test = the official
    Kannada-MNIST test set (its 60,000 training images are not staged)."""
    _check_split("kannada", split)
    folder = _folder(root, KANNADA_DIR, "Kannada-MNIST")

    def part(which: str) -> tuple[np.ndarray, list[str]]:
        xf, yf = (folder / f for f in KANNADA_FILES[which])
        x, y = read_idx(xf), read_idx(yf)
        if x.ndim != 3 or x.shape[1] == 0 or x.shape[2] == 0:
            raise DatasetError(f"{display_name(xf)}: expected (N, H, W) images, got shape {x.shape}")
        return np.ascontiguousarray(x), _labels(y, len(x), yf)

    train = part("train")
    test = part("test") if split == "test" else None
    return _train_and_test(train, test, split, "kannada", ink_bright=True)


def read_gujarati(root: Path, split: str) -> DigitSet:
    """Gujarati digits (one npz, dark ink on white, no published split): the seeded per-class
    split of the unique images described by ``GUJARATI_SPLIT``."""
    _check_split("gujarati", split)
    path = _folder(root, GUJARATI_DIR, "Gujarati digits") / GUJARATI_FILE
    arrays = _load_npz(path, ("images", "labels"))
    images = _grey_stack(arrays["images"], path)
    labels = _labels(arrays["labels"], len(images), path)
    groups: dict[bytes, list[int]] = {}
    for i, k in enumerate(_keys(images)):
        groups.setdefault(k, []).append(i)
    firsts = np.array(sorted(g[0] for g in groups.values()), dtype=np.int64)
    copies = {g[0]: len(g) - 1 for g in groups.values()}
    rng = np.random.default_rng(GUJARATI_SPLIT["seed"])
    test_idx: list[int] = []
    for digit in sorted(set(labels)):
        members = firsts[[labels[i] == digit for i in firsts]]
        n_test = int(round(len(members) * float(GUJARATI_SPLIT["test_fraction"])))
        test_idx.extend(rng.permutation(members)[:n_test].tolist())
    chosen = sorted(test_idx) if split == "test" else sorted(set(firsts.tolist()) - set(test_idx))
    return DigitSet(images[chosen], [labels[i] for i in chosen], f"gujarati-{split}", ink_bright=False,
                    duplicates_dropped=sum(copies[i] for i in chosen))


def _read_zip_digits(path: Path) -> tuple[np.ndarray, list[str]]:
    """A zip of ``<split>/<digit>/<n>.<bmp|tiff>`` images -> (N, H, W) grey stack and labels,
    in (digit, n) order. Every image must have the same size."""
    from PIL import Image, UnidentifiedImageError

    from strings.image import load_image

    if not path.is_file():
        raise DatasetError(f"zip file not found: {display_name(path)}")
    items: list[tuple[int, int, np.ndarray]] = []
    try:
        with zipfile.ZipFile(path) as zf:
            infos = [i for i in zf.infolist() if not i.is_dir()]
            if sum(i.file_size for i in infos) > MAX_DECOMPRESSED_BYTES:
                raise DatasetError(f"{display_name(path)}: inflates past the {MAX_DECOMPRESSED_BYTES:,}-byte limit")
            for info in infos:
                m = _GURMUKHI_MEMBER.match(info.filename)
                if not m:
                    raise DatasetError(
                        f"{display_name(path)}: member {info.filename!r} is not <split>/<digit>/<n>.<bmp|tiff>"
                    )
                if info.file_size > _MAX_MEMBER_BYTES:
                    raise DatasetError(f"{display_name(path)}: member {info.filename!r} is too large for a digit image")
                data = zf.read(info)
                try:
                    grey = load_image(Image.open(io.BytesIO(data)), f"{display_name(path)}:{info.filename}")
                except (UnidentifiedImageError, OSError) as exc:
                    raise DatasetError(f"{display_name(path)}: member {info.filename!r} is not an image ({exc})") from None
                items.append((int(m["label"]), int(m["n"]), grey))
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise DatasetError(f"{display_name(path)}: not a readable zip file ({exc!s:.200})") from None
    except InvalidImageError as exc:
        raise DatasetError(str(exc)) from None
    if not items:
        raise DatasetError(f"{display_name(path)}: no digit images")
    items.sort(key=lambda t: (t[0], t[1]))
    shapes = {im.shape for _, _, im in items}
    if len(shapes) != 1:
        raise DatasetError(f"{display_name(path)}: images of several sizes {sorted(shapes)[:3]}")
    return np.stack([im for _, _, im in items]), [str(d) for d, _, _ in items]


def read_gurmukhi(root: Path, split: str) -> DigitSet:
    """Gurmukhi digits: ``train.zip`` (train) and ``val.zip`` (test), 1-bit 32x32, black on white;
    the label is the folder name."""
    _check_split("gurmukhi", split)
    folder = _folder(root, GURMUKHI_DIR, "Gurmukhi digits")
    train = _read_zip_digits(folder / GURMUKHI_ZIPS["train"])
    test = _read_zip_digits(folder / GURMUKHI_ZIPS["test"]) if split == "test" else None
    if test is not None and test[0].shape[1:] != train[0].shape[1:]:
        raise DatasetError(f"gurmukhi: train images are {train[0].shape[1:]}, test images {test[0].shape[1:]}")
    return _train_and_test(train, test, split, "gurmukhi", ink_bright=False)
