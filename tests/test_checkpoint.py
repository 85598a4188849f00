"""Model files: safetensors round trip, refusal of foreign or inconsistent files, atomic
writes, and no pickle anywhere in the package."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from conftest import make_tiny_model
from strings.models.checkpoint import FORMAT, CheckpointError, atomic_write, load_model, read_metadata, save_model, sha256_file
from strings.models import MODEL_CONFIGS

PRE = MODEL_CONFIGS["test_tiny"][1]
PACKAGE = Path(__file__).resolve().parents[1] / "strings"


def _read_raw(path: Path) -> tuple[dict[str, torch.Tensor], dict]:
    with safe_open(str(path), framework="pt") as fh:
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
        meta = json.loads(fh.metadata()["strings"])
    return tensors, meta


def _rewrite(src: Path, dst: Path, edit) -> Path:
    tensors, meta = _read_raw(src)
    edit(meta)
    save_file(tensors, str(dst), metadata={"strings": json.dumps(meta)})
    return dst


@pytest.fixture
def saved(tmp_path):
    model = make_tiny_model(seed=2)
    path = tmp_path / "m.safetensors"
    save_model(path, model, PRE, {"name": "unit", "validation": {"accuracy": 0.5}},
               tensors={"extra.step": torch.tensor(7)})
    return model, path


def test_round_trip_outputs_and_metadata(saved):
    model, path = saved
    loaded, pre, meta, others = load_model(path)
    assert not loaded.training
    assert pre == PRE
    assert loaded.cfg == model.cfg and loaded.height == model.height
    assert meta["format"] == FORMAT and meta["name"] == "unit" and meta["validation"] == {"accuracy": 0.5}
    assert meta["alphabet"] == "0123456789" and meta["height"] == 16
    assert set(others) == {"extra.step"} and int(others["extra.step"]) == 7
    for k, v in model.state_dict().items():
        assert torch.equal(loaded.state_dict()[k], v), k
    x = torch.rand(3, 1, 16, 45)
    with torch.no_grad():
        assert torch.equal(loaded(x), model.eval()(x))
    assert read_metadata(path) == meta


def test_round_trip_keeps_tuples_in_config(saved):
    _, path = saved
    loaded, _, _, _ = load_model(path)
    assert isinstance(loaded.cfg.pools, tuple) and isinstance(loaded.cfg.pools[0], tuple)
    assert isinstance(loaded.cfg.block_layers, tuple)


def test_missing_file(tmp_path):
    with pytest.raises(FileNotFoundError, match="nope.safetensors"):
        load_model(tmp_path / "nope.safetensors")


@pytest.mark.parametrize(
    "content",
    [b"", b"\x89PNG\r\n\x1a\n" + b"\x00" * 64, b"PK\x03\x04 a zip, or a torch pickle" * 4, b"\xff" * 16],
    ids=["empty", "png", "zip", "garbage"],
)
def test_refuses_non_safetensors(tmp_path, content):
    path = tmp_path / "bad.safetensors"
    path.write_bytes(content)
    with pytest.raises(CheckpointError, match="not a safetensors file") as exc:
        load_model(path)
    assert str(path) in str(exc.value)


def test_refuses_torch_save_file(tmp_path):
    path = tmp_path / "model.pt"
    torch.save(make_tiny_model().state_dict(), path)
    with pytest.raises(CheckpointError, match="not a safetensors file"):
        load_model(path)


def test_refuses_safetensors_without_metadata(tmp_path):
    path = tmp_path / "plain.safetensors"
    save_file({f"model.{k}": v.contiguous() for k, v in make_tiny_model().state_dict().items()}, str(path))
    with pytest.raises(CheckpointError, match="without strings metadata") as exc:
        load_model(path)
    assert str(path) in str(exc.value)
    save_file({"w": torch.zeros(2)}, str(path), metadata={"other": "x"})
    with pytest.raises(CheckpointError, match="without strings metadata"):
        read_metadata(path)


def test_refuses_metadata_that_is_not_json(tmp_path):
    path = tmp_path / "m.safetensors"
    save_file({"w": torch.zeros(2)}, str(path), metadata={"strings": "{not json"})
    with pytest.raises(CheckpointError, match="JSON"):
        load_model(path)


@pytest.mark.parametrize("fmt", ["strings.densenet_ctc/2", "other/1", None])
def test_refuses_wrong_format(saved, tmp_path, fmt):
    _, src = saved
    dst = _rewrite(src, tmp_path / "f.safetensors", lambda m: m.__setitem__("format", fmt))
    with pytest.raises(CheckpointError, match="format") as exc:
        load_model(dst)
    assert repr(fmt) in str(exc.value) and FORMAT in str(exc.value) and str(dst) in str(exc.value)


@pytest.mark.parametrize("key", ["model", "height", "preprocess", "alphabet"])
def test_refuses_incomplete_metadata(saved, tmp_path, key):
    _, src = saved
    dst = _rewrite(src, tmp_path / "i.safetensors", lambda m: m.pop(key))
    with pytest.raises(CheckpointError, match=repr(key)):
        load_model(dst)


@pytest.mark.parametrize(
    "edit, fragment",
    [
        (lambda m: m["model"].__setitem__("growth_rate", 5), "shape"),
        (lambda m: m["model"].__setitem__("hidden", 32), "shape"),
        (lambda m: m["model"].__setitem__("block_layers", [1, 2, 1]), "missing"),
        (lambda m: m["model"].__setitem__("context", 5), "shape"),
    ],
    ids=["growth_rate", "hidden", "block_layers", "context"],
)
def test_refuses_weights_that_disagree_with_metadata(saved, tmp_path, edit, fragment):
    _, src = saved
    dst = _rewrite(src, tmp_path / "t.safetensors", edit)
    with pytest.raises(CheckpointError, match="weight") as exc:
        load_model(dst)
    assert fragment in str(exc.value) and str(dst) in str(exc.value)


def test_refuses_unknown_config_keys(saved, tmp_path):
    _, src = saved
    dst = _rewrite(src, tmp_path / "k.safetensors", lambda m: m["model"].__setitem__("wings", 2))
    with pytest.raises(CheckpointError, match="wings"):
        load_model(dst)


def test_refuses_alphabet_mismatch(saved, tmp_path):
    _, src = saved
    dst = _rewrite(src, tmp_path / "a.safetensors", lambda m: m.__setitem__("alphabet", "0123456789X"))
    with pytest.raises(CheckpointError, match="alphabet") as exc:
        load_model(dst)
    assert "0123456789X" in str(exc.value)

    # Both records agree on a longer alphabet, but the output layer has 11 classes, not 12.
    def both(m):
        m["alphabet"] = m["model"]["alphabet"] = "0123456789X"

    dst2 = _rewrite(src, tmp_path / "b.safetensors", both)
    with pytest.raises(CheckpointError, match="head"):
        load_model(dst2)


def test_refuses_height_mismatch(saved, tmp_path):
    _, src = saved
    dst = _rewrite(src, tmp_path / "h.safetensors", lambda m: m.__setitem__("height", 32))
    with pytest.raises(CheckpointError, match="height"):
        load_model(dst)


# --------------------------------------------------------------------------- atomic writes


def test_atomic_write_keeps_old_file_on_failure(tmp_path):
    target = tmp_path / "sub" / "out.bin"
    atomic_write(target, lambda tmp: Path(tmp).write_bytes(b"old"))
    assert target.read_bytes() == b"old"

    def crash(tmp):
        Path(tmp).write_bytes(b"half")
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        atomic_write(target, crash)
    assert target.read_bytes() == b"old"
    assert sorted(p.name for p in target.parent.iterdir()) == ["out.bin"]  # no temp files left


def test_save_model_overwrites_atomically(saved, tmp_path):
    model, path = saved
    before = sha256_file(path)
    save_model(path, make_tiny_model(seed=9), PRE)
    assert sha256_file(path) != before
    assert [p.name for p in path.parent.iterdir() if p.name.startswith(".")] == []
    load_model(path)


# --------------------------------------------------------------------------- no pickle


def test_package_never_unpickles():
    offenders = []
    for py in sorted(PACKAGE.rglob("*.py")):
        for no, line in enumerate(py.read_text(encoding="utf-8").splitlines(), 1):
            code = line.split("#", 1)[0]
            if re.search(r"\bimport\s+(c?pickle|dill|joblib)\b|\bfrom\s+(c?pickle|dill)\b|pickle\.load", code):
                offenders.append(f"{py}:{no}: {line.strip()}")
            if "torch.load(" in code and "weights_only=True" not in code:
                offenders.append(f"{py}:{no}: {line.strip()}")
            if "allow_pickle=True" in code:
                offenders.append(f"{py}:{no}: {line.strip()}")
    assert not offenders, "unsafe deserialisation:\n" + "\n".join(offenders)
    assert any(PACKAGE.rglob("checkpoint.py"))  # the scan did look at the package


def test_full_disk_is_reported_and_keeps_the_previous_file(tmp_path, monkeypatch):
    import errno

    from strings.models import checkpoint as ck

    target = tmp_path / "model.safetensors"
    target.write_bytes(b"previous")

    def no_space(tmp):
        raise OSError(errno.ENOSPC, "No space left on device")

    with pytest.raises(OSError, match="disk full while writing .*the previous file is intact"):
        ck.atomic_write(target, no_space)
    assert target.read_bytes() == b"previous"
    assert [p.name for p in tmp_path.iterdir()] == ["model.safetensors"]  # no temp file left behind


@pytest.fixture
def no_real_build_before_checks(monkeypatch):
    """Make building a network for real (off the meta device) an error until the file is checked:
    a loader that builds first and checks after trips it."""
    import strings.models.checkpoint as ck

    real = ck.create_model
    built: list[str] = []

    def guarded(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            raise AssertionError("load_model built the network for real before checking the file")
        built.append("meta")
        return real(*args, **kwargs)

    monkeypatch.setattr(ck, "create_model", guarded)
    return built


def test_a_huge_network_in_the_metadata_is_refused_before_it_is_built(saved, tmp_path, no_real_build_before_checks):
    # within every per-field bound of ModelConfig, yet billions of parameters
    huge = {"stem_channels": 1024, "growth_rate": 256, "block_layers": [64, 64, 64], "hidden": 4096}
    path = _rewrite(saved[1], tmp_path / "huge.safetensors", lambda m: m["model"].update(huge))
    with pytest.raises(CheckpointError, match="parameters, over the limit"):
        load_model(path)
    assert no_real_build_before_checks == ["meta"]


def test_weight_shapes_are_checked_before_the_network_is_built(saved, tmp_path, no_real_build_before_checks):
    path = _rewrite(saved[1], tmp_path / "wider.safetensors", lambda m: m["model"].update({"hidden": 24}))
    with pytest.raises(CheckpointError, match="has shape"):
        load_model(path)


def test_the_parameter_limit_applies_to_an_honest_file_too(saved, monkeypatch):
    import strings.models.checkpoint as ck

    monkeypatch.setattr(ck, "MAX_PARAMETERS", 100)
    with pytest.raises(CheckpointError, match="over the limit of 100"):
        load_model(saved[1])


def test_a_digit_model_file_is_checked_before_its_network_is_built(tmp_path, monkeypatch):
    import strings.digits.classifier as clf
    from strings.models import DIGIT_CONFIGS, create_digit_model

    model = create_digit_model("test_tiny_digits")
    path = tmp_path / "d.safetensors"
    clf.save_digit_model(path, model, DIGIT_CONFIGS["test_tiny_digits"][1], {})
    tensors, meta = _read_raw(path)
    meta["model"]["growth_rate"] = 8  # the weights are of growth rate 4
    save_file(tensors, str(path), metadata={"strings": json.dumps(meta)})
    real = clf.create_digit_model

    def guarded(*args, **kwargs):
        if torch.get_default_device().type != "meta":
            raise AssertionError("load_digit_model built the network for real before checking the file")
        return real(*args, **kwargs)

    monkeypatch.setattr(clf, "create_digit_model", guarded)
    with pytest.raises(CheckpointError, match="shape|do not match"):
        clf.load_digit_model(path)
