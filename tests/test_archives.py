"""Ground-truth lists and dataset trees as real copies come: names that try to leave the images
folder (refused), and the variants real ORAND-CAR-2014 / CVL HDS archives hold (accepted unless
ambiguous). Every tree is built here from tiny images; nothing reads the real datasets."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from conftest import write_png
from strings.data import DatasetError, FileDataset, read_gt_list, read_list
from strings.data.readers import read_cvl, read_orand_car

INK = np.full((8, 16), 255, np.uint8)  # the readers never decode pixels here; any valid PNG will do
INK[2:6, 4:12] = 0


def _image(path: Path) -> Path:
    return write_png(path, INK)


def _raises(call: Callable[[], object], *fragments: str) -> str:
    """Run ``call``, expect a DatasetError, and check that its message holds every fragment."""
    with pytest.raises(DatasetError) as exc:
        call()
    message = str(exc.value)
    for fragment in fragments:
        assert fragment in message, message
    return message


def _symlink_or_skip(link: Path, target: Path) -> None:
    try:
        link.symlink_to(target, target_is_directory=target.is_dir())
    except (OSError, NotImplementedError):
        pytest.skip("symbolic links are not available here")


# --------------------------------------------------------------------------- item 1: escaping names


@pytest.fixture
def images(tmp_path: Path) -> Path:
    """``tmp_path/imgs/a.png`` inside the folder, ``tmp_path/outside.png`` beside it."""
    _image(tmp_path / "imgs" / "a.png")
    _image(tmp_path / "outside.png")
    return tmp_path / "imgs"


@pytest.mark.parametrize(
    "name",
    ["/etc/passwd", "{outside}", "../outside.png", "sub/../../outside.png", "./../outside.png", "..\\outside.png",
     "C:\\outside.png", "\\\\server\\share\\outside.png"],
    ids=["etc-passwd", "absolute", "dotdot", "nested-dotdot", "dot-dotdot", "backslash-dotdot", "drive",
         "unc"],
)
def test_list_refuses_names_that_leave_the_images_folder(tmp_path: Path, images: Path, name: str) -> None:
    name = name.format(outside=tmp_path / "outside.png")
    gt = tmp_path / "gt.txt"
    gt.write_text(f"a.png 1\n{name} 2\n", encoding="utf-8")
    _raises(lambda: read_list(gt, images), f"{gt}:2:", "images folder")
    _raises(lambda: read_gt_list(gt), f"{gt}:2:", "images folder")


def test_list_refuses_a_symlink_that_resolves_outside(tmp_path, images):
    _symlink_or_skip(images / "link.png", tmp_path / "outside.png")
    gt = tmp_path / "gt.txt"
    gt.write_text("a.png 1\nlink.png 2\n")
    _raises(lambda: read_list(gt, images), f"{gt}:2:", "link.png", "outside the images folder")
    sub = tmp_path / "elsewhere"
    _image(sub / "b.png")
    _symlink_or_skip(images / "sub", sub)  # a linked sub-folder leaves the folder just the same
    gt.write_text("sub/b.png 3\n")
    _raises(lambda: read_list(gt, images), f"{gt}:1:", "outside the images folder")


def test_list_keeps_names_that_stay_inside(tmp_path, images):
    """Sub-folders, ``./``, a symlinked images folder and a link that stays inside all read."""
    _image(images / "sub" / "b.png")
    _symlink_or_skip(images / "inner.png", images / "a.png")
    linked = tmp_path / "linked-imgs"
    _symlink_or_skip(linked, images)
    gt = tmp_path / "gt.txt"
    gt.write_text("a.png 1\nsub/b.png 22\n./inner.png 3\n")
    for folder in (images, linked):
        ds = read_list(gt, folder)
        assert [(p.name, lab) for p, lab in ds.items] == [("a.png", "1"), ("b.png", "22"), ("inner.png", "3")]


# --------------------------------------------------------------------------- item 3: ORAND-CAR variants


ORAND_ROWS = [("a_car_000154.png", "2250"), ("a_car_000155.png", "60"), ("a_car_000156.png", "100")]


def _orand(base: Path, gt_text: str | None = None, suffix: str = ".png", split: str = "train") -> Path:
    """One CAR-A split in ``base`` (the folder that holds ``a_<split>_gt.txt``); returns the gt file."""
    for fname, _ in ORAND_ROWS:
        _image(base / f"a_{split}_images" / (Path(fname).stem + suffix))
    gt = base / f"a_{split}_gt.txt"
    gt.write_bytes((gt_text if gt_text is not None else "".join(f"{f} {lab}\n" for f, lab in ORAND_ROWS)).encode())
    return gt


def _labels(ds: FileDataset) -> list[tuple[str, str]]:
    return [(p.name, lab) for p, lab in ds.items]


def test_orand_gt_line_variants(tmp_path):
    """A BOM, CRLF ends, tabs and runs of spaces, trailing blank and blank-looking lines."""
    text = "\ufeffa_car_000154.png\t2250\r\na_car_000155.png    60\r\n \t\r\na_car_000156.png \t 100 \r\n\r\n\r\n"
    _orand(tmp_path / "CAR-A", text)
    ds = read_orand_car(tmp_path, "a", "train")
    assert [lab for _, lab in ds.items] == [lab for _, lab in ORAND_ROWS]


@pytest.mark.parametrize("suffix", [".PNG", ".Png"])
def test_orand_upper_case_extensions(tmp_path, suffix):
    """The gt file says ``.png``; the images on disk say ``.PNG`` (or the other way round)."""
    _orand(tmp_path / "CAR-A", suffix=suffix)
    ds = read_orand_car(tmp_path, "a", "train")
    assert _labels(ds) == [(Path(f).stem + suffix, lab) for f, lab in ORAND_ROWS]
    assert all(p.is_file() for p, _ in ds.items)


def test_orand_case_only_match_that_is_ambiguous_is_refused(tmp_path):
    gt = _orand(tmp_path / "CAR-A", suffix=".PNG")
    _image(tmp_path / "CAR-A" / "a_train_images" / "A_CAR_000155.png")
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), f"{gt}:2:", "a_car_000155.png", "A_CAR_000155.png",
            "a_car_000155.PNG")


@pytest.mark.parametrize(
    "where, root",
    [("ORAND-CAR-2014/CAR-A", "."), ("orand-car/ORAND-CAR-2014/CAR-A", "."), ("CAR-A", "CAR-A"),
     ("orand-car", "."), ("ORAND-CAR-2014/CAR-A", "ORAND-CAR-2014")],
    ids=["archive-folder", "archive-in-orand-car", "subset-folder-as-root", "flat-orand-car", "archive-as-root"],
)
def test_orand_layout_variants(tmp_path, where, root):
    _orand(tmp_path / where)
    ds = read_orand_car(tmp_path / root, "a", "train")
    assert _labels(ds) == ORAND_ROWS
    assert ds.name == "car-a-train"


def test_orand_two_candidate_folders_are_refused(tmp_path):
    _orand(tmp_path / "CAR-A")
    _orand(tmp_path / "orand-car" / "CAR-A")
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), "ambiguous", str(tmp_path / "CAR-A"),
            str(tmp_path / "orand-car" / "CAR-A"))
    # the other subset and split are not ambiguous: only CAR-A train is in two places
    _orand(tmp_path / "orand-car" / "CAR-A", split="test")
    assert len(read_orand_car(tmp_path, "a", "test")) == len(ORAND_ROWS)


def test_orand_same_folder_through_a_link_is_not_ambiguous(tmp_path):
    _orand(tmp_path / "orand-car" / "CAR-A")
    _symlink_or_skip(tmp_path / "CAR-A", tmp_path / "orand-car" / "CAR-A")
    assert _labels(read_orand_car(tmp_path, "a", "train")) == ORAND_ROWS


def test_orand_duplicate_name_with_two_labels_is_refused(tmp_path):
    text = "a_car_000154.png 2250\na_car_000155.png 60\n\na_car_000154.png 2260\n"
    gt = _orand(tmp_path / "CAR-A", text)
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), f"{gt}:4:", "a_car_000154.png", "line 1", "2250",
            "2260")


def test_orand_repeated_identical_line_is_kept_once(tmp_path):
    text = "a_car_000154.png 2250\na_car_000155.png 60\na_car_000154.png\t2250\n./a_car_000156.png 100\n"
    _orand(tmp_path / "CAR-A", text)
    assert [lab for _, lab in read_orand_car(tmp_path, "a", "train").items] == ["2250", "60", "100"]


def test_orand_duplicate_spelled_differently_is_caught(tmp_path):
    text = "a_car_000154.png 2250\n./a_car_000154.png 60\n"
    gt = _orand(tmp_path / "CAR-A", text)
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), f"{gt}:2:", "line 1")


@pytest.mark.parametrize("line", ["a_car_000155.png 60 x", "a_car_000155.png 60 1.500", "a_car_000155.png 6O"])
def test_orand_extra_field_or_non_digit_label_is_refused(tmp_path, line):
    gt = _orand(tmp_path / "CAR-A", f"a_car_000154.png 2250\n{line}\n")
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), f"{gt}:2:")


def test_orand_missing_listed_image_names_the_line(tmp_path):
    gt = _orand(tmp_path / "CAR-A", "a_car_000154.png 2250\na_car_000999.png 60\n")
    _raises(lambda: read_orand_car(tmp_path, "a", "train"), f"{gt}:2:", "a_car_000999.png")


# --------------------------------------------------------------------------- item 3: CVL HDS variants


CVL_TRAIN = ["430040-0396-15.png", "25-0001-1.png"]
CVL_TEST = ["12345-0100-2.png", "0-0101-7.png"]


def _cvl(train_dir: Path | None, test_dir: Path | None) -> None:
    for folder, names in ((train_dir, CVL_TRAIN), (test_dir, CVL_TEST)):
        for name in names if folder is not None else ():
            _image(folder / name)


def _cvl_labels(root: Path, split: str) -> list[str]:
    return read_cvl(root, split).labels()


@pytest.mark.parametrize(
    "train, test",
    [("cvl-strings/train", "cvl-strings-eval"), ("cvl-strings-train/train", "cvl-strings-eval"),
     ("cvl-strings-train", "cvl-strings-eval/cvl-strings-eval"),
     ("cvl-digits/cvl-strings/train", "cvl-digits/cvl-strings-eval"),
     ("cvl/cvl-strings-train", "cvl/cvl-strings-eval"), ("cvl-hds/cvl-strings-train/train", "cvl-hds/cvl-strings-eval")],
    ids=["official", "train-archive", "nested-eval", "cvl-digits-parent", "cvl-parent", "cvl-hds-train-archive"],
)
def test_cvl_distribution_layouts(tmp_path, train, test):
    _cvl(tmp_path / train, tmp_path / test)
    assert _cvl_labels(tmp_path, "train") == ["25", "430040"]
    assert _cvl_labels(tmp_path, "test") == ["0", "12345"]


def test_cvl_upper_case_extensions_and_archive_debris(tmp_path):
    """``.PNG`` names are read; macOS resource forks (``._x.png``, ``__MACOSX/``), hidden folders
    and non-image files that archives carry are skipped instead of failing the whole split."""
    folder = tmp_path / "cvl-strings-eval"
    _image(folder / "12345-0100-2.PNG")
    _image(folder / "0-0101-7.png")
    _image(folder / "._12345-0100-2.PNG")
    _image(folder / "__MACOSX" / "._0-0101-7.png")
    _image(folder / ".thumbnails" / "preview.png")
    (folder / "Thumbs.db").write_bytes(b"\0")
    (folder / "readme.txt").write_text("CVL HDS\n")
    ds = read_cvl(tmp_path, "test")
    assert [(p.name, lab) for p, lab in ds.items] == [("0-0101-7.png", "0"), ("12345-0100-2.PNG", "12345")]


def test_cvl_two_candidate_folders_are_refused(tmp_path):
    _cvl(tmp_path / "cvl-strings" / "train", tmp_path / "cvl-strings-eval")
    _cvl(tmp_path / "cvl-strings-train", None)
    _raises(lambda: read_cvl(tmp_path, "train"), "ambiguous", str(tmp_path / "cvl-strings" / "train"),
            str(tmp_path / "cvl-strings-train"))
    assert _cvl_labels(tmp_path, "test") == ["0", "12345"]  # one eval folder: fine
    _cvl(None, tmp_path / "cvl-hds" / "cvl-strings-eval")
    _raises(lambda: read_cvl(tmp_path, "test"), "ambiguous", str(tmp_path / "cvl-strings-eval"),
            str(tmp_path / "cvl-hds" / "cvl-strings-eval"))


def test_cvl_isolated_digits_folder_is_not_read_as_strings(tmp_path):
    """``cvl-digits/train`` (the single-digit part of the database) sits beside the strings."""
    _cvl(tmp_path / "cvl-strings" / "train", None)
    _image(tmp_path / "cvl-digits" / "train" / "7-0001-1.png")
    assert _cvl_labels(tmp_path, "train") == ["25", "430040"]


def test_cvl_missing_folder_names_what_it_looked_for(tmp_path):
    message = _raises(lambda: read_cvl(tmp_path, "train"), str(tmp_path / "cvl-strings" / "train"))
    assert "cvl-strings-train" in message
    assert os.sep in message
