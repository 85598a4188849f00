"""The benchmarks' own choices are made on data the reported numbers do not come from."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

from conftest import REAL_DATA, REPO

pytest.importorskip("onnxruntime")


def _load_benchmark(name: str):
    spec = importlib.util.spec_from_file_location(f"bench_{name}", REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


@pytest.mark.skipif(REAL_DATA is None, reason="real car-a-partial data not found beside the checkout or in $STRINGS_DATA")
def test_int8_float_layers_are_chosen_on_validation_not_test(tiny_checkpoint: Path, monkeypatch):
    import strings.data.catalog as catalog

    speed = _load_benchmark("speed")
    opened: list[tuple[str, str]] = []
    real_open = catalog.open_dataset

    def spy(name, split, data_root=None):
        opened.append((name, split))
        return real_open(name, split, data_root)

    monkeypatch.setattr(catalog, "open_dataset", spy)
    monkeypatch.setattr("strings.data.sources.open_dataset", spy)
    monkeypatch.setattr(speed, "CALIBRATION_IMAGES", 16)
    choice = speed.choose_float_layers(str(tiny_checkpoint), str(REAL_DATA))
    assert opened and all(split == "train" for _, split in opened), opened
    assert choice["fp32_validation"]["n"] == 108 and all(c["n"] == 108 for c in choice["candidates"])
    assert choice["float_layers"] in [list(c) for c in speed.FLOAT_LAYER_CANDIDATES]
    assert isinstance(choice["graph"], bytes) and choice["graph"][:2] != b""
