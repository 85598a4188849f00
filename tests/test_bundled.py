"""The bundled default model, when the package ships one."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

import strings
from conftest import REAL_DATA, render_digits
from strings.data import open_dataset
from strings.digits import bundled_digit_models, load_digits
from strings.read.amount import written_scores
from strings.train.evaluate import evaluate
from strings.read.recognizer import WEIGHTS_DIR, bundled_models, resolve_model

BUNDLED_MODELS = bundled_models()
RECORDED_CAR_A_TEST_CORRECT = 117  # `strings benchmark car-a-partial --split test`: 0.9140625 x 128

needs_bundled = pytest.mark.skipif(
    not strings.list_models(), reason="no bundled model yet (strings/weights/ is empty and BUNDLED_MODELS lists none)"
)


def test_bundled_registry_is_consistent():
    """Every registered model is shipped and its recorded sha256 matches (checked by resolve_model)."""
    for name, (fname, digest) in BUNDLED_MODELS.items():
        assert len(digest) == 64, name
        assert (WEIGHTS_DIR / fname).is_file(), f"bundled model {name!r} lists {fname}, which is not in {WEIGHTS_DIR}"
        assert resolve_model(name) == WEIGHTS_DIR / fname
    if BUNDLED_MODELS:
        assert "default" in BUNDLED_MODELS, "strings.load() with no argument needs a 'default' entry"


def test_bundled_committee_calibrations_match_their_members():
    """Each committee in committees.json names bundled members by the hashes shipped, so its
    operating point holds for what ``strings.load`` loads."""
    import json

    from strings.read.committee import COMMITTEE_SEP
    from strings.read.loading import COMMITTEES_FILE

    if not COMMITTEES_FILE.is_file():
        pytest.skip("no bundled committee calibrations")
    for name, entry in json.loads(COMMITTEES_FILE.read_text(encoding="utf-8")).items():
        assert name.split(COMMITTEE_SEP) == list(entry["members"]), name
        for member, digest in entry["members"].items():
            assert BUNDLED_MODELS[member][1] == digest, f"{name}: {member} is not the file it was fitted with"
        rec = strings.load(name)
        assert rec.calibration is not None and rec.calibration.out_of_fold, name
        assert 0.0 < rec.operating_point(0.01) < 1.0


@needs_bundled
def test_bundled_default_loads_and_reads():
    rec = strings.load()
    assert rec.metadata.get("train_config"), "a bundled model records how it was trained"
    for text in ("1500", "42", "907", "31415", "8", "20000", "6748"):
        r = rec.recognize(render_digits(text))
        assert r.text == text, f"the bundled model reads clean rendered {text!r} as {r.text!r}"
        assert 0.5 <= r.confidence <= 1.0
        assert [d.char for d in r.digits] == list(text)
        assert all(d.box[0] < e.box[0] for d, e in zip(r.digits, r.digits[1:])), "digit boxes run left to right"
    for name in strings.list_models():
        assert strings.load(name).model is not None


@needs_bundled
@pytest.mark.skipif(REAL_DATA is None, reason="real data (car-a-partial) not found beside the checkout or in $STRINGS_DATA")
def test_bundled_default_on_real_car_a_partial():
    """The bundled model reproduces its recorded test accuracy (benchmarks/RESULTS.md: 117 of
    the 128 car-a-partial test crops, 91.41%), give or take one crop for CPU float rounding."""
    test = open_dataset("car-a-partial", "test", REAL_DATA)
    report = evaluate(strings.load(), test)
    assert report.n == 128
    correct = round(report.accuracy * report.n)
    assert abs(correct - RECORDED_CAR_A_TEST_CORRECT) <= 1, f"bundled model reads {correct}/128 real CAR-A test strings"


@pytest.mark.skipif(REAL_DATA is None, reason="real data (car-a-partial) not found beside the checkout or in $STRINGS_DATA")
@pytest.mark.skipif("fast" not in strings.list_models(), reason="no bundled 'fast' model")
def test_bundled_fast_model_reads_the_cheques_it_was_recorded_reading():
    """The third-compute model (RESULTS "Session 11": 118 of the 128 test crops, 92.19%), give or
    take one crop; it is the small network it says it is."""
    rec = strings.load("fast")
    assert rec.metadata["train_config"]["model"] == "densenet_ctc_fast"
    report = evaluate(rec, open_dataset("car-a-partial", "test", REAL_DATA))
    assert abs(round(report.accuracy * report.n) - 118) <= 1, f"fast reads {report.accuracy:.4f} of the test crops"


@pytest.mark.skipif(REAL_DATA is None, reason="real data (car-a-partial) not found beside the checkout or in $STRINGS_DATA")
@pytest.mark.skipif("general" not in strings.list_models(), reason="no bundled 'general' model")
def test_committee_of_default_and_general_reads_the_cheques_it_was_recorded_reading():
    """RESULTS "Session 12": default + general, rescored together, read 119 of the 128 test
    crops (each alone: 117 and 116), give or take one crop."""
    report = evaluate(strings.load("default+general"), open_dataset("car-a-partial", "test", REAL_DATA))
    assert abs(round(report.accuracy * report.n) - 119) <= 1, f"the committee reads {report.accuracy:.4f}"


@pytest.mark.skipif(REAL_DATA is None, reason="real data (car-a-partial) not found beside the checkout or in $STRINGS_DATA")
@pytest.mark.skipif(not {"general", "amounts"} <= set(strings.list_models()), reason="no bundled 'general' and 'amounts'")
def test_committee_with_the_amounts_writer_reads_the_values_it_was_recorded_reading():
    """RESULTS "Session 13": default + general vote on the digits (119 of 128), amounts writes
    the marks: 104 written forms and 114 values right, give or take one crop."""
    rec = strings.load("default+general+amounts")
    assert rec.reads_separators
    report = evaluate(rec, open_dataset("car-a-partial", "test", REAL_DATA))
    assert abs(round(report.accuracy * report.n) - 119) <= 1
    scores = written_scores(report.written)
    assert scores["n"] == 128
    assert abs(round(scores["value_accuracy"] * 128) - 114) <= 1, scores
    assert abs(round(scores["accuracy"] * 128) - 104) <= 1, scores


@needs_bundled
@pytest.mark.skipif(REAL_DATA is None, reason="real data (car-a-partial) not found beside the checkout or in $STRINGS_DATA")
def test_bundled_default_is_not_thrown_by_a_wide_margin():
    """A crop cut with a height of paper on every side reads about as well as the tight crop
    (the model trims to the ink first; before it did, 7% of validation crops survived this)."""
    test = open_dataset("car-a-partial", "test", REAL_DATA)
    samples = [test[i] for i in range(32)]
    rec = strings.load()

    def accuracy(images: list) -> float:
        return float(np.mean([r.text == s.label for r, s in zip(rec.recognize_greys(images), samples)]))

    def padded(g: np.ndarray) -> np.ndarray:
        h = g.shape[0]
        return cv2.copyMakeBorder(g, h, h, h, h, cv2.BORDER_CONSTANT, value=int(np.median(g)))

    tight = accuracy([s.image for s in samples])
    assert accuracy([padded(s.image) for s in samples]) >= tight - 3 / 32


@pytest.mark.skipif(REAL_DATA is None, reason="real digit sets not found beside the checkout or in $STRINGS_DATA")
@pytest.mark.parametrize("name", sorted(bundled_digit_models()))
def test_bundled_digit_model_reproduces_its_recorded_test_accuracy(name: str) -> None:
    """The manifest's test accuracy is what the shipped file scores on that test split today
    (within one digit's worth, for arithmetic that differs across CPUs)."""
    entry = bundled_digit_models()[name]
    clf = load_digits(name)
    clf.dark_ink = True  # dataset samples are dark on light, as `strings digits eval` sets
    report = evaluate(clf, open_dataset(entry["dataset"], "test", REAL_DATA), batch_size=512)
    assert abs(report.accuracy - entry["test_accuracy"]) <= 1.0 / report.n + 1e-4, (name, report.accuracy)


MEASURE_WORDS = {"path": "best-path probability", "posterior": "string posterior", "min_char": "minimum digit confidence",
                 "mean_char": "mean digit confidence", "margin": "two-best beam margin"}


@needs_bundled
def test_readme_names_the_bundled_models_confidence_measure():
    """The README's sentence on the bundled model's confidence comes from the model file."""
    import re

    from conftest import REPO

    cal = strings.load().calibration
    assert cal is not None
    text = " ".join((REPO / "README.md").read_text(encoding="utf-8").split())
    m = re.search(r"The bundled model uses the \*\*(.+?) at T = ([0-9.]+)\*\*", text)
    assert m, "README.md lost its sentence on the bundled model's confidence"
    assert m.group(1) == MEASURE_WORDS[cal.measure]
    assert float(m.group(2)) == pytest.approx(cal.temperature, abs=0.005)
