"""Frozen configuration records for the model, its preprocessing and training.

Every record rejects unknown keys (a typo in a config file is an error, not a silent default)
and round-trips through plain dicts, which is how checkpoints store them.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any, TypeVar

from strings.alphabet import AMOUNT_SYMBOLS

__all__ = [
    "ColumnConfig", "FieldConfig", "ModelConfig", "PreprocessConfig", "DigitNetConfig", "DigitPreprocessConfig", "TrainConfig", "DataSource", "TASKS",
    "MODEL_CONFIGS", "DIGIT_CONFIGS", "from_dict", "to_dict", "load_train_file",
]


T = TypeVar("T")


@dataclass(frozen=True)
class PreprocessConfig:
    """How any image becomes model input: grey, ink bright, fixed height, aspect kept."""

    height: int = 32
    min_width: int = 16
    max_width: int = 512
    # Contrast stretch between these percentiles of the grey levels before inversion.
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    # Trim the crop to its ink first (strings.image.ink_box), so that a generous margin
    # does not shrink the digits: the share of stroke mass ignored at each end of each axis
    # (specks, a stray dot), then the paper kept around the ink box, in ink-box heights.
    trim: bool = False
    trim_ink_share: float = 0.002
    trim_margin: float = 0.2


@dataclass(frozen=True)
class FieldConfig:
    """How a loose field crop is searched for its string (strings.locate). Sizes are shares of
    the crop's height, width or area, so the same record fits a 200-px register cell and a
    2,000-px scan of a form box."""

    margin_level: float = 0.45  # a column/row whose median grey is under this share of the paper is scan margin
    margin_width: float = 0.15  # and this wide at least (share of the crop's width / height: not an underline)
    margin_pad: float = 0.03  # and this much more of the crop's short side (the margin's soft edge)
    background_kernel: float = 0.25  # closing window that estimates the paper's shading
    ink_level: float = 0.72  # a pixel darker than this share of its local paper is ink, at least
    faint_level: float = 0.9  # and at most: Otsu's split of the crop's levels, clipped to these two
    line_length: float = 0.35  # a straight stroke this long (share of width / height) may be a ruled line
    rule_span: float = 0.8  # an upright one is, where it spans this share of the height or meets rules at both ends
    rule_aspect: float = 6.0  # a stroke this many times longer than thick, and long, is a piece of a rule
    min_stroke_area: float = 0.0002  # strokes under this share of the crop's area are specks
    join_overlap: float = 0.2  # strokes join when their vertical overlap is this share of the shorter
    join_gap: float = 0.9  # and the gap between them is under this share of the shorter one's height
    # and the taller is at most this many times the shorter (the ragged edge of a scan margin
    # is not part of the number beside it: parish validation 93.33 -> 93.40%, 2,697 crops)
    join_height_ratio: float = 6.0
    stack_gap: float = 0.0  # strokes one above the other join across a gap this small (share of height; 0: only
    # touching ones: a wider reach joined numbers to their underlines, 70% -> 65% of 200 parish train crops read)
    # where nothing of a string's height is found at all, search again with every pixel under
    # faint_level counted as ink: a small thin 0 in pale ink fell under the split Otsu chose and
    # its pieces were specks (26 of the 176 parish validation misses were lone 0s read as
    # nothing; 2,521 -> 2,546 of 2,697, combs unchanged)
    faint_retry: bool = True
    min_height: float = 0.04  # a candidate string is this tall at least
    max_height: float = 0.6  # and this tall at most (share of the crop's height); taller writing
    tight_aspect: float = 1.0  # at least this many times wider than tall makes the crop tight: read whole, as it came
    # a group taller than max_height is grouped again without its strokes taller than this share
    # of the crop (a tilted rule's or a margin edge's remains joined to an underline swallowed the
    # number beside it; parish validation 2,519 -> 2,521 of 2,697, combs unchanged); 0: off
    split_tall: float = 0.3
    split_strokes: int = 8  # and only where the group holds at most this many other strokes (a number's, not noise)
    pad: float = 0.25  # paper kept around a candidate, in its heights
    max_candidates: int = 6  # the recognizer reads at most this many per crop, the most ink first
    # A comb whose box edges went unseen (faint print) leaves one candidate per digit: the
    # strings beside the inkiest one on its line (rows overlapping by row_overlap of the shorter,
    # heights within row_height_ratio of it, gaps under row_gap of its height) are joined into
    # one more candidate, preferred where it reads a digit for each string it joined (300 comb
    # fields of training glyphs, seed 777: 76.3% -> 81.7%; 500 parish validation crops 94.6 -> 94.8%)
    join_rows: bool = True
    row_overlap: float = 0.5
    row_height_ratio: float = 2.0
    row_gap: float = 2.5
    # a field's leading zeros are placeholders (a comb's unused boxes hold a 0): "0042" reads 42,
    # "0" stays 0; False keeps them (codes and postal numbers written with their zeros)
    strip_leading_zeros: bool = True

    def __post_init__(self) -> None:
        for name in ("join_overlap", "row_overlap"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"FieldConfig.{name} is a share of a height, in [0, 1]; got {getattr(self, name)}")
        for name in ("join_height_ratio", "row_height_ratio"):
            if getattr(self, name) < 1.0:
                raise ValueError(f"FieldConfig.{name} is a ratio of heights, at least 1; got {getattr(self, name)}")
        if self.split_tall < 0.0 or self.split_strokes < 0:
            raise ValueError(f"FieldConfig.split_tall and split_strokes must not be negative, got {self.split_tall}, {self.split_strokes}")
        if self.max_candidates < 1:
            raise ValueError(f"FieldConfig.max_candidates must be at least 1, got {self.max_candidates}")


@dataclass(frozen=True)
class ColumnConfig:
    """What a register column's row numbers are expected to do from one row to the next
    (strings.read.column): most rows hold the running number, one more than the last; some hold
    none (no number, a 0, a letter), and the numbering sometimes starts again at 1.

    The defaults are ``strings.read.column.column_prior`` of the parish-rowid *training* labels
    (20,463 numbered rows in 43 books; benchmarks/RESULTS.md, "Session 17").
    """

    none_rate: float = 0.1896  # share of rows outside the running numbers
    # P(this row's number - the last row's number = step), over rows that hold a running number
    steps: tuple[tuple[int, float], ...] = ((-1, 0.0055), (0, 0.0017), (1, 0.9184), (2, 0.0149), (3, 0.0048))
    restart: float = 0.0272  # P(the numbering starts again at 1)
    other_values: int = 100  # the rest of the mass is spread over this many other numbers
    window: int = 3  # readings of this many rows on either side propose a row's number
    spread: int = 2  # each proposes its own number and those up to this far from it

    def __post_init__(self) -> None:
        if not 0.0 < self.none_rate < 1.0 or not 0.0 <= self.restart < 1.0:
            raise ValueError(f"ColumnConfig.none_rate must be in (0, 1) and restart in [0, 1), got {self.none_rate}, {self.restart}")
        if any(not 0.0 <= p <= 1.0 for _, p in self.steps) or len({d for d, _ in self.steps}) != len(self.steps):
            raise ValueError(f"ColumnConfig.steps must be distinct steps with probabilities in [0, 1], got {self.steps}")
        if sum(p for _, p in self.steps) + self.restart >= 1.0:
            raise ValueError("ColumnConfig.steps and restart must leave some probability for other numbers")
        if self.other_values < 1 or self.window < 1 or self.spread < 0:
            raise ValueError(f"ColumnConfig.other_values and window must be at least 1 and spread at least 0, got "
                             f"{self.other_values}, {self.window}, {self.spread}")


@dataclass(frozen=True)
class ModelConfig:
    """A DenseNet-CTC network. ``pools`` gives the (height, width) pooling after the stem and
    after each transition, so the horizontal stride is the product of their widths."""

    stem_channels: int = 32
    growth_rate: int = 12
    block_layers: tuple[int, ...] = (4, 6, 8)
    bottleneck_factor: int = 4
    compression: float = 0.5
    pools: tuple[tuple[int, int], ...] = ((2, 2), (2, 2), (2, 1))
    hidden: int = 128
    context: int = 3
    dropout: float = 0.1
    alphabet: str = "0123456789"

    def __post_init__(self) -> None:
        # Bounds far above any sensible network: a model file's metadata is untrusted input, and
        # building what it describes must not exhaust memory or fail deep inside torch.
        if not 1 <= len(self.block_layers) <= 8 or not all(1 <= n <= 64 for n in self.block_layers):
            raise ValueError(f"block_layers must be 1-8 blocks of 1-64 layers, got {self.block_layers}")
        for name, hi in (("stem_channels", 1024), ("growth_rate", 256), ("bottleneck_factor", 16), ("hidden", 4096)):
            if not 1 <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be in 1..{hi}, got {getattr(self, name)}")
        if not 0.0 < self.compression <= 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"compression must be in (0, 1] and dropout in [0, 1), got {self.compression}, {self.dropout}")
        if len(self.pools) != len(self.block_layers):
            raise ValueError("pools needs one entry per dense block (stem pool + one per transition)")
        if not all(len(p) == 2 and all(1 <= v <= 4 for v in p) for p in self.pools):
            raise ValueError(f"pools must be (height, width) pairs in 1..4, got {self.pools}")
        if self.context % 2 != 1 or not 1 <= self.context <= 15:
            raise ValueError("context must be odd (frames stay centred) and at most 15")
        if not self.alphabet or len(set(self.alphabet)) != len(self.alphabet):
            raise ValueError(f"alphabet must be non-empty without repeats, got {self.alphabet!r}")


@dataclass(frozen=True)
class DigitPreprocessConfig:
    """How any single-digit image becomes classifier input: ink made bright whatever the image's
    polarity, the ink's bounding box scaled to ``box`` pixels on its longer side (aspect kept) and
    centred by mass on a ``size`` x ``size`` canvas. That is MNIST's own normalisation, applied to
    every dataset and every user image alike, so a 32x32 binary scan and an MNIST digit look the
    same to the network."""

    size: int = 28
    box: int = 20
    # Contrast stretch between these percentiles of the ink-bright grey levels.
    low_percentile: float = 1.0
    high_percentile: float = 99.0
    ink_threshold: float = 0.2  # share of full ink strength that counts as ink for the bounding box
    border: int = 2  # px: width of the image's outer frame, one of the two polarity cues (digits.ink_is_dark)

    def __post_init__(self) -> None:
        if not 8 <= self.size <= 256 or not 4 <= self.box <= self.size:
            raise ValueError(f"need 8 <= size <= 256 and 4 <= box <= size, got size {self.size}, box {self.box}")
        if not 0.0 <= self.low_percentile < self.high_percentile <= 100.0:
            raise ValueError(f"need 0 <= low_percentile < high_percentile <= 100, got {self.low_percentile}, {self.high_percentile}")
        if not 0.0 < self.ink_threshold < 1.0 or not 1 <= self.border <= 16:
            raise ValueError(f"ink_threshold must be in (0, 1) and border in 1..16, got {self.ink_threshold}, {self.border}")


@dataclass(frozen=True)
class DigitNetConfig:
    """A DenseNet single-digit classifier: stem convolutions at full resolution, a max-pool, then
    dense blocks joined by transitions that halve the resolution; global average pooling gives
    the feature vector that the softmax head (or an SVM fitted later) classifies."""

    stem_channels: tuple[int, ...] = (32, 48)  # 3x3 conv widths before the first pooling
    growth_rate: int = 16
    block_layers: tuple[int, ...] = (6, 8)
    bottleneck_factor: int = 4
    compression: float = 0.5
    dropout: float = 0.2  # before the linear head
    # The numeral of each class (class k is the value k), shown in results. Display only, so left
    # out of equality: a Latin-digit model may warm-start a Bangla one (TrainConfig.init).
    symbols: str = field(default="0123456789", compare=False)

    def __post_init__(self) -> None:
        if not 1 <= len(self.stem_channels) <= 4 or not all(1 <= c <= 1024 for c in self.stem_channels):
            raise ValueError(f"stem_channels must be 1-4 widths in 1..1024, got {self.stem_channels}")
        if not 1 <= len(self.block_layers) <= 4 or not all(1 <= n <= 64 for n in self.block_layers):
            raise ValueError(f"block_layers must be 1-4 blocks of 1-64 layers, got {self.block_layers}")
        for name, hi in (("growth_rate", 256), ("bottleneck_factor", 16)):
            if not 1 <= getattr(self, name) <= hi:
                raise ValueError(f"{name} must be in 1..{hi}, got {getattr(self, name)}")
        if not 0.0 < self.compression <= 1.0 or not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"compression must be in (0, 1] and dropout in [0, 1), got {self.compression}, {self.dropout}")
        if len(self.symbols) < 2 or len(set(self.symbols)) != len(self.symbols):
            raise ValueError(f"symbols must be at least 2 distinct characters, got {self.symbols!r}")


# ----------------------------------------------------------------------------- named configs
# The named networks are plain records, so they live with the records: strings.models builds
# them (create_model, create_digit_model), and TrainConfig checks a recipe's name against them
# without importing any network code.
# Each entry: the network and the preprocessing it was designed for.
# Choices are measured in benchmarks/RESULTS.md ("Choosing the architecture").
# The real models read crops trimmed to their ink (PreprocessConfig.trim), so that a crop's
# margin does not decide the digits' size (benchmarks/RESULTS.md, "Crop margins").
MODEL_CONFIGS: dict[str, tuple[ModelConfig, PreprocessConfig]] = {
    "densenet_ctc_small": (ModelConfig(), PreprocessConfig(height=32, trim=True)),
    "densenet_ctc_base": (
        ModelConfig(stem_channels=48, growth_rate=16, block_layers=(6, 8, 10), hidden=192),
        PreprocessConfig(height=40, trim=True),
    ),
    # The small network with the amount marks (strings.alphabet.AMOUNT_SYMBOLS): reads "1.500,00".
    "densenet_ctc_amounts": (ModelConfig(alphabet=AMOUNT_SYMBOLS), PreprocessConfig(height=32, trim=True)),
    "densenet_ctc_fast": (
        ModelConfig(stem_channels=24, growth_rate=8, block_layers=(3, 4, 6), hidden=96),
        PreprocessConfig(height=32, trim=True),
    ),
    # Tiny: for tests only (timm's test_* convention). Builds and runs in milliseconds.
    "test_tiny": (
        ModelConfig(stem_channels=8, growth_rate=4, block_layers=(1, 1, 1), hidden=16, dropout=0.0),
        PreprocessConfig(height=16, min_width=8),
    ),
}


# Single-digit classifiers (task "classify"), each with the canvas it reads. Measured training
# speed is in configs/digits_mnist.toml.
DIGIT_CONFIGS: dict[str, tuple[DigitNetConfig, DigitPreprocessConfig]] = {
    # 0.26 M parameters, 37 M multiply-adds per 28x28 digit (torch's flop counter), 200 features.
    "densenet_digits_small": (DigitNetConfig(), DigitPreprocessConfig()),
    # 0.90 M parameters, 103 M multiply-adds, 416 features: for when time is less short.
    "densenet_digits_base": (
        DigitNetConfig(stem_channels=(32, 64), growth_rate=24, block_layers=(8, 12), dropout=0.25),
        DigitPreprocessConfig(),
    ),
    # Tiny: for tests only. Builds and runs in milliseconds.
    "test_tiny_digits": (
        DigitNetConfig(stem_channels=(8,), growth_rate=4, block_layers=(1, 1), bottleneck_factor=2, dropout=0.0),
        DigitPreprocessConfig(size=16, box=12),
    ),
}


@dataclass(frozen=True)
class DataSource:
    """One stream of training strings and its share of each batch."""

    dataset: str  # a name from strings.data.DATASETS, or "synth"
    weight: float = 1.0
    split: str = "train"
    # loose field crops: a box list (strings.data.fields, made by `strings field-boxes`) that
    # cuts each crop to its string, and to places with none; "" = the images as they are
    boxes: str = ""
    # loose crops whose string is known but not its place (synthetic comb fields): each served
    # as the field search sees it, cut to the span of its candidate places
    field: bool = False


OPTIMIZERS = ("adamw", "adadelta", "sgd")
TASKS = ("ctc", "classify")  # digit strings (DenseNet-CTC) | single digits (DigitNet)


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (configs/*.toml). Stored in every checkpoint it produces."""

    model: str = "densenet_ctc_small"
    sources: tuple[DataSource, ...] = (DataSource("car-a-partial"),)
    validation: str = "car-a-partial"  # the real dataset whose held-out train slice picks the model
    val_fraction: float = 0.1
    # more validation sets (each dataset's own validation split, e.g. "photo-strings"): the model
    # is then chosen on the mean string accuracy over all of them, so a general reader is not
    # chosen on cheques alone
    also_validate: tuple[str, ...] = ()
    split_seed: int = -1  # seeds the validation slice; -1 = seed. A warm start keeps its parent's slice.
    batch_size: int = 32
    max_steps: int = 20000
    max_minutes: float = 0.0  # 0 = no wall-clock limit
    optimizer: str = "adamw"  # adamw | adadelta | sgd (momentum 0.9, Nesterov)
    lr: float = 2e-3
    weight_decay: float = 1e-4
    warmup_steps: int = 300
    grad_clip: float = 5.0
    eval_every: int = 500
    patience: int = 10  # evaluations without improvement before stopping
    seed: int = 0
    augment: bool = True
    num_workers: int = 1
    # bf16 autocast on CUDA (fp16 with loss scaling where bf16 is missing); off by default: on an
    # H100 every named network trained slower with it (benchmarks/gpu.py, RESULTS "Session 4").
    amp: bool = False
    synth_pool: int = 20000  # size of the synthetic stream: string i is rendered on demand from (seed, i)
    init: str = ""  # warm start: a bundled model name or .safetensors path with the same network ("" = random)
    task: str = "ctc"  # ctc: digit strings | classify: single digits (strings.digits)
    script: str = "latin"  # numerals (strings.alphabet.SCRIPT_DIGITS): a string model's alphabet, a classifier's symbols
    label_smoothing: float = 0.0  # classify only: cross-entropy label smoothing

    @property
    def reads_fields(self) -> bool:
        """Whether some of its strings are loose crops cut by the field search."""
        return any(src.boxes or src.field for src in self.sources)

    def __post_init__(self) -> None:
        from strings.alphabet import SCRIPT_DIGITS

        if self.task not in TASKS:
            raise ValueError(f"unknown task {self.task!r}; known: {', '.join(TASKS)}")
        registry = MODEL_CONFIGS if self.task == "ctc" else DIGIT_CONFIGS
        if self.model not in registry:
            other = "classify" if self.model in DIGIT_CONFIGS else "ctc" if self.model in MODEL_CONFIGS else None
            hint = f" ({self.model!r} is a {other} model: set task = {other!r})" if other else ""
            raise ValueError(f"unknown {self.task} model config {self.model!r}{hint}; known: {', '.join(sorted(registry))}")
        if self.script not in SCRIPT_DIGITS:
            raise ValueError(f"unknown script {self.script!r}; known: {', '.join(SCRIPT_DIGITS)}")
        if self.task == "classify" and any(src.dataset == "synth" for src in self.sources):
            raise ValueError("the classify task trains on digit datasets; 'synth' composes strings (task = 'ctc')")
        if not 0.0 <= self.label_smoothing < 1.0:
            raise ValueError(f"label_smoothing must be in [0, 1), got {self.label_smoothing}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        for src in self.sources:
            if src.split != "train":
                raise ValueError(f"training source {src.dataset!r} uses split {src.split!r}: only train splits may be trained on")
        if self.split_seed < -1:
            raise ValueError(f"split_seed must be -1 (= seed) or a seed, got {self.split_seed}")
        for name in ("batch_size", "max_steps", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


_SCALARS = (bool, int, float, str)


def split_seed(cfg: TrainConfig) -> int:
    """The seed of the validation slice: ``split_seed``, or ``seed`` when that is -1."""
    return cfg.seed if cfg.split_seed == -1 else cfg.split_seed


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """Check (and where lossless, convert) one config value against its declared type."""
    if tp is DataSource:
        if isinstance(value, DataSource):
            return value
        if not isinstance(value, dict):
            raise ValueError(f"{key}: expected a table like {{ dataset = \"synth\", weight = 1.0 }}, got {value!r}")
        return from_dict(DataSource, value)
    if getattr(tp, "__origin__", None) is tuple:
        if not isinstance(value, (list, tuple)):
            raise ValueError(f"{key}: expected a list, got {value!r}")
        args = tp.__args__
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v, key) for v in value)
        if len(args) != len(value):
            raise ValueError(f"{key}: expected {len(args)} items, got {len(value)}")
        return tuple(_coerce(a, v, key) for a, v in zip(args, value))
    if tp in _SCALARS:
        if tp is float and isinstance(value, int) and not isinstance(value, bool):
            return float(value)
        if type(value) is not tp:
            raise ValueError(f"{key}: expected {tp.__name__}, got {type(value).__name__} {value!r}")
    return value


def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config record from a dict, refusing unknown keys and wrongly typed values by name."""
    if not isinstance(data, dict):
        raise ValueError(f"{cls.__name__}: expected a table, got {data!r}")
    known = [f.name for f in fields(cls)]  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)} (known: {', '.join(known)})")
    hints = typing.get_type_hints(cls)
    return cls(**{k: _coerce(hints[k], v, f"{cls.__name__}.{k}") for k, v in data.items()})


def to_dict(cfg: Any) -> dict[str, Any]:
    return dataclasses.asdict(cfg)


def load_train_file(path: str | Path) -> TrainConfig:
    """Read a TOML training recipe (see configs/)."""
    path = Path(path)
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise FileNotFoundError(f"training config not found: {path}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ValueError(f"{path}: not valid TOML: {exc}") from None
    return from_dict(TrainConfig, data)


def replace(cfg: T, **changes: Any) -> T:
    """``dataclasses.replace`` that ignores ``None`` values (unset CLI flags)."""
    return dataclasses.replace(cfg, **{k: v for k, v in changes.items() if v is not None})  # type: ignore[type-var]
