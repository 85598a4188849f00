"""Tiny fake trees of the isolated-digit sets in their published layouts (indic/README.md), and
in-memory synthetic single digits. Never real data: each 'numeral' is a Latin digit drawn with
a Hershey font, jittered, which is all the readers and the training loop need."""

from __future__ import annotations

import gzip
import io
import zipfile
from pathlib import Path

import cv2
import numpy as np
from PIL import Image

from conftest import idx_bytes
from strings.data import ImageDataset, Sample

CMATER = {"bangla": "cmaterdb-3.1.1-bangla", "devanagari": "cmaterdb-3.2.1-devanagari", "telugu": "cmaterdb-3.4.1-telugu"}
CMATER_ORDER = (9, 0, 7, 6, 1, 8, 4, 3, 2, 5)  # the mirror's class-block order


def draw_digit(d: int, size: int = 32, rng: np.random.Generator | None = None, dark_on_light: bool = True,
               binary: bool = False) -> np.ndarray:
    """A (size, size) uint8 digit: Hershey ``d`` with random scale, offset and thickness."""
    rng = rng or np.random.default_rng(d)
    img = np.zeros((size, size), np.uint8)
    scale = size / 32 * float(rng.uniform(0.8, 1.0))
    thick = int(rng.integers(2, 4))
    (tw, th), _ = cv2.getTextSize(str(d), cv2.FONT_HERSHEY_SIMPLEX, scale, thick)
    x = (size - tw) // 2 + int(rng.integers(-2, 3))
    y = (size + th) // 2 + int(rng.integers(-2, 3))
    cv2.putText(img, str(d), (x, y), cv2.FONT_HERSHEY_SIMPLEX, scale, 255, thick, cv2.LINE_AA)
    if binary:
        img = np.where(img > 127, 255, 0).astype(np.uint8)
    return 255 - img if dark_on_light else img


def digit_stack(per_class: int, seed: int, size: int = 32, dark_on_light: bool = True, binary: bool = False,
                order: tuple[int, ...] = tuple(range(10))) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    labels = np.repeat(np.array(order), per_class)
    images = np.stack([draw_digit(int(d), size, rng, dark_on_light, binary) for d in labels])
    return images, labels


def build_cmater_tree(root: Path, script: str = "bangla", per_class: int = 4, test_per_class: int = 2) -> dict[str, int]:
    """``indic/<cmater folder>/{training,testing}-images.npz`` with (N, 32, 32, 3) binary black-on-white
    images in class blocks; train holds one extra copy of an image, test one image repeated from train."""
    folder = root / "indic" / CMATER[script]
    folder.mkdir(parents=True, exist_ok=True)
    x, y = digit_stack(per_class, 1, binary=True, order=CMATER_ORDER)
    x[1] = x[0]  # a duplicate within train (same class block)
    tx, ty = digit_stack(test_per_class, 2, binary=True, order=CMATER_ORDER)
    tx[0] = x[2]  # a test image identical to a training image
    ty[0] = y[2]
    rgb = lambda a: np.repeat(a[..., None], 3, axis=-1)  # noqa: E731
    np.savez(folder / "training-images.npz", images=rgb(x), labels=y.astype(np.int64))
    np.savez(folder / "testing-images.npz", images=rgb(tx), labels=ty.astype(np.int64))
    return {"train": len(x) - 1, "test": len(tx) - 1}


def build_kannada_tree(root: Path, n_dig: int = 30, n_test: int = 20) -> None:
    """``indic/kannada-mnist/`` gzipped IDX files, white digit on black (28x28)."""
    folder = root / "indic" / "kannada-mnist"
    (folder / "train-labels-only").mkdir(parents=True, exist_ok=True)
    for stem, n, seed in (("dig_MNIST", n_dig, 3), ("kannada_MNIST_test", n_test, 4)):
        x, y = digit_stack(n // 10, seed, size=28, dark_on_light=False)
        (folder / f"X_{stem}-idx3-ubyte.gz").write_bytes(gzip.compress(idx_bytes(x)))
        (folder / f"y_{stem}-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(y.astype(np.uint8))))
    (folder / "train-labels-only" / "y_kannada_MNIST_train-idx1-ubyte.gz").write_bytes(
        gzip.compress(idx_bytes(np.zeros(6, np.uint8))))


def build_gujarati_tree(root: Path, per_class: int = 10) -> int:
    """``indic/gujarati-digits/gujarati_digits.npz`` (images, labels, filenames; dark on white, 28x28)
    with 3 extra copies of existing images (and any the drawing repeats by chance). Returns the
    number of unique images."""
    folder = root / "indic" / "gujarati-digits"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = digit_stack(per_class, 5, size=28)
    x = np.concatenate([x, x[[0, 1, 15]]])
    y = np.concatenate([y, y[[0, 1, 15]]]).astype(np.uint8)
    names = np.array([f"{d}/digit {i}.png" for i, d in enumerate(y)])
    np.savez_compressed(folder / "gujarati_digits.npz", images=x, labels=y, filenames=names)
    return len({row.tobytes() for row in x})


def _zip_images(path: Path, split: str, images: np.ndarray, labels: np.ndarray, fmt: str) -> None:
    with zipfile.ZipFile(path, "w") as zf:
        for i, (img, d) in enumerate(zip(images, labels)):
            buf = io.BytesIO()
            Image.fromarray(img).convert("1").save(buf, format="BMP" if fmt == "bmp" else "TIFF")
            zf.writestr(f"{split}/{int(d)}/{i + 1}.{fmt}", buf.getvalue())


def build_gurmukhi_tree(root: Path, per_class: int = 3) -> None:
    """``indic/gurmukhi-digits/{train,val}.zip`` of 1-bit 32x32 BMP (train) and TIFF (val) files;
    val repeats one training image."""
    folder = root / "indic" / "gurmukhi-digits"
    folder.mkdir(parents=True, exist_ok=True)
    x, y = digit_stack(per_class, 6, binary=True)
    tx, ty = digit_stack(1, 7, binary=True)
    tx[3], ty[3] = x[3 * per_class], y[3 * per_class]  # a val image identical to a training image
    _zip_images(folder / "train.zip", "train", x, y, "bmp")
    _zip_images(folder / "val.zip", "val", tx, ty, "tiff")


def build_indic_tree(root: Path) -> Path:
    for script in CMATER:
        build_cmater_tree(root, script)
    build_kannada_tree(root)
    build_gujarati_tree(root)
    build_gurmukhi_tree(root)
    return root


class SynthSingleDigits(ImageDataset):
    """``n`` in-memory single digits (labels '0'..'9'), dark on light, 32x32, deterministic."""

    def __init__(self, n: int, seed: int = 0, name: str = "digits-test") -> None:
        rng = np.random.default_rng(seed)
        self.name = name
        self.samples = []
        for i in range(n):
            d = int(rng.integers(0, 10))
            self.samples.append(Sample(draw_digit(d, 32, rng), str(d), f"{name}[{i}]"))

    def __len__(self) -> int:
        return len(self.samples)

    def __getitem__(self, index: int) -> Sample:  # type: ignore[override]
        return self.samples[index]
