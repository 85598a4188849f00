"""Frozen configuration records for the model, its preprocessing and training.

Every record rejects unknown keys (a typo in a config file is an error, not a silent default)
and round-trips through plain dicts, which is how checkpoints store them.
"""

from __future__ import annotations

import dataclasses
import tomllib
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
        if len(self.pools) != len(self.block_layers):
            raise ValueError("pools needs one entry per dense block (stem pool + one per transition)")
        if self.context % 2 != 1:
            raise ValueError("context must be odd so that frames stay centred")

@dataclass(frozen=True)
class DataSource:
    """One stream of training strings and its share of each batch."""

    dataset: str  # a name from strings.datasets.DATASETS, or "synth"
    weight: float = 1.0
    split: str = "train"

@dataclass(frozen=True)
class TrainConfig:
    model: str = "densenet_ctc_small"
    sources: tuple[DataSource, ...] = (DataSource("car-a-partial"),)
    validation: str = "car-a-partial"  # the real dataset whose held-out train slice picks the model
    val_fraction: float = 0.1
    batch_size: int = 32
    max_steps: int = 20000
    max_minutes: float = 0.0  # 0 = no wall-clock limit
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
    synth_pool: int = 20000  # synthetic strings rendered up front per epoch of the synthetic stream

def _coerce(tp: Any, value: Any) -> Any:
    origin = getattr(tp, "__origin__", None)
    if tp is DataSource or tp == "DataSource":
        return value if isinstance(value, DataSource) else from_dict(DataSource, value)
    if origin is tuple:
        args = tp.__args__
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(args[0], v) for v in value)
        return tuple(_coerce(a, v) for a, v in zip(args, value, strict=True))
    return value

def from_dict(cls: type[T], data: dict[str, Any]) -> T:
    """Build a config record from a dict, refusing unknown keys by name."""
    known = {f.name: f for f in fields(cls)}  # type: ignore[arg-type]
    unknown = sorted(set(data) - set(known))
    if unknown:
        raise ValueError(f"unknown {cls.__name__} keys: {', '.join(unknown)} (known: {', '.join(known)})")
    hints = {f.name: f.type for f in fields(cls)}  # type: ignore[arg-type]
    import typing

    resolved = typing.get_type_hints(cls)
    kwargs = {k: _coerce(resolved.get(k, hints[k]), v) for k, v in data.items()}
    return cls(**kwargs)

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
