"""The phone-photo string generator (strings.data.synth.photo) and the peers benchmark's new sets."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import cv2
import numpy as np
import pytest

from strings.config import DataSource, TrainConfig
from strings.data import open_dataset
from strings.data.sources import build_sources
from strings.data.synth.comb import CombFields
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds
from strings.data.synth.photo import PhotoConfig, PhotoStrings

from conftest import REAL_DATA, render_digits

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def bank() -> GlyphBank:
    glyphs = [render_digits(str(d), height=28) for d in range(10)]  # dark on light
    return GlyphBank.from_arrays(glyphs, [str(d) for d in range(10)], "rendered")


def test_photos_are_fixed_by_seed_and_grey_as_load_image_would_make_them(bank: GlyphBank) -> None:
    ds = PhotoStrings(bank, Backgrounds.synthetic(), n=30, seed=5)
    rgb, label = ds.colour(4)
    again, _ = ds.colour(4)
    assert np.array_equal(rgb, again) and label == ds.label(4) == ds[4].label
    assert rgb.dtype == np.uint8 and rgb.ndim == 3 and rgb.shape[2] == 3
    assert np.array_equal(ds[4].image, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    other = PhotoStrings(bank, Backgrounds.synthetic(), n=30, seed=6)
    assert any(ds.label(i) != other.label(i) for i in range(10))
    with pytest.raises(IndexError):
        ds[30]


def test_photos_are_small_coloured_and_up_to_twelve_digits(bank: GlyphBank) -> None:
    cfg = PhotoConfig()
    ds = PhotoStrings(bank, Backgrounds.synthetic(), n=120, seed=1, cfg=cfg)
    heights, lengths, blue = [], [], 0
    for i in range(len(ds)):
        rgb, label = ds.colour(i)
        heights.append(rgb.shape[0])
        lengths.append(len(label))
        assert label.isdigit()
        ink = rgb.reshape(-1, 3)[ds[i].image.reshape(-1) < np.percentile(ds[i].image, 5)].mean(axis=0)
        blue += bool(ink[2] > ink[0] + 20)  # the darkest pixels are blue ballpoint
    lo, hi = cfg.height_px
    assert lo - 1 <= min(heights) and max(heights) <= hi + 1, "photo crops are 18-32 px high"
    assert max(lengths) >= 10 and min(lengths) <= 2
    assert blue >= 20, "a good share of the strings is written in blue"


def test_photo_config_checks_its_weights() -> None:
    with pytest.raises(ValueError):
        PhotoConfig(paper_weights=(1.0,))
    with pytest.raises(ValueError):
        PhotoConfig(height_px=(30.0, 20.0))


def test_comb_and_photo_training_sets_leave_the_validation_cheques_out(monkeypatch) -> None:
    """Composed sets take cheque glyphs and paper: those of the validation slice must stay out."""
    seen: dict[str, frozenset[str]] = {}

    def fake(name):
        def make(root, split, exclude=frozenset()):
            seen[name] = exclude
            return CombFields(GlyphBank.from_arrays([render_digits("1", height=20)], ["1"], "r"), Backgrounds.synthetic(), 3, 0)
        return make

    import strings.data.sources as sources

    monkeypatch.setitem(sources._GENERATED, "comb-fields", fake("comb-fields"))
    monkeypatch.setitem(sources._GENERATED, "photo-strings", fake("photo-strings"))
    from strings.data.base import Subset
    from strings.data.base import FileDataset

    base = FileDataset([(Path(f"/x/a_car_{i:06d}.jpg"), "1") for i in range(20)], "car-a-partial-train")
    val = Subset(base, [0, 1, 2], "car-a-partial-train:val")
    cfg = TrainConfig(sources=(DataSource("comb-fields"), DataSource("photo-strings")), validation="car-a-partial")
    build_sources(cfg, Path("/nowhere"), Subset(base, list(range(3, 20))), val)
    assert seen["comb-fields"] == seen["photo-strings"] == frozenset({"a_car_000000.jpg", "a_car_000001.jpg", "a_car_000002.jpg"})


@pytest.mark.skipif(REAL_DATA is None, reason="MNIST not found beside the checkout or in $STRINGS_DATA")
def test_photo_benchmark_composes_mnist_test_digits_on_synthetic_paper() -> None:
    ds = open_dataset("photo-strings", "test", REAL_DATA)
    assert len(ds) == 1000 and ds.pen.bank.source_names() == ["mnist"]  # type: ignore[attr-defined]
    assert not ds.pen.backgrounds.patches  # type: ignore[attr-defined]
    assert ds[0].label == open_dataset("photo-strings", "test", REAL_DATA)[0].label


def test_peers_upgrade_keeps_an_old_single_run_file() -> None:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    try:
        import peers
    finally:
        sys.path.pop(0)
    old = {"command": "python benchmarks/peers.py", "date": "d", "machine": {"cpu": "c", "cores": 2}, "packages": {},
           "load_average_start": [0], "load_average_end": [0], "wall_seconds": 60.0, "config": {},
           "system_versions": {"strings": "s"}, "skipped": {}, "datasets": {"car-a-partial": {"n": 1, "note": ""}},
           "rows": [{"dataset": "car-a-partial", "system": "strings", "mode": "default model", "n": 1,
                     "accuracy": 1.0, "accuracy_ci95": [0.2, 1.0], "cer": 0.0, "images_per_s_single": 1.0}]}
    new = peers._upgrade(json.loads(json.dumps(old)))
    assert new["runs"][0]["command"] == old["command"] and new["rows"] == old["rows"]
    assert peers._upgrade(new) is new


@pytest.mark.skipif(REAL_DATA is None, reason="MNIST not found beside the checkout or in $STRINGS_DATA")
def test_benchmark_command_reads_the_first_n_photos(tiny_checkpoint: Path, capsys) -> None:
    from strings.cli.main import main

    code = main(["benchmark", "photo-strings", "--split", "test", "--n", "4", "--json", "--model", str(tiny_checkpoint),
                 "--data-root", str(REAL_DATA)])
    row = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert code == 0 and row["n"] == 4 and row["dataset"] == "photo-strings" and 0.0 <= row["accuracy"] <= 1.0
