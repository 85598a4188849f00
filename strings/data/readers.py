"""One reader per published dataset layout. Each returns an ``ImageDataset`` or raises
``DatasetError`` naming the path that is missing or malformed (never an OS, gzip, JSON or
numpy error). Compressed files are refused once they inflate past ``MAX_DECOMPRESSED_BYTES``."""

from __future__ import annotations

import json
import math
import re
import zlib
from pathlib import Path

import numpy as np

from strings.data.base import ArrayDataset, DatasetError, FileDataset
from strings.image import display_name

__all__ = [
    "read_gt_list",
    "read_list",
    "read_orand_car",
    "read_cvl",
    "read_car_partial",
    "read_car_partial_boxes",
    "read_idx",
    "read_mnist",
    "read_usps",
    "IMAGE_SUFFIXES",
    "MAX_DECOMPRESSED_BYTES",
]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff")
_DIGITS = re.compile(r"^[0-9]+$")
CAR_PARTIAL_DIR = "orand-car/CAR-A-partial-fzkuji"
_CAR_PARTIAL_SPLITS = {"train": "train2017", "test": "val2017"}
# A gzipped file that inflates past this is refused (a gzip bomb); MNIST's largest is 47 MB.
MAX_DECOMPRESSED_BYTES = 1 << 30
_LINE_BREAK = re.compile(r"\r\n|\r|\n")


def _need_dir(path: Path, what: str) -> Path:
    if not path.is_dir():
        raise DatasetError(f"{what}: folder not found: {display_name(path)}")
    return path


def _read_bytes(path: Path, what: str) -> bytes:
    """A whole file; any OS error becomes a DatasetError naming it."""
    try:
        return path.read_bytes()
    except FileNotFoundError:
        raise DatasetError(f"{what} not found: {display_name(path)}") from None
    except OSError as exc:
        raise DatasetError(f"{display_name(path)}: cannot read {what} ({exc.strerror or exc})") from None


def _gunzip(raw: bytes, path: Path, limit: int | None = None) -> bytes:
    """Inflate every member of a gzip stream, refusing output past ``limit`` bytes (fed in
    64 KiB pieces, so no single step can inflate more than about 64 MiB)."""
    limit = MAX_DECOMPRESSED_BYTES if limit is None else limit
    out: list[bytes] = []
    total = 0
    rest = memoryview(raw)
    try:
        while len(rest):
            d = zlib.decompressobj(wbits=31)
            pos = 0
            while not d.eof and pos < len(rest):
                piece = d.decompress(rest[pos : pos + 65536])
                pos += 65536
                total += len(piece)
                out.append(piece)
                if total > limit:
                    raise DatasetError(f"{display_name(path)}: inflates past the {limit:,}-byte limit for compressed files")
            if not d.eof:
                raise DatasetError(f"{display_name(path)}: corrupt gzip (truncated stream)")
            rest = memoryview(d.unused_data + bytes(rest[pos:]))
            if len(rest) and bytes(rest[:2]) != b"\x1f\x8b":
                if bytes(rest).strip(b"\x00"):  # trailing zero padding is allowed, as gzip(1) allows it
                    raise DatasetError(f"{display_name(path)}: corrupt gzip (garbage after the stream)")
                break
    except zlib.error as exc:
        raise DatasetError(f"{display_name(path)}: corrupt gzip ({exc})") from None
    return b"".join(out)


def read_gt_list(gt_file: str | Path, charset: str = "0123456789") -> list[tuple[str, str]]:
    """Parse ``<file name><space or tab><label>`` lines of a UTF-8 file; blank lines are skipped.

    Labels must use only ``charset``; a bad line (a non-UTF-8 byte, a missing label, a label
    with other characters, a NUL in the name) is reported with its number.
    """
    gt_file = Path(gt_file)
    shown = display_name(gt_file)
    if not gt_file.is_file():
        raise DatasetError(f"ground-truth file not found: {shown}")
    raw = _read_bytes(gt_file, "ground-truth file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        no = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{shown}:{no}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    pairs = []
    for no, line in enumerate(_LINE_BREAK.split(text), 1):
        line = line.strip()
        if not line:
            continue
        parts = line.rsplit(None, 1)
        if len(parts) != 2:
            raise DatasetError(f"{shown}:{no}: expected '<file> <label>', got {line[:200]!r}")
        name, label = parts
        if not label or any(ch not in charset for ch in label):
            raise DatasetError(f"{shown}:{no}: label {label[:100]!r} has characters outside {charset!r}")
        if "\x00" in name:
            raise DatasetError(f"{shown}:{no}: file name {name[:200]!r} holds a NUL character")
        pairs.append((name, label))
    if not pairs:
        raise DatasetError(f"{shown}: no samples listed")
    return pairs


def read_list(gt_file: str | Path, images: str | Path, name: str | None = None, charset: str = "0123456789") -> FileDataset:
    """Any folder of images with a ``<file> <label>`` list: the form users' own data comes in."""
    gt_file, images = Path(gt_file), Path(images)
    _need_dir(images, "image folder")
    items = []
    for fname, label in read_gt_list(gt_file, charset):
        path = images / fname
        if not path.is_file():
            raise DatasetError(f"{display_name(gt_file)}: listed image not found: {display_name(path)}")
        items.append((path, label))
    return FileDataset(items, name or gt_file.stem)


def read_orand_car(root: Path, subset: str, split: str) -> FileDataset:
    """ORAND-CAR-2014 official layout: ``CAR-A/a_train_images/``, ``CAR-A/a_train_gt.txt``...

    ``root`` is the folder that holds ``CAR-A``/``CAR-B`` (``<data root>/orand-car`` or the data
    root itself).
    """
    s = subset.lower()
    if s not in ("a", "b") or split not in ("train", "test"):
        raise DatasetError(f"ORAND-CAR: subset must be a or b and split train or test, got {subset!r}/{split!r}")
    base = root / f"CAR-{s.upper()}"
    if not base.is_dir() and (root / "orand-car" / f"CAR-{s.upper()}").is_dir():
        base = root / "orand-car" / f"CAR-{s.upper()}"
    _need_dir(base, f"ORAND-CAR CAR-{s.upper()}")
    return read_list(base / f"{s}_{split}_gt.txt", base / f"{s}_{split}_images", name=f"car-{s}-{split}")


_CVL_NAME = re.compile(r"^(?P<label>[0-9]+)-(?P<writer>[0-9]+)-(?P<n>[0-9]+)\.png$", re.IGNORECASE)


def read_cvl(root: Path, split: str) -> FileDataset:
    """CVL HDS: ``cvl-strings/train/`` (train) and ``cvl-strings-eval/`` (test); the label is the
    first field of ``<digits>-<writer>-<n>.png``."""
    if split not in ("train", "test"):
        raise DatasetError(f"CVL: split must be train or test, got {split!r}")
    base = root / "cvl-hds" if (root / "cvl-hds").is_dir() else root
    folder = base / "cvl-strings" / "train" if split == "train" else base / "cvl-strings-eval"
    _need_dir(folder, f"CVL HDS {split}")
    items = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() != ".png":
            continue
        m = _CVL_NAME.match(path.name)
        if not m:
            raise DatasetError(f"CVL: file name not <digits>-<writer>-<n>.png: {display_name(path)}")
        items.append((path, m["label"]))
    if not items:
        raise DatasetError(f"CVL HDS {split}: no PNG images in {display_name(folder)}")
    return FileDataset(items, f"cvl-{split}")


def _car_partial_dir(root: Path) -> Path:
    base = root / CAR_PARTIAL_DIR
    if not base.is_dir() and (root / "CAR-A-partial-fzkuji").is_dir():
        base = root / "CAR-A-partial-fzkuji"
    return _need_dir(base, "CAR-A partial subset")


def read_car_partial(root: Path, split: str) -> FileDataset:
    """The 1,208 real CAR-A crops relabelled by a third party: train2017 (train), val2017 (test)."""
    if split not in _CAR_PARTIAL_SPLITS:
        raise DatasetError(f"car-a-partial: split must be train or test, got {split!r}")
    base = _car_partial_dir(root)
    sub = _CAR_PARTIAL_SPLITS[split]
    return read_list(base / f"{sub}_gt.txt", base / sub, name=f"car-a-partial-{split}")


def read_car_partial_boxes(root: Path, split: str) -> dict[str, list[tuple[str, tuple[int, int, int, int]]]]:
    """Per-digit boxes from the subset's COCO file: file name -> [(digit, (x0, y0, x1, y1))],
    sorted left to right (the order the gt strings were built in)."""
    if split not in _CAR_PARTIAL_SPLITS:
        raise DatasetError(f"car-a-partial: split must be train or test, got {split!r}")
    base = _car_partial_dir(root)
    path = base / "annotations_coco" / f"instances_{_CAR_PARTIAL_SPLITS[split]}.json"
    try:
        coco = json.loads(path.read_text(encoding="utf-8"))
        names = {im["id"]: im["file_name"] for im in coco["images"]}
        cats = {c["id"]: c["name"] for c in coco["categories"]}
        out: dict[str, list[tuple[str, tuple[int, int, int, int]]]] = {n: [] for n in names.values()}
        for ann in coco["annotations"]:
            x, y, w, h = (int(round(v)) for v in ann["bbox"])
            out[names[ann["image_id"]]].append((cats[ann["category_id"]], (x, y, x + w, y + h)))
    except FileNotFoundError:
        raise DatasetError(f"COCO annotations not found: {display_name(path)}") from None
    except OSError as exc:
        raise DatasetError(f"{display_name(path)}: cannot read COCO annotations ({exc.strerror or exc})") from None
    except (KeyError, TypeError, ValueError, AttributeError, OverflowError, RecursionError) as exc:
        raise DatasetError(f"{display_name(path)}: malformed COCO annotations ({exc!r:.200})") from None
    for boxes in out.values():
        boxes.sort(key=lambda b: (b[1][0] + b[1][2]) / 2)
    return out


def read_idx(path: str | Path) -> np.ndarray:
    """An IDX file (MNIST format) of unsigned bytes, gzipped or raw, as a numpy array with 1 to
    255 dimensions. Anything else (bad magic, a size that disagrees with the header, corrupt
    gzip, more than ``MAX_DECOMPRESSED_BYTES`` inflated) is a ``DatasetError``."""
    path = Path(path)
    shown = display_name(path)
    if not path.is_file():
        raise DatasetError(f"IDX file not found: {shown}")
    raw = _read_bytes(path, "IDX file")
    if raw[:2] == b"\x1f\x8b":
        raw = _gunzip(raw, path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DatasetError(f"{shown}: not an unsigned-byte IDX file (bad magic {raw[:4].hex()})")
    ndim = raw[3]
    if ndim == 0:
        raise DatasetError(f"{shown}: IDX file with 0 dimensions")
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DatasetError(f"{shown}: truncated IDX header")
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    expected = math.prod(shape)  # exact: numpy's product could overflow int64 and wrap
    if len(raw) - header != expected:
        raise DatasetError(f"{shown}: IDX shape {shape if ndim <= 8 else f'({ndim} dims)'} needs {expected} bytes, "
                           f"file has {len(raw) - header}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header).reshape(shape)


def _idx_file(folder: Path, stem: str) -> Path:
    for cand in (folder / f"{stem}.gz", folder / stem, folder / stem.replace("-idx", ".idx")):
        if cand.is_file():
            return cand
    raise DatasetError(f"MNIST file not found: {display_name(folder / stem)}[.gz]")


def read_idx_pair(images: Path, labels: Path, name: str) -> ArrayDataset:
    x, y = read_idx(images), read_idx(labels)
    if x.ndim != 3 or y.ndim != 1:
        raise DatasetError(f"{display_name(images)}, {display_name(labels)}: expected (N, H, W) images and (N,) labels, "
                           f"got {x.shape} and {y.shape}")
    if len(x) != len(y):
        raise DatasetError(f"{display_name(images)} holds {len(x)} images but {display_name(labels)} holds {len(y)} labels")
    if x.shape[1] == 0 or x.shape[2] == 0:
        raise DatasetError(f"{display_name(images)}: empty images of shape {x.shape[1:]}")
    bad = np.flatnonzero(y > 9)
    if len(bad):
        raise DatasetError(f"{display_name(labels)}: label {int(y[bad[0]])} at index {bad[0]} is not a digit 0-9")
    return ArrayDataset(x, [str(int(v)) for v in y], name, ink_bright=True)


def read_mnist(root: Path, split: str) -> ArrayDataset:
    """MNIST IDX files in ``<root>/mnist`` (or ``root``), train or test."""
    folder = root / "mnist" if (root / "mnist").is_dir() else root
    prefix = {"train": "train", "test": "t10k"}.get(split)
    if prefix is None:
        raise DatasetError(f"mnist: split must be train or test, got {split!r}")
    return read_idx_pair(
        _idx_file(folder, f"{prefix}-images-idx3-ubyte"), _idx_file(folder, f"{prefix}-labels-idx1-ubyte"), f"mnist-{split}"
    )


def read_usps(root: Path, split: str) -> ArrayDataset:
    """USPS in the ESL text format: ``zip.train.gz`` / ``zip.test.gz``, one ``label p1..p256``
    line per 16x16 image with pixels in [-1, 1] (1 = ink)."""
    folder = root / "usps" if (root / "usps").is_dir() else root
    fname = {"train": "zip.train", "test": "zip.test"}.get(split)
    if fname is None:
        raise DatasetError(f"usps: split must be train or test, got {split!r}")
    path = folder / f"{fname}.gz" if (folder / f"{fname}.gz").is_file() else folder / fname
    if not path.is_file():
        raise DatasetError(f"USPS file not found: {display_name(folder / fname)}[.gz]")
    shown = display_name(path)
    raw = _read_bytes(path, "USPS file")
    if path.suffix == ".gz":
        raw = _gunzip(raw, path)
    try:
        rows = [line.split() for line in raw.decode("ascii").splitlines() if line.strip()]
        data = np.array(rows, dtype=np.float32)
    except (UnicodeDecodeError, ValueError) as exc:
        raise DatasetError(f"{shown}: malformed USPS file ({exc!s:.200})") from None
    if data.ndim != 2 or data.shape[1] != 257:
        raise DatasetError(f"{shown}: expected 257 numbers per line, got shape {data.shape}")
    bad = np.flatnonzero(~((data[:, 0] == np.round(data[:, 0])) & (data[:, 0] >= 0) & (data[:, 0] <= 9)))
    if len(bad):
        raise DatasetError(f"{shown}:{bad[0] + 1}: label {data[bad[0], 0]} is not a digit 0-9")
    bad = np.flatnonzero(~np.isfinite(data[:, 1:]).all(axis=1))
    if len(bad):
        raise DatasetError(f"{shown}:{bad[0] + 1}: pixel values hold NaN or infinity")
    images = np.round((data[:, 1:].reshape(-1, 16, 16) + 1.0) * 127.5).clip(0, 255).astype(np.uint8)
    labels = [str(int(v)) for v in data[:, 0]]
    return ArrayDataset(images, labels, f"usps-{split}", ink_bright=True)
