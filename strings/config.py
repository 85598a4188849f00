"""Frozen configuration records for the model, its preprocessing and training.

Every record rejects unknown keys (a typo in a config file is an error, not a silent default)
and round-trips through plain dicts, which is how checkpoints store them.
"""

from __future__ import annotations

import dataclasses
import tomllib
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, TypeVar

__all__ = ["ModelConfig", "PreprocessConfig", "TrainConfig", "DataSource", "from_dict", "to_dict", "load_train_file"]


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
class DataSource:
    """One stream of training strings and its share of each batch."""

    dataset: str  # a name from strings.datasets.DATASETS, or "synth"
    weight: float = 1.0
    split: str = "train"


OPTIMIZERS = ("adamw", "adadelta", "sgd")


@dataclass(frozen=True)
class TrainConfig:
    """A training recipe (configs/*.toml). Stored in every checkpoint it produces."""

    model: str = "densenet_ctc_small"
    sources: tuple[DataSource, ...] = (DataSource("car-a-partial"),)
    validation: str = "car-a-partial"  # the real dataset whose held-out train slice picks the model
    val_fraction: float = 0.1
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
    amp: bool = True  # used only on CUDA
    synth_pool: int = 20000  # size of the synthetic stream: string i is rendered on demand from (seed, i)

    def __post_init__(self) -> None:
        from strings.models import MODEL_CONFIGS

        if self.model not in MODEL_CONFIGS:
            raise ValueError(f"unknown model config {self.model!r}; known: {', '.join(sorted(MODEL_CONFIGS))}")
        if self.optimizer not in OPTIMIZERS:
            raise ValueError(f"unknown optimizer {self.optimizer!r}; known: {', '.join(OPTIMIZERS)}")
        for src in self.sources:
            if src.split != "train":
                raise ValueError(f"training source {src.dataset!r} uses split {src.split!r}: only train splits may be trained on")
        for name in ("batch_size", "max_steps", "eval_every", "patience"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be at least 1, got {getattr(self, name)}")


_SCALARS = (bool, int, float, str)


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
