"""Readers of the isolated-digit sets (strings/data/digitsets.py) on tiny fake trees in the
published layouts, and on the real staged copies when they are present."""

from __future__ import annotations

import zipfile
from collections import Counter

import numpy as np
import pytest

from conftest import REAL_DATA
from digit_fakes import (
    CMATER,
    build_cmater_tree,
    build_gujarati_tree,
    build_gurmukhi_tree,
    build_indic_tree,
    build_kannada_tree,
)
from strings.data import DATASETS, DatasetError, DigitSet, open_dataset
from strings.data.digitsets import GUJARATI_SPLIT, SCRIPT_DATASETS


@pytest.fixture(scope="module")
def indic_root(tmp_path_factory):
    return build_indic_tree(tmp_path_factory.mktemp("data"))


def test_digit_datasets_are_registered():
    for name in ("bangla", "devanagari", "telugu", "kannada", "gujarati", "gurmukhi", "mnist", "usps"):
        assert name in DATASETS
    for script in ("bangla", "devanagari", "telugu", "kannada", "gujarati", "gurmukhi"):
        assert f"{script}-strings" in DATASETS and SCRIPT_DATASETS[script] in DATASETS


@pytest.mark.parametrize("script", sorted(CMATER))
def test_cmater_drops_train_copies_and_test_repeats(indic_root, script):
    train = open_dataset(script, "train", indic_root)
    test = open_dataset(script, "test", indic_root)
    assert isinstance(train, DigitSet) and train.name == f"{script}-train"
    assert len(train) == 39 and train.duplicates_dropped == 1 and train.repeats_dropped == 0
    assert len(test) == 19 and test.repeats_dropped == 1 and "1 images identical" in test.note
    train_keys = {train[i].image.tobytes() for i in range(len(train))}
    assert not any(test[i].image.tobytes() in train_keys for i in range(len(test)))
    s = train[0]
    assert s.image.shape == (32, 32) and s.image.dtype == np.uint8
    assert s.image[0, 0] == 255 and s.image.min() == 0  # black ink on white, as stored
    assert set(train.labels()) == set("0123456789")
    assert Counter(test.labels())["9"] == 1  # the repeated test image was a 9


def test_cmater_reads_the_data_root_or_the_indic_folder(indic_root):
    assert len(open_dataset("bangla", "train", indic_root / "indic")) == 39


def test_kannada_trains_on_dig_mnist_and_tests_on_kannada_mnist(indic_root):
    train, test = open_dataset("kannada", "train", indic_root), open_dataset("kannada", "test", indic_root)
    assert len(train) == 30 and len(test) == 20
    assert train.ink_bright and test.ink_bright
    img = train[0].image  # inverted on access: dark ink on light
    assert img[0, 0] == 255 and img.min() < 128


def test_gujarati_split_is_seeded_per_class_and_keeps_copies_together(tmp_path):
    unique = build_gujarati_tree(tmp_path)
    train, test = open_dataset("gujarati", "train", tmp_path), open_dataset("gujarati", "test", tmp_path)
    assert len(train) + len(test) == unique  # unique images only
    assert train.duplicates_dropped + test.duplicates_dropped == 103 - unique
    per_class = Counter(train.labels()) + Counter(test.labels())
    assert Counter(test.labels()) == {d: round(n * GUJARATI_SPLIT["test_fraction"]) for d, n in per_class.items()}
    tr = {train[i].image.tobytes() for i in range(len(train))}
    assert not any(test[i].image.tobytes() in tr for i in range(len(test)))
    again = open_dataset("gujarati", "test", tmp_path)
    assert [again[i].image.tobytes() for i in range(len(again))] == [test[i].image.tobytes() for i in range(len(test))]


def test_gurmukhi_reads_bmp_and_tiff_zips(indic_root):
    train, test = open_dataset("gurmukhi", "train", indic_root), open_dataset("gurmukhi", "test", indic_root)
    assert len(train) == 30 and len(test) == 9 and test.repeats_dropped == 1
    assert train[0].image.shape == (32, 32) and set(np.unique(train[0].image)) <= {0, 255}
    assert train.labels()[:3] == ["0", "0", "0"]
    assert "3" not in test.labels()  # the val 3 was a copy of a training 3


@pytest.mark.parametrize("name", ["bangla", "kannada", "gujarati", "gurmukhi"])
def test_missing_tree_and_bad_split_are_dataset_errors(tmp_path, name):
    with pytest.raises(DatasetError, match="not found"):
        open_dataset(name, "train", tmp_path)
    with pytest.raises(DatasetError, match="split"):
        open_dataset(name, "val", tmp_path)


def test_malformed_files_are_dataset_errors(tmp_path):
    build_cmater_tree(tmp_path, "telugu")
    folder = tmp_path / "indic" / CMATER["telugu"]
    (folder / "testing-images.npz").write_bytes(b"not a zip")
    with pytest.raises(DatasetError, match="testing-images.npz"):
        open_dataset("telugu", "test", tmp_path)
    np.savez(folder / "training-images.npz", images=np.zeros((2, 32, 32, 3), np.uint8), labels=np.array([1, 12]))
    with pytest.raises(DatasetError, match="label 12"):
        open_dataset("telugu", "train", tmp_path)
    np.savez(folder / "training-images.npz", images=np.zeros((2, 32, 32, 3), np.uint8))
    with pytest.raises(DatasetError, match="lacks arrays"):
        open_dataset("telugu", "train", tmp_path)
    np.savez(folder / "training-images.npz", images=np.zeros((2, 32, 32), np.float32), labels=np.array([1, 2]))
    with pytest.raises(DatasetError, match="uint8"):
        open_dataset("telugu", "train", tmp_path)


def test_gurmukhi_zip_with_a_stray_member(tmp_path):
    build_gurmukhi_tree(tmp_path)
    with zipfile.ZipFile(tmp_path / "indic" / "gurmukhi-digits" / "train.zip", "a") as zf:
        zf.writestr("train/readme.txt", "hello")
    with pytest.raises(DatasetError, match="readme.txt"):
        open_dataset("gurmukhi", "train", tmp_path)
    other = tmp_path / "other"
    build_gurmukhi_tree(other)
    (other / "indic" / "gurmukhi-digits" / "val.zip").write_bytes(b"PK\x03\x04 broken")
    with pytest.raises(DatasetError, match="val.zip"):
        open_dataset("gurmukhi", "test", other)


def test_kannada_label_count_mismatch(tmp_path):
    import gzip

    from conftest import idx_bytes

    build_kannada_tree(tmp_path)
    folder = tmp_path / "indic" / "kannada-mnist"
    (folder / "y_dig_MNIST-idx1-ubyte.gz").write_bytes(gzip.compress(idx_bytes(np.zeros(7, np.uint8))))
    with pytest.raises(DatasetError, match="7"):
        open_dataset("kannada", "train", tmp_path)


def test_gujarati_without_labels(tmp_path):
    build_gujarati_tree(tmp_path)
    np.savez(tmp_path / "indic" / "gujarati-digits" / "gujarati_digits.npz", images=np.zeros((3, 28, 28), np.uint8))
    with pytest.raises(DatasetError, match="labels"):
        open_dataset("gujarati", "train", tmp_path)


# --------------------------------------------------------------------------- the real staged copies

requires_indic = pytest.mark.skipif(
    REAL_DATA is None or not (REAL_DATA / "indic").is_dir(), reason="../shared/data/indic not found"
)


@requires_indic
@pytest.mark.parametrize(
    "name, train, test, repeats, copies",
    [
        ("bangla", 4992, 993, 7, 8),
        ("devanagari", 2464, 486, 14, 36),
        ("telugu", 2498, 497, 3, 2),
        ("kannada", 10240, 10000, 0, 0),
        ("gurmukhi", 1000, 174, 4, 0),
    ],
)
def test_real_indic_counts_match_the_readme(name, train, test, repeats, copies):
    tr, te = open_dataset(name, "train", REAL_DATA), open_dataset(name, "test", REAL_DATA)
    assert (len(tr), len(te), te.repeats_dropped, tr.duplicates_dropped) == (train, test, repeats, copies)


@requires_indic
def test_real_gujarati_split_covers_the_unique_images():
    tr, te = open_dataset("gujarati", "train", REAL_DATA), open_dataset("gujarati", "test", REAL_DATA)
    assert len(tr) + len(te) == 19894  # the README's unique count
    assert tr.duplicates_dropped + te.duplicates_dropped == 558
