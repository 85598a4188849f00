"""Reading a register column: each row's number weighed against its neighbours'.

A register numbers its rows, so the number in one row's cell is nearly always one more than the
number above it. Read one at a time, a faint ``42`` comes out ``4``; read as the row between a
``41`` and a ``43``, the model only has to say whether the ink there could be ``42``. Given a
column's crops in order (top to bottom, page after page), ``read_column``:

1. reads every crop as a loose field (``strings.read.field``) and keeps the places the field
   search found in it;
2. proposes for each row its own reading and the numbers its neighbours' readings imply (within
   ``ColumnConfig.window`` rows, up to ``spread`` either side of each);
3. scores each proposal by the model's CTC probability of exactly that string on each of the
   row's places (the best place counts), with the model's temperature;
4. runs a hidden Markov chain down the rows whose states are "this row holds the running number
   v" or "this row holds no running number" (no number, a 0, a letter): a number follows the last
   one by the steps of ``ColumnConfig`` (mostly +1), or starts again at 1, or is anything else;
5. gives each row the state of highest posterior marginal (forward-backward) and that marginal
   as its confidence. A row whose likeliest state is "no running number" keeps its own reading.

The chain's probabilities come from label sequences (``column_prior``); the defaults are those of
the parish-rowid training labels. Readings change only where the model's own scores allow it: a
clear ``7`` between a 41 and a 43 stays a ``7``, at a low confidence.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

import numpy as np
import torch

from strings.config import ColumnConfig, FieldConfig
from strings.decode.confidence import string_log_posteriors
from strings.decode.ctc import forced_reading
from strings.image import prepare
from strings.locate import Places, find_places
from strings.read.field import FieldReading, _shifted, read_fields

if TYPE_CHECKING:
    from strings.read.recognizer import Recognizer

__all__ = ["ColumnReader", "column_prior", "read_column"]

STEPS = (-1, 0, 1, 2, 3)  # the steps ``column_prior`` gives a probability of their own
_START = 0  # the running number before the first row (no row holds 0 as a running number)
_PRUNE_NATS = 30.0  # a running number this far (log-probability) below the row's best is not carried on


def _running(label: str) -> int | None:
    """The running number a row's label holds, or None (no number, a 0, a letter)."""
    return int(label) if label.isdigit() and int(label) > 0 else None


def column_prior(
    columns: Iterable[Sequence[str]], steps: Sequence[int] = STEPS, other_values: int = ColumnConfig.other_values,
    window: int = ColumnConfig.window, spread: int = ColumnConfig.spread,
) -> ColumnConfig:
    """The chain's probabilities counted from label sequences, each one column's row labels in
    order: the share of rows without a running number, and how each running number follows the
    last one (a 1 after a number over 2 is a restart, not a step)."""
    rows = none = follows = restarts = 0
    counted: Counter[int] = Counter()
    for column in columns:
        last: int | None = None
        for label in column:
            rows += 1
            value = _running(label.strip())
            if value is None:
                none += 1
                continue
            if last is not None:
                follows += 1
                if value == 1 and last > 2:
                    restarts += 1
                else:
                    counted[value - last] += 1
            last = value
    if rows == 0 or follows == 0:
        raise ValueError("column_prior needs at least one column with two numbered rows")
    return ColumnConfig(
        none_rate=none / rows,
        steps=tuple((d, counted[d] / follows) for d in steps),
        restart=restarts / follows,
        other_values=other_values,
        window=window,
        spread=spread,
    )


def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(x, axis=axis, keepdims=True)
    m = np.where(np.isfinite(m), m, 0.0)
    with np.errstate(divide="ignore"):
        return np.squeeze(m, axis=axis) + np.log(np.sum(np.exp(x - m), axis=axis))


class _Chain:
    """Log transition probabilities between running numbers."""

    def __init__(self, cfg: ColumnConfig) -> None:
        self.steps = dict(cfg.steps)
        self.restart = cfg.restart
        self.other = (1.0 - sum(self.steps.values()) - cfg.restart) / cfg.other_values
        self.log_none = np.log(cfg.none_rate)
        self.log_number = np.log1p(-cfg.none_rate)
        self.log_first = np.log(1.0 / cfg.other_values)  # the first number of a column: any

    def numbers(self, u: np.ndarray, v: np.ndarray) -> np.ndarray:
        """(U,) last numbers x (V,) next numbers -> (U, V) log P(next number | last), a number given."""
        d = v[None, :] - u[:, None]  # (U, V)
        p = np.full(d.shape, self.other)
        for step, prob in self.steps.items():
            p = p + np.where(d == step, prob, 0.0)
        p = p + np.where((v[None, :] == 1) & (u[:, None] > 2), self.restart, 0.0)
        out = self.log_number + np.log(p)
        return np.where(u[:, None] == _START, self.log_number + self.log_first, out)


@dataclasses.dataclass
class _Row:
    values: np.ndarray  # (V,) int: the running numbers proposed
    scores: np.ndarray  # (V,) log P(str(v) | the row's best place for it)
    places: list[int]  # per value, the index of that best place
    none: float  # log P(no running number here): what the proposals leave
    # per place, its (T_k, C) log-probs at the model's temperature
    log_probs: list[torch.Tensor] = dataclasses.field(default_factory=list)


def _proposals(readings: Sequence[str], window: int, spread: int) -> list[list[int]]:
    """Each row's own running number and those its neighbours' readings imply."""
    numbers = [_running(r) for r in readings]
    out = []
    for i, own in enumerate(numbers):
        values = {own} if own is not None else set()
        for j in range(max(0, i - window), min(len(numbers), i + window + 1)):
            if numbers[j] is not None:
                values |= {numbers[j] + d for d in range(-spread, spread + 1) if numbers[j] + d >= 1}
        out.append(sorted(values))
    return out


def _score_rows(rec: Recognizer, places: Sequence[Places], proposals: list[list[int]]) -> list[_Row]:
    """Every proposal on every place of its row: log P(string | place), the best place kept."""
    crops, owner = [], []
    for i, where in enumerate(places):
        for x0, y0, x1, y1 in where.boxes:
            crops.append(where.image[y0:y1, x0:x1])
            owner.append(i)
    t = rec.calibration.temperature if rec.calibration is not None else 1.0
    logits = rec.item_logits(crops) if crops else []
    per_row: list[list[torch.Tensor]] = [[] for _ in places]
    for i, lg in zip(owner, logits):
        per_row[i].append((lg.double() / t).log_softmax(-1))  # (T_k, C)
    rows = []
    for values, lps in zip(proposals, per_row):
        if not values or not lps:
            rows.append(_Row(np.zeros(0, dtype=np.int64), np.zeros(0), [], 0.0, lps))
            continue
        labels = [rec.alphabet.encode(str(v)) for v in values]
        frames = max(lp.shape[0] for lp in lps)
        padded = torch.stack([torch.nn.functional.pad(lp, (0, 0, 0, frames - lp.shape[0])) for lp in lps])  # (P, T, C)
        n_p, n_v = len(lps), len(values)
        lp_all = padded.repeat_interleave(n_v, dim=0)  # (P * V, T, C): place-major
        lengths = torch.tensor([lp.shape[0] for lp in lps]).repeat_interleave(n_v)  # (P * V,)
        scores = np.array(string_log_posteriors(lp_all, lengths, labels * n_p)).reshape(n_p, n_v)  # (P, V)
        best = scores.argmax(0)  # (V,)
        top = scores[best, np.arange(n_v)]  # (V,)
        mass = float(np.exp(top).sum())
        rows.append(_Row(np.array(values), top, [int(b) for b in best], float(np.log1p(-min(mass, 1.0 - 1e-6))), lps))
    return rows


def _marginals(rows: list[_Row], chain: _Chain) -> list[tuple[np.ndarray, float]]:
    """Forward-backward over the rows: each row's (V,) posterior of its numbers and of "none".

    A row's states are its proposals (it holds that running number) and one "none" state per
    running number the row above may have left (it holds none; the running number carries on)."""
    # states of row i: values (S_i,) int and none (S_i,) bool, built with the forward pass
    states: list[tuple[np.ndarray, np.ndarray]] = []
    emit: list[np.ndarray] = []

    def moves(i: int) -> np.ndarray:
        """(S_{i-1}, S_i) log P(state of row i | state of row i-1)."""
        (u, _), (v, none) = states[i - 1] if i > 0 else (np.array([_START]), np.zeros(1, bool)), states[i]
        out = np.full((len(u), len(v)), -np.inf)
        out[:, ~none] = chain.numbers(u, v[~none])
        out[:, none] = np.where(u[:, None] == v[None, none], chain.log_none, -np.inf)
        return out

    alpha: list[np.ndarray] = []
    prev = np.zeros(1)
    carried = np.array([_START])
    for i, row in enumerate(rows):
        values = np.concatenate([row.values, carried])
        none = np.concatenate([np.zeros(len(row.values), bool), np.ones(len(carried), bool)])
        states.append((values, none))
        emit.append(np.concatenate([row.scores, np.full(len(carried), row.none)]))  # (S_i,)
        prev = _logsumexp(prev[:, None] + moves(i), axis=0) + emit[i]  # (S_i,)
        alpha.append(prev)
        # the running numbers a "none" row below may carry on: those not already out of the race
        # (without this the carried set would grow with every row of the column)
        carried = np.unique(values[prev >= prev.max() - _PRUNE_NATS])
    beta: list[np.ndarray] = [np.zeros(0)] * len(rows)
    nxt = np.zeros(len(states[-1][0])) if rows else np.zeros(0)
    for i in range(len(rows) - 1, -1, -1):
        beta[i] = nxt
        if i > 0:
            nxt = _logsumexp(moves(i) + (emit[i] + nxt)[None, :], axis=1)  # (S_{i-1},)
    out = []
    for i, row in enumerate(rows):
        post = alpha[i] + beta[i]
        post = np.exp(post - _logsumexp(post, axis=0))
        k = len(row.values)
        out.append((post[:k], float(post[k:].sum())))
    return out


def read_column(
    rec: Recognizer, greys: Sequence[np.ndarray], sources: Sequence[str] | None = None,
    field: FieldConfig | None = None, column: ColumnConfig | None = None, batch_size: int = 64,
) -> list[FieldReading]:
    """Read one register column's crops (grey uint8, in row order) as field crops whose row
    numbers run on; see the module docstring. Readings a row's neighbours changed keep the
    field reading first among their ``others``."""
    field = field or rec.field_config
    column = column or ColumnConfig()
    sources = sources if sources is not None else [""] * len(greys)
    places = [find_places(g, field) for g in greys]
    fields = read_fields(rec, greys, sources, field, batch_size, places=places)
    if not fields:
        return []
    rows = _score_rows(rec, places, _proposals([f.text for f in fields], column.window, column.spread))
    out = []
    for f, where, row, (post, none), source in zip(fields, places, rows, _marginals(rows, _Chain(column)), sources):
        if len(post) == 0 or none >= post.max():
            out.append(f)  # no running number here: the row keeps what it reads
            continue
        k = int(post.argmax())
        text = str(int(row.values[k]))
        if text == f.text:
            out.append(dataclasses.replace(f, reading=dataclasses.replace(f.reading, confidence=float(post[k]))))
            continue
        place = row.places[k]
        box = where.boxes[place]
        ink, cut = prepare(where.image[box[1] : box[3], box[0] : box[2]], rec.preprocess)  # for the digit boxes
        decoded = forced_reading(row.log_probs[place], rec.alphabet.encode(text), text, float(post[k]))
        reading = rec._reading(decoded, cut, ink, source)
        others = ((f.reading, f.box), *f.others) if f.box is not None else f.others
        out.append(FieldReading(_shifted(reading, box, source), box, others))
    return out


class ColumnReader:
    """A recognizer that reads images as register rows in column context: what ``evaluate`` and
    ``strings benchmark --column`` read with. ``columns``: every row's path, column by column in
    row order (rows without a label among them); an image is read in the context of its column,
    each column once. Without ``columns``, the images of each call are one column."""

    def __init__(
        self, rec: Recognizer, columns: Sequence[Sequence[str]] | None = None, field: FieldConfig | None = None,
        column: ColumnConfig | None = None,
    ) -> None:
        self.rec = rec
        self.field = field or rec.field_config
        self.column = column or ColumnConfig()
        self.columns = [list(c) for c in columns] if columns is not None else None
        self._where = {name: k for k, c in enumerate(self.columns or []) for name in c}
        self._read: dict[str, FieldReading] = {}

    def recognize_greys(self, greys: Sequence[np.ndarray], names: Sequence[str] | None = None, batch_size: int = 64) -> list[FieldReading]:
        if self.columns is None:
            return read_column(self.rec, greys, names, self.field, self.column, batch_size)
        from strings.image import load_image

        if names is None:
            raise ValueError("a ColumnReader with columns reads images by name: pass their paths")
        out = []
        for name in names:
            if name not in self._where:
                raise ValueError(f"{name!r} is in none of the reader's columns")
            if name not in self._read:
                paths = self.columns[self._where[name]]
                readings = read_column(self.rec, [load_image(p) for p in paths], paths, self.field, self.column, batch_size)
                self._read.update(zip(paths, readings))
            out.append(self._read[name])
        return out
