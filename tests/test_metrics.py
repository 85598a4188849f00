"""String metrics, read-rate-at-error analysis and digit boxes."""

from __future__ import annotations

import numpy as np
import pytest

from strings.read.boxes import digit_boxes
from strings.metrics import StringMetrics, edit_distance, read_rate_at_error, reject_curve


@pytest.mark.parametrize(
    ("a", "b", "d"), [("", "", 0), ("123", "123", 0), ("123", "13", 1), ("", "45", 2), ("1000", "100", 1), ("12", "21", 2)]
)
def test_edit_distance(a, b, d):
    assert edit_distance(a, b) == d == edit_distance(b, a)


def test_string_metrics_accuracy_and_cer():
    m = StringMetrics()
    m.update("1500", "1500")
    m.update("250", "25", name="x.png", confidence=0.4)
    s = m.summary()
    assert s["n"] == 2 and s["accuracy"] == 0.5
    assert s["cer"] == pytest.approx(1 / 7)
    assert m.misses == [("x.png", "250", "25", 0.4)]
    m.reset()
    assert m.summary()["n"] == 0 and not m.misses


def test_reject_curve_orders_by_confidence():
    read, err, thr = reject_curve([0.2, 0.9, 0.5], [False, True, True])
    assert read == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert err == pytest.approx([0.0, 0.0, 1 / 3])
    assert thr == [0.9, 0.5, 0.2]


def test_read_rate_at_error_picks_largest_accepted_set():
    # 100 items: the 60 most confident are right, then one error, then 39 more right.
    conf = list(np.linspace(1.0, 0.01, 100))
    correct = [True] * 100
    correct[60] = False
    out = read_rate_at_error(conf, correct, targets=(0.01, 0.001, 0.02))
    assert out["0.001"]["read_rate"] == pytest.approx(0.60)
    assert out["0.001"]["errors"] == 0
    assert out["0.01"]["read_rate"] == pytest.approx(1.0)  # 1 error in 100 = 1%
    assert out["0.02"]["read_rate"] == pytest.approx(1.0)
    # the upper bound of a 0-error set of 60 is about 6% (rule of three: 3/60 = 5%)
    assert 0.04 < out["0.001"]["error_upper95"] < 0.07


def test_read_rate_respects_confidence_ties():
    # Two items share the top confidence and one of them is wrong: no threshold separates them.
    out = read_rate_at_error([0.9, 0.9, 0.5], [True, False, True], targets=(0.0,))
    assert out["0"]["read_rate"] == 0.0


def test_digit_boxes_follow_the_ink():
    ink = np.zeros((32, 64), np.float32)
    ink[4:28, 4:14] = 1.0  # digit 1
    ink[6:26, 30:44] = 1.0  # digit 2
    boxes = digit_boxes(ink, [(2, 3), (9, 10)], stride=4, original_shape=(64, 128))  # 2x the size
    assert boxes[0] == (8, 8, 28, 56)
    assert boxes[1] == (60, 12, 88, 52)


def test_digit_boxes_drop_specks_and_keep_comparable_strokes():
    ink = np.zeros((32, 40), np.float32)
    ink[4:28, 10:14] = 1.0  # the digit's main stroke
    ink[6:20, 18:21] = 1.0  # a second stroke of comparable size (a broken digit): kept
    ink[30:32, 25:27] = 1.0  # a speck below and right: dropped
    assert digit_boxes(ink, [(2, 3)], stride=8, original_shape=(32, 40)) == [(10, 4, 21, 28)]


def test_digit_boxes_without_ink_fall_back_to_the_cut():
    boxes = digit_boxes(np.zeros((16, 32), np.float32), [(1, 2), (5, 6)], stride=4, original_shape=(16, 32))
    assert len(boxes) == 2
    for x0, y0, x1, y1 in boxes:
        assert 0 <= x0 < x1 <= 32 and (y0, y1) == (0, 16)


def test_wilson_interval_known_values_and_edges():
    from strings.metrics import wilson_interval

    lo, hi = wilson_interval(5, 10)
    assert lo == pytest.approx(0.2366, abs=1e-4) and hi == pytest.approx(0.7634, abs=1e-4)
    assert wilson_interval(0, 10) == (0.0, pytest.approx(0.2775, abs=1e-4))
    assert wilson_interval(128, 128)[1] == 1.0 and wilson_interval(128, 128)[0] == pytest.approx(0.9709, abs=1e-4)
    assert wilson_interval(0, 0) == (0.0, 1.0)
    with pytest.raises(ValueError):
        wilson_interval(11, 10)


def test_read_rate_at_error_reports_intervals():
    from strings.metrics import read_rate_at_error

    conf = [0.9, 0.8, 0.7, 0.6]
    out = read_rate_at_error(conf, [True, True, False, True], (0.0, 0.5))
    zero = out["0"]
    assert (zero["accepted"], zero["errors"]) == (2, 0)
    assert zero["read_rate_ci95"][0] < 0.5 < zero["read_rate_ci95"][1]
    assert zero["error_ci95"][0] == 0.0 and 0.6 < zero["error_ci95"][1] < 0.7
