"""The training loop on tiny in-memory synthetic strings: a smoke run, resume after kill -9,
refusals, and the pieces the loop is built from."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, SynthDigits, render_digits, synth_train_val, tiny_train_config
from strings.models.checkpoint import CheckpointError, load_model
from strings.config import ModelConfig, TrainConfig, load_train_file
from strings.train.ctc import TrainStrings
from strings.train.loop import _lr_at, train
from strings.train.evaluate import evaluate
from strings.models import MODEL_CONFIGS, create_model
from strings.read.recognizer import Recognizer
from strings.read.loading import load


def read_log(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------- smoke run


def test_training_smoke_run(trained_run):
    out, result = trained_run
    for name in ("best.safetensors", "last.safetensors", "log.jsonl", "curves.png"):
        assert (out / name).is_file() and (out / name).stat().st_size > 0, name
    assert (out / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    rows = read_log(out)
    assert [r["step"] for r in rows] == [50, 100, 150, 200, 250, 300]
    losses = [r["train_loss"] for r in rows]
    assert all(np.isfinite(losses))
    assert losses[-1] < 0.5 * losses[0], f"training loss did not fall: {losses}"
    assert min(losses[-2:]) < losses[1]
    assert result["step"] == 300 and result["stop_reason"] == "max_steps"
    assert result["best_accuracy"] == max(r["val_accuracy"] for r in rows)
    assert result["best_accuracy"] >= 0.5, "the tiny model should learn clean synthetic strings"
    assert all(r["infinite_losses"] == 0 for r in rows)


def test_training_checkpoints_describe_the_run(trained_run):
    out, result = trained_run
    best_model, pre, meta, _ = load_model(out / "best.safetensors")
    assert pre == MODEL_CONFIGS["test_tiny"][1]
    assert meta["train_config"]["model"] == "test_tiny"
    assert meta["name"] == out.name
    assert meta["validation"]["accuracy"] == pytest.approx(result["best_accuracy"])
    assert "synth-test (512 samples" in meta["training_data"][0]
    assert meta["validation_data"].startswith("synth-val (48 samples")
    aug = meta["augmentation"]  # the albumentations pipeline, rebuildable from the file alone
    if meta["train_config"]["augment"]:
        import albumentations as A

        names = [t["__class_fullname__"] for t in A.from_dict(aug).to_dict()["transform"]["transforms"]]
        assert "Affine" in names and "ImageCompression" in names
    else:
        assert aug is None
    _, _, last_meta, tensors = load_model(out / "last.safetensors")
    assert last_meta["train_state"]["step"] == 300
    assert "rng.torch" in tensors and any(k.startswith("optim.") for k in tensors)
    assert "param_groups" in last_meta["optimizer"]
    # best.safetensors reproduces the validation accuracy it claims
    _, val = synth_train_val()
    report = evaluate(Recognizer(best_model, pre), val)
    assert report.accuracy == pytest.approx(meta["validation"]["accuracy"])


def test_evaluate_report(trained_checkpoint):
    rec = load(trained_checkpoint)
    ds = SynthDigits(20, seed=5, name="eval-set")
    report = evaluate(rec, ds, batch_size=7)
    assert report.dataset == "eval-set" and report.n == 20
    assert 0.0 <= report.accuracy <= 1.0 and 0.0 <= report.cer
    assert report.images_per_second > 0 and report.seconds > 0
    truth = [ds[i].label for i in range(20)]
    preds = [r.text for r in rec.recognize_greys([ds[i].image for i in range(20)], [""] * 20)]
    assert report.accuracy == pytest.approx(sum(t == p for t, p in zip(truth, preds)) / 20)
    assert len(report.misses) == sum(t != p for t, p in zip(truth, preds))
    assert set(report.to_dict()) == {"dataset", "n", "accuracy", "cer", "images_per_second", "seconds"}


# --------------------------------------------------------------------------- resume


CRASH_SCRIPT = """
import sys
sys.path[:0] = [{repo!r}, {tests!r}]
import torch
torch.set_num_threads(1)
from conftest import synth_train_val, tiny_train_config
from strings.train.loop import train
src, val = synth_train_val()
train(tiny_train_config(max_steps=100000, eval_every=10), {out!r}, sources=[src], validation=val,
      progress=False, device="cpu")
"""


def test_resume_after_kill_9(tmp_path):
    out = tmp_path / "run"
    script = tmp_path / "crash.py"
    script.write_text(textwrap.dedent(CRASH_SCRIPT.format(repo=str(REPO), tests=str(REPO / "tests"), out=str(out))))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, str(script)], stdout=subprocess.PIPE, stderr=subprocess.STDOUT, env=env)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                pytest.fail(f"training subprocess exited early: {proc.stdout.read().decode()[-2000:]}")
            if (out / "last.safetensors").is_file() and (out / "log.jsonl").is_file() and len(read_log(out)) >= 4:
                break
            time.sleep(0.05)
        else:
            pytest.fail("training subprocess wrote no checkpoint in 90 s")
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait(timeout=30)
        proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL

    # The checkpoint written before the crash is intact.
    _, _, meta, tensors = load_model(out / "last.safetensors")
    saved_step = meta["train_state"]["step"]
    assert saved_step >= 30 and saved_step % 10 == 0  # the log row of step 40 may precede its checkpoint
    assert "rng.torch" in tensors
    first_loss = read_log(out)[0]["train_loss"]

    messages: list[str] = []
    src, val = synth_train_val()
    target = saved_step + 30
    result = train(tiny_train_config(max_steps=target, eval_every=10), out, sources=[src], validation=val,
                   progress=False, resume=True, device="cpu", log=messages.append)
    assert any(f"resumed from {out / 'last.safetensors'} at step {saved_step}" in m for m in messages), messages
    assert result["step"] == target and result["stop_reason"] == "max_steps"
    steps = [r["step"] for r in read_log(out)]
    assert steps == list(range(10, target + 1, 10)), steps  # strictly increasing, no duplicates, no gaps
    rows = read_log(out)
    resumed = [r for r in rows if r["step"] > saved_step]
    assert resumed[0]["epoch"] == saved_step // 10 + 1
    # The weights were restored, not re-initialised: the loss carries on from where it was.
    assert resumed[0]["train_loss"] < first_loss
    _, _, meta2, _ = load_model(out / "last.safetensors")
    assert meta2["train_state"]["step"] == target


def test_resume_continues_a_finished_run(tmp_path):
    out = tmp_path / "run"
    src, val = synth_train_val()
    train(tiny_train_config(max_steps=20, eval_every=10), out, sources=[src], validation=val, progress=False,
          device="cpu", log=lambda m: None)
    result = train(tiny_train_config(max_steps=40, eval_every=10), out, sources=[src], validation=val,
                   progress=False, device="cpu", log=lambda m: None)
    assert result["step"] == 40
    assert [r["step"] for r in read_log(out)] == [10, 20, 30, 40]
    # Already at max_steps: nothing to do, nothing logged twice.
    again = train(tiny_train_config(max_steps=40, eval_every=10), out, sources=[src], validation=val,
                  progress=False, device="cpu", log=lambda m: None)
    assert again["step"] == 40
    assert [r["step"] for r in read_log(out)] == [10, 20, 30, 40]


def test_resume_with_a_different_model_is_refused(tmp_path):
    out = tmp_path / "run"
    src, val = synth_train_val()
    train(tiny_train_config(max_steps=10, eval_every=10), out, sources=[src], validation=val, progress=False,
          device="cpu", log=lambda m: None)
    before = (out / "last.safetensors").read_bytes()
    with pytest.raises(CheckpointError, match="test_tiny"):
        train(tiny_train_config(model="densenet_ctc_fast", max_steps=20, eval_every=10), out, sources=[src],
              validation=val, progress=False, device="cpu", log=lambda m: None)
    assert (out / "last.safetensors").read_bytes() == before  # nothing was overwritten


def test_resume_with_a_changed_config_under_the_same_name_is_refused(tmp_path, monkeypatch):
    """A config name whose architecture changed since the checkpoint was written must be refused
    with a CheckpointError, not crash inside load_state_dict."""
    out = tmp_path / "run"
    src, val = synth_train_val()
    train(tiny_train_config(max_steps=10, eval_every=10), out, sources=[src], validation=val, progress=False,
          device="cpu", log=lambda m: None)
    cfg, pre = MODEL_CONFIGS["test_tiny"]
    monkeypatch.setitem(MODEL_CONFIGS, "test_tiny", (ModelConfig(**{**cfg.__dict__, "hidden": 24}), pre))
    with pytest.raises(CheckpointError):
        train(tiny_train_config(max_steps=20, eval_every=10), out, sources=[src], validation=val, progress=False,
              device="cpu", log=lambda m: None)


def test_resume_refuses_a_corrupt_last_checkpoint(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "last.safetensors").write_bytes(b"\x00" * 100)
    src, val = synth_train_val()
    with pytest.raises(CheckpointError, match="cannot resume"):
        train(tiny_train_config(max_steps=10, eval_every=10), out, sources=[src], validation=val, progress=False,
              device="cpu", log=lambda m: None)


def test_fresh_run_into_a_used_folder_starts_a_clean_log(tmp_path):
    """resume=False restarts at step 0; log.jsonl must then describe this run only."""
    out = tmp_path / "run"
    src, val = synth_train_val()
    for _ in range(2):
        train(tiny_train_config(max_steps=20, eval_every=10), out, sources=[src], validation=val, progress=False,
              resume=False, device="cpu", log=lambda m: None)
    assert [r["step"] for r in read_log(out)] == [10, 20]


# --------------------------------------------------------------------------- building blocks


def test_train_strings_widens_to_the_ctc_minimum():
    model = create_model("test_tiny")
    pre = MODEL_CONFIGS["test_tiny"][1]
    tall = render_digits("1111", height=64)[:, :30]  # squeezed: too narrow for 4 equal digits
    narrow = SynthDigits(1)
    narrow.samples = [narrow.samples[0].__class__(tall, "1111", "n")]
    data = TrainStrings([narrow, SynthDigits(3, seed=2)], model, pre, augment=False)
    assert len(data) == 4
    x, target, known = data[0]
    assert x.shape == (16, model.min_width("1111"))
    assert np.all(x[:, -4:] == 0.0)  # widened with background
    assert target == [2, 2, 2, 2]
    assert known  # a digits-only model: every target is complete
    for i in range(1, 4):
        x, target, _ = data[i]
        assert x.shape[0] == 16 and x.shape[1] >= model.min_width(data.sources[1][i - 1].label)
        assert 0.0 <= x.min() and x.max() <= 1.0


def test_train_strings_augmented_items_are_valid():
    model = create_model("test_tiny")
    data = TrainStrings([SynthDigits(8, seed=4)], model, MODEL_CONFIGS["test_tiny"][1], augment=True)
    for i in range(8):
        x, target, _ = data[i]
        assert x.shape[0] == 16 and np.isfinite(x).all() and len(target) >= 1


def test_training_chooses_on_every_validation_set(tmp_path):
    """With further validation sets the model is chosen on the mean of all accuracies, and
    each set's numbers are logged and named in the checkpoint."""
    sources, val = synth_train_val()
    tall = SynthDigits(32, seed=7, max_len=6, name="synth-long")  # a harder second set
    out = tmp_path / "run"
    result = train(tiny_train_config(max_steps=150), out, sources=[sources], validation=val, progress=False,
                   resume=False, device="cpu", log=lambda msg: None, extra_validation=[tall])
    rows = read_log(out)
    for r in rows:
        assert 0.0 <= r["val_synth-long_accuracy"] <= 1.0
        assert r["val_selection"] == pytest.approx((r["val_accuracy"] + r["val_synth-long_accuracy"]) / 2)
    assert result["best_accuracy"] == pytest.approx(max(r["val_selection"] for r in rows))
    _, _, meta, _ = load_model(out / "best.safetensors")
    assert "synth-long (32 samples)" in meta["validation_data"]
    assert meta["validation"]["selection"] == pytest.approx(result["best_accuracy"])


def test_warm_start_keeps_the_parents_validation_slice(trained_run, tmp_path):
    """A warm start with its own seed would validate on crops its parent trained on; with
    split_seed left at -1 it takes the parent's, and an explicit split_seed is kept."""
    parent = trained_run[0] / "best.safetensors"
    sources, val = synth_train_val()
    for given, expected in ((-1, 0), (5, 5)):
        out = tmp_path / f"child{given}"
        cfg = tiny_train_config(max_steps=50, init=str(parent), seed=3, split_seed=given)
        train(cfg, out, sources=[sources], validation=val, progress=False, resume=False, device="cpu", log=lambda m: None)
        _, _, meta, _ = load_model(out / "best.safetensors")
        assert meta["train_config"]["seed"] == 3 and meta["train_config"]["split_seed"] == expected


def test_small_crops_are_distorted_at_cheque_scale():
    from strings.data.augment import STRING_AUG_MIN_HEIGHT, AtLeastHeight, describe, string_augmenter
    import albumentations as A

    step = AtLeastHeight()
    photo = np.full((20, 90, 3), 180, np.uint8)
    assert step(image=photo)["image"].shape == (STRING_AUG_MIN_HEIGHT, round(90 * STRING_AUG_MIN_HEIGHT / 20), 3)
    cheque = np.full((60, 200), 180, np.uint8)
    assert step(image=cheque)["image"] is cheque or step(image=cheque)["image"].shape == (60, 200)
    rebuilt = A.from_dict(describe(string_augmenter(seed=0)))  # a checkpoint's record rebuilds it
    assert isinstance(rebuilt.transforms[0], AtLeastHeight)
    with pytest.raises(ValueError, match="min_height"):
        AtLeastHeight(0)


def test_lr_schedule():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=110)
    warm = [_lr_at(s, cfg) for s in range(10)]
    assert warm == sorted(warm) and warm[-1] == pytest.approx(1e-3)
    decay = [_lr_at(s, cfg) for s in range(10, 111)]
    assert decay == sorted(decay, reverse=True)
    assert decay[-1] == pytest.approx(1e-5)


def test_lr_schedule_anneals_by_the_time_budget():
    cfg = TrainConfig(lr=1e-3, warmup_steps=10, max_steps=10_000, max_minutes=20.0)
    assert _lr_at(50, cfg, minutes=20.0) == pytest.approx(1e-5)  # budget spent: fully annealed
    assert _lr_at(50, cfg, minutes=10.0) == pytest.approx(1e-3 * (0.01 + 0.99 * 0.5))  # halfway in time
    assert _lr_at(50, cfg, minutes=0.0) == pytest.approx(_lr_at(50, TrainConfig(lr=1e-3, warmup_steps=10, max_steps=10_000)))


def test_train_config_files(tmp_path):
    cfg = load_train_file(REPO / "configs" / "car_real_only.toml")
    assert cfg.model in MODEL_CONFIGS and cfg.sources[0].dataset == "car-a-partial"
    bad = tmp_path / "bad.toml"
    bad.write_text('model = "test_tiny"\nmax_stepz = 3\n')
    with pytest.raises(ValueError, match="max_stepz"):
        load_train_file(bad)
    bad.write_text("model = [\n")
    with pytest.raises(ValueError, match="TOML"):
        load_train_file(bad)
    with pytest.raises(FileNotFoundError, match="missing.toml"):
        load_train_file(tmp_path / "missing.toml")
    src = tmp_path / "src.toml"
    src.write_text('sources = [{ dataset = "usps", weight = 2.0 }, { dataset = "mnist", split = "train" }]\n')
    cfg = load_train_file(src)
    assert [(s.dataset, s.weight, s.split) for s in cfg.sources] == [("usps", 2.0, "train"), ("mnist", 1.0, "train")]
    src.write_text('sources = [{ dataset = "mnist", split = "test" }]\n')
    with pytest.raises(ValueError, match="only train splits"):
        load_train_file(src)
    src.write_text('amp = "false"\n')
    with pytest.raises(ValueError, match="expected bool"):
        load_train_file(src)


def test_ctc_loss_counts_the_frames_decoding_reads():
    """A narrow string padded beside a wide one scores as it does alone: the loss, like the
    decoder, stops at each item's own frames (``output_lengths(widths)``), not the padded T."""
    import torch

    from strings.train.ctc import CTCTask, collate_train

    torch.manual_seed(0)
    model = create_model("test_tiny").eval()
    pre = MODEL_CONFIGS["test_tiny"][1]
    data = TrainStrings([SynthDigits(2, seed=9)], model, pre, augment=False)
    narrow, wide = data[0], data[1]
    wide = (np.concatenate([wide[0]] * 6, axis=1), wide[1] * 6, wide[2])  # six times as wide: lots of padding for narrow
    task, dev, off = CTCTask(), torch.device("cpu"), torch.autocast("cpu", enabled=False)
    collate = task.collate(model)
    with torch.no_grad():
        alone = [task.loss(model, collate([x]), dev, off, False, print)[0] for x in (narrow, wide)]
        together, _ = task.loss(model, collate([narrow, wide]), dev, off, False, print)
        images, widths, _, _, _ = collate_train([narrow, wide], model.stride)
    assert int(model.output_lengths(widths)[0]) < model(images, widths).shape[1]  # the narrow one is padded
    assert float(together) == pytest.approx(float(sum(alone) / 2), rel=1e-5)


def test_an_amount_model_trains_on_written_forms_and_lets_unlabelled_marks_go():
    """A model with the amount marks learns the written form where a sample has one; where a
    real crop is labelled with digits only, a mark costs nothing (it counts as a blank)."""
    import torch

    from strings.alphabet import AMOUNT_SYMBOLS
    from strings.data.base import Sample
    from strings.decode.ctc import merge_marks
    from strings.train.ctc import collate_train

    model = create_model("test_tiny", alphabet=AMOUNT_SYMBOLS).eval()
    pre = MODEL_CONFIGS["test_tiny"][1]
    img = render_digits("1500")
    written = SynthDigits(1)
    written.samples = [Sample(img, "150000", "w", "1.500,00")]
    digits_only = SynthDigits(1)
    digits_only.samples = [Sample(img, "1500", "d")]
    data = TrainStrings([written, digits_only], model, pre, augment=False)
    (_, t_written, k_written), (_, t_digits, k_digits) = data[0], data[1]
    alphabet = __import__("strings.alphabet", fromlist=["Alphabet"]).Alphabet(AMOUNT_SYMBOLS)
    assert alphabet.decode(t_written) == "1.500,00" and k_written
    assert alphabet.decode(t_digits) == "1500" and not k_digits
    *_, known = collate_train([data[0], data[1]], model.stride)
    assert known.tolist() == [True, False]
    # merging: the blank column of an unknown item absorbs the marks' probability, exactly
    lp = torch.randn(2, 5, model.num_classes).log_softmax(-1)
    marks = [AMOUNT_SYMBOLS.index(c) + 1 for c in ".,-"]
    out = merge_marks(lp, torch.tensor([False, True]), marks)
    torch.testing.assert_close(out[0], lp[0])
    torch.testing.assert_close(out[1, :, 0].exp(), lp[1, :, [0, *marks]].exp().sum(-1))
    torch.testing.assert_close(out[1, :, 1:], lp[1, :, 1:])
    # and through the loss: a frame that writes a "." costs the digits-only item nothing extra
    from strings.train.ctc import ctc_loss

    t = torch.tensor([2], dtype=torch.int32)  # "1"
    sure_dot = torch.full((1, 3, model.num_classes), -30.0)
    sure_dot[0, 0, 2] = 0.0  # "1"
    sure_dot[0, 1:, marks[0]] = 0.0  # then "." twice
    lp_dot = sure_dot.log_softmax(-1)
    plain, _ = ctc_loss(lp_dot, t, torch.tensor([1], dtype=torch.int32))
    merged, _ = ctc_loss(merge_marks(lp_dot, torch.tensor([True]), marks), t, torch.tensor([1], dtype=torch.int32))
    assert float(plain) > 10.0 and float(merged) < 1e-3
