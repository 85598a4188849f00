"""Readers on tiny trees in the official layouts, malformed trees, the data-root rule, and the
real datasets when they are present."""

from __future__ import annotations

import gzip
from pathlib import Path

import numpy as np
import pytest

from conftest import (
    CAR_PARTIAL_SAMPLES,
    REAL_DATA,
    build_car_partial_tree,
    build_cvl_tree,
    build_mnist_tree,
    build_orand_tree,
    build_usps_tree,
    idx_bytes,
    render_digits,
    requires_real_data,
    usps_line,
    write_png,
)
from strings.data import (
    DATASETS,
    DatasetError,
    open_dataset,
    read_car_partial_boxes,
    read_idx,
    read_list,
    resolve_data_root,
    split_train_val,
)
from strings.data.readers import read_cvl, read_orand_car


def _check_samples(ds, expected: list[tuple[str, str]]) -> None:
    assert len(ds) == len(expected)
    assert ds.labels() == [lab for _, lab in expected]
    for i, (fname, lab) in enumerate(expected):
        s = ds[i]
        assert s.label == lab
        assert Path(s.name).name == fname
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert s.image.mean() > 127  # dark ink on light paper


# --------------------------------------------------------------------------- ORAND-CAR


@pytest.mark.parametrize("prefix", [True, False], ids=["orand-car-prefix", "no-prefix"])
@pytest.mark.parametrize("subset", ["a", "b"])
@pytest.mark.parametrize("split", ["train", "test"])
def test_orand_car_official_layout(tmp_path, prefix, subset, split):
    listed = build_orand_tree(tmp_path, prefix=prefix)
    ds = open_dataset(f"car-{subset}", split, tmp_path)
    _check_samples(ds, listed[f"{subset}-{split}"])
    assert ds.name == f"car-{subset}-{split}"
    if subset == "a":
        assert listed["a-train"][0][0] == "a_car_000154.png"


def test_orand_car_reader_accepts_the_orand_folder_itself(tmp_path):
    listed = build_orand_tree(tmp_path, prefix=True, subsets="a")
    ds = read_orand_car(tmp_path / "orand-car", "a", "test")
    _check_samples(ds, listed["a-test"])


def test_orand_car_missing_folder(tmp_path):
    build_orand_tree(tmp_path, subsets="a")
    with pytest.raises(DatasetError, match="CAR-B") as exc:
        open_dataset("car-b", "train", tmp_path)
    assert str(tmp_path / "CAR-B") in str(exc.value)


def test_orand_car_missing_gt_file(tmp_path):
    build_orand_tree(tmp_path, prefix=False, subsets="a")
    gt = tmp_path / "CAR-A" / "a_test_gt.txt"
    gt.unlink()
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a", "test", tmp_path)
    assert str(gt) in str(exc.value)


def test_orand_car_missing_image_folder(tmp_path):
    build_orand_tree(tmp_path, prefix=False, subsets="a")
    folder = tmp_path / "CAR-A" / "a_train_images"
    for f in folder.iterdir():
        f.unlink()
    folder.rmdir()
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a", "train", tmp_path)
    assert str(folder) in str(exc.value)


def test_orand_car_listed_image_missing(tmp_path):
    listed = build_orand_tree(tmp_path, prefix=False, subsets="a")
    missing = tmp_path / "CAR-A" / "a_train_images" / listed["a-train"][1][0]
    missing.unlink()
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a", "train", tmp_path)
    assert str(missing) in str(exc.value)


@pytest.mark.parametrize("bad_label", ["12a4", "1.500", "١٢"])
def test_orand_car_non_digit_label(tmp_path, bad_label):
    build_orand_tree(tmp_path, prefix=False, subsets="a")
    gt = tmp_path / "CAR-A" / "a_test_gt.txt"
    lines = gt.read_text().splitlines()
    lines[1] = lines[1].split()[0] + " " + bad_label
    gt.write_text("\n".join(lines) + "\n", encoding="utf-8")
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a", "test", tmp_path)
    assert str(gt) in str(exc.value)
    assert ":2:" in str(exc.value)  # the line number


def test_orand_car_bad_subset_and_split(tmp_path):
    build_orand_tree(tmp_path)
    with pytest.raises(DatasetError):
        read_orand_car(tmp_path, "c", "train")
    with pytest.raises(DatasetError):
        read_orand_car(tmp_path, "a", "val")


# --------------------------------------------------------------------------- CVL HDS


@pytest.mark.parametrize("prefix", [False, True], ids=["no-prefix", "cvl-hds-prefix"])
def test_cvl_layout(tmp_path, prefix):
    files = build_cvl_tree(tmp_path, prefix=prefix)
    for split in ("train", "test"):
        ds = open_dataset("cvl", split, tmp_path)
        expected = sorted(files[split])
        assert [Path(ds[i].name).name for i in range(len(ds))] == expected
        assert ds.labels() == [f.split("-")[0] for f in expected]
        assert ds[0].image.mean() > 127
    assert open_dataset("cvl", "train", tmp_path).labels() == ["25", "430040", "7"]


def test_cvl_missing_folder(tmp_path):
    with pytest.raises(DatasetError) as exc:
        read_cvl(tmp_path, "test")
    assert str(tmp_path / "cvl-strings-eval") in str(exc.value)


@pytest.mark.parametrize("bad", ["430040_0396_15.png", "43a0-0396-15.png", "430040-0396.png", "-0396-15.png"])
def test_cvl_bad_file_name(tmp_path, bad):
    build_cvl_tree(tmp_path)
    path = write_png(tmp_path / "cvl-strings" / "train" / bad, render_digits("1"))
    with pytest.raises(DatasetError) as exc:
        read_cvl(tmp_path, "train")
    assert str(path) in str(exc.value)


def test_cvl_empty_folder(tmp_path):
    (tmp_path / "cvl-strings-eval").mkdir()
    with pytest.raises(DatasetError) as exc:
        read_cvl(tmp_path, "test")
    assert str(tmp_path / "cvl-strings-eval") in str(exc.value)


# --------------------------------------------------------------------------- CAR-A partial subset


def test_car_partial_layout(tmp_path):
    build_car_partial_tree(tmp_path)
    for split in ("train", "test"):
        ds = open_dataset("car-a-partial", split, tmp_path)
        _check_samples(ds, CAR_PARTIAL_SAMPLES[split])
        assert ds.name == f"car-a-partial-{split}"


def test_car_partial_without_orand_prefix(tmp_path):
    build_car_partial_tree(tmp_path)
    ds = open_dataset("car-a-partial", "test", tmp_path / "orand-car")
    _check_samples(ds, CAR_PARTIAL_SAMPLES["test"])


def test_car_partial_gt_is_tab_separated_and_checked(tmp_path):
    base = build_car_partial_tree(tmp_path)
    gt = base / "val2017_gt.txt"
    assert "\t" in gt.read_text()
    gt.write_text(gt.read_text().replace("\t1500", "\t15,00"))
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a-partial", "test", tmp_path)
    assert str(gt) in str(exc.value)


def test_car_partial_missing(tmp_path):
    with pytest.raises(DatasetError) as exc:
        open_dataset("car-a-partial", "train", tmp_path)
    assert str(tmp_path / "orand-car" / "CAR-A-partial-fzkuji") in str(exc.value)


def test_car_partial_boxes(tmp_path):
    build_car_partial_tree(tmp_path)
    for split in ("train", "test"):
        boxes = read_car_partial_boxes(tmp_path, split)
        assert set(boxes) == {f for f, _ in CAR_PARTIAL_SAMPLES[split]}
        for fname, label in CAR_PARTIAL_SAMPLES[split]:
            digits = boxes[fname]
            assert "".join(d for d, _ in digits) == label  # sorted left to right
            centres = [(b[0] + b[2]) / 2 for _, b in digits]
            assert centres == sorted(centres)
            for _, (x0, y0, x1, y1) in digits:
                assert all(isinstance(v, int) for v in (x0, y0, x1, y1))
                assert x0 < x1 and y0 < y1
    # (x, y, w, h) -> (x0, y0, x1, y1) with rounding: first train digit "2" at x=3, y=2.4
    first = read_car_partial_boxes(tmp_path, "train")[CAR_PARTIAL_SAMPLES["train"][0][0]][0]
    assert first[0] == "2" and first[1][:2] == (3, 2)


def test_car_partial_boxes_missing_or_malformed(tmp_path):
    base = build_car_partial_tree(tmp_path)
    coco = base / "annotations_coco" / "instances_val2017.json"
    coco.write_text('{"images": [], "annotations": [{"image_id": 5}]}')
    with pytest.raises(DatasetError) as exc:
        read_car_partial_boxes(tmp_path, "test")
    assert str(coco) in str(exc.value)
    coco.unlink()
    with pytest.raises(DatasetError) as exc:
        read_car_partial_boxes(tmp_path, "test")
    assert str(coco) in str(exc.value)


def test_car_partial_boxes_bad_split_is_a_dataset_error(tmp_path):
    build_car_partial_tree(tmp_path)
    with pytest.raises(DatasetError, match="split"):
        read_car_partial_boxes(tmp_path, "val")


# --------------------------------------------------------------------------- MNIST IDX


@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_mnist_idx(tmp_path, gz):
    x, y = build_mnist_tree(tmp_path, gz=gz)
    ds = open_dataset("mnist", "train", tmp_path)
    assert len(ds) == len(x)
    assert ds.labels() == [str(int(v)) for v in y]
    s = ds[2]
    assert s.image.shape == (28, 28) and s.image.dtype == np.uint8
    np.testing.assert_array_equal(s.image, 255 - x[2])  # inverted to dark-on-light
    assert s.image.mean() > 127
    assert len(open_dataset("mnist", "test", tmp_path)) == 3


def test_mnist_dotted_original_names(tmp_path):
    folder = tmp_path / "mnist"
    folder.mkdir()
    (folder / "t10k-images.idx3-ubyte").write_bytes(idx_bytes(np.zeros((2, 28, 28), np.uint8)))
    (folder / "t10k-labels.idx1-ubyte").write_bytes(idx_bytes(np.array([3, 4], np.uint8)))
    assert open_dataset("mnist", "test", tmp_path).labels() == ["3", "4"]


def test_read_idx_round_trip(tmp_path):
    arr = np.arange(2 * 3 * 5, dtype=np.uint8).reshape(2, 3, 5)
    p = tmp_path / "a.idx"
    p.write_bytes(idx_bytes(arr))
    np.testing.assert_array_equal(read_idx(p), arr)
    pz = tmp_path / "a.idx.gz"
    pz.write_bytes(gzip.compress(idx_bytes(arr)))
    np.testing.assert_array_equal(read_idx(pz), arr)


@pytest.mark.parametrize(
    "mutate",
    [
        pytest.param(lambda b: b"\x00\x00\x0d" + b[3:], id="bad-magic-float"),
        pytest.param(lambda b: b"\x08\x03\x00\x00" + b[4:], id="bad-magic-order"),
        pytest.param(lambda b: b[:-7], id="truncated-data"),
        pytest.param(lambda b: b[:9], id="truncated-header"),
        pytest.param(lambda b: b + b"\x00", id="trailing-bytes"),
        pytest.param(lambda b: b[:2], id="tiny"),
    ],
)
@pytest.mark.parametrize("gz", [True, False], ids=["gz", "raw"])
def test_read_idx_malformed(tmp_path, mutate, gz):
    build_mnist_tree(tmp_path, gz=False)
    path = tmp_path / "mnist" / "train-images-idx3-ubyte"
    data = mutate(path.read_bytes())
    if gz:
        path.unlink()
        path = path.with_name(path.name + ".gz")
        data = gzip.compress(data)
    path.write_bytes(data)
    with pytest.raises(DatasetError) as exc:
        open_dataset("mnist", "train", tmp_path)
    assert str(path) in str(exc.value)


def test_read_idx_truncated_gzip(tmp_path):
    path = tmp_path / "x.gz"
    path.write_bytes(gzip.compress(idx_bytes(np.zeros((4, 28, 28), np.uint8)))[:30])
    with pytest.raises(DatasetError) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_read_idx_corrupt_gzip_body(tmp_path):
    """A gzip stream whose deflate data is damaged (not just cut short)."""
    blob = bytearray(gzip.compress(idx_bytes(np.arange(4 * 28 * 28, dtype=np.uint32).astype(np.uint8).reshape(4, 28, 28))))
    for i in range(12, 40):
        blob[i] ^= 0xFF
    path = tmp_path / "x.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError) as exc:
        read_idx(path)
    assert str(path) in str(exc.value)


def test_mnist_image_label_count_mismatch_names_the_files(tmp_path):
    build_mnist_tree(tmp_path, gz=False)
    labels = tmp_path / "mnist" / "train-labels-idx1-ubyte"
    labels.write_bytes(idx_bytes(np.array([1, 2, 3, 4], np.uint8)))  # 5 images, 4 labels
    with pytest.raises(DatasetError) as exc:
        open_dataset("mnist", "train", tmp_path)
    assert str(labels) in str(exc.value)


def test_mnist_missing_file(tmp_path):
    build_mnist_tree(tmp_path)
    (tmp_path / "mnist" / "t10k-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DatasetError) as exc:
        open_dataset("mnist", "test", tmp_path)
    assert str(tmp_path / "mnist" / "t10k-labels-idx1-ubyte") in str(exc.value)


# --------------------------------------------------------------------------- USPS


def test_usps_esl_format(tmp_path):
    labels, pix = build_usps_tree(tmp_path)
    ds = open_dataset("usps", "train", tmp_path)
    assert ds.labels() == [str(v) for v in labels]
    s = ds[0]
    assert s.image.shape == (16, 16) and s.image.dtype == np.uint8
    assert s.image[0, 1] == 255  # background (-1) -> white paper
    assert s.image[5, 7] == 0  # ink (1) -> black
    assert 126 <= s.image[0, 0] <= 128  # 0 -> mid grey
    assert s.image.mean() > 127


def test_usps_uncompressed(tmp_path):
    (tmp_path / "zip.train").write_text(usps_line(3, np.full(256, -1.0)) + "\n")
    assert open_dataset("usps", "train", tmp_path).labels() == ["3"]


@pytest.mark.parametrize("ncols", [256, 258])
def test_usps_wrong_column_count(tmp_path, ncols):
    folder = tmp_path / "usps"
    folder.mkdir()
    line = " ".join(["1.0000"] + ["-1.0000"] * (ncols - 1))
    path = folder / "zip.train.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(line + "\n" + line + "\n")
    with pytest.raises(DatasetError) as exc:
        open_dataset("usps", "train", tmp_path)
    assert str(path) in str(exc.value)


def test_usps_ragged_or_non_numeric(tmp_path):
    folder = tmp_path / "usps"
    folder.mkdir()
    good = usps_line(1, np.full(256, -1.0))
    path = folder / "zip.train.gz"
    for text in (good + "\n" + good[:-8] + "\n", good.replace("-1.0000", "abc", 1) + "\n"):
        with gzip.open(path, "wt") as fh:
            fh.write(text)
        with pytest.raises(DatasetError) as exc:
            open_dataset("usps", "train", tmp_path)
        assert str(path) in str(exc.value)


def test_usps_corrupt_gzip_body(tmp_path):
    folder = tmp_path / "usps"
    folder.mkdir()
    lines = "\n".join(usps_line(i % 10, np.linspace(-1, 1, 256)) for i in range(20))
    blob = bytearray(gzip.compress(lines.encode("ascii")))
    for i in range(12, 40):
        blob[i] ^= 0xFF
    path = folder / "zip.train.gz"
    path.write_bytes(bytes(blob))
    with pytest.raises(DatasetError) as exc:
        open_dataset("usps", "train", tmp_path)
    assert str(path) in str(exc.value)


@pytest.mark.parametrize("label", ["10.0000", "6.5000", "-1.0000"])
def test_usps_label_outside_0_9(tmp_path, label):
    folder = tmp_path / "usps"
    folder.mkdir()
    path = folder / "zip.train.gz"
    good = usps_line(3, np.full(256, -1.0))
    bad = " ".join([label] + good.split()[1:])
    with gzip.open(path, "wt") as fh:
        fh.write(good + "\n" + bad + "\n")
    with pytest.raises(DatasetError) as exc:
        open_dataset("usps", "train", tmp_path)
    assert str(path) in str(exc.value)


def test_usps_missing(tmp_path):
    with pytest.raises(DatasetError) as exc:
        open_dataset("usps", "test", tmp_path)
    assert "zip.test" in str(exc.value) and str(tmp_path) in str(exc.value)


# --------------------------------------------------------------------------- generic list


def test_read_list_space_and_tab(tmp_path):
    imgs = tmp_path / "imgs"
    for f, lab in (("one.png", "1"), ("two words.png", "22"), ("c.png", "0301")):
        write_png(imgs / f, render_digits(lab))
    gt = tmp_path / "gt.txt"
    gt.write_text("\ufeffone.png 1\n\ntwo words.png\t22\nc.png   0301\n", encoding="utf-8")
    ds = read_list(gt, imgs)
    assert ds.labels() == ["1", "22", "0301"]
    assert ds.name == "gt"
    assert [Path(ds[i].name).name for i in range(3)] == ["one.png", "two words.png", "c.png"]


@pytest.mark.parametrize(
    "content, fragment",
    [("a.png\n", ":1:"), ("a.png 1x\n", ":1:"), ("", "no samples"), ("a.png -5\n", ":1:")],
    ids=["no-label", "non-digit", "empty", "negative"],
)
def test_read_list_malformed(tmp_path, content, fragment):
    write_png(tmp_path / "imgs" / "a.png", render_digits("1"))
    gt = tmp_path / "gt.txt"
    gt.write_text(content)
    with pytest.raises(DatasetError) as exc:
        read_list(gt, tmp_path / "imgs")
    assert str(gt) in str(exc.value) and fragment in str(exc.value)


def test_read_list_missing_pieces(tmp_path):
    write_png(tmp_path / "imgs" / "a.png", render_digits("1"))
    gt = tmp_path / "gt.txt"
    with pytest.raises(DatasetError) as exc:
        read_list(gt, tmp_path / "imgs")
    assert str(gt) in str(exc.value)
    gt.write_text("a.png 1\n")
    with pytest.raises(DatasetError) as exc:
        read_list(gt, tmp_path / "nope")
    assert str(tmp_path / "nope") in str(exc.value)
    gt.write_text("a.png 1\nb.png 2\n")
    with pytest.raises(DatasetError) as exc:
        read_list(gt, tmp_path / "imgs")
    assert str(tmp_path / "imgs" / "b.png") in str(exc.value)


def test_read_list_not_utf8(tmp_path):
    (tmp_path / "imgs").mkdir()
    gt = tmp_path / "gt.txt"
    gt.write_bytes(b"\xff\xfea.png 1\n")
    with pytest.raises(DatasetError) as exc:
        read_list(gt, tmp_path / "imgs")
    assert str(gt) in str(exc.value)


# --------------------------------------------------------------------------- names, roots, splits


def test_open_dataset_unknown_name(tmp_path):
    with pytest.raises(DatasetError, match="unknown dataset"):
        open_dataset("car-c", "train", tmp_path)
    assert {"car-a", "car-b", "cvl", "car-a-partial", "mnist", "usps"} <= set(DATASETS)


def test_resolve_data_root_precedence(tmp_path, monkeypatch):
    env_root, arg_root = tmp_path / "env", tmp_path / "arg"
    monkeypatch.setenv("STRINGS_DATA", str(env_root))
    assert resolve_data_root(arg_root) == arg_root
    assert resolve_data_root(str(arg_root)) == arg_root
    assert resolve_data_root(None) == env_root
    monkeypatch.delenv("STRINGS_DATA")
    import strings

    repo_data = Path(strings.__file__).resolve().parents[1] / "data"
    assert repo_data.is_dir()  # the checkout ships data/README.md
    assert resolve_data_root(None) == repo_data
    monkeypatch.setenv("STRINGS_DATA", "")
    assert resolve_data_root(None) == repo_data


def test_open_dataset_uses_env_root(tmp_path, monkeypatch):
    build_usps_tree(tmp_path)
    monkeypatch.setenv("STRINGS_DATA", str(tmp_path))
    assert len(open_dataset("usps", "train")) == 4
    monkeypatch.setenv("STRINGS_DATA", str(tmp_path / "elsewhere"))
    with pytest.raises(DatasetError, match="elsewhere"):
        open_dataset("usps", "train")
    assert len(open_dataset("usps", "train", tmp_path)) == 4  # explicit beats the env


def test_split_train_val(tmp_path):
    build_usps_tree(tmp_path, n=20)
    ds = open_dataset("usps", "train", tmp_path)
    fit, val = split_train_val(ds, 0.25, seed=3)
    assert len(val) == 5 and len(fit) == 15
    assert sorted(fit.indices + val.indices) == list(range(20))
    fit2, val2 = split_train_val(ds, 0.25, seed=3)
    assert val2.indices == val.indices and fit2.indices == fit.indices
    assert split_train_val(ds, 0.25, seed=4)[1].indices != val.indices
    assert val.labels() == [ds.label(i) for i in val.indices]
    np.testing.assert_array_equal(val[0].image, ds[val.indices[0]].image)
    for bad in (0.0, 1.0, -0.1):
        with pytest.raises(ValueError):
            split_train_val(ds, bad, seed=0)


# --------------------------------------------------------------------------- real data


@requires_real_data
def test_real_car_a_partial():
    train = open_dataset("car-a-partial", "train", REAL_DATA)
    test = open_dataset("car-a-partial", "test", REAL_DATA)
    assert len(train) == 1080 and len(test) == 128
    for ds in (train, test):
        labels = ds.labels()
        assert all(lab.isdigit() and lab.isascii() and 1 <= len(lab) <= 7 for lab in labels)
    assert train.label(0) == "2250" and Path(train.items[0][0]).name.startswith("a_car_000154")
    assert test.label(0) == "1500"
    for ds in (train, test):
        s = ds[0]
        assert s.image.dtype == np.uint8 and s.image.ndim == 2
        assert s.image.mean() > 127, "CAR images should be dark ink on light paper"


@requires_real_data
def test_real_car_a_partial_boxes_match_labels():
    test = open_dataset("car-a-partial", "test", REAL_DATA)
    boxes = read_car_partial_boxes(REAL_DATA, "test")
    assert len(boxes) == 128
    for path, label in test.items[:20]:
        assert "".join(d for d, _ in boxes[path.name]) == label


@requires_real_data
def test_real_mnist():
    ds = open_dataset("mnist", "train", REAL_DATA)
    assert len(ds) == 60000
    assert ds.labels()[:4] == ["5", "0", "4", "1"]
    img = ds[0].image
    assert img.shape == (28, 28) and img.mean() > 127


@requires_real_data
def test_real_usps():
    ds = open_dataset("usps", "train", REAL_DATA)
    assert len(ds) == 7291
    assert ds.labels()[:4] == ["6", "5", "4", "7"]
    assert ds[0].image.shape == (16, 16) and ds[0].image.mean() > 127
