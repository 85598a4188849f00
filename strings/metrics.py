"""String-recognition metrics as small stateful classes (update / summary / reset)."""

from __future__ import annotations

from dataclasses import dataclass, field

__all__ = ["edit_distance", "StringMetrics"]


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
