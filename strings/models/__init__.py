"""Named model configurations behind one factory per task (strings: ``create_model``,
single digits: ``create_digit_model``)."""

from __future__ import annotations

from strings.config import DigitNetConfig, DigitPreprocessConfig, ModelConfig, PreprocessConfig
from strings.models.densenet_ctc import DenseNetCTC
from strings.models.digit_net import DigitNet

__all__ = [
    "DIGIT_CONFIGS", "MODEL_CONFIGS", "DenseNetCTC", "DigitNet", "create_digit_model", "create_model", "list_configs",
]

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


def list_configs() -> list[str]:
    """Every named config, string models and digit classifiers."""
    return sorted([*MODEL_CONFIGS, *DIGIT_CONFIGS])


def create_digit_model(
    name: str | None = None, *, model_cfg: DigitNetConfig | None = None, size: int | None = None, symbols: str | None = None
) -> DigitNet:
    """Build a digit classifier by config name, or from an explicit config (as a checkpoint does).

    Example:
        >>> create_digit_model("test_tiny_digits", symbols="০১২৩৪৫৬৭৮৯").num_classes
        10
    """
    if model_cfg is None:
        if name not in DIGIT_CONFIGS:
            raise KeyError(f"unknown digit model config {name!r}; known: {', '.join(sorted(DIGIT_CONFIGS))}")
        model_cfg, pre = DIGIT_CONFIGS[name]
        size = size or pre.size
    if symbols is not None:
        import dataclasses

        model_cfg = dataclasses.replace(model_cfg, symbols=symbols)
    if size is None:
        raise ValueError("size is required with an explicit model_cfg")
    return DigitNet(model_cfg, size)


def create_model(
    name: str | None = None,
    *,
    model_cfg: ModelConfig | None = None,
    height: int | None = None,
    alphabet: str | None = None,
) -> DenseNetCTC:
    """Build a network by config name, or from an explicit config (as a checkpoint does).

    Example:
        >>> m = create_model("test_tiny")
        >>> m.num_classes
        11
    """
    if model_cfg is None:
        if name not in MODEL_CONFIGS:
            raise KeyError(f"unknown model config {name!r}; known: {', '.join(list_configs())}")
        model_cfg, pre = MODEL_CONFIGS[name]
        height = height or pre.height
    if alphabet is not None:
        import dataclasses

        model_cfg = dataclasses.replace(model_cfg, alphabet=alphabet)
    if height is None:
        raise ValueError("height is required with an explicit model_cfg")
    return DenseNetCTC(model_cfg, height)
