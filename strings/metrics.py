"""String-recognition metrics as small stateful classes (update / summary / reset)."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

__all__ = [
    "align_strings", "centre_hits", "edit_distance", "StringMetrics", "acceptance", "accepted_at", "reject_curve",
    "read_rate_at_error",
]


def edit_distance(a: str, b: str) -> int:
    """Levenshtein distance (insertions, deletions, substitutions all cost 1)."""
    if len(a) < len(b):
        a, b = b, a
    prev = list(range(len(b) + 1))
    for i, ca in enumerate(a, 1):
        cur = [i]
        for j, cb in enumerate(b, 1):
            cur.append(min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (ca != cb)))
        prev = cur
    return prev[-1]


def align_strings(pred: str, truth: str) -> list[tuple[int, int]]:
    """Pairs (i, j) of predicted and true positions that a minimum-edit alignment matches or
    substitutes (insertions and deletions pair with nothing)."""
    n, m = len(pred), len(truth)
    d = [[0] * (m + 1) for _ in range(n + 1)]
    for i in range(n + 1):
        d[i][0] = i
    for j in range(m + 1):
        d[0][j] = j
    for i in range(1, n + 1):
        for j in range(1, m + 1):
            d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (pred[i - 1] != truth[j - 1]))
    pairs, i, j = [], n, m
    while i > 0 and j > 0:
        if d[i][j] == d[i - 1][j - 1] + (pred[i - 1] != truth[j - 1]):
            pairs.append((i - 1, j - 1))
            i, j = i - 1, j - 1
        elif d[i][j] == d[i - 1][j] + 1:
            i -= 1
        else:
            j -= 1
    return pairs[::-1]


Box = tuple[int, int, int, int]


def centre_hits(pred: str, pred_boxes: list[Box], truth: str, truth_boxes: list[Box]) -> tuple[int, int]:
    """(hits, pairs): how many aligned predicted digits have their box centre inside the
    matching true digit's box, out of the aligned pairs (see ``align_strings``)."""
    if len(pred_boxes) != len(pred) or len(truth_boxes) != len(truth):
        raise ValueError("one box per character is needed on both sides")
    hits = pairs = 0
    for i, j in align_strings(pred, truth):
        x0, y0, x1, y1 = pred_boxes[i]
        cx, cy = (x0 + x1) / 2, (y0 + y1) / 2
        g0, h0, g1, h1 = truth_boxes[j]
        hits += g0 <= cx <= g1 and h0 <= cy <= h1
        pairs += 1
    return hits, pairs


@dataclass
class StringMetrics:
    """Exact-match accuracy and character error rate (total edits / total reference length)."""

    n: int = 0
    correct: int = 0
    edits: int = 0
    ref_chars: int = 0
    misses: list[tuple[str, str, str, float]] = field(default_factory=list)  # (name, truth, pred, conf)

    def update(self, truth: str, pred: str, name: str = "", confidence: float = 0.0) -> None:
        self.n += 1
        d = edit_distance(truth, pred)
        self.edits += d
        self.ref_chars += len(truth)
        if d == 0:
            self.correct += 1
        else:
            self.misses.append((name, truth, pred, confidence))

    def summary(self) -> dict[str, float | int]:
        return {
            "n": self.n,
            "accuracy": self.correct / self.n if self.n else 0.0,
            "cer": self.edits / self.ref_chars if self.ref_chars else 0.0,
        }

    def reset(self) -> None:
        self.n = self.correct = self.edits = self.ref_chars = 0
        self.misses.clear()


Z95 = 1.959963984540054  # the standard normal's 97.5% quantile: two-sided 95% intervals


def wilson_interval(successes: int, n: int, z: float = Z95) -> tuple[float, float]:
    """The Wilson score interval (95% by default) for a rate of ``successes`` in ``n`` trials:
    unlike the normal approximation it stays inside [0, 1] and is honest at 0 or n successes,
    which is where a small test set's accuracy or error count usually sits.

    Example:
        >>> [round(x, 4) for x in wilson_interval(0, 10)]
        [0.0, 0.2775]
    """
    if n <= 0:
        return 0.0, 1.0
    if not 0 <= successes <= n:
        raise ValueError(f"successes must be in 0..{n}, got {successes}")
    p = successes / n
    denom = 1.0 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def reject_curve(confidences: list[float], correct: list[bool]) -> tuple[list[float], list[float], list[float]]:
    """Accept the most confident first: for every number accepted k = 1..n, the read rate k/n,
    the error rate among the accepted, and the confidence threshold that accepts them."""
    order = sorted(range(len(confidences)), key=lambda i: -confidences[i])
    n = len(order)
    read, err, thr = [], [], []
    wrong = 0
    for k, i in enumerate(order, 1):
        wrong += not correct[i]
        read.append(k / n)
        err.append(wrong / k)
        thr.append(confidences[i])
    return read, err, thr


def read_rate_at_error(
    confidences: list[float], correct: list[bool], targets: tuple[float, ...] = (0.01, 0.005, 0.001)
) -> dict[str, dict[str, float | None]]:
    """For each target error rate: the largest read rate whose accepted set errs at most that
    often, the threshold that gives it, a 95% Clopper-Pearson upper bound on the true error rate
    of that accepted set (few test images make the measured error rate uncertain), and 95%
    Wilson intervals on the read rate and on the accepted error rate."""
    read, err, thr = reject_curve(confidences, correct)
    out: dict[str, dict[str, float]] = {}
    n = len(read)
    for t in targets:
        ok = [k for k in range(n) if err[k] <= t + 1e-12]
        # ties: a threshold must accept all items with the same confidence or none of them
        ok = [k for k in ok if k + 1 == n or thr[k + 1] < thr[k]]
        if not ok:
            # threshold None: no confidence accepts anything at this error rate
            out[f"{t:g}"] = {"read_rate": 0.0, "threshold": None, "errors": 0, "accepted": 0, "error_upper95": 1.0,
                             "read_rate_ci95": list(wilson_interval(0, n)), "error_ci95": [0.0, 1.0]}
            continue
        k = max(ok)
        accepted = k + 1
        errors = round(err[k] * accepted)
        upper = _error_upper95(errors, accepted)
        out[f"{t:g}"] = {
            "read_rate": read[k], "threshold": thr[k], "errors": errors, "accepted": accepted, "error_upper95": upper,
            "read_rate_ci95": list(wilson_interval(accepted, n)), "error_ci95": list(wilson_interval(errors, accepted)),
        }
    return out


def _error_upper95(errors: int, accepted: int) -> float:
    """95% Clopper-Pearson upper bound on an accepted set's true error rate."""
    from scipy.stats import beta

    return float(beta.ppf(0.975, errors + 1, accepted - errors)) if errors < accepted else 1.0


def accepted_at(threshold: float | None, confidences: list[float], correct: list[bool]) -> dict[str, object]:
    """What a threshold fixed beforehand (on validation) does on a test set: see ``acceptance``.
    ``threshold`` None: nothing is accepted."""
    taken = [k for c, k in zip(confidences, correct) if threshold is not None and c >= threshold]
    return acceptance(len(taken), sum(not k for k in taken), len(confidences), threshold)


def acceptance(accepted: int, errors: int, n: int, threshold: float | None) -> dict[str, object]:
    """``accepted`` of ``n`` readings taken without a person, ``errors`` of them wrong: the read
    rate and the accepted error with 95% Wilson intervals, and the Clopper-Pearson upper bound."""
    return {
        "threshold": threshold, "n": n, "accepted": accepted, "read_rate": accepted / n if n else 0.0,
        "read_rate_ci95": list(wilson_interval(accepted, n)), "errors": errors,
        "error": errors / accepted if accepted else 0.0,
        "error_ci95": list(wilson_interval(errors, accepted)) if accepted else [0.0, 1.0],
        "error_upper95": _error_upper95(errors, accepted) if accepted else 1.0,
    }
