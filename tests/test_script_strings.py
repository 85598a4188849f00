"""String models in another script's numerals: synthetic Bangla strings composed from isolated
Bangla numerals, and a tiny DenseNet-CTC trained on them with the Bangla alphabet."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import tiny_train_config
from digit_fakes import build_cmater_tree
from strings.alphabet import SCRIPT_DIGITS, Alphabet, script_of
from strings.models.checkpoint import load_model
from strings.config import DataSource
from strings.data import open_dataset
from strings.train.loop import train
from strings.read.recognizer import Recognizer
from strings.data.synth.scripts import script_glyph_bank, script_strings

BANGLA = SCRIPT_DIGITS["bangla"]


@pytest.fixture(scope="module")
def bangla_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("bn")
    build_cmater_tree(root, "bangla", per_class=6, test_per_class=3)
    return root


def test_script_numerals():
    assert BANGLA == "০১২৩৪৫৬৭৮৯" and SCRIPT_DIGITS["devanagari"][7] == "७"
    assert all(len(v) == 10 and len(set(v)) == 10 for v in SCRIPT_DIGITS.values())
    assert script_of(BANGLA) == "bangla" and script_of("0123456789") == "latin" and script_of("ab") == "custom"
    assert Alphabet(BANGLA).encode("১৫০০") == [2, 6, 1, 1]


def test_glyph_bank_holds_the_scripts_numerals(bangla_root):
    bank = script_glyph_bank("bangla", bangla_root, "train")
    assert bank.classes == "".join(sorted(BANGLA)) and bank.source_names() == ["bangla"]
    assert bank.count("৯") == 5  # 6 drawn, one exact copy dropped by the reader


def test_synthetic_bangla_strings(bangla_root):
    ds = script_strings("bangla", "train", bangla_root, n=30, seed=2)
    labels = [ds[i].label for i in range(30)]
    assert all(lab and set(lab) <= set(BANGLA) for lab in labels)
    assert labels == [ds.label(i) for i in range(30)]  # label(i) agrees with rendering item i
    img = ds[0].image
    assert img.dtype == np.uint8 and img.ndim == 2
    registered = open_dataset("bangla-strings", "test", bangla_root)
    assert registered.name == "bangla-strings-test" and len(registered) == 2000
    assert set(registered.label(0)) <= set(BANGLA)


def test_tiny_bangla_string_model_trains(bangla_root, tmp_path):
    fit = script_strings("bangla", "train", bangla_root, n=64, seed=3)
    val = script_strings("bangla", "test", bangla_root, n=16, seed=4)
    cfg = tiny_train_config(script="bangla", sources=(DataSource("bangla-strings"),), validation="bangla-strings",
                            max_steps=8, eval_every=4, batch_size=8)
    result = train(cfg, tmp_path / "run", sources=[fit], validation=val, progress=False, resume=False, device="cpu",
                   log=lambda m: None)
    assert result["step"] == 8
    rows = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert all(np.isfinite(r["train_loss"]) and r["infinite_losses"] == 0 for r in rows)
    model, pre, meta, _ = load_model(tmp_path / "run" / "last.safetensors")
    assert meta["alphabet"] == BANGLA and model.num_classes == 11
    readings = Recognizer(model, pre).recognize_greys([val[i].image for i in range(4)])
    assert all(set(r.text) <= set(BANGLA) for r in readings)


@pytest.mark.filterwarnings("ignore:real cheque paper unavailable")
def test_synth_source_composes_the_scripts_numerals(bangla_root, tmp_path):
    """A recipe with script = "bangla" and the "synth" source builds its strings from Bangla digits."""
    from strings.data.sources import build_sources

    cfg = tiny_train_config(script="bangla", sources=(DataSource("synth"),), validation="bangla-strings", synth_pool=10)
    sources, _ = build_sources(cfg, bangla_root, fit=None, val=None)  # type: ignore[arg-type]
    assert set(sources[0].label(0)) <= set(BANGLA) and len(sources[0]) == 10


def test_bangla_string_recipe_parses():
    from pathlib import Path

    from strings.config import load_train_file

    cfg = load_train_file(Path(__file__).resolve().parents[1] / "configs" / "strings_bangla.toml")
    assert cfg.task == "ctc" and cfg.script == "bangla" and cfg.validation == "bangla-strings"
