"""The command line, in-process through ``strings.cli.main(argv)``."""

from __future__ import annotations

import json

import pytest

from conftest import build_orand_tree, build_usps_tree, render_digits, write_png
from strings.cli import main


def _json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def test_recognize_json(trained_checkpoint, tmp_path, capsys):
    img = write_png(tmp_path / "amount.png", render_digits("1500"))
    assert main(["recognize", str(img), "--json", "--model", str(trained_checkpoint)]) == 0
    out = _json_lines(capsys.readouterr().out)
    assert len(out) == 1
    obj = out[0]
    assert obj["image"] == str(img)
    assert isinstance(obj["text"], str) and obj["text"].isdigit()
    assert 0.0 < obj["confidence"] <= 1.0
    assert len(obj["digits"]) == len(obj["text"])
    for d in obj["digits"]:
        assert set(d) >= {"char", "confidence", "box"} and len(d["box"]) == 4


def test_recognize_plain_and_several_images(trained_checkpoint, tmp_path, capsys):
    imgs = [write_png(tmp_path / f"{t}.png", render_digits(t)) for t in ("42", "907")]
    assert main(["recognize", *map(str, imgs), "--model", str(trained_checkpoint)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2
    for line, img in zip(lines, imgs):
        name, text, conf = line.split("\t")
        assert name == str(img) and text.isdigit() and 0.0 < float(conf) <= 1.0


def test_recognize_missing_image(trained_checkpoint, tmp_path, capsys):
    missing = tmp_path / "missing.png"
    good = write_png(tmp_path / "ok.png", render_digits("7"))
    code = main(["recognize", str(missing), str(good), "--model", str(trained_checkpoint)])
    assert code != 0
    captured = capsys.readouterr()
    assert "error" in captured.err and str(missing) in captured.err
    assert str(good) in captured.out  # the readable image is still read
    code = main(["recognize", str(missing), "--json", "--model", str(trained_checkpoint)])
    assert code != 0
    obj = _json_lines(capsys.readouterr().out)[0]
    assert obj["image"] == str(missing) and str(missing) in obj["error"]


def test_recognize_not_an_image(trained_checkpoint, tmp_path, capsys):
    fake = tmp_path / "fake.png"
    fake.write_text("hello")
    assert main(["recognize", str(fake), "--model", str(trained_checkpoint)]) != 0
    assert str(fake) in capsys.readouterr().err


def test_missing_model(tmp_path, capsys):
    img = write_png(tmp_path / "a.png", render_digits("1"))
    code = main(["recognize", str(img), "--model", str(tmp_path / "none.safetensors")])
    assert code != 0
    assert "none.safetensors" in capsys.readouterr().err


def test_recognize_beam(trained_checkpoint, tmp_path, capsys):
    img = write_png(tmp_path / "a.png", render_digits("90210"))
    assert main(["recognize", str(img), "--json", "--beam", "5", "--model", str(trained_checkpoint)]) == 0
    assert _json_lines(capsys.readouterr().out)[0]["text"].isdigit()


BENCH_KEYS = {"dataset", "split", "n", "accuracy", "cer", "images_per_second", "model"}


def test_benchmark_list(trained_checkpoint, tmp_path, capsys):
    images = tmp_path / "imgs"
    labels = ["1500", "42", "907", "3", "77", "1234"]
    for i, lab in enumerate(labels):
        write_png(images / f"{i}.png", render_digits(lab))
    wrong = dict(enumerate(labels))
    wrong[1] = "9999"  # a deliberate miss: the model cannot read "42" as 9999
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{i}.png {lab}\n" for i, lab in wrong.items()))
    errors = tmp_path / "errors.tsv"
    code = main(["benchmark", "--gt", str(gt), "--images", str(images), "--json", "--model", str(trained_checkpoint),
                 "--errors", str(errors)])
    assert code == 0
    out = _json_lines(capsys.readouterr().out)
    assert len(out) == 1
    res = out[0]
    assert BENCH_KEYS <= set(res)
    assert res["n"] == 6 and res["split"] == "list" and res["dataset"] == str(gt)
    assert res["model"] == str(trained_checkpoint)
    assert 0.0 <= res["accuracy"] <= 5 / 6 and res["cer"] > 0 and res["images_per_second"] > 0
    rows = errors.read_text().splitlines()
    assert rows[0].split("\t") == ["image", "truth", "prediction", "confidence"]
    missed = {r.split("\t")[0]: r.split("\t") for r in rows[1:]}
    assert len(missed) == round(6 * (1 - res["accuracy"]))
    assert str(images / "1.png") in missed and missed[str(images / "1.png")][1] == "9999"


def test_benchmark_needs_gt_and_images(trained_checkpoint, tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["benchmark", "--gt", str(tmp_path / "gt.txt"), "--model", str(trained_checkpoint)])
    with pytest.raises(SystemExit):
        main(["benchmark", "--model", str(trained_checkpoint)])


def test_benchmark_bad_list(trained_checkpoint, tmp_path, capsys):
    (tmp_path / "imgs").mkdir()
    gt = tmp_path / "gt.txt"
    gt.write_text("a.png 12\n")
    code = main(["benchmark", "--gt", str(gt), "--images", str(tmp_path / "imgs"), "--json",
                 "--model", str(trained_checkpoint)])
    assert code != 0
    assert str(tmp_path / "imgs" / "a.png") in capsys.readouterr().err


def test_benchmark_car_a_official_tree(trained_checkpoint, tmp_path, capsys):
    listed = build_orand_tree(tmp_path / "root", prefix=True)
    code = main(["benchmark", "car-a", "--data-root", str(tmp_path / "root"), "--json",
                 "--model", str(trained_checkpoint)])
    assert code == 0
    res = _json_lines(capsys.readouterr().out)[0]
    assert BENCH_KEYS <= set(res)
    assert res["dataset"] == "car-a" and res["split"] == "test" and res["n"] == len(listed["a-test"])
    code = main(["benchmark", "car-b", "--split", "train", "--data-root", str(tmp_path / "root"), "--json",
                 "--model", str(trained_checkpoint)])
    assert code == 0
    res = _json_lines(capsys.readouterr().out)[0]
    assert res["dataset"] == "car-b" and res["split"] == "train" and res["n"] == len(listed["b-train"])


def test_benchmark_missing_dataset(trained_checkpoint, tmp_path, capsys):
    code = main(["benchmark", "cvl", "--data-root", str(tmp_path), "--json", "--model", str(trained_checkpoint)])
    assert code != 0
    assert str(tmp_path / "cvl-strings-eval") in capsys.readouterr().err


def test_benchmark_plain_output(trained_checkpoint, tmp_path, capsys):
    build_orand_tree(tmp_path, prefix=False, subsets="a")
    assert main(["benchmark", "car-a", "--data-root", str(tmp_path), "--model", str(trained_checkpoint)]) == 0
    out = capsys.readouterr().out
    assert "car-a [test]: 2 images, accuracy" in out and "CER" in out


def test_train_from_config_file(tmp_path, capsys):
    """``strings train --config x.toml`` end to end on a tiny USPS tree (single digits)."""
    build_usps_tree(tmp_path / "data", n=24)
    cfg = tmp_path / "x.toml"
    cfg.write_text(
        'model = "test_tiny"\nsources = [{ dataset = "usps", weight = 1.0 }]\nvalidation = "usps"\n'
        "val_fraction = 0.25\nbatch_size = 8\neval_every = 5\nwarmup_steps = 2\naugment = false\n"
    )
    out = tmp_path / "run"
    code = main(["train", "--config", str(cfg), "--out", str(out), "--data-root", str(tmp_path / "data"),
                 "--max-steps", "10", "--num-workers", "0", "--quiet"])
    assert code == 0
    result = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert result["step"] == 10 and result["stop_reason"] == "max_steps"
    for name in ("best.safetensors", "last.safetensors", "log.jsonl", "curves.png"):
        assert (out / name).is_file()
    meta_lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in meta_lines] == [5, 10]


def test_train_bad_config(tmp_path, capsys):
    cfg = tmp_path / "x.toml"
    cfg.write_text('modle = "test_tiny"\n')
    assert main(["train", "--config", str(cfg), "--out", str(tmp_path / "o")]) != 0
    assert "modle" in capsys.readouterr().err


def test_models_and_version(capsys):
    assert main(["models"]) == 0
    assert "test_tiny" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["--version"])
    assert exc.value.code == 0
    assert "strings 0.1.0" in capsys.readouterr().out


def test_unknown_command_exits_nonzero(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["fly"])
    assert exc.value.code != 0
