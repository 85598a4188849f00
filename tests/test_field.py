"""Field reading (issue 16): finding the string in a loose crop, the box lists training reads,
comb fields, the parish reader and the ``--field`` commands."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import cv2
import numpy as np
import pytest

import strings
from strings.cli.main import main
from strings.config import DataSource, FieldConfig, TrainConfig
from strings.data import open_dataset
from strings.data.base import DatasetError, FileDataset, Sample
from strings.data.fields import BoxedDataset, FieldCutDataset, read_boxes, write_boxes
from strings.data.readers import read_parish_rowid
from strings.data.sources import validation_split
from strings.data.synth.comb import CombFields
from strings.data.synth.glyphs import GlyphBank
from strings.data.synth.paper import Backgrounds
from strings.locate import clean_field, field_candidates, find_places
from strings.read.field import FieldReader
from strings.train.evaluate import evaluate
from strings.train.fields import choose_boxes

from conftest import REAL_DATA, render_digits, write_png

PAPER = 225


def loose_crop(text: str, at: tuple[int, int] = (45, 80), footer: bool = True) -> tuple[np.ndarray, tuple[int, int, int, int]]:
    """A 210x140 register-cell-like crop: a black scan margin on the left, two ruled lines, a
    cell border on the right, a printed footer, and ``text`` written at ``at``. Returns the crop
    and the string's box."""
    img = np.full((210, 140), PAPER, np.uint8)
    s = render_digits(text, height=34)
    x, y = at
    h, w = s.shape
    img[y : y + h, x : x + w] = np.minimum(img[y : y + h, x : x + w], s)
    img[:, :22] = 15  # the scan margin
    cv2.line(img, (22, 18), (139, 18), 60, 2)  # rules
    cv2.line(img, (22, 190), (139, 190), 60, 2)
    cv2.line(img, (128, 0), (128, 209), 80, 1)  # the cell's right border
    if footer:
        cv2.putText(img, "Trykt for Kirkem.", (30, 203), cv2.FONT_HERSHEY_PLAIN, 0.6, 70, 1)
    ink = np.argwhere(s < 128)
    box = (x + int(ink[:, 1].min()), y + int(ink[:, 0].min()), x + int(ink[:, 1].max()) + 1, y + int(ink[:, 0].max()) + 1)
    return img, box


def inside(inner: tuple[int, int, int, int], outer: tuple[int, int, int, int], slack: int = 2) -> bool:
    return (inner[0] >= outer[0] - slack and inner[1] >= outer[1] - slack
            and inner[2] <= outer[2] + slack and inner[3] <= outer[3] + slack)


# --------------------------------------------------------------------------- locate


def test_margin_and_rules_are_painted_out():
    img, _ = loose_crop("57")
    clean, ink = clean_field(img)
    assert clean[:, :22].min() >= 200, "the black scan margin becomes paper"
    assert clean[18, 40:120].min() >= 200 and clean[190, 40:120].min() >= 200, "ruled lines become paper"
    assert clean[100:110, 128].min() >= 200, "the cell border becomes paper"
    assert not ink[:, :22].any()


def test_a_candidate_holds_the_string_and_none_is_in_the_margin():
    img, box = loose_crop("4071")
    _, boxes = field_candidates(img)
    assert boxes, "the string is proposed"
    assert inside(box, boxes[0]), f"the most inked candidate {boxes[0]} holds the string {box}"
    assert all(b[0] >= 22 for b in boxes), "nothing is proposed in the scan margin"


def test_a_blank_crop_proposes_nothing():
    img = np.full((200, 130), PAPER, np.uint8)
    img[:, :20] = 10
    assert field_candidates(img)[1] == []


def test_a_tight_crop_is_read_whole_as_it_came():
    # a cheque's amount box: the digits fill it; their uprights darken whole columns as a scan
    # margin does, but only a few, and painting anything out there would cut the digits
    img = render_digits("1141", height=40, thickness=3)
    rows = np.flatnonzero((img < 128).any(axis=1))
    img = np.ascontiguousarray(img[max(0, rows[0] - 2) : rows[-1] + 3])  # cut to the digits, as a cheque's box is
    h, w = img.shape
    image, boxes = field_candidates(img)
    assert boxes == [(0, 0, w, h)]
    assert np.array_equal(image, img)


def test_uprights_stay_unless_they_span_the_cell_or_meet_a_rule():
    # a comb of three boxes holding "1", "1", "7": its edges meet the top and bottom rules and go;
    # the 1s are as tall as a rule would need to be, but meet none, and stay
    img = np.full((90, 200), PAPER, np.uint8)
    cv2.rectangle(img, (20, 20), (170, 70), 40, 2)
    for x in (70, 120):
        cv2.line(img, (x, 20), (x, 70), 40, 2)
    for x0, digit in ((30, "1"), (80, "1"), (130, "7")):
        d = render_digits(digit, height=34)
        dh, dw = d.shape
        img[28 : 28 + dh, x0 : x0 + dw] = np.minimum(img[28 : 28 + dh, x0 : x0 + dw], d)
    clean, ink = clean_field(img)
    assert clean[40:60, 70].min() >= 200 and clean[40:60, 20].min() >= 200, "box edges become paper"
    assert ink[35:55, 30:50].any() and ink[35:55, 80:100].any(), "the 1s are kept"


def test_field_cut_serves_the_span_the_field_search_reads(tmp_path: Path):
    img, box = loose_crop("4071", footer=False)
    write_png(tmp_path / "crop.png", img)
    cut = FieldCutDataset(FileDataset([(tmp_path / "crop.png", "4071")], "crops"))[0]
    image, boxes = field_candidates(img)
    x0, y0 = min(b[0] for b in boxes), min(b[1] for b in boxes)
    assert cut.label == "4071" and cut.image.shape == (max(b[3] for b in boxes) - y0, max(b[2] for b in boxes) - x0)
    assert cut.image.shape[0] < img.shape[0] / 2, "the empty cell around the string is cut away"
    assert inside(box, (x0, y0, x0 + cut.image.shape[1], y0 + cut.image.shape[0]))


@pytest.mark.parametrize("shape", [(1, 1), (3, 200), (200, 3)])
def test_degenerate_crops_do_not_crash(shape):
    clean, boxes = field_candidates(np.full(shape, 200, np.uint8))
    assert clean.shape == shape and isinstance(boxes, list)


# --------------------------------------------------------------------------- read_field


@pytest.mark.parametrize("text,at", [("4071", (45, 80)), ("93", (60, 40)), ("1500", (30, 120))])
def test_read_field_finds_and_reads_the_string(text, at):
    rec = strings.load()
    img, box = loose_crop(text, at)
    f = rec.read_field(img)
    assert f.text == text, f"read {f.text!r}; candidates {[(r.text, b) for r, b in f.others]}"
    assert f.box is not None and inside(box, f.box)
    assert all(inside(d.box, f.box, slack=0) for d in f.reading.digits), "digit boxes lie in the string's box, in crop pixels"
    assert f.to_dict()["box"] == list(f.box)


def test_read_field_on_nothing_is_empty_with_low_confidence():
    rec = strings.load()
    blank = np.full((200, 130), PAPER, np.uint8)
    blank[:, :20] = 10
    noise = np.random.default_rng(0).integers(180, 256, (200, 130)).astype(np.uint8)
    for img in (blank, noise):
        f = rec.read_field(img)
        if f.text == "":
            assert f.box is None and f.confidence == 0.0
        else:  # noise may show a speck: whatever is read must not look certain
            assert f.confidence < 0.5


def test_field_reader_runs_in_the_evaluation_loop():
    crops = [loose_crop(t) for t in ("12", "305")]

    class Crops(FileDataset):
        def __init__(self) -> None:
            self.name = "loose"
            self.items = []

        def __len__(self) -> int:
            return len(crops)

        def __getitem__(self, i: int) -> Sample:  # type: ignore[override]
            return Sample(crops[i][0], ("12", "305")[i], f"loose[{i}]")

    report = evaluate(FieldReader(strings.load()), Crops())
    assert report.n == 2 and report.accuracy == 1.0


# --------------------------------------------------------------------------- box lists for training


def test_box_list_round_trips_and_names_bad_lines(tmp_path: Path):
    path = tmp_path / "boxes.tsv"
    rows = [("a.jpg", (1, 2, 30, 40), "17"), ("a.jpg", (50, 2, 60, 40), ""), ("b.jpg", (0, 0, 5, 5), "3")]
    write_boxes(path, rows, header="made by a test")
    assert read_boxes(path) == rows
    path.write_text("a.jpg\t1\t2\t30\t40\t17\nb.jpg\t5\t5\t4\t9\t1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"boxes.tsv:2: empty or negative box"):
        read_boxes(path)
    path.write_text("a.jpg\t1\t2\t30\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"boxes.tsv:1: 4 fields"):
        read_boxes(path)
    with pytest.raises(DatasetError, match="strings field-boxes"):
        read_boxes(tmp_path / "missing.tsv")


def _parish_tree(root: Path, n: int = 12) -> list[tuple[str, str, tuple[int, int, int, int]]]:
    """A parish-rowid layout with synthetic loose crops; returns (file, label, string box)."""
    out = []
    for split in ("train", "validation"):
        folder = root / "parish-rowid" / split
        lines = ["filename,label"]
        for i in range(n):
            label = str(10 + 7 * i)
            img, box = loose_crop(label, (40 + i % 3 * 5, 60 + i % 4 * 20))
            name = f"born_K{i:04d}_row_id_{i}.Jpg"
            write_png(folder / name, img)  # PNG bytes under a .Jpg name: decoded by content
            lines.append(f"{name},{label}")
            if split == "train":
                out.append((name, label, box))
        lines += ["sn_0.Jpg,Sn", "x.Jpg,38a", "dash.Jpg,-"]
        (folder / "labels.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return out


def test_parish_reader_keeps_digit_labels_and_refuses_escapes(tmp_path: Path):
    _parish_tree(tmp_path, n=4)
    ds = read_parish_rowid(tmp_path, "train")
    assert len(ds) == 4 and ds.labels() == ["10", "17", "24", "31"], "Sn, 38a and - name no digit string: left out"
    assert ds[0].image.ndim == 2
    listing = tmp_path / "parish-rowid" / "train" / "labels.csv"
    listing.write_text("filename,label\n../../etc/passwd,1\n", encoding="utf-8")
    with pytest.raises(DatasetError, match=r"labels.csv:2: a path with a '\.\.' component"):
        read_parish_rowid(tmp_path, "train")
    listing.write_text("name;label\n", encoding="utf-8")
    with pytest.raises(DatasetError, match="header"):
        read_parish_rowid(tmp_path, "train")
    with pytest.raises(DatasetError, match="split must be"):
        read_parish_rowid(tmp_path, "dev")


def test_choose_boxes_finds_each_string_and_the_carve_is_by_file(tmp_path: Path):
    truth = _parish_tree(tmp_path)
    ds = read_parish_rowid(tmp_path, "train")
    choices = choose_boxes(strings.load(), ds, negatives=2)
    by_name = {name: box for name, _, box in truth}
    for c in choices:
        assert c.box is not None and inside(by_name[c.name], c.box), f"{c.name}: chose {c.box}"
        assert all(not inside(by_name[c.name], n) for n in c.negatives), "an empty place never holds the string"
    rows = [(c.name, c.box, c.label) for c in choices] + [(c.name, n, "") for c in choices for n in c.negatives]
    boxes = tmp_path / "boxes.tsv"
    write_boxes(boxes, rows)
    boxed = BoxedDataset(ds, read_boxes(boxes))
    s = boxed[0]
    assert s.label == "10" and s.image.shape[0] < 100, "a boxed sample is the string cut from the clean crop"
    cfg = TrainConfig(sources=(DataSource("parish-rowid", boxes=str(boxes)),), validation="parish-rowid", val_fraction=0.25)
    fit, val = validation_split(cfg, tmp_path)
    fit_files = {Path(p).name for p, _, _ in fit.items}
    val_files = {Path(p).name for p, _, _ in val.items}
    assert fit_files and val_files and not fit_files & val_files, "a crop's string and its empty places stay on one side"


def test_a_box_list_for_other_files_is_refused(tmp_path: Path):
    _parish_tree(tmp_path, n=2)
    ds = read_parish_rowid(tmp_path, "train")
    with pytest.raises(DatasetError, match="no boxed file"):
        BoxedDataset(ds, [("other.jpg", (0, 0, 5, 5), "1")])


# --------------------------------------------------------------------------- comb fields


def _tiny_bank() -> GlyphBank:
    glyphs = [render_digits(str(d), height=28) for d in range(10)]  # dark on light
    return GlyphBank.from_arrays(glyphs, [str(d) for d in range(10)], "rendered")


def test_comb_fields_are_fixed_by_seed_and_labelled_without_placeholders():
    ds = CombFields(_tiny_bank(), Backgrounds.synthetic(), n=40, seed=3)
    assert np.array_equal(ds[5].image, ds[5].image)
    assert ds[5].label == ds.label(5)
    other = CombFields(_tiny_bank(), Backgrounds.synthetic(), n=40, seed=4)
    assert any(ds.label(i) != other.label(i) for i in range(10))
    for i in range(40):
        s = ds[i]
        assert s.label.isdigit() and s.label[0] != "0", "leading zeros are placeholders, never the number"
        assert s.image.dtype == np.uint8 and s.image.ndim == 2 and s.image.shape[1] > s.image.shape[0]


def test_comb_fields_as_written_label_the_placeholder_zeros_and_nothing_else():
    plain = CombFields(_tiny_bank(), Backgrounds.synthetic(), n=60, seed=3)
    written = CombFields(_tiny_bank(), Backgrounds.synthetic(), n=60, seed=3, zeros_written=True)
    kinds = [plain._layout(plain._rng(i)) for i in range(60)]
    assert any(k == "zero" and n > len(lab) for n, lab, k in kinds), "the seed must draw a field with 0 placeholders"
    for i, (n_boxes, label, kind) in enumerate(kinds):
        assert plain[i].label == label
        expect = "0" * (n_boxes - len(label)) + label if kind == "zero" else label
        assert written.label(i) == written[i].label == expect
        assert np.array_equal(plain[i].image, written[i].image), "only the target differs"


def test_a_fields_leading_zeros_are_placeholders_unless_kept(monkeypatch):
    img, _ = loose_crop("42")
    rec = strings.load()
    real = rec.recognize_greys

    def with_zeros(greys, **kw):  # the reader as a model taught the as-written combs reads a field
        out = []
        for r in real(greys, **kw):
            if r.text:
                d0 = r.digits[0]
                zeros = tuple(dataclasses.replace(d0, char="0") for _ in range(2))
                r = dataclasses.replace(r, text="00" + r.text, written="00" + r.written, digits=zeros + r.digits)
            out.append(r)
        return out

    monkeypatch.setattr(rec, "recognize_greys", with_zeros)
    f = rec.read_field(img)
    assert f.text == "42" and f.reading.written == "42" and "".join(d.char for d in f.reading.digits) == "42"
    kept = rec.read_field(img, FieldConfig(strip_leading_zeros=False))
    assert kept.text == "0042" and len(kept.reading.digits) == 4


def test_keep_zeros_needs_field(tmp_path: Path):
    img, _ = loose_crop("42")
    path = write_png(tmp_path / "cell.png", img)
    with pytest.raises(SystemExit, match="--keep-zeros applies to field reading"):
        main(["recognize", str(path), "--keep-zeros"])
    assert main(["recognize", str(path), "--field", "--keep-zeros", "--json", "--model", "default"]) == 0


def test_a_field_of_zeros_keeps_its_last():
    from strings.read.field import _without_leading_zeros
    from strings.read.recognizer import DigitReading, Reading
    digits = tuple(DigitReading("0", 0.9, (i, 0, i + 1, 1)) for i in range(3))
    r = _without_leading_zeros(Reading("000", 0.8, digits, written="0.00"))
    assert r.text == "0" and r.written == "0" and r.digits == digits[2:] and r.confidence == 0.8
    assert _without_leading_zeros(Reading("", 0.0, ())).text == ""


@pytest.mark.skipif(REAL_DATA is None, reason="MNIST not found beside the checkout or in $STRINGS_DATA")
def test_comb_benchmark_composes_mnist_test_digits_only():
    ds = open_dataset("comb-fields", "test", REAL_DATA)
    assert len(ds) == 1000 and ds.bank.source_names() == ["mnist"]  # type: ignore[attr-defined]


# --------------------------------------------------------------------------- commands


def test_recognize_field_json_and_draw(tmp_path: Path, capsys):
    img, box = loose_crop("268")
    path = write_png(tmp_path / "cell.png", img)
    out = tmp_path / "cell_drawn.png"
    assert main(["recognize", str(path), "--field", "--json", "--model", "default", "--draw", str(out)]) == 0
    row = json.loads(capsys.readouterr().out.strip())
    assert row["text"] == "268" and inside(box, tuple(row["box"]))
    drawn = cv2.imread(str(out))
    assert drawn is not None and drawn.shape[0] > img.shape[0], "the whole crop is drawn, enlarged, under a banner"


def test_benchmark_field_on_a_list(tmp_path: Path, capsys):
    lines = []
    for i, t in enumerate(("41", "7", "350")):
        write_png(tmp_path / "imgs" / f"{i}.png", loose_crop(t)[0])
        lines.append(f"{i}.png {t}")
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    args = ["benchmark", "--gt", str(tmp_path / "gt.txt"), "--images", str(tmp_path / "imgs"), "--json", "--model", "default"]
    assert main([*args, "--field"]) == 0
    field = json.loads(capsys.readouterr().out)
    assert field["field"] is True and field["accuracy"] == 1.0
    assert main(args) == 0
    plain = json.loads(capsys.readouterr().out)
    assert plain["accuracy"] < 1.0, "without --field the margin and rules throw the reader (why --field exists)"


def test_field_config_is_frozen_and_checked():
    from strings.config import from_dict

    with pytest.raises(Exception):
        FieldConfig().pad = 1.0  # type: ignore[misc]
    with pytest.raises(Exception):
        from_dict(FieldConfig, {"padd": 0.3})
    for bad in ({"row_overlap": 1.5}, {"row_height_ratio": 0.5}, {"join_height_ratio": 0.9}, {"max_candidates": 0}, {"split_tall": -0.1}, {"split_strokes": -1}):
        with pytest.raises(ValueError, match=next(iter(bad))):
            FieldConfig(**bad)


def spaced_crop(text: str, gap: int = 30) -> np.ndarray:
    """A loose crop with ``text`` written one digit at a time, ``gap`` px apart: a comb whose box
    edges did not print (or were too faint to find)."""
    img = np.full((120, 80 + len(text) * (gap + 24)), PAPER, np.uint8)
    x = 40
    for ch in text:
        s = render_digits(ch, height=34)
        h, w = s.shape
        img[40 : 40 + h, x : x + w] = np.minimum(img[40 : 40 + h, x : x + w], s)
        x += w + gap
    return img


def test_a_line_of_separate_digits_is_one_more_candidate_and_preferred():
    from strings.locate import find_places

    img = spaced_crop("471")
    places = find_places(img)
    assert places.row == 3 and not places.comb
    row, parts = places.boxes[0], places.boxes[1:]
    assert len(parts) == 3, "the line, then its three parts"
    assert all(inside(p, row) for p in parts), "the joined box spans the three digits"
    alone = find_places(img, FieldConfig(join_rows=False))
    assert alone.row == 0 and len(alone.boxes) == 3
    rec = strings.load()
    assert rec.read_field(img).text == "471"
    assert len(rec.read_field(img, FieldConfig(join_rows=False)).text) == 1, "without the line, one digit wins"


def test_a_line_that_reads_fewer_digits_than_it_joined_is_not_preferred(monkeypatch):
    img = spaced_crop("471")
    rec = strings.load()
    real = rec.recognize_greys

    def short_on_the_line(greys, **kw):  # a reader that loses digits on the wide crop
        out = real(greys, **kw)
        widest = max(g.shape[1] for g in greys)  # the line's crop
        return [dataclasses.replace(r, text=r.text[:2], written=r.written[:2], digits=r.digits[:2], confidence=0.99)
                if g.shape[1] == widest else r for g, r in zip(greys, out)]

    from strings.locate import find_places

    assert find_places(img).row == 3, "the crop has a line of three strings to cut short"
    monkeypatch.setattr(rec, "recognize_greys", short_on_the_line)
    f = rec.read_field(img)
    assert len(f.text) == 1, f"a 2-digit reading of 3 strings must not win, got {f.text!r}"
    assert all(len(r.text) != 2 for r, _ in f.others), "and it is not offered as another reading either"
    assert any(len(r.text) == 2 for r in short_on_the_line([img[:, :]], batch_size=1)), "the fake does cut readings"


def test_a_tall_stroke_beside_the_number_does_not_swallow_it():
    """The ragged edge of a scan margin (tall, too wide to be a rule's hairline) stands next to
    the number: side by side, strings of one line are of comparable heights."""
    img = np.full((210, 140), PAPER, np.uint8)
    s = render_digits("83", height=34)
    h, w = s.shape
    img[60 : 60 + h, 40 : 40 + w] = np.minimum(img[60 : 60 + h, 40 : 40 + w], s)
    ink = np.argwhere(s < 128)
    x0 = 40 + int(ink[:, 1].min())
    img[30:170, x0 - 14 : x0 - 4] = 40  # the edge, 10 px wide and 140 tall, 4 px left of the 8,
    img[150:170, x0 - 36 : x0 - 4] = 40  # widening to a blob at its foot (so no rule's hairline)
    boxes = field_candidates(img)[1]
    number = (x0, 60 + int(ink[:, 0].min()), 40 + int(ink[:, 1].max()) + 1, 60 + int(ink[:, 0].max()) + 1)
    assert any(inside(number, b) and b[3] - b[1] < 80 for b in boxes), boxes
    joined = field_candidates(img, FieldConfig(join_height_ratio=1e9, split_tall=0.0))[1]
    assert not any(inside(number, b) and b[3] - b[1] < 80 for b in joined), "without the rule the edge swallows it"
    regrouped = field_candidates(img, FieldConfig(join_height_ratio=1e9))[1]
    assert any(inside(number, b) and b[3] - b[1] < 80 for b in regrouped), "the too-tall group is split again"


def test_a_rule_joined_to_the_underline_does_not_swallow_the_number():
    """A tilted cell border (no straight run long enough to be a rule) meets the number's
    underline: the stroke they make is taller than any string, and the number inside the group
    it forms is found again without it (parish validation crop 837 of the kind)."""
    img = np.full((210, 140), PAPER, np.uint8)
    s = render_digits("54", height=28)
    h, w = s.shape
    img[60 : 60 + h, 40 : 40 + w] = np.minimum(img[60 : 60 + h, 40 : 40 + w], s)
    ink = np.argwhere(s < 128)
    number = (40 + int(ink[:, 1].min()), 60 + int(ink[:, 0].min()), 40 + int(ink[:, 1].max()) + 1, 60 + int(ink[:, 0].max()) + 1)
    for y in range(200):  # the border, leaning a pixel every 25 rows
        img[y, 126 - y // 25] = 60
    end = 126 - (number[3] + 8) // 25
    cv2.line(img, (number[0] - 4, number[3] + 2), (end, number[3] + 8), 60, 1)  # the underline, sloping (no rule)
    boxes = field_candidates(img)[1]
    assert any(inside(number, b) and b[3] - b[1] < 80 for b in boxes), boxes
    off = field_candidates(img, FieldConfig(split_tall=0.0))[1]
    assert not any(inside(number, b) and b[3] - b[1] < 80 for b in off), f"without the regrouping it is lost: {off}"


def test_a_small_pale_zero_is_found_by_searching_again_with_the_faint_level():
    """A thin pale 0 between ruled lines falls under the ink split Otsu chooses; where nothing of
    a string's height is found, the search runs again with every pixel under faint_level as ink."""
    img = np.full((180, 130), PAPER, np.uint8)
    img[:, :25] = 15  # scan margin
    for p0, p1 in (((122, 0), (122, 179)), ((25, 8), (129, 8)), ((25, 150), (129, 150))):
        cv2.line(img, p0, p1, 60, 1)  # cell border and rules, dark
    cv2.ellipse(img, (80, 110), (4, 6), 0, 0, 360, 180, 1)
    rec = strings.load()
    assert find_places(img, FieldConfig(faint_retry=False)).boxes == [], "the control: the first search finds nothing"
    f = rec.read_field(img, FieldConfig(faint_retry=True))
    assert f.text == "0" and f.box is not None and inside((76, 104, 85, 117), f.box)
    blank = np.full((180, 130), PAPER, np.uint8)
    blank[:, :25] = 15
    assert find_places(blank, FieldConfig()).boxes == [], "on blank paper the second search finds nothing either"
