"""Register columns (strings.read.column): row numbers read against their neighbours', the chain's
probabilities counted from labels, and parish-rowid's rows put back in their columns."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from conftest import REAL_DATA, requires_real_data, write_png
from test_field import inside, loose_crop

import strings
from strings.cli.main import main
from strings.config import ColumnConfig
from strings.data.readers import parish_columns
from strings.read import column
from strings.read.column import ColumnReader, _Chain, _marginals, _proposals, _Row, column_prior, read_column
from strings.read.field import read_fields


def _row(scores: dict[int, float]) -> _Row:
    values = np.array(sorted(scores))
    logp = np.log(np.array([scores[v] for v in values.tolist()]))
    return _Row(values, logp, [0] * len(values), float(np.log1p(-min(sum(scores.values()), 1 - 1e-6))))


def _winners(rows: list[_Row]) -> list[tuple[str, float]]:
    out = []
    for row, (post, none) in zip(rows, _marginals(rows, _Chain(ColumnConfig()))):
        if len(post) == 0 or none >= post.max():
            out.append(("none", none))
        else:
            out.append((str(int(row.values[post.argmax()])), float(post.max())))
    return out


def test_column_prior_counts_steps_restarts_and_rows_without_a_number():
    cfg = column_prior([["1", "2", "sn", "3", "3", "5", "1", "2"], ["7", "0", "8"]], other_values=50)
    # 11 rows, 2 without a running number (sn, 0); follows: 1-2, 2-3, 3-3, 3-5, 5-1 (restart), 1-2, 7-8
    assert cfg.none_rate == pytest.approx(2 / 11)
    assert dict(cfg.steps) == pytest.approx({-1: 0.0, 0: 1 / 7, 1: 4 / 7, 2: 1 / 7, 3: 0.0})
    assert cfg.restart == pytest.approx(1 / 7) and cfg.other_values == 50
    with pytest.raises(ValueError, match="two numbered rows"):
        column_prior([["sn", "4"]])


def test_column_config_is_checked():
    with pytest.raises(ValueError, match="none_rate"):
        ColumnConfig(none_rate=1.0)
    with pytest.raises(ValueError, match="leave some probability"):
        ColumnConfig(steps=((1, 0.99),), restart=0.02)
    with pytest.raises(ValueError, match="distinct"):
        ColumnConfig(steps=((1, 0.5), (1, 0.1)))
    with pytest.raises(ValueError, match="window"):
        ColumnConfig(window=0)


def test_neighbours_propose_their_numbers_and_those_near_them():
    assert _proposals(["41", "4", "43"], window=1, spread=1) == [
        [3, 4, 5, 40, 41, 42], [3, 4, 5, 40, 41, 42, 43, 44], [3, 4, 5, 42, 43, 44]]
    assert _proposals(["41", "", "43"], window=1, spread=0) == [[41], [41, 43], [43]]
    assert _proposals(["0", "", "12"], window=1, spread=0) == [[], [12], [12]], "a 0 or nothing proposes no number"


def test_the_chain_fills_a_weak_row_from_its_neighbours_and_keeps_a_clear_one():
    weak = [_row({41: 0.98}), _row({4: 0.6, 42: 0.3}), _row({43: 0.97})]
    (_, _), (middle, p), (_, _) = _winners(weak)
    assert middle == "42" and p > 0.5
    clear = [_row({41: 0.98}), _row({7: 0.99, 42: 1e-6}), _row({43: 0.97})]
    # "none" (no running number here) keeps the row's own reading: a clear 7 stays a 7
    assert _winners(clear)[1][0] in ("7", "none"), "a number the model is sure of stays, whatever its neighbours say"
    restart = [_row({48: 0.95}), _row({49: 0.95}), _row({1: 0.9}), _row({2: 0.9})]
    assert [w for w, _ in _winners(restart)] == ["48", "49", "1", "2"]


def test_a_row_without_a_running_number_passes_the_count_on():
    # the middle row reads a 0 (no running number: nothing is proposed for it from its own reading)
    rows = [_row({11: 0.97}), _row({}), _row({12: 0.96})]
    rows[1] = _Row(np.array([10, 11, 12, 13]), np.log(np.array([1e-4, 1e-4, 1e-4, 1e-4])), [0] * 4, float(np.log(0.999)))
    assert [w for w, _ in _winners(rows)] == ["11", "none", "12"], "11, (none), 12: the count runs on past it"


def test_a_long_column_with_empty_rows_carries_only_live_numbers(monkeypatch):
    """1,000 numbered rows, each followed by a row that reads nothing: every number is read, and
    the states a "none" row carries stay few (pruned), instead of growing with the column."""
    rows = []
    for k in range(1, 1001):
        rows += [_row({k: 0.9, k + 1: 0.05}), _row({})]
    sizes = []
    real = column._logsumexp

    def counting(x, axis):
        sizes.append(x.shape[1 - axis] if x.ndim == 2 else 0)
        return real(x, axis)

    monkeypatch.setattr(column, "_logsumexp", counting)
    winners = _winners(rows)
    assert [w for w, _ in winners[::2]] == [str(k) for k in range(1, 1001)]
    assert all(w == "none" for w, _ in winners[1::2])
    assert max(sizes) < 50, f"states per row grew to {max(sizes)}"  # unpruned: over 1,000 by the end


@pytest.fixture(scope="module")
def rec():
    return strings.load()


def test_read_column_reads_clear_rows_as_the_field_reader_does(rec):
    crops = [loose_crop(t, (40 + 10 * i, 70)) for i, t in enumerate(("41", "42", "43"))]
    greys = [c for c, _ in crops]
    got = read_column(rec, greys)
    plain = read_fields(rec, greys, cfg=rec.field_config)
    assert [f.text for f in got] == [f.text for f in plain] == ["41", "42", "43"]
    for f, (_, box) in zip(got, crops):
        assert f.box is not None and inside(box, f.box) and 0.5 < f.confidence <= 1.0
    assert [f.text for f in ColumnReader(rec).recognize_greys(greys)] == ["41", "42", "43"]
    assert read_column(rec, []) == []


def test_a_row_the_field_reader_got_short_is_read_again_as_its_neighbours_imply(rec, monkeypatch):
    """The field reading of the middle row loses a digit (as faint rows do); the crop shows 42
    plainly, so scored as the row between 41 and 43 it reads 42, at its string's place, and
    keeps the field reading among its others."""
    crops = [loose_crop(t, (45, 70)) for t in ("41", "42", "43")]
    greys = [c for c, _ in crops]

    def short(r, g, sources=None, cfg=None, batch_size=64, places=None):
        out = read_fields(r, g, sources, cfg, batch_size, places=places)
        middle = out[1]
        digits = middle.reading.digits[:1]
        out[1] = type(middle)(type(middle.reading)("4", 0.7, digits, middle.reading.source, "4"), middle.box, middle.others)
        return out

    monkeypatch.setattr(column, "read_fields", short)
    got = read_column(rec, greys)
    assert [f.text for f in got] == ["41", "42", "43"]
    f = got[1]
    assert f.others and f.others[0][0].text == "4", "the field's own reading is kept among the others"
    assert len(f.reading.digits) == 2 and all(inside(d.box, f.box, slack=0) for d in f.reading.digits)
    assert inside(crops[1][1], f.box)


def test_a_committee_cannot_read_a_column(rec):
    pair = strings.load("default+default")
    with pytest.raises(ValueError, match="single model"):
        pair.read_column([loose_crop("5")[0]])
    with pytest.raises(ValueError, match="no logits of its own"):
        read_column(pair, [loose_crop("5")[0]])


def test_recognize_column_json_and_refusals(tmp_path: Path, capsys):
    paths = [write_png(tmp_path / f"row{i}.png", loose_crop(t)[0]) for i, t in enumerate(("7", "8", "9"))]
    assert main(["recognize", *map(str, paths), "--column", "--json", "--model", "default"]) == 0
    rows = [json.loads(line) for line in capsys.readouterr().out.splitlines() if line.strip()]
    assert [r["text"] for r in rows] == ["7", "8", "9"] and all(r["box"] for r in rows)
    with pytest.raises(SystemExit, match="--shard"):
        main(["recognize", *map(str, paths), "--column", "--shard", "0/2"])


def _register_tree(root: Path) -> None:
    folder = root / "parish-rowid" / "validation"
    folder.mkdir(parents=True)
    names = [  # listed out of order, two sections, a letter row and a name that says nothing
        ("died_K1_0011a-DM_row_id_1.Jpg", "4"), ("died_K1_0010a-DM_row_id_2.Jpg", "2"), ("died_K1_0010a-DK_row_id_0.Jpg", "9"),
        ("died_K1_0010a-DM_row_id_10.Jpg", "3"), ("died_K1_0011a-DM_row_id_0.Jpg", "sn"), ("odd.Jpg", "5"),
    ]
    (folder / "labels.csv").write_text("filename,label\n" + "".join(f"{n},{lab}\n" for n, lab in names), encoding="utf-8")


def test_parish_rows_are_put_back_in_their_columns(tmp_path: Path):
    _register_tree(tmp_path)
    cols = parish_columns(tmp_path, "validation")
    assert [[(p.name.split("_row_id_")[0][-8:], lab) for p, lab in c] for c in cols] == [
        [("0010a-DK", "9")],
        [("0010a-DM", "2"), ("0010a-DM", "3"), ("0011a-DM", "sn"), ("0011a-DM", "4")],
        [("odd.Jpg"[-8:], "5")],
    ]
    with pytest.raises(Exception, match="split must be"):
        parish_columns(tmp_path, "dev")


@requires_real_data
def test_the_default_column_config_is_the_parish_training_labels_prior():
    if not (REAL_DATA / "parish-rowid" / "train").is_dir():
        pytest.skip("parish-rowid is not in the real data folder")
    cols = parish_columns(REAL_DATA, "train")
    fitted = column_prior([[lab for _, lab in c] for c in cols])
    default = ColumnConfig()
    assert fitted.none_rate == pytest.approx(default.none_rate, abs=1e-4)
    assert fitted.restart == pytest.approx(default.restart, abs=1e-4)
    assert [d for d, _ in fitted.steps] == [d for d, _ in default.steps]
    assert [p for _, p in fitted.steps] == pytest.approx([p for _, p in default.steps], abs=1e-4)
    assert sum(len(c) for c in cols) == 23240


def test_benchmark_column_on_a_list_reads_it_as_one_column(tmp_path: Path, capsys):
    lines = []
    for i, t in enumerate(("21", "22", "23", "24")):
        write_png(tmp_path / "imgs" / f"{i}.png", loose_crop(t)[0])
        lines.append(f"{i}.png {t}")
    (tmp_path / "gt.txt").write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert main(["benchmark", "--gt", str(tmp_path / "gt.txt"), "--images", str(tmp_path / "imgs"), "--json",
                 "--model", "default", "--column", "--batch-size", "2"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["column"] is True and res["field"] is True and res["accuracy"] == 1.0
    assert "operating_points" not in res, "a column's posteriors are not what the model's thresholds were fitted on"
