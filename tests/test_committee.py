"""Committees (``strings.load("a+b")``): every member scores every member's best-path reading,
the highest summed log-posterior wins; members must agree on digits and preprocessing; a member
that reads the amount marks writes them on the digits the others chose."""

from __future__ import annotations

import argparse
import dataclasses
import json
import math

import cv2
import numpy as np
import pytest
import torch

import strings
from conftest import render_digits
from strings.alphabet import Alphabet, digits_of
from strings.decode.confidence import string_log_posteriors
from strings.decode.ctc import EMPTY_CONFIDENCE, greedy_decode
from strings.read.amount import NO_OPERATING_POINT, written_forms
from strings.read.calibration import Calibration
from strings.read.committee import Committee

TEXTS = ("7", "42", "1500", "90210", "118")


def _frames(rows: list[dict[int, float]], classes: int = 11) -> torch.Tensor:
    """(T, C) logits: each row puts the given logits on its classes, -5 elsewhere."""
    out = torch.full((len(rows), classes), -5.0)
    for t, row in enumerate(rows):
        for k, v in row.items():
            out[t, k] = v
    return out


def _fixed_logits(member, logits: torch.Tensor) -> None:
    """Make ``member`` return ``logits`` ((B, T, C)) for any batch of that size."""

    def fake(images):
        assert len(images) == logits.shape[0]
        return logits.clone(), torch.full((logits.shape[0],), logits.shape[1], dtype=torch.long)

    member._logits = fake


@pytest.fixture
def members(tiny_checkpoint_factory):
    a = strings.load(tiny_checkpoint_factory("a.safetensors", seed=0))
    b = strings.load(tiny_checkpoint_factory("b.safetensors", seed=1))
    return a, b


def test_the_other_members_reading_wins_when_it_is_jointly_likelier(members):
    a, b = members
    # a: best path spells 1 (class 2), but 7 (class 8) is close; b: sure of 7.
    _fixed_logits(a, _frames([{0: 2.0}, {2: 2.0, 8: 1.8}, {0: 2.0}])[None])
    _fixed_logits(b, _frames([{0: 2.0}, {8: 4.0, 2: -1.0}, {0: 2.0}])[None])
    img = [np.zeros((32, 12), np.float32)]
    assert a._read_normalized(img)[0].text == "1"
    assert b._read_normalized(img)[0].text == "7"
    won = Committee([a, b])._read_normalized(img)[0]
    assert won.text == "7"
    assert won.spans == ((1, 2),), "digit frames come from the lead's forced alignment of the winner"
    assert 0.0 < won.confidence < 1.0


def test_winner_maximises_the_summed_log_posterior(members):
    a, b = members
    gen = torch.Generator().manual_seed(3)
    la, lb = torch.randn(6, 9, 11, generator=gen) * 3, torch.randn(6, 9, 11, generator=gen) * 3  # (B, T, C)
    _fixed_logits(a, la)
    _fixed_logits(b, lb)
    imgs = [np.zeros((32, 36), np.float32)] * 6
    got = Committee([a, b])._read_normalized(imgs)
    alpha = a.alphabet
    lengths = torch.full((6,), 9)
    lps = [x.double().log_softmax(-1) for x in (la, lb)]
    greedy = [greedy_decode(lp, lengths, alpha) for lp in lps]
    for i, dec in enumerate(got):
        proposals = {g[i].text for g in greedy}
        assert dec.text in proposals

        def score(text: str) -> float:
            return sum(string_log_posteriors(lp[i : i + 1], lengths[:1], [alpha.encode(text)])[0] for lp in lps)

        assert score(dec.text) == pytest.approx(max(score(t) for t in proposals))
        if dec.text:
            assert dec.confidence == pytest.approx(math.exp(score(dec.text) / 2))


def test_a_committee_of_one_model_twice_reads_as_that_model(trained_checkpoint):
    from strings.image import prepare

    single = strings.load(trained_checkpoint)
    pair = strings.load(f"{trained_checkpoint}+{trained_checkpoint}")
    assert isinstance(pair, Committee)
    assert pair.name.count("+") == 1
    images = [render_digits(t) for t in TEXTS]
    for img, one, both in zip(images, single.recognize_batch(images), pair.recognize_batch(images)):
        assert both.text == one.text
        assert [d.box for d in both.digits] == [d.box for d in one.digits]
        if one.text:  # a lone model's confidence is its best path; the committee's the string's posterior
            logits, lengths = single._logits([prepare(img, single.preprocess)[0]])
            lp = logits.double().log_softmax(-1)
            post = math.exp(string_log_posteriors(lp, lengths, [single.alphabet.encode(one.text)])[0])
            assert both.confidence == pytest.approx(post, rel=1e-6)


def test_an_onnx_committee_reads_its_batches_on_lanes_as_one_after_another(trained_checkpoint):
    """On two-threaded ONNX members a committee reads two width batches at once; the readings are
    those it gives one batch at a time. A member that cannot run lanes (PyTorch) turns them off."""
    pytest.importorskip("onnxruntime")
    name = f"{trained_checkpoint}+{trained_checkpoint}"
    pair = strings.load(name, backend="onnx", threads=2)
    assert pair.lanes == 2 and strings.load(name).lanes == 1
    greys = [render_digits(t) for t in TEXTS * 2]
    got = pair.recognize_greys(greys, batch_size=2)
    for member in pair.members:
        member.backend.lanes = 1
    assert pair.lanes == 1
    ref = pair.recognize_greys(greys, batch_size=2)
    assert [r.text for r in got] == [r.text for r in ref]
    assert [r.confidence for r in got] == pytest.approx([r.confidence for r in ref], rel=1e-4, abs=1e-6)


def test_blank_image_reads_empty_with_empty_confidence(trained_checkpoint):
    pair = strings.load(f"{trained_checkpoint}+{trained_checkpoint}")
    r = pair.recognize(np.full((32, 100), 255, np.uint8))
    assert r.text == ""
    assert r.confidence == EMPTY_CONFIDENCE


def test_committee_errors(members, trained_checkpoint, tiny_checkpoint_factory):
    a, b = members
    with pytest.raises(ValueError, match="at least two"):
        Committee([a])
    other = strings.load(tiny_checkpoint_factory("c.safetensors"))
    other.alphabet = Alphabet("0123456789X")  # the amount marks may differ, the digits may not
    with pytest.raises(ValueError, match="different alphabets"):
        Committee([a, other])
    taller = strings.load(tiny_checkpoint_factory("d.safetensors"))
    taller.preprocess = dataclasses.replace(taller.preprocess, height=taller.preprocess.height + 8)
    with pytest.raises(ValueError, match="prepare images differently"):
        Committee([a, taller])
    with pytest.raises(ValueError, match="beam_size=0"):
        strings.load(f"{trained_checkpoint}+{trained_checkpoint}", beam_size=4)
    with pytest.raises(ValueError, match="empty member"):
        strings.load(f"{trained_checkpoint}+")
    with pytest.raises(ValueError, match="no logits of its own"):
        Committee([a, b]).item_logits([np.zeros((32, 40), np.uint8)])
    with pytest.raises(ValueError, match="voters, members, weakest"):
        Committee([a, b], Calibration("path", 1.0, "val", ((0.9, True),)))


def test_member_names_may_carry_spaces_and_a_committee_is_not_exported(trained_checkpoint, tmp_path, capsys):
    from strings.cli.main import main

    pair = strings.load(f"{trained_checkpoint} + {trained_checkpoint}")
    assert isinstance(pair, Committee) and len(pair.members) == 2
    assert main(["export", "--model", f"{trained_checkpoint}+{trained_checkpoint}", "--onnx", str(tmp_path / "x.onnx")]) == 2
    assert "is a committee" in capsys.readouterr().err
    assert not (tmp_path / "x.onnx").exists()


def test_the_service_refuses_a_beam_for_a_committee(trained_checkpoint):
    from strings.serve.config import ServeConfig
    from strings.serve.errors import ServeError
    from strings.serve.state import Service

    name = f"{trained_checkpoint}+{trained_checkpoint}"
    service = Service(ServeConfig(model=name))
    service._load()  # what start() runs in the background
    try:
        assert service.load_error is None and isinstance(service.recognizer, Committee)
        assert service.for_beam(0) is service.recognizer
        with pytest.raises(ServeError, match="beam"):
            service.for_beam(4)
        from strings.serve.routes.common import reads_columns

        assert not reads_columns(service.recognizer) and reads_columns(strings.load(trained_checkpoint))
    finally:
        service.close()


def test_a_file_with_a_plus_in_its_name_is_one_model(trained_checkpoint, tmp_path):
    import shutil

    from strings.read.loading import member_names

    plus = shutil.copy(trained_checkpoint, tmp_path / "cheques+forms.safetensors")
    assert member_names(str(plus)) == [str(plus)]
    assert not isinstance(strings.load(str(plus)), Committee)
    assert member_names("default + general") == ["default", "general"]


AMOUNT = "0123456789.,-"  # classes: blank 0, digit d -> d + 1, "." 11, "," 12, "-" 13


def _writer(member):
    """``member`` made to read the amount marks (its logits are faked by the test)."""
    member.alphabet = Alphabet(AMOUNT)
    return member


def test_a_member_that_reads_marks_writes_the_digits_the_committee_chose(members):
    a, w = members
    w = _writer(w)
    # a reads 1000 with no marks; w reads 10,00
    _fixed_logits(a, _frames([{2: 3.0}, {0: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}])[None])
    _fixed_logits(w, _frames([{2: 3.0}, {0: 3.0}, {1: 3.0}, {12: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}], classes=14)[None])
    img = [np.zeros((32, 28), np.float32)]
    com = Committee([a, w])
    assert com.writer is w and com.reads_separators
    won = com._read_normalized(img)[0]
    assert won.text == "10,00"
    assert len(won.spans) == len(won.char_confidences) == 5, "the writer aligns every symbol, marks too"
    reading = com.recognize_greys([np.full((32, 28), 255, np.uint8)])[0]
    assert (reading.text, reading.written) == ("1000", "10,00")
    assert [d.char for d in reading.digits] == list("1000")


def test_where_the_writers_digits_lose_it_writes_the_winner_in_its_likeliest_form(members):
    a, w = members
    w = _writer(w)
    # a is sure of 1500; w reads 1.600 but finds 5 nearly as likely as 6
    _fixed_logits(a, _frames([{2: 4.0}, {0: 4.0}, {6: 4.0}, {0: 4.0}, {1: 4.0}, {0: 4.0}, {1: 4.0}])[None])
    rows = [{2: 3.0}, {11: 3.0}, {7: 2.0, 6: 1.8}, {0: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}]
    _fixed_logits(w, _frames(rows, classes=14)[None])
    img = [np.zeros((32, 28), np.float32)]
    assert w._read_normalized(img)[0].text == "1.600"
    won = Committee([a, w])._read_normalized(img)[0]
    assert won.text == "1.500"


def test_the_writer_does_not_vote_where_digit_readers_do(members):
    a, w = members
    w = _writer(w)
    _fixed_logits(a, _frames([{2: 2.0}, {0: 2.0}, {6: 2.0, 7: 1.5}, {0: 2.0}, {1: 2.0}, {0: 2.0}, {1: 2.0}])[None])
    _fixed_logits(w, _frames([{2: 6.0}, {11: 6.0}, {7: 6.0}, {0: 6.0}, {1: 6.0}, {0: 6.0}, {1: 6.0}], classes=14)[None])
    img = [np.zeros((32, 28), np.float32)]
    com = Committee([a, w])
    assert com.voters == (a,)
    won = com._read_normalized(img)[0]
    assert digits_of(won.text) == "1500", "a sure writer still only writes the digit readers' choice"


def test_a_committee_of_mark_readers_votes_with_marks_as_blanks(members):
    """Where every member reads marks, all vote, each scoring a digit string by every way it
    could write it: a frame where one sees a mark costs that proposal nothing."""
    a, w = members
    a, w = _writer(a), _writer(w)
    _fixed_logits(a, _frames([{2: 1.0, 3: 0.9}, {0: 3.0}, {1: 3.0}], classes=14)[None])  # 1 or 2, barely
    _fixed_logits(w, _frames([{3: 3.0}, {11: 3.0}, {1: 3.0}], classes=14)[None])  # surely "2.0"
    img = [np.zeros((32, 12), np.float32)]
    assert a._read_normalized(img)[0].text == "10"
    com = Committee([w, a])
    assert com.voters == (w, a) and com.writer is w
    assert com._read_normalized(img)[0].text == "2.0"


def test_a_writers_reading_that_is_no_amount_is_not_kept(members):
    a, w = members
    w = _writer(w)
    _fixed_logits(a, _frames([{2: 3.0}, {0: 3.0}, {0: 3.0}])[None])  # 1
    _fixed_logits(w, _frames([{2: 3.0}, {0: 3.0}, {13: 3.0}], classes=14)[None])  # "1-": a dash with no mark before it
    img = [np.zeros((32, 12), np.float32)]
    assert w._read_normalized(img)[0].text == "1-"
    won = Committee([a, w])._read_normalized(img)[0]
    assert won.text in written_forms("1") and won.text != "1-"


def test_an_uncalibrated_committee_reads_amounts_and_sends_every_one_to_review(members, trained_checkpoint, tmp_path, capsys):
    from strings.cli.main import main

    a, w = members
    w = _writer(w)
    _fixed_logits(a, _frames([{2: 3.0}, {0: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}])[None])
    _fixed_logits(w, _frames([{2: 3.0}, {0: 3.0}, {1: 3.0}, {12: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}], classes=14)[None])
    com = Committee([a, w])
    assert com.operating_point(0.01) is None
    with pytest.raises(ValueError, match="no calibration"):
        com.amount(com.recognize_greys([np.full((32, 28), 255, np.uint8)])[0])  # the digits-only view needs a threshold
    amount = com.amount_of(com.recognize_greys([np.full((32, 28), 255, np.uint8)])[0])
    assert (amount.written, str(amount.value), amount.status) == ("10,00", "10.00", "review")
    assert amount.reasons == (NO_OPERATING_POINT,) and amount.to_dict()["threshold"] is None
    # and through the command line, on a real (tiny, trained) committee
    img = tmp_path / "x.png"
    cv2.imwrite(str(img), render_digits("1500"))
    assert main(["recognize", str(img), "--amount", "--json", "--model", f"{trained_checkpoint}+{trained_checkpoint}"]) == 0
    captured = capsys.readouterr()
    row = json.loads(captured.out.strip().splitlines()[0])
    assert row["amount"]["status"] == "review" and NO_OPERATING_POINT in row["amount"]["reasons"]
    assert "no fitted operating point" in captured.err


def test_a_calibrated_committee_reports_its_measure_and_accepts_above_its_threshold(members):
    a, w = members
    w = _writer(w)
    _fixed_logits(a, _frames([{2: 6.0}, {0: 6.0}, {1: 6.0}, {0: 6.0}, {1: 6.0}, {0: 6.0}, {1: 6.0}])[None])
    _fixed_logits(w, _frames([{2: 3.0}, {0: 3.0}, {1: 3.0}, {12: 3.0}, {1: 3.0}, {0: 3.0}, {1: 3.0}], classes=14)[None])
    img = [np.zeros((32, 28), np.float32)]
    evidence = ((0.95, True), (0.9, True), (0.5, False), (0.4, True))
    by_measure = {}
    for measure in ("voters", "members", "weakest"):
        com = Committee([a, w], Calibration(measure, 1.0, "val", evidence))
        assert com.measure == measure and com.metadata["calibration"]["measure"] == measure
        assert com.operating_point(0.01) == pytest.approx(0.9)
        by_measure[measure] = com._read_normalized(img)[0].confidence
    # the writer is less sure of "1000" than the lead: a second opinion lowers the confidence
    assert by_measure["weakest"] < by_measure["members"] < by_measure["voters"]
    scored = Committee([a, w]).scored([np.full((32, 28), 255, np.uint8)])[0]
    assert scored.digits == "1000" and scored.voters == (True, False)
    assert by_measure["weakest"] == pytest.approx(math.exp(min(scored.log_posteriors)))
    assert by_measure["members"] == pytest.approx(math.exp(sum(scored.log_posteriors) / 2))


def test_a_writer_without_the_dash_writes_only_what_it_can_spell(members):
    a, w = members
    w.alphabet = Alphabet("0123456789.,")  # marks, but no zero-cents dash
    _fixed_logits(a, _frames([{2: 3.0}, {0: 3.0}, {6: 3.0}, {0: 3.0}])[None])  # 15
    _fixed_logits(w, _frames([{2: 3.0}, {0: 3.0}, {6: 3.0}, {0: 3.0}], classes=13)[None])
    com = Committee([a, w])
    won = com._read_normalized([np.zeros((32, 16), np.float32)])[0]
    assert digits_of(won.text) == "15" and "-" not in won.text


def test_a_writer_committee_reads_a_batch_as_it_reads_each_image(members):
    a, w = members
    w = _writer(w)
    gen = torch.Generator().manual_seed(5)
    la, lw = torch.randn(4, 8, 11, generator=gen) * 3, torch.randn(4, 8, 14, generator=gen) * 3  # (B, T, C)
    imgs = [np.zeros((32, 32), np.float32)] * 4
    _fixed_logits(a, la)
    _fixed_logits(w, lw)
    together = Committee([a, w])._read_normalized(imgs)
    for i in range(4):
        _fixed_logits(a, la[i : i + 1])
        _fixed_logits(w, lw[i : i + 1])
        alone = Committee([a, w])._read_normalized(imgs[:1])[0]
        assert (alone.text, alone.spans) == (together[i].text, together[i].spans)
        assert alone.confidence == pytest.approx(together[i].confidence)


def test_a_bundled_committee_calibration_holds_only_for_the_files_it_was_fitted_with(tmp_path, monkeypatch):
    from strings.read import loading

    cal = Calibration("weakest", 1.0, "val", ((0.9, True),))
    bundled = {"x": ("x.safetensors", "aa"), "y": ("y.safetensors", "bb")}
    monkeypatch.setattr(loading, "bundled_models", lambda: dict(bundled))
    record = loading.committee_record(["x", "y"], cal)
    path = tmp_path / "committees.json"
    path.write_text(json.dumps({"x+y": record}))
    assert loading.bundled_committee_calibration(["x", "y"], path) == cal
    assert loading.bundled_committee_calibration(["y", "x"], path) is None  # another committee
    bundled["y"] = ("y.safetensors", "changed")
    assert loading.bundled_committee_calibration(["x", "y"], path) is None
    with pytest.raises(ValueError, match="not bundled: z"):
        loading.committee_record(["x", "z"], cal)


def test_calibrating_a_committee_writes_its_record_and_refuses_members_that_saw_the_crops(
    trained_checkpoint, tmp_path, capsys, monkeypatch
):
    from strings.cli.main import main

    gt = tmp_path / "gt.txt"
    names = []
    for i, text in enumerate(["7", "42", "1500", "90210", "118", "33", "250", "6", "19", "804", "55", "1200"]):
        cv2.imwrite(str(tmp_path / f"{i}.png"), render_digits(text))
        names.append(f"{i}.png {text}")
    gt.write_text("\n".join(names) + "\n")
    out = tmp_path / "pair.json"
    pair = f"{trained_checkpoint}+{trained_checkpoint}"
    assert main(["calibrate", "--model", pair, "--gt", str(gt), "--images", str(tmp_path), "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["chosen"]["measure"] in ("voters", "members", "weakest") and "0.01" in report["out_of_fold"]
    record = json.loads(out.read_text())[pair]
    assert set(record) == {"members", "calibration"} and len(record["calibration"]["validation"]) == 12
    # a member whose validation slice differs from the lead's trained on some of the lead's crops
    from strings.cli.training import _calibration_set
    from strings.data import sources

    monkeypatch.setattr(sources, "validation_split", lambda cfg, root: (None, cfg.seed))  # the slice: its seed
    monkeypatch.setattr(sources, "held_out_names", lambda val: {"a.png", "b.png"} if val == 0 else {"b.png", "c.png"})
    args = argparse.Namespace(gt=None, images=None, data_root=None)
    lead, other = strings.load(trained_checkpoint), strings.load(trained_checkpoint)
    assert _calibration_set(args, Committee([lead, other])) == 0  # the same slice held out by both
    other.metadata = {**other.metadata, "train_config": {**other.metadata["train_config"], "seed": 1}}
    with pytest.raises(SystemExit, match="trained on 1 of the 2 validation crops"):
        _calibration_set(args, Committee([lead, other]))


def test_a_writer_committee_reads_nothing_where_no_member_sees_a_digit(members):
    a, w = members
    w = _writer(w)
    _fixed_logits(a, _frames([{0: 5.0}] * 4)[None])  # all blank
    _fixed_logits(w, _frames([{0: 5.0}, {11: 5.0}, {0: 5.0}, {0: 5.0}], classes=14)[None])  # a lone mark
    com = Committee([a, w], Calibration("weakest", 1.0, "val", ((0.9, True),)))
    won = com._read_normalized([np.zeros((32, 16), np.float32)])[0]
    assert (won.text, won.confidence) == ("", EMPTY_CONFIDENCE)
    amount = com.amount_of(com.recognize_greys([np.full((32, 16), 255, np.uint8)])[0])
    assert amount.status == "review" and amount.value is None
