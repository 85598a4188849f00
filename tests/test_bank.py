"""Issue 5 pieces: confidence candidates and calibration, amount results, the amount prior
for beam search, and the digit-box metric."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

from strings.alphabet import Alphabet
from strings.read.amount import format_amount, review_reasons
from strings.decode.amount_lm import EOS, AmountNgram
from strings.read.calibration import MEASURES, Calibration, aurc, calibrate, choose, cross_fitted, measure_values, string_posteriors
from strings.decode.ctc import BeamSearchDecoder, greedy_decode
from strings.metrics import align_strings, centre_hits
from strings.read.recognizer import Recognizer
from strings.read.loading import load

DIGITS = Alphabet("0123456789")


def _random_log_probs(b: int, t: int, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(b, t, 11, generator=g, dtype=torch.float64) * 3).log_softmax(-1)  # (B, T, C)


def _brute_posterior(lp: torch.Tensor, label: list[int]) -> float:
    """Sum of the probabilities of every frame path that collapses to ``label``."""
    t_len, c = lp.shape
    total = 0.0
    for path in itertools.product(range(c), repeat=t_len):
        out, prev = [], 0
        for k in path:
            if k != 0 and k != prev:
                out.append(k)
            prev = k
        if out == label:
            total += math.exp(sum(float(lp[t, k]) for t, k in enumerate(path)))
    return total


def test_string_posterior_matches_brute_force():
    lp = _random_log_probs(1, 4)[:, :, :4].log_softmax(-1)  # 3 symbols + blank keeps 4^4 paths
    for label in ([], [1], [2, 2], [1, 3], [3, 2, 1]):
        got = string_posteriors(lp, torch.tensor([4]), [label])[0]
        assert got == pytest.approx(_brute_posterior(lp[0], label), rel=1e-9, abs=1e-15)


def test_posteriors_of_all_strings_sum_to_one():
    lp = _random_log_probs(1, 3)[:, :, :3].log_softmax(-1)  # blank + 2 symbols, 3 frames
    strings = [[]] + [list(s) for n in (1, 2, 3) for s in itertools.product((1, 2), repeat=n)]
    total = sum(string_posteriors(lp, torch.tensor([3]), [s])[0] for s in strings)
    assert total == pytest.approx(1.0, abs=1e-12)


@pytest.mark.parametrize("measure", MEASURES)
def test_measures_are_probability_like_and_respect_lengths(measure):
    lp = _random_log_probs(3, 12, seed=1)
    lengths = torch.tensor([12, 7, 3])
    dec = greedy_decode(lp, lengths, DIGITS)
    vals = measure_values(measure, lp, lengths, dec, DIGITS)
    assert len(vals) == 3 and all(0.0 <= v <= 1.0 for v in vals)
    # an item's value depends only on its own valid frames
    alone = measure_values(measure, lp[1:2, :7], lengths[1:2], dec[1:2], DIGITS)
    assert alone[0] == pytest.approx(vals[1], rel=1e-9)


def test_path_measure_is_greedy_confidence_and_posterior_is_at_least_it():
    lp = _random_log_probs(4, 10, seed=2)
    lengths = torch.full((4,), 10)
    dec = greedy_decode(lp, lengths, DIGITS)
    path = measure_values("path", lp, lengths, dec, DIGITS)
    post = measure_values("posterior", lp, lengths, dec, DIGITS)
    assert path == pytest.approx([d.confidence for d in dec])
    assert all(p >= q - 1e-12 for p, q in zip(post, path))


def test_aurc_orders_rankings():
    correct = [True, True, False, True, False]
    perfect = [0.9, 0.8, 0.1, 0.7, 0.2]
    inverted = [0.1, 0.2, 0.9, 0.3, 0.8]
    assert aurc(perfect, correct) < aurc(inverted, correct)
    assert aurc([0.9, 0.8], [True, True]) == 0.0


def test_calibration_threshold_and_roundtrip():
    evidence = ((0.99, True), (0.95, True), (0.9, False), (0.8, True), (0.5, False))
    cal = Calibration("min_char", 1.3, "val", evidence)
    assert cal.threshold(0.0) == pytest.approx(0.95)  # the two above the first wrong one
    assert cal.threshold(0.34) == pytest.approx(0.8)  # 1 wrong of 4
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert Calibration("path", 1.0, "val", ((0.9, False),)).threshold(0.01) == math.inf
    with pytest.raises(ValueError, match="unknown confidence measure"):
        Calibration("nope")
    with pytest.raises(ValueError, match="temperature"):
        Calibration("path", float("nan"))
    with pytest.raises(ValueError, match="unknown calibration keys"):
        Calibration.from_dict({"measure": "path", "extra": 1})
    with pytest.raises(ValueError, match="no calibration evidence"):
        Calibration().threshold(0.01)


def test_choose_prefers_lower_aurc_then_simpler():
    from strings.read.calibration import CandidateScore

    a = CandidateScore("posterior", 1.5, 0.02, 0.3, {"0.01": 0.5})
    b = CandidateScore("min_char", 1.0, 0.02, 0.3, {"0.01": 0.5})
    c = CandidateScore("path", 1.0, 0.05, 0.2, {"0.01": 0.9})
    assert choose([a, b, c]) is b


def test_calibrate_on_logits_picks_a_candidate_with_evidence():
    g = torch.Generator().manual_seed(3)
    logits = [torch.randn(n, 11, generator=g, dtype=torch.float64) * 4 for n in (6, 9, 12, 5, 8)]
    lp = [x.log_softmax(-1)[None] for x in logits]
    labels = [greedy_decode(p, torch.tensor([p.shape[1]]), DIGITS)[0].text for p in lp]
    labels[1] = labels[1] + "7"  # one wrong reading
    cal, scores = calibrate(logits, labels, DIGITS, "unit")
    # the choice is the best-ranking candidate, by AURC recomputed here from its own evidence
    best = min(scores, key=lambda c: (c.aurc, c.bce))
    assert (cal.measure, cal.temperature) == (best.measure, best.temperature)
    # the stored evidence is the chosen measure's value on each item at the chosen temperature
    for (conf, ok), x, label in zip(cal.validation, logits, labels):
        tempered = (x / cal.temperature).log_softmax(-1)[None]
        dec = greedy_decode(tempered, torch.tensor([x.shape[0]]), DIGITS)
        assert conf == pytest.approx(measure_values(cal.measure, tempered, torch.tensor([x.shape[0]]), dec, DIGITS)[0])
        assert ok == (dec[0].text == label)
    assert [ok for _, ok in cal.validation] == [True, False, True, True, True]


def test_cross_fitted_thresholds_are_scored_on_held_out_folds():
    """Each fold's threshold is fitted without it: on a set whose confidences do not rank at
    all, the in-sample threshold reports 0 errors while the held-out folds show the errors."""
    g = torch.Generator().manual_seed(5)
    logits = [torch.randn(n, 11, generator=g, dtype=torch.float64) * 3 for n in [6, 8, 10, 7] * 10]
    lp = [x.log_softmax(-1)[None] for x in logits]
    labels = [greedy_decode(p, torch.tensor([p.shape[1]]), DIGITS)[0].text for p in lp]
    wrong = list(range(0, 40, 3))
    for i in wrong:
        labels[i] += "9"
    oof = cross_fitted(logits, labels, DIGITS, (0.01, 0.5), folds=4)
    strict, loose = oof["0.01"], oof["0.5"]
    assert strict["n"] == loose["n"] == 40 and strict["folds"] == 4
    assert loose["accepted"] >= strict["accepted"]
    assert 0 <= strict["errors"] <= strict["accepted"] <= 40
    assert loose["errors"] > 0  # a lax threshold lets held-out wrong readings through
    lo, hi = loose["error_ci95"]
    assert lo <= loose["error"] <= hi
    assert Calibration.from_dict(Calibration("path", 1.0, "v", ((0.5, True),), oof).to_dict()).out_of_fold == oof
    with pytest.raises(ValueError, match="at least"):
        cross_fitted(logits[:5], labels[:5], DIGITS)


def test_values_calibration_chooses_the_better_ranking_measure_and_cross_fits_it():
    """A committee's candidates are given as values: the one that ranks right above wrong is
    kept, its threshold holds the error, and held-out folds are scored with thresholds and
    measures fitted without them."""
    from strings.read.calibration import calibrate_values, cross_fitted_values

    rng = np.random.default_rng(0)
    correct = [bool(x) for x in rng.random(60) < 0.8]
    ranks = [0.6 + 0.4 * rng.random() if k else 0.5 * rng.random() for k in correct]  # separates right from wrong
    noise = [float(x) for x in rng.random(60)]  # does not
    cal, scores = calibrate_values({"voters": noise, "weakest": ranks}, correct, "unit")
    assert cal.measure == "weakest" and cal.temperature == 1.0 and len(cal.validation) == 60
    assert {s.measure for s in scores} == {"voters", "weakest"}
    thr = cal.threshold(0.01)
    assert all(k for c, k in zip(ranks, correct) if c >= thr)
    oof = cross_fitted_values({"voters": noise, "weakest": ranks}, correct, (0.01,), folds=5)["0.01"]
    assert oof["n"] == 60 and oof["errors"] == 0 and oof["accepted"] >= 0.6 * sum(correct)
    oof_noise = cross_fitted_values({"voters": noise}, correct, (0.5,), folds=5)["0.5"]
    assert oof_noise["errors"] > 0  # a measure that does not rank lets held-out errors through
    with pytest.raises(ValueError, match="no candidate"):
        calibrate_values({"path": ranks}, correct, "unit")  # not a committee measure


def test_committee_confidences_combine_member_posteriors():
    from strings.decode.confidence import committee_confidence

    lps, voters = [math.log(0.9), math.log(0.4)], [True, False]
    assert committee_confidence("voters", lps, voters) == pytest.approx(0.9)
    assert committee_confidence("members", lps, voters) == pytest.approx(0.6)
    assert committee_confidence("weakest", lps, voters) == pytest.approx(0.4)
    assert committee_confidence("weakest", [-math.inf, 0.0], voters) == 0.0
    with pytest.raises(ValueError, match="unknown committee confidence"):
        committee_confidence("path", lps, voters)


def test_a_fixed_threshold_on_a_test_set_reports_what_it_accepts():
    from strings.metrics import accepted_at

    got = accepted_at(0.5, [0.9, 0.8, 0.6, 0.2], [True, False, True, True])
    assert (got["accepted"], got["errors"], got["read_rate"]) == (3, 1, 0.75)
    assert got["error_ci95"][0] < 1 / 3 < got["error_upper95"]
    assert accepted_at(None, [0.9], [True])["accepted"] == 0


def _hand_min_char(logits: torch.Tensor, temperature: float) -> tuple[str, float]:
    """Greedy reading and minimum digit confidence of (T, C) logits, computed by hand."""
    p = (logits / temperature).softmax(-1)
    best = p.argmax(-1).tolist()
    text, confs, prev = "", [], 0
    for t, k in enumerate(best):
        if k != 0 and k != prev:
            text += DIGITS.symbols[k - 1]
            confs.append(float(p[t, k]))
        elif k != 0:
            confs[-1] = max(confs[-1], float(p[t, k]))
        prev = k
    return text, (min(confs) if confs else 0.0)


def test_recognizer_uses_calibration(tiny_checkpoint, digit_images):
    base = load(tiny_checkpoint)
    greys = [g for _, g in digit_images]
    cal = Calibration("min_char", 2.0, "unit", ((0.9, True),))
    calibrated = Recognizer(base.model, base.preprocess, base.metadata, calibration=cal)
    plain, tempered = base.recognize_batch(greys), calibrated.recognize_batch(greys)
    assert [r.text for r in plain] == [r.text for r in tempered]  # temperature keeps the argmax
    for r, logits in zip(tempered, base.item_logits(greys)):
        text, expect = _hand_min_char(logits, 2.0)
        assert r.text == text
        assert r.confidence == pytest.approx(expect, rel=1e-6)


def test_an_empty_reading_has_a_low_confidence_everywhere(tiny_checkpoint):
    """Blank paper, flat grey and noise decode to nothing; that must never outrank a reading."""
    rng = np.random.default_rng(0)
    images = {"blank": np.full((32, 96), 255, np.uint8), "flat grey": np.full((32, 96), 128, np.uint8),
              "noise": rng.integers(0, 256, (32, 96)).astype(np.uint8)}
    base = load(tiny_checkpoint)
    silent = Recognizer(base.model, base.preprocess, base.metadata)
    with torch.no_grad():  # a head that always says blank, with certainty
        silent.model.head.bias.fill_(0.0)
        silent.model.head.bias[0] = 50.0
    silent = Recognizer(silent.model, base.preprocess, base.metadata)  # refold the changed head
    for measure in MEASURES:
        rec = Recognizer(silent.model, base.preprocess, base.metadata, calibration=Calibration(measure, 1.0, "unit", ((0.5, True),)))
        for name, img in images.items():
            r = rec.recognize(img)
            assert r.text == "" and r.confidence == 0.0, (measure, name, r)
            amount = rec.amount(r, max_error=0.01)
            assert amount.needs_review and "no digits read" in amount.reasons, (measure, name)
    for name, img in images.items():  # uncalibrated (best-path) and beam confidences too
        assert silent.recognize(img).confidence == 0.0, name
        beam = Recognizer(silent.model, base.preprocess, base.metadata, beam_size=4)
        assert beam.recognize(img).confidence == 0.0, name


def test_amount_needs_calibration_and_flags_review(tiny_checkpoint, digit_images):
    from strings.read.recognizer import Reading

    rec = load(tiny_checkpoint)
    reading = rec.recognize(digit_images[2][1])
    with pytest.raises(ValueError, match="strings calibrate"):
        rec.amount(reading)
    # on this evidence the lowest confidence with no error above it is 0.8
    rec.calibration = Calibration("path", 1.0, "unit", ((0.95, True), (0.8, True), (0.6, False), (0.3, True)))
    cases = [  # (text, confidence) -> (needs review, reasons)
        (("1250", 0.9), (False, ())),
        (("1250", 0.8), (False, ())),
        (("1250", 0.7), (True, ("confidence 0.7000 below 0.8000",))),
        (("0125", 0.99), (True, ("leading zero",))),
        (("", 0.0), (True, ("no digits read", "confidence 0.0000 below 0.8000"))),
    ]
    for (text, conf), (review, reasons) in cases:
        amt = rec.amount(Reading(text, conf, ()), max_error=0.01)
        assert amt.threshold == pytest.approx(0.8)
        assert (amt.needs_review, amt.reasons) == (review, reasons), (text, conf)
        assert amt.to_dict()["reasons"] == list(reasons)


def test_format_amount_and_reasons():
    assert format_amount("1250") == "1,250"
    assert format_amount("125000", thousands=".") == "125.000"
    assert format_amount("125000", decimals=2) == "1,250.00"
    assert format_amount("5", decimals=2) == "0.05"
    assert format_amount("") == ""
    assert review_reasons("1500", 0.99, 0.9) == []
    assert review_reasons("0150", 0.99, 0.9) == ["leading zero"]
    assert review_reasons("", 0.99, 0.9) == ["no digits read"]
    assert review_reasons("15", 0.5, 0.9)[0].startswith("confidence 0.5000 below")


def test_ngram_is_a_distribution_and_learns_amounts():
    lm = AmountNgram.fit(["1500", "2000", "12000", "500", "3000"], "0123456789", order=3)
    for ctx in ("", "1", "15", "9"):
        total = sum(math.exp(lm.logprob(ctx, s)) for s in [*"0123456789", EOS])
        assert total == pytest.approx(1.0)
    assert lm.logprob("", "0") < lm.logprob("", "1")  # amounts do not start with 0
    assert lm.logprob("20", "0") > lm.logprob("20", "7")
    assert AmountNgram.from_dict(lm.to_dict()) == lm
    with pytest.raises(ValueError, match="outside"):
        AmountNgram.fit(["12a"], "0123456789")
    with pytest.raises(ValueError, match="bad amount n-gram"):
        AmountNgram.from_dict({"symbols": "0123456789"})


def test_beam_with_zero_weight_lm_equals_plain_beam():
    lp = _random_log_probs(4, 14, seed=4)
    lengths = torch.tensor([14, 11, 8, 5])
    lm = AmountNgram.fit(["100", "250", "9000"], "0123456789")
    plain = BeamSearchDecoder(DIGITS, 8)(lp, lengths)
    zero = BeamSearchDecoder(DIGITS, 8, lm=lm, lm_weight=0.0)(lp, lengths)
    assert [h[0].text for h in plain] == [h[0].text for h in zero]
    with pytest.raises(ValueError, match="LM symbols"):
        BeamSearchDecoder(Alphabet("0123"), 4, lm=lm)


def test_align_and_centre_hits():
    assert align_strings("1500", "1500") == [(0, 0), (1, 1), (2, 2), (3, 3)]
    assert align_strings("150", "1500") == [(0, 0), (1, 1), (2, 3)]  # one 0 deleted; the last 0s pair up
    assert align_strings("1700", "1500") == [(0, 0), (1, 1), (2, 2), (3, 3)]  # a substitution pairs
    assert align_strings("", "12") == []
    truth = [(0, 0, 10, 10), (10, 0, 20, 10)]
    assert centre_hits("12", [(1, 1, 9, 9), (11, 1, 19, 9)], "12", truth) == (2, 2)
    assert centre_hits("12", [(1, 1, 9, 9), (0, 0, 4, 4)], "12", truth) == (1, 2)
    assert centre_hits("2", [(11, 1, 19, 9)], "12", truth) == (1, 1)  # aligned to the second digit
    with pytest.raises(ValueError):
        centre_hits("12", [(0, 0, 1, 1)], "12", truth)
