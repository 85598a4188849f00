"""One reader per published dataset layout. Each returns an ``ImageDataset`` or raises
``DatasetError`` naming the path that is missing or malformed (never an OS, gzip, JSON or
numpy error). Compressed files are refused once they inflate past ``MAX_DECOMPRESSED_BYTES``."""

from __future__ import annotations

import json
import math
import re
import zlib
from collections.abc import Callable, Sequence
from pathlib import Path, PurePosixPath, PureWindowsPath
from typing import NamedTuple

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
    "parish_columns",
    "read_parish_rowid",
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
PARISH_DIR = "parish-rowid"
_PARISH_SPLITS = {"train": "train", "validation": "validation", "test": "test"}
# A gzipped file that inflates past this is refused (a gzip bomb); MNIST's largest is 47 MB.
MAX_DECOMPRESSED_BYTES = 1 << 30
_LINE_BREAK = re.compile(r"\r\n|\r|\n")
# Both separators count in a listed name on every system, so a list reads the same everywhere.
_NAME_SEPARATORS = re.compile(r"[/\\]")
# Where real copies of ORAND-CAR-2014 have been unpacked, relative to the root given: the data
# root's own folder, the archive's name; each may hold ``CAR-A/`` or the subset's files flat.
_ORAND_PARENTS = ("", "orand-car", "ORAND-CAR-2014", "orand-car/ORAND-CAR-2014")
# CVL HDS: the parents real copies sit in, and each split's folder under the names it ships as
# (``cvl-strings-train.zip`` unpacks to ``cvl-strings-train/train/``; folders are read recursively).
_CVL_PARENTS = ("", "cvl-hds", "cvl-digits", "cvl")
_CVL_FOLDERS = {"train": ("cvl-strings/train", "cvl-strings-train"), "test": ("cvl-strings-eval",)}
# Archive debris skipped when scanning a folder: macOS resource forks (``__MACOSX/``, ``._x.png``)
# and other hidden entries (any name starting with a dot).
_SKIPPED_DIRS = frozenset({"__MACOSX"})


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


class _GtLine(NamedTuple):
    """One ``<file> <label>`` line, with its 1-based number so later checks can name it."""

    line: int
    name: str
    label: str


def _escape_reason(name: str) -> str | None:
    """Why a listed name could reach outside the folder it is listed for, or None. Decided on the
    text alone (POSIX and Windows syntax both), so ``read_gt_list`` refuses it too."""
    if PurePosixPath(name).is_absolute() or PureWindowsPath(name).anchor:
        return "an absolute path"
    if ".." in _NAME_SEPARATORS.split(name):
        return "a path with a '..' component"
    return None


def _parse_gt_lines(gt_file: Path, charset: str) -> list[_GtLine]:
    """The one ``<file> <label>`` parser behind the list, ORAND-CAR and CAR-A-partial readers.

    Real copies vary, so it takes a UTF-8 BOM, CRLF/CR/LF line ends, tabs or runs of spaces
    between the fields, and blank lines anywhere. The label is the last field (so names may hold
    spaces). Refused, naming the line: non-UTF-8 bytes, a missing label, a label outside
    ``charset``, a NUL in the name, a name that would leave the images folder, and a name listed
    again with another label (an identical repeat is a copy artefact and is kept once; names are
    compared after dropping ``./`` and doubled slashes).
    """
    shown = display_name(gt_file)
    if not gt_file.is_file():
        raise DatasetError(f"ground-truth file not found: {shown}")
    raw = _read_bytes(gt_file, "ground-truth file")
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        no = raw[: exc.start].count(b"\n") + 1
        raise DatasetError(f"{shown}:{no}: not UTF-8 text (byte {raw[exc.start]:#04x} at offset {exc.start})") from None
    entries: list[_GtLine] = []
    seen: dict[str, _GtLine] = {}
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
        reason = _escape_reason(name)
        if reason:
            raise DatasetError(f"{shown}:{no}: file name {name[:200]!r} is {reason}; names must stay inside the "
                               "images folder")
        entry = _GtLine(no, name, label)
        first = seen.setdefault(str(PurePosixPath(name)), entry)
        if first is entry:
            entries.append(entry)
        elif first.label != label:
            raise DatasetError(f"{shown}:{no}: {name[:200]!r} is listed again with label {label[:100]!r}; "
                               f"line {first.line} gave it {first.label[:100]!r}")
    if not entries:
        raise DatasetError(f"{shown}: no samples listed")
    return entries


def read_gt_list(gt_file: str | Path, charset: str = "0123456789") -> list[tuple[str, str]]:
    """Parse ``<file name><space or tab><label>`` lines of a UTF-8 file; blank lines are skipped.

    Labels must use only ``charset``; a bad line (a non-UTF-8 byte, a missing label, a label
    with other characters, a NUL in the name, an absolute name or one with a ``..`` component,
    a name listed twice with two labels) is reported with its number.
    """
    return [(entry.name, entry.label) for entry in _parse_gt_lines(Path(gt_file), charset)]


def _case_match(path: Path, where: str, listings: dict[Path, dict[str, list[str]]]) -> Path | None:
    """The one file beside ``path`` whose name differs from it only in letter case (archives
    made on Windows often say ``.PNG`` where the list says ``.png``), or None. Each folder is
    listed once; two case-only matches are ambiguous and refused."""
    folder = path.parent
    if folder not in listings:
        index: dict[str, list[str]] = {}
        try:
            for entry in folder.iterdir():
                if entry.is_file():
                    index.setdefault(entry.name.casefold(), []).append(entry.name)
        except OSError:
            pass  # a folder that is missing or unreadable holds no match
        listings[folder] = index
    found = sorted(listings[folder].get(path.name.casefold(), []))
    if len(found) > 1:
        raise DatasetError(f"{where}: listed image {display_name(path)} is not there as written, and "
                           f"{', '.join(display_name(n) for n in found)} differ from it only in letter case: ambiguous")
    return folder / found[0] if found else None


def _real_path(path: Path, where: str) -> Path:
    """``path`` with every symlink followed, so containment is judged on where it really is."""
    try:
        return path.resolve()
    except (OSError, RuntimeError) as exc:  # RuntimeError: a symlink loop, before Python 3.13
        raise DatasetError(f"{where}: cannot resolve {display_name(path)} ({exc})") from None


def read_list(gt_file: str | Path, images: str | Path, name: str | None = None, charset: str = "0123456789") -> FileDataset:
    """Any folder of images with a ``<file> <label>`` list: the form users' own data comes in.

    A listed name must stay inside ``images``: absolute names and ``..`` are refused, and so is
    a symlink (or a symlinked sub-folder) whose target lies outside the real images folder, so a
    list cannot read files its folder does not hold. The folder itself may be a symlink.
    """
    gt_file, images = Path(gt_file), Path(images)
    _need_dir(images, "image folder")
    shown = display_name(gt_file)
    inside = _real_path(images, shown)
    listings: dict[Path, dict[str, list[str]]] = {}
    items = []
    for entry in _parse_gt_lines(gt_file, charset):
        where = f"{shown}:{entry.line}"
        path = images / entry.name
        if not path.is_file():
            path = _case_match(path, where, listings) or path
        if not path.is_file():
            raise DatasetError(f"{where}: listed image not found: {display_name(path)}")
        real = _real_path(path, where)
        if not real.is_relative_to(inside):
            raise DatasetError(f"{where}: {display_name(path)} resolves to {display_name(real)}, outside the images "
                               f"folder {display_name(inside)}")
        items.append((path, entry.label))
    return FileDataset(items, name or gt_file.stem)


def _one_folder(candidates: Sequence[Path], holds: Callable[[Path], bool], what: str) -> Path:
    """The one candidate that ``holds`` the data. Real copies are unpacked under several names;
    two different copies at once are refused rather than one picked silently (a link to the same
    folder is one copy). The error names the first candidate as the expected place."""
    found: dict[Path, Path] = {}
    for cand in candidates:
        if holds(cand):
            found.setdefault(cand.resolve(), cand)
    if len(found) > 1:
        raise DatasetError(f"{what}: ambiguous, found in {' and '.join(display_name(p) for p in found.values())}; "
                           "keep one")
    if not found:
        others = ", ".join(display_name(p) for p in candidates[1:])
        raise DatasetError(f"{what}: folder not found: {display_name(candidates[0])}"
                           + (f" (also looked for {others})" if others else ""))
    return next(iter(found.values()))


def read_orand_car(root: Path, subset: str, split: str) -> FileDataset:
    """ORAND-CAR-2014 official layout: ``CAR-A/a_train_images/``, ``CAR-A/a_train_gt.txt``...

    ``root`` is the folder that holds ``CAR-A``/``CAR-B`` (``<data root>/orand-car``, an unpacked
    ``ORAND-CAR-2014/``, or the data root itself), or the subset's folder itself. Exactly one of
    those places may hold this split's gt file or image folder.
    """
    s = subset.lower()
    if s not in ("a", "b") or split not in ("train", "test"):
        raise DatasetError(f"ORAND-CAR: subset must be a or b and split train or test, got {subset!r}/{split!r}")
    car, gt, images = f"CAR-{s.upper()}", f"{s}_{split}_gt.txt", f"{s}_{split}_images"
    candidates = [folder for parent in _ORAND_PARENTS for folder in (root / parent / car, root / parent)]
    base = _one_folder(candidates, lambda d: (d / gt).is_file() or (d / images).is_dir(), f"ORAND-CAR {car} {split}")
    return read_list(base / gt, base / images, name=f"car-{s}-{split}")


_CVL_NAME = re.compile(r"^(?P<label>[0-9]+)-(?P<writer>[0-9]+)-(?P<n>[0-9]+)\.png$", re.IGNORECASE)


def _skipped(path: Path, folder: Path) -> bool:
    """Archive debris under ``folder``: hidden entries and macOS resource forks."""
    return any(part.startswith(".") or part in _SKIPPED_DIRS for part in path.relative_to(folder).parts)


def read_cvl(root: Path, split: str) -> FileDataset:
    """CVL HDS: ``cvl-strings/train/`` or ``cvl-strings-train/`` (train) and ``cvl-strings-eval/``
    (test), directly in ``root`` or in its ``cvl-hds/``, ``cvl-digits/`` or ``cvl/``; read
    recursively. The label is the first field of ``<digits>-<writer>-<n>.png`` (any case)."""
    if split not in _CVL_FOLDERS:
        raise DatasetError(f"CVL: split must be train or test, got {split!r}")
    candidates = [root / parent / sub for parent in _CVL_PARENTS for sub in _CVL_FOLDERS[split]]
    folder = _one_folder(candidates, Path.is_dir, f"CVL HDS {split}")
    items = []
    for path in sorted(folder.rglob("*")):
        if path.suffix.lower() != ".png" or _skipped(path, folder) or not path.is_file():
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
    ds = read_list(base / f"{sub}_gt.txt", base / sub, name=f"car-a-partial-{split}")
    ds.written = read_written_amounts(base / f"amounts_{sub}.tsv", ds)
    return ds


def read_parish_rowid(root: Path, split: str) -> FileDataset:
    """Loose field crops of parish-register row numbers (``labels.csv``: ``filename,label``).

    Only the digit labels are kept: the others (``Sn``, ``NB``, ``-``, ``38a``, empty) name no
    digit string, or one with a letter this reader has no class for. ``test`` is the published
    test split, for a user who has it (it is not staged here)."""
    if split not in _PARISH_SPLITS:
        raise DatasetError(f"parish-rowid: split must be one of {', '.join(_PARISH_SPLITS)}, got {split!r}")
    folder = _need_dir(root / PARISH_DIR / _PARISH_SPLITS[split], f"parish-rowid {split}")
    listing = folder / "labels.csv"
    lines = _LINE_BREAK.split(_read_bytes(listing, "parish-rowid labels").decode("utf-8-sig"))
    if not lines or lines[0].strip().lower() != "filename,label":
        raise DatasetError(f"{display_name(listing)}:1: header must be 'filename,label', got {lines[0][:60]!r}")
    items = []
    for n, line in enumerate(lines[1:], start=2):
        if not line.strip():
            continue
        name, sep, label = line.partition(",")
        if not sep or not name:
            raise DatasetError(f"{display_name(listing)}:{n}: not 'filename,label': {line[:60]!r}")
        if _escape_reason(name) is not None:
            raise DatasetError(f"{display_name(listing)}:{n}: {_escape_reason(name)}: {display_name(name)!r}")
        if _DIGITS.match(label.strip()):
            items.append((folder / name, label.strip()))
    if not items:
        raise DatasetError(f"{display_name(listing)}: no digit labels")
    return FileDataset(items, f"parish-rowid-{split}")


_PARISH_ROW = re.compile(r"^(?P<book>.+)_(?P<page>\d+)(?P<leaf>[a-z]?)-(?P<section>[^_]+)_row_id_(?P<row>\d+)\.[A-Za-z]+$")


def parish_columns(root: Path, split: str) -> list[list[tuple[Path, str]]]:
    """Every row of a parish-rowid split (letters and empty labels too), as register columns:
    one per book and section (``died_K2709_0111a-DM_row_id_2.Jpg``: book ``died_K2709``, section
    ``DM``), pages and rows in order, so that a column reader sees each row between the rows
    written above and below it. A file whose name does not say where it sits is a column alone."""
    if split not in _PARISH_SPLITS:
        raise DatasetError(f"parish-rowid: split must be one of {', '.join(_PARISH_SPLITS)}, got {split!r}")
    folder = _need_dir(root / PARISH_DIR / _PARISH_SPLITS[split], f"parish-rowid {split}")
    listing = folder / "labels.csv"
    lines = _LINE_BREAK.split(_read_bytes(listing, "parish-rowid labels").decode("utf-8-sig"))
    placed: dict[tuple[str, str], list[tuple[tuple[int, str, int], Path, str]]] = {}
    alone: list[list[tuple[Path, str]]] = []
    for line in lines[1:]:
        name, sep, label = line.partition(",")
        if not sep or not name or _escape_reason(name) is not None:
            continue
        m = _PARISH_ROW.match(name)
        if m is None:
            alone.append([(folder / name, label.strip())])
            continue
        where = (int(m["page"]), m["leaf"], int(m["row"]))
        placed.setdefault((m["book"], m["section"]), []).append((where, folder / name, label.strip()))
    columns = [[(path, label) for _, path, label in sorted(rows)] for _, rows in sorted(placed.items())]
    return columns + alone


def read_written_amounts(path: Path, ds: FileDataset) -> dict[str, str]:
    """The amounts as written (``amounts_<split>.tsv``: ``file digits written value source note``),
    file name -> written form, for the rows that have one (checked ``verified`` or ``silver``).
    A row whose digits disagree with the dataset's label, or a file the dataset lacks, is an
    error naming the line; no file at all is an empty map (older copies of the subset)."""
    if not path.is_file():
        return {}
    labels = {Path(p).name: label for p, label in ds.items}
    out: dict[str, str] = {}
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    header = lines[0].split("\t") if lines else []
    need = ("file", "digits", "written")
    if any(k not in header for k in need):
        raise DatasetError(f"{display_name(path)}:1: header must name {', '.join(need)}, got {header}")
    col = {k: header.index(k) for k in need}
    for no, line in enumerate(lines[1:], 2):
        if not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) < len(header):
            fields += [""] * (len(header) - len(fields))
        name, digits, written = (fields[col[k]].strip() for k in need)
        if name not in labels:
            raise DatasetError(f"{display_name(path)}:{no}: {name!r} is not in the {ds.name} list")
        if digits != labels[name]:
            raise DatasetError(f"{display_name(path)}:{no}: digits {digits!r} disagree with the label {labels[name]!r}")
        if written:
            if "".join(c for c in written if c.isdigit()) != digits:
                raise DatasetError(f"{display_name(path)}:{no}: written {written!r} does not hold the digits {digits!r}")
            out[name] = written
    return out


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
