"""One factory per task over the named configs (strings: ``create_model``, single digits:
``create_digit_model``); the named configs themselves are records in strings.config."""

from __future__ import annotations

from strings.config import DIGIT_CONFIGS, MODEL_CONFIGS, DigitNetConfig, ModelConfig
from strings.models.densenet_ctc import DenseNetCTC
from strings.models.digit_net import DigitNet

__all__ = ["DIGIT_CONFIGS", "MODEL_CONFIGS", "create_digit_model", "create_model", "list_configs"]


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
