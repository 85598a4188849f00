"""Which string confidence to trust, and where to draw the line.

A bank accepts a reading without a person only when its confidence clears a threshold chosen
for a target error rate. That works only if the confidence ranks right readings above wrong
ones. This module computes several candidate confidences from the same network output,
fits a softmax temperature, scores every candidate on a validation split by how well it ranks
(area under the risk-coverage curve, AURC: the mean error rate of the accepted set over all
read rates; lower is better), and keeps the best as a ``Calibration`` stored in the model file.

The candidate measures are defined in strings.decode.confidence. A committee has no logits of
its own: its candidates are values computed from its members (``calibrate_values``,
``cross_fitted_values``), chosen and thresholded the same way.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from strings.alphabet import Alphabet
from strings.decode.confidence import COMMITTEE_MEASURES, MEASURES, measure_values, string_posteriors
from strings.decode.ctc import Decoded, greedy_decode
from strings.metrics import read_rate_at_error, reject_curve, wilson_interval

__all__ = [
    "MEASURES", "Calibration", "CandidateScore", "aurc", "calibrate_values", "cross_fitted", "cross_fitted_values",
    "fit_temperature", "measure_values", "string_posteriors",
]

CROSS_FIT_FOLDS = 5

TEMPERATURE_GRID = tuple(float(t) for t in np.exp(np.linspace(np.log(0.25), np.log(8.0), 61)))


@dataclass(frozen=True)
class Calibration:
    """The chosen confidence measure and temperature, with the validation evidence for
    operating points: ``validation`` holds (confidence, correct) of every validation reading,
    so a threshold for any target error rate can be derived without the data."""

    measure: str = "path"
    temperature: float = 1.0
    fitted_on: str = ""
    validation: tuple[tuple[float, bool], ...] = ()
    # the operating points as a held-out fold saw them (``cross_fitted``): {max_error: {...}}
    out_of_fold: dict[str, dict[str, object]] | None = None

    def __post_init__(self) -> None:
        if self.measure not in MEASURES + COMMITTEE_MEASURES:
            known = ", ".join(MEASURES + COMMITTEE_MEASURES)
            raise ValueError(f"unknown confidence measure {self.measure!r}; known: {known}")
        if not (math.isfinite(self.temperature) and 0.05 <= self.temperature <= 50.0):
            raise ValueError(f"temperature must be a finite number in [0.05, 50], got {self.temperature!r}")

    def threshold(self, max_error: float) -> float:
        """The lowest confidence accepted at ``max_error`` on the validation readings
        (``inf``: no threshold reaches that error rate there, so every reading needs review)."""
        if not 0.0 <= max_error < 1.0:
            raise ValueError(f"max_error must be in [0, 1), got {max_error}")
        if not self.validation:
            raise ValueError("this model has no calibration evidence: run `strings calibrate` on it first")
        conf = [c for c, _ in self.validation]
        ok = [bool(k) for _, k in self.validation]
        thr = read_rate_at_error(conf, ok, (max_error,))[f"{max_error:g}"]["threshold"]
        return math.inf if thr is None else float(thr)

    def to_dict(self) -> dict[str, object]:
        d: dict[str, object] = {
            "measure": self.measure, "temperature": self.temperature, "fitted_on": self.fitted_on,
            "validation": [[c, k] for c, k in self.validation],
        }
        if self.out_of_fold is not None:
            d["out_of_fold"] = self.out_of_fold
        return d

    @classmethod
    def from_dict(cls, d: dict[str, object]) -> Calibration:
        if not isinstance(d, dict):
            raise ValueError(f"calibration must be a JSON object, got {type(d).__name__}")
        unknown = set(d) - {"measure", "temperature", "fitted_on", "validation", "out_of_fold"}
        if unknown:
            raise ValueError(f"unknown calibration keys: {', '.join(sorted(unknown))}")
        pairs = d.get("validation", [])
        if not isinstance(pairs, list) or not all(
            isinstance(p, list) and len(p) == 2 and isinstance(p[0], (int, float)) and isinstance(p[1], bool)
            for p in pairs
        ):
            raise ValueError("calibration validation must be a list of [confidence, correct] pairs")
        temperature = d.get("temperature", 1.0)
        if not isinstance(temperature, (int, float)) or isinstance(temperature, bool):
            raise ValueError(f"calibration temperature must be a number, got {temperature!r}")
        oof = d.get("out_of_fold")
        if oof is not None and not isinstance(oof, dict):
            raise ValueError("calibration out_of_fold must be a JSON object")
        return cls(
            str(d.get("measure", "path")), float(temperature), str(d.get("fitted_on", "")),
            tuple((float(c), bool(k)) for c, k in pairs), oof,
        )


def aurc(confidences: Sequence[float], correct: Sequence[bool]) -> float:
    """Area under the risk-coverage curve: the error rate of the accepted set averaged over
    every read rate from 1/n to 1. 0 when all wrong readings rank below all right ones."""
    if not confidences:
        return float("nan")
    _, err, _ = reject_curve(list(confidences), list(correct))
    return float(np.mean(err))


def _bce(conf: Sequence[float], correct: Sequence[bool]) -> float:
    p = np.clip(np.asarray(conf, dtype=np.float64), 1e-12, 1 - 1e-12)
    y = np.asarray(correct, dtype=np.float64)
    return float(-(y * np.log(p) + (1 - y) * np.log(1 - p)).mean())


def fit_temperature(
    logits: Sequence[Tensor], decoded: Sequence[Decoded], correct: Sequence[bool], alphabet: Alphabet
) -> float:
    """The temperature whose string posterior best predicts correctness (binary cross-entropy
    over ``TEMPERATURE_GRID``). ``logits`` holds one (T_i, C) tensor per reading."""
    labels = [alphabet.encode(d.text) for d in decoded]
    best_t, best_loss = 1.0, math.inf
    for t in TEMPERATURE_GRID:
        post = [string_posteriors((lg.double() / t).log_softmax(-1)[None], torch.tensor([lg.shape[0]]), [lab])[0]
                for lg, lab in zip(logits, labels)]
        loss = _bce(post, correct)
        if loss < best_loss - 1e-12:
            best_t, best_loss = t, loss
    return best_t


@dataclass(frozen=True)
class CandidateScore:
    """One (measure, temperature) candidate scored on a labelled set."""

    measure: str
    temperature: float
    aurc: float
    bce: float
    read_rate_at_error: dict[str, float]


def _padded(logits: Sequence[Tensor], temperature: float) -> tuple[Tensor, Tensor]:
    """Per-item (T_i, C) logits -> (B, T_max, C) float64 log-probs at ``temperature`` and (B,) lengths."""
    lengths = torch.tensor([lg.shape[0] for lg in logits], dtype=torch.long)
    lp = torch.nn.utils.rnn.pad_sequence([lg.double() / temperature for lg in logits], batch_first=True)
    return lp.log_softmax(-1), lengths  # (B, T_max, C), (B,)


def score_candidates(
    logits: Sequence[Tensor], labels: Sequence[str], alphabet: Alphabet, temperatures: Sequence[float] = (1.0,)
) -> tuple[list[CandidateScore], dict[tuple[str, float], list[float]], list[bool]]:
    """Read each item greedily and score every measure at every temperature on one labelled
    set; also returns each candidate's values and which readings are right."""
    scores, values, correct = [], {}, []
    for t in dict.fromkeys(temperatures):
        lp, lengths = _padded(logits, t)
        decoded = greedy_decode(lp, lengths, alphabet)  # the same strings at any temperature
        correct = [d.text == y for d, y in zip(decoded, labels)]
        for m in MEASURES:
            conf = measure_values(m, lp, lengths, decoded, alphabet)
            values[(m, t)] = conf
            scores.append(_candidate(m, t, conf, correct))
    return scores, values, correct


def choose(scores: Sequence[CandidateScore], order: Sequence[str] = MEASURES) -> CandidateScore:
    """The best ranking candidate: lowest AURC, then the higher read rate at 1% error, then the
    better-calibrated (lower cross-entropy), then the simplest (T = 1, earlier in ``order``)."""
    return min(scores, key=lambda s: (round(s.aurc, 12), -s.read_rate_at_error.get("0.01", 0.0), round(s.bce, 12),
                                      s.temperature != 1.0, list(order).index(s.measure)))


def _candidate(measure: str, temperature: float, conf: Sequence[float], correct: Sequence[bool]) -> CandidateScore:
    rr = read_rate_at_error(list(conf), list(correct), (0.05, 0.01, 0.005, 0.001))
    return CandidateScore(measure, temperature, aurc(conf, correct), _bce(conf, correct),
                          {k: float(v["read_rate"]) for k, v in rr.items()})


def calibrate(
    logits: Sequence[Tensor], labels: Sequence[str], alphabet: Alphabet, fitted_on: str
) -> tuple[Calibration, list[CandidateScore]]:
    """Fit a temperature, score all candidates on (T_i, C) logits of labelled images and keep
    the best (see ``choose``)."""
    lp, lengths = _padded(logits, 1.0)
    decoded = greedy_decode(lp, lengths, alphabet)
    correct = [d.text == y for d, y in zip(decoded, labels)]
    t_fit = fit_temperature(logits, decoded, correct, alphabet)
    scores, values, correct = score_candidates(logits, labels, alphabet, (1.0, t_fit))
    best = choose(scores)
    evidence = tuple((float(c), bool(k)) for c, k in zip(values[(best.measure, best.temperature)], correct))
    return Calibration(best.measure, best.temperature, fitted_on, evidence), scores


def cross_fitted(
    logits: Sequence[Tensor], labels: Sequence[str], alphabet: Alphabet, targets: Sequence[float] = (0.01,),
    folds: int = CROSS_FIT_FOLDS, seed: int = 0,
) -> dict[str, dict[str, object]]:
    """What the calibration does on images it did not see: the set is cut into ``folds``; on
    each, the measure, temperature and threshold are chosen on the other folds exactly as
    ``calibrate`` chooses them, then applied to it. Pooled over the folds, per target error rate:
    the read rate and the accepted error, with 95% Wilson intervals. A threshold fitted and
    scored on the same images reports the error it was fitted to; this does not."""
    def fit_and_apply(fit: list[int], held: list[int]) -> tuple[Calibration, list[float], list[bool]]:
        calib, _ = calibrate([logits[i] for i in fit], [labels[i] for i in fit], alphabet, "")
        lp, lengths = _padded([logits[i] for i in held], calib.temperature)
        decoded = greedy_decode(lp, lengths, alphabet)
        conf = measure_values(calib.measure, lp, lengths, decoded, alphabet)
        return calib, conf, [d.text == labels[i] for d, i in zip(decoded, held)]

    return _cross_fit(len(labels), fit_and_apply, targets, folds, seed)


def _cross_fit(
    n: int, fit_and_apply: Callable[[list[int], list[int]], tuple[Calibration, list[float], list[bool]]],
    targets: Sequence[float], folds: int, seed: int,
) -> dict[str, dict[str, object]]:
    """Cut ``n`` items into ``folds``; on each, ``fit_and_apply(fit, held)`` calibrates on the
    others and gives the held items' confidences and correctness; every target's threshold is
    applied to them and the accepted items and errors are pooled over the folds."""
    fold = _folds(n, folds, seed)
    counts = {t: [0, 0] for t in targets}  # accepted, errors
    for f in range(folds):
        fit = [i for i in range(n) if fold[i] != f]
        held = [i for i in range(n) if fold[i] == f]
        calib, conf, right = fit_and_apply(fit, held)
        for t in targets:
            thr = calib.threshold(t)
            taken = [k for c, k in zip(conf, right) if c >= thr]
            counts[t][0] += len(taken)
            counts[t][1] += sum(not k for k in taken)
    return _pooled(counts, n, folds)


def _folds(n: int, folds: int, seed: int) -> np.ndarray:
    if n < 2 * folds:
        raise ValueError(f"cross-fitting {folds} folds needs at least {2 * folds} labelled images, got {n}")
    return np.random.default_rng(seed).permutation(n) % folds


def _pooled(counts: dict[float, list[int]], n: int, folds: int) -> dict[str, dict[str, object]]:
    """Per target error rate, the held-out folds' (accepted, errors) pooled, with 95% Wilson intervals."""
    out: dict[str, dict[str, object]] = {}
    for t, (accepted, errors) in counts.items():
        out[f"{t:g}"] = {
            "folds": folds, "n": n, "accepted": accepted, "errors": errors,
            "read_rate": accepted / n, "read_rate_ci95": list(wilson_interval(accepted, n)),
            "error": errors / accepted if accepted else 0.0,
            "error_ci95": list(wilson_interval(errors, accepted)) if accepted else [0.0, 1.0],
        }
    return out


def calibrate_values(
    values: dict[str, Sequence[float]], correct: Sequence[bool], fitted_on: str,
    order: Sequence[str] = COMMITTEE_MEASURES,
) -> tuple[Calibration, list[CandidateScore]]:
    """``calibrate`` for readers without logits of their own (a committee): each candidate
    measure's value per reading is given; the best ranking one is kept (see ``choose``)."""
    scores = [_candidate(m, 1.0, values[m], correct) for m in order if m in values]
    if not scores:
        raise ValueError("no candidate confidence to calibrate")
    best = choose(scores, order)
    evidence = tuple((float(c), bool(k)) for c, k in zip(values[best.measure], correct))
    return Calibration(best.measure, 1.0, fitted_on, evidence), scores


def cross_fitted_values(
    values: dict[str, Sequence[float]], correct: Sequence[bool], targets: Sequence[float] = (0.01,),
    folds: int = CROSS_FIT_FOLDS, seed: int = 0, order: Sequence[str] = COMMITTEE_MEASURES,
) -> dict[str, dict[str, object]]:
    """``cross_fitted`` for ``calibrate_values``: on each fold, the measure and threshold are
    chosen on the other folds and applied to it; pooled as ``cross_fitted`` pools them."""
    def fit_and_apply(fit: list[int], held: list[int]) -> tuple[Calibration, list[float], list[bool]]:
        fit_values = {m: [v[i] for i in fit] for m, v in values.items()}
        calib, _ = calibrate_values(fit_values, [correct[i] for i in fit], "", order)
        return calib, [values[calib.measure][i] for i in held], [bool(correct[i]) for i in held]

    return _cross_fit(len(correct), fit_and_apply, targets, folds, seed)
