"""``strings recognize`` over folders and lists (JSONL, CSV, shards, drawings, amounts) and
``strings calibrate``."""

from __future__ import annotations

import csv
import io
import json

import cv2
import pytest

from conftest import render_digits, write_png
from strings.models.checkpoint import read_metadata
from strings.cli import main


def _folder(tmp_path, labels=("7", "42", "1500", "90210", "3")):
    paths = [write_png(tmp_path / "imgs" / f"sub{i % 2}" / f"{i:02d}_{t}.png", render_digits(t)) for i, t in enumerate(labels)]
    return tmp_path / "imgs", paths


def test_folder_jsonl_reads_every_image_recursively(trained_checkpoint, tmp_path, capsys):
    folder, paths = _folder(tmp_path)
    assert main(["recognize", str(folder), "--format", "jsonl", "--model", str(trained_checkpoint)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert sorted(r["image"] for r in rows) == sorted(map(str, paths))


def test_list_file_csv_and_per_item_errors(trained_checkpoint, tmp_path, capsys):
    _, paths = _folder(tmp_path)
    (tmp_path / "broken.png").write_bytes(b"not an image")
    lst = tmp_path / "list.txt"
    lst.write_text("# images to read\n" + "\n".join([str(p.relative_to(tmp_path)) for p in paths] + ["broken.png", "gone.png"]) + "\n")
    out = tmp_path / "out.csv"
    assert main(["recognize", "--list", str(lst), "--format", "csv", "--output", str(out),
                 "--model", str(trained_checkpoint)]) == 1  # failures make the exit code 1, the batch goes on
    rows = list(csv.DictReader(io.StringIO(out.read_text())))
    assert len(rows) == len(paths) + 2
    ok = [r for r in rows if not r["error"]]
    assert len(ok) == len(paths) and all(r["text"].isdigit() for r in ok)
    assert {r["image"].split("/")[-1] for r in rows if r["error"]} == {"broken.png", "gone.png"}


def test_shards_partition_the_items(trained_checkpoint, tmp_path, capsys):
    folder, paths = _folder(tmp_path)
    seen = []
    for i in range(3):
        assert main(["recognize", str(folder), "--json", "--shard", f"{i}/3", "--model", str(trained_checkpoint)]) == 0
        seen.append([json.loads(x)["image"] for x in capsys.readouterr().out.splitlines()])
    flat = [x for s in seen for x in s]
    assert sorted(flat) == sorted(map(str, paths)) and len(set(flat)) == len(flat)
    for bad in ("3/3", "x", "1/0"):
        with pytest.raises(SystemExit, match="--shard"):
            main(["recognize", str(folder), "--shard", bad, "--model", str(trained_checkpoint)])


def test_draw_writes_a_picture(trained_checkpoint, tmp_path, capsys):
    img = write_png(tmp_path / "a.png", render_digits("1500"))
    out = tmp_path / "drawn.png"
    assert main(["recognize", str(img), "--draw", str(out), "--model", str(trained_checkpoint)]) == 0
    pic = cv2.imread(str(out))
    assert pic is not None and pic.shape[0] > render_digits("1500").shape[0]
    folder, paths = _folder(tmp_path)
    assert main(["recognize", str(folder), "--draw", str(tmp_path / "drawn"), "--model", str(trained_checkpoint)]) == 0
    assert len(list((tmp_path / "drawn").glob("*.png"))) == len(paths)


def test_calibrate_then_amounts(trained_checkpoint, tmp_path, capsys):
    _, paths = _folder(tmp_path)
    gt = tmp_path / "gt.txt"
    gt.write_text("".join(f"{p.relative_to(tmp_path / 'imgs')} {p.stem.split('_')[1]}\n" for p in paths))
    cal = tmp_path / "cal.safetensors"
    assert main(["calibrate", "--model", str(trained_checkpoint), "--gt", str(gt), "--images", str(tmp_path / "imgs"),
                 "--out", str(cal), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"]["measure"] in {c["measure"] for c in report["candidates"]}
    meta = read_metadata(cal)
    assert len(meta["calibration"]["validation"]) == len(paths)
    assert main(["recognize", *map(str, paths), "--json", "--max-error", "0.01", "--model", str(cal)]) == 0
    rows = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    for r in rows:
        a = r["amount"]
        assert a["digits"] == r["text"] and isinstance(a["needs_review"], bool) and a["max_error"] == 0.01
        assert a["needs_review"] == bool(a["reasons"])


def test_max_error_on_an_uncalibrated_model_reviews_every_amount(trained_checkpoint, tmp_path, capsys):
    img = write_png(tmp_path / "a.png", render_digits("12"))
    assert main(["recognize", str(img), "--max-error", "0.01", "--json", "--model", str(trained_checkpoint)]) == 0
    out = capsys.readouterr()
    assert "strings calibrate" in out.err
    amount = json.loads(out.out.splitlines()[0])["amount"]  # --max-error implies --amount
    assert amount["status"] == "review" and amount["threshold"] is None


def test_no_inputs_is_an_error(trained_checkpoint, tmp_path, capsys):
    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit, match="no images"):
        main(["recognize", str(tmp_path / "empty"), "--model", str(trained_checkpoint)])
