"""Single-digit mode: preprocessing, the classifier network, the classify task of the one
training loop, model files, the SVM head, the reject option, bundling and the CLI."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_train_config, write_png
from digit_fakes import SynthSingleDigits, build_cmater_tree, draw_digit
from strings.alphabet import SCRIPT_DIGITS
from strings.models.checkpoint import CheckpointError, load_model
from strings.cli import main
from strings.config import DataSource, DigitNetConfig, DigitPreprocessConfig, TrainConfig
from strings.data import open_dataset
from strings.digits.svm import SVMHead, fit_svm, load_svm, save_svm
from strings.digits.task import reject_summary
from strings.digits import (
    DigitClassifier,
    DigitPrediction,
    bundle_digit_model,
    ink_is_dark,
    load_digit_model,
    load_digits,
    normalize_digit,
    weights_digest,
)
from strings.train.evaluate import evaluate
from strings.train.loop import train
from strings.models import DIGIT_CONFIGS, create_digit_model, list_configs

PRE = DigitPreprocessConfig()


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip().startswith("{")]


# --------------------------------------------------------------------------- preprocessing


def test_polarity_is_normalised():
    img = draw_digit(7, 32)  # dark on light
    assert ink_is_dark(img) and not ink_is_dark(255 - img)
    assert ink_is_dark(np.full((10, 10), 128, np.uint8))  # blank: the project's convention
    a, b = normalize_digit(img, PRE), normalize_digit(255 - img, PRE)
    np.testing.assert_allclose(a, b, atol=1e-6)
    assert a.shape == (28, 28) and a.dtype == np.float32 and a.max() == pytest.approx(1.0) and a.min() == 0.0


def test_normalised_ink_fits_the_box_and_is_centred():
    img = np.full((200, 120), 230, np.uint8)
    img[20:180, 50:70] = 10  # a tall bar, far from centre horizontally
    img[20:40, 30:70] = 10
    canvas = normalize_digit(img, PRE)
    rows, cols = np.flatnonzero(canvas.max(1) > 0.2), np.flatnonzero(canvas.max(0) > 0.2)
    assert rows[-1] - rows[0] + 1 == PRE.box  # the longer side is scaled to the box
    assert cols[-1] - cols[0] + 1 < PRE.box
    ys, xs = np.nonzero(canvas)
    cy, cx = np.average(ys + 0.5, weights=canvas[ys, xs]), np.average(xs + 0.5, weights=canvas[ys, xs])
    assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1  # centred by mass


@pytest.mark.parametrize("shape", [(1, 1), (3, 50), (60, 2), (500, 400)])
def test_normalise_any_size_and_blank(shape):
    blank = np.full(shape, 200, np.uint8)
    assert not normalize_digit(blank, PRE).any()
    img = blank.copy()
    img[shape[0] // 2, shape[1] // 2] = 0  # one dark pixel: a thin digit on a big page
    out = normalize_digit(img, PRE)
    assert out.shape == (28, 28) and np.isfinite(out).all()


def test_normalise_accepts_colour_and_float_arrays():
    img = draw_digit(3, 32)
    rgb = np.repeat(img[..., None], 3, axis=-1)
    np.testing.assert_allclose(normalize_digit(rgb, PRE), normalize_digit(img, PRE), atol=1e-6)
    np.testing.assert_allclose(normalize_digit(img.astype(np.float32) / 255, PRE), normalize_digit(img, PRE), atol=1e-6)


def test_preprocess_config_bounds():
    with pytest.raises(ValueError):
        DigitPreprocessConfig(size=28, box=30)
    with pytest.raises(ValueError):
        DigitPreprocessConfig(ink_threshold=1.5)


# --------------------------------------------------------------------------- network and configs


@pytest.mark.parametrize("name", sorted(DIGIT_CONFIGS))
def test_digit_net_shapes(name):
    cfg, pre = DIGIT_CONFIGS[name]
    model = create_digit_model(name).eval()
    x = torch.rand(3, 1, pre.size, pre.size)
    assert model(x).shape == (3, 10)
    assert model.features(x).shape == (3, model.feature_dim)
    with pytest.raises(ValueError, match="expected input"):
        model(torch.rand(1, 1, pre.size + 1, pre.size))
    assert name in list_configs()


def test_digit_model_factory_and_symbols():
    m = create_digit_model("test_tiny_digits", symbols=SCRIPT_DIGITS["bangla"])
    assert m.cfg.symbols == "০১২৩৪৫৬৭৮৯"
    assert m.cfg == DIGIT_CONFIGS["test_tiny_digits"][0]  # symbols are display only
    with pytest.raises(KeyError, match="unknown digit model"):
        create_digit_model("densenet_ctc_small")
    with pytest.raises(ValueError):
        DigitNetConfig(symbols="00")


def test_train_config_checks_the_task():
    with pytest.raises(ValueError, match="task = 'classify'"):
        TrainConfig(model="test_tiny_digits")
    with pytest.raises(ValueError, match="task = 'ctc'"):
        TrainConfig(task="classify", model="test_tiny")
    with pytest.raises(ValueError, match="unknown task"):
        TrainConfig(task="detect")
    with pytest.raises(ValueError, match="unknown script"):
        TrainConfig(script="klingon")
    with pytest.raises(ValueError, match="synth"):
        TrainConfig(task="classify", model="test_tiny_digits", sources=(DataSource("synth"),))


def test_digit_recipes_parse():
    from strings.config import load_train_file

    recipes = sorted((Path(__file__).resolve().parents[1] / "configs").glob("digits_*.toml"))
    assert len(recipes) >= 7
    for path in recipes:
        cfg = load_train_file(path)
        assert cfg.task == "classify" and cfg.model in DIGIT_CONFIGS, path.name
        assert cfg.validation in {s.dataset for s in cfg.sources}, path.name


# --------------------------------------------------------------------------- training (the one loop)


def digit_train_config(**changes) -> TrainConfig:
    base = dict(task="classify", model="test_tiny_digits", sources=(DataSource("digits-test"),), validation="digits-val",
                max_steps=60, eval_every=30, batch_size=32, warmup_steps=5, lr=1e-2, label_smoothing=0.05)
    base.update(changes)
    return tiny_train_config(**base)


@pytest.fixture(scope="module")
def digit_run(tmp_path_factory):
    """A short classify run of test_tiny_digits on in-memory synthetic digits (a few seconds)."""
    out = tmp_path_factory.mktemp("digits") / "run"
    fit, val = SynthSingleDigits(300, seed=0), SynthSingleDigits(60, seed=1, name="digits-val")
    result = train(digit_train_config(augment=True), out, sources=[fit], validation=val, progress=False, resume=False,
                   device="cpu", log=lambda m: None)
    return out, result, val


def test_classify_training_smoke(digit_run):
    out, result, _ = digit_run
    rows = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [30, 60]
    assert all(np.isfinite(r["train_loss"]) for r in rows) and rows[-1]["train_loss"] < rows[0]["train_loss"]
    assert set(rows[0]) >= {"val_accuracy", "train_loss", "lr"} and "val_cer" not in rows[0]
    assert result["stop_reason"] == "max_steps" and result["best_accuracy"] > 0.2  # chance is 0.1
    assert (out / "curves.png").read_bytes()[:4] == b"\x89PNG"


def test_classify_checkpoint_is_self_describing(digit_run):
    out, result, val = digit_run
    model, pre, meta, _ = load_digit_model(out / "best.safetensors")
    assert meta["format"] == "strings.digit_classifier/1" and meta["task"] == "classify"
    assert meta["script"] == "latin" and meta["symbols"] == "0123456789"
    assert pre == DIGIT_CONFIGS["test_tiny_digits"][1] and meta["size"] == pre.size
    assert meta["train_config"]["task"] == "classify"
    assert meta["validation"]["accuracy"] == pytest.approx(result["best_accuracy"])
    clf = DigitClassifier(model, pre, dark_ink=True)
    assert evaluate(clf, val).accuracy == pytest.approx(result["best_accuracy"])
    # the string loader refuses a digit model and the other way round, by format
    with pytest.raises(CheckpointError, match="digit_classifier"):
        load_model(out / "best.safetensors")


def test_classify_run_resumes_and_refuses_other_networks(digit_run, tmp_path):
    out, result, val = digit_run
    fit = SynthSingleDigits(300, seed=0)
    again = train(digit_train_config(augment=True), out, sources=[fit], validation=val, progress=False, device="cpu",
                  log=lambda m: None)
    assert again["step"] == result["step"]  # nothing left to do
    other = digit_train_config(model="densenet_digits_small", max_steps=90)
    with pytest.raises(CheckpointError, match="different network"):
        train(other, out, sources=[fit], validation=val, progress=False, device="cpu", log=lambda m: None)


def test_classify_warm_start_across_scripts(digit_run, tmp_path):
    out, _, val = digit_run
    cfg = digit_train_config(script="bangla", init=str(out / "best.safetensors"), max_steps=2, eval_every=2)
    logs: list[str] = []
    train(cfg, tmp_path / "warm", sources=[SynthSingleDigits(40, seed=3)], validation=val, progress=False,
          resume=False, device="cpu", log=logs.append)
    assert any("warm start" in m for m in logs)
    _, _, meta, _ = load_digit_model(tmp_path / "warm" / "last.safetensors")
    assert meta["script"] == "bangla"


def test_classifier_api(digit_run, tmp_path):
    out, _, _ = digit_run
    clf = load_digits(out / "best.safetensors")
    path = write_png(tmp_path / "d.png", draw_digit(4, 40))
    pred = clf.classify(path)
    assert isinstance(pred, DigitPrediction) and 0 <= pred.digit <= 9 and pred.char == str(pred.digit)
    assert len(pred.probabilities) == 10 and sum(pred.probabilities) == pytest.approx(1.0)
    assert pred.confidence == max(pred.probabilities) and pred.text == str(pred.digit)
    assert pred.source == str(path) and json.loads(json.dumps(pred.to_dict()))["digit"] == pred.digit
    arr = draw_digit(4, 40)
    same = clf.classify_batch([arr, 255 - arr])  # either polarity reads alike
    assert same[0].digit == same[1].digit and same[0].confidence == pytest.approx(same[1].confidence)
    with pytest.raises(FileNotFoundError):
        clf.classify(tmp_path / "missing.png")
    with pytest.raises(ValueError, match="head"):
        load_digits(out / "best.safetensors", head="knn")
    with pytest.raises(FileNotFoundError, match="fit-svm"):
        load_digits(out / "best.safetensors", head="svm")


def test_bad_digit_model_files(digit_run, tmp_path, tiny_checkpoint):
    out, _, _ = digit_run
    with pytest.raises(CheckpointError, match="densenet_ctc"):
        load_digit_model(tiny_checkpoint)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError):
        load_digit_model(junk)


# --------------------------------------------------------------------------- SVM head


def _blobs(k: int, n: int = 90, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    y = np.arange(n) % k
    return rng.normal(size=(n, 5)) + y[:, None] * 0.9, y


@pytest.mark.parametrize("k", [2, 3, 4])
def test_svm_head_matches_scikit_learn(k):
    from sklearn.svm import SVC

    x, y = _blobs(k)
    head = fit_svm(x, y + 1, C=3.0)  # labels need not start at 0
    xs = (x - head.mean) / head.scale
    clf = SVC(kernel="rbf", C=3.0, gamma=head.gamma, decision_function_shape="ovo").fit(xs, y + 1)
    t = np.random.default_rng(1).normal(size=(40, 5)) + 1.0
    ts = (t - head.mean) / head.scale
    ovo = clf.decision_function(ts)
    if k == 2:
        np.testing.assert_allclose(head.pairwise(t)[:, 0], -ovo, atol=1e-9)  # scikit-learn's binary sign
    else:
        np.testing.assert_allclose(head.pairwise(t), ovo, atol=1e-9)
        clf.decision_function_shape = "ovr"
        np.testing.assert_allclose(head.scores(t), clf.decision_function(ts), atol=1e-9)
    votes = np.round(head.scores(t))
    untied = [i for i in range(len(t)) if np.sort(votes[i])[-1] != np.sort(votes[i])[-2]]
    np.testing.assert_array_equal(head.predict(t)[untied], clf.predict(ts)[untied])
    p = head.probabilities(t)
    np.testing.assert_allclose(p.sum(1), 1.0)


def test_svm_file_round_trip_and_refusals(tmp_path):
    x, y = _blobs(3)
    head = fit_svm(x, y)
    path = tmp_path / "h.svm.safetensors"
    save_svm(path, head, {"model_weights": "abc"})
    back, meta = load_svm(path)
    assert meta["model_weights"] == "abc" and meta["format"] == "strings.digit_svm/1"
    np.testing.assert_array_equal(back.predict(x), head.predict(x))
    assert b"pickle" not in path.read_bytes()[:200]
    with pytest.raises(ValueError, match="n_support"):
        SVMHead(head.support_vectors, head.dual_coef, head.intercept, head.n_support + 1, head.classes, head.gamma,
                head.mean, head.scale)
    with pytest.raises(CheckpointError, match="digit_svm"):
        load_digit_model(path)


def test_svm_head_on_a_classifier(digit_run):
    out, _, val = digit_run
    model, pre, meta, _ = load_digit_model(out / "best.safetensors")
    fit = SynthSingleDigits(200, seed=0)
    clf = DigitClassifier(model, pre, dark_ink=True)
    feats = clf.features([fit[i].image for i in range(len(fit))])
    head = fit_svm(feats, np.array([int(fit[i].label) for i in range(len(fit))]))
    svm_clf = DigitClassifier(model, pre, head="svm", svm=head, dark_ink=True)
    preds = svm_clf.recognize_greys([val[i].image for i in range(5)])
    assert all(sum(p.probabilities) == pytest.approx(1.0) for p in preds)
    assert evaluate(svm_clf, val).n == len(val)
    with pytest.raises(ValueError, match="features"):
        DigitClassifier(model, pre, head="svm", svm=fit_svm(np.random.rand(20, 3), np.arange(20) % 2))


# --------------------------------------------------------------------------- reject option


def test_reject_summary_on_hand_built_confidences():
    conf = [0.99, 0.98, 0.97, 0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3]
    correct = [True, True, True, True, False, True, True, False, True, True]
    r = reject_summary(conf, correct, rates=(0.1, 0.5))
    assert r["n"] == 10 and r["errors"] == 2
    assert r["rejection_for_zero_errors"] == pytest.approx(0.6) and r["threshold"] == 0.9  # accept the top 4
    assert r["accuracy_at_rejection"]["0.1"] == pytest.approx(7 / 9)
    assert r["accuracy_at_rejection"]["0.5"] == pytest.approx(4 / 5)
    # ties at the cut: a threshold cannot split them, so both go
    tied = reject_summary([0.9, 0.9, 0.8], [True, False, True])
    assert tied["rejection_for_zero_errors"] == pytest.approx(1.0) and tied["threshold"] is None
    assert reject_summary([0.5, 0.4], [True, True])["rejection_for_zero_errors"] == 0.0


# --------------------------------------------------------------------------- CLI on a fake Bangla tree


@pytest.fixture(scope="module")
def bangla_cli_run(tmp_path_factory):
    """`strings digits train` on a fake CMATERdb Bangla tree: the data root and the run folder."""
    root = tmp_path_factory.mktemp("bn")
    build_cmater_tree(root, "bangla", per_class=8, test_per_class=3)
    recipe = root / "tiny.toml"
    recipe.write_text(
        'task = "classify"\nmodel = "test_tiny_digits"\nscript = "bangla"\nsources = [{ dataset = "bangla" }]\n'
        'validation = "bangla"\nval_fraction = 0.2\nbatch_size = 32\nmax_steps = 20\neval_every = 10\n'
        "warmup_steps = 2\nlr = 0.01\nnum_workers = 0\n"
    )
    out = root / "run"
    assert main(["digits", "train", "--config", str(recipe), "--out", str(out), "--data-root", str(root), "--quiet"]) == 0
    return root, out


def test_cli_eval_json_and_reject_plot(bangla_cli_run, capsys, tmp_path):
    root, out = bangla_cli_run
    capsys.readouterr()
    plot = tmp_path / "reject.png"
    argv = ["digits", "eval", "bangla", "--split", "test", "--json", "--model", str(out / "best.safetensors"),
            "--data-root", str(root), "--reject", "--plot", str(plot), "--errors", str(tmp_path / "miss.tsv")]
    assert main(argv) == 0
    obj = _json_lines(capsys.readouterr().out)[-1]
    assert {"dataset", "split", "n", "accuracy", "images_per_second", "model", "head", "script"} <= set(obj)
    test = open_dataset("bangla", "test", root)
    assert obj["dataset"] == "bangla" and obj["split"] == "test" and obj["n"] == len(test)
    assert obj["repeats_dropped"] == test.repeats_dropped >= 1
    assert obj["script"] == "bangla" and obj["head"] == "softmax"
    assert 0.0 <= obj["reject"]["rejection_for_zero_errors"] <= 1.0
    assert plot.read_bytes()[:4] == b"\x89PNG"
    assert (tmp_path / "miss.tsv").read_text().startswith("image\ttruth")


def test_cli_fit_svm_then_eval_with_svm_head(bangla_cli_run, capsys):
    root, out = bangla_cli_run
    model = str(out / "best.safetensors")
    assert main(["digits", "fit-svm", "--model", model, "--data-root", str(root), "--json"]) == 0
    res = _json_lines(capsys.readouterr().out)[-1]
    assert res["svm"].endswith("best.svm.safetensors") and res["fitted_on"].startswith("bangla-train:fit")
    assert {"svm_accuracy", "softmax_accuracy"} <= set(res["validation"])
    _, meta = load_svm(res["svm"])
    model_obj, *_ = load_digit_model(model)
    assert meta["model_weights"] == weights_digest(model_obj)
    assert main(["digits", "eval", "bangla", "--json", "--model", model, "--data-root", str(root), "--head", "svm"]) == 0
    assert _json_lines(capsys.readouterr().out)[-1]["head"] == "svm"


def test_cli_eval_list_of_images_either_polarity(bangla_cli_run, capsys, tmp_path):
    root, out = bangla_cli_run
    lines = []
    for i, d in enumerate([3, 7, 1, 0]):
        img = draw_digit(d, 40)
        write_png(tmp_path / f"{i}.png", img if i % 2 else 255 - img)
        label = SCRIPT_DIGITS["bangla"][d] if i < 2 else str(d)  # the script's numerals or values
        lines.append(f"{i}.png {label}")
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    argv = ["digits", "eval", "--gt", str(tmp_path / "gt.txt"), "--images", str(tmp_path), "--json",
            "--model", str(out / "best.safetensors")]
    assert main(argv) == 0
    obj = _json_lines(capsys.readouterr().out)[-1]
    assert obj["split"] == "list" and obj["n"] == 4
    (tmp_path / "bad.txt").write_text("0.png 42\n")
    argv[argv.index(str(tmp_path / "gt.txt"))] = str(tmp_path / "bad.txt")
    assert main(argv) == 2
    assert "single digits" in capsys.readouterr().err


def test_cli_predict(bangla_cli_run, capsys, tmp_path):
    _, out = bangla_cli_run
    img = write_png(tmp_path / "x.png", draw_digit(5, 36))
    assert main(["digits", "predict", str(img), "--json", "--model", str(out / "best.safetensors")]) == 0
    obj = _json_lines(capsys.readouterr().out)[0]
    assert obj["image"] == str(img) and obj["char"] == SCRIPT_DIGITS["bangla"][obj["digit"]]
    assert len(obj["probabilities"]) == 10
    assert main(["digits", "predict", str(tmp_path / "nope.png"), "--model", str(out / "best.safetensors")]) == 1


def test_bundle_list_and_load_by_name(bangla_cli_run, capsys, tmp_path, monkeypatch):
    import strings.digits.classifier as D

    root, out = bangla_cli_run
    monkeypatch.setattr(D, "WEIGHTS_DIR", tmp_path)
    model = out / "best.safetensors"
    svm = D.svm_path_for(model)
    if not svm.is_file():
        assert main(["digits", "fit-svm", "--model", str(model), "--data-root", str(root)]) == 0
    assert main(["digits", "bundle", str(model), "--name", "bangla", "--svm", str(svm), "--dataset", "bangla",
                 "--test-accuracy", "0.5", "--weights-dir", str(tmp_path)]) == 0
    manifest = json.loads((tmp_path / "digits.json").read_text())
    assert manifest["bangla"]["file"] == "digits-bangla.safetensors" and "svm" in manifest["bangla"]
    _, _, meta, extra = load_digit_model(tmp_path / "digits-bangla.safetensors")
    assert not extra and "optimizer" not in meta and meta["name"] == "bangla"  # no training state shipped
    capsys.readouterr()
    assert main(["digits", "list"]) == 0
    listing = capsys.readouterr().out
    assert listing.startswith("bangla\tbangla\tsvm head") and "test_tiny_digits" in listing
    clf = load_digits("bangla", head="svm")
    assert clf.head == "svm" and clf.symbols == SCRIPT_DIGITS["bangla"]
    # eval picks the dataset's bundled model when no --model is given
    assert main(["digits", "eval", "bangla", "--json", "--data-root", str(root)]) == 0
    assert _json_lines(capsys.readouterr().out)[-1]["model"].endswith("digits-bangla.safetensors")
    # a tampered bundled file fails its sha256 check
    path = tmp_path / "digits-bangla.safetensors"
    path.write_bytes(path.read_bytes() + b" ")
    with pytest.raises(CheckpointError, match="sha256"):
        load_digits("bangla")
    with pytest.raises(ValueError, match="bundle name"):
        bundle_digit_model(model, "Bad Name", weights_dir=tmp_path)


def test_cli_digits_train_refuses_a_string_recipe(tmp_path, capsys):
    recipe = Path(__file__).resolve().parents[1] / "configs" / "tiny_smoke.toml"
    with pytest.raises(SystemExit, match="strings train"):
        main(["digits", "train", "--config", str(recipe), "--out", str(tmp_path / "x")])
