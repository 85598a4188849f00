"""Named model configurations behind one factory."""

from __future__ import annotations

from strings.config import ModelConfig, PreprocessConfig
from strings.models.densenet_ctc import DenseNetCTC

__all__ = ["MODEL_CONFIGS", "DenseNetCTC", "create_model", "list_configs"]

# Each entry: the network and the preprocessing it was designed for.
# Choices are measured in benchmarks/RESULTS.md ("Choosing the architecture").
MODEL_CONFIGS: dict[str, tuple[ModelConfig, PreprocessConfig]] = {
    "densenet_ctc_small": (ModelConfig(), PreprocessConfig(height=32)),
    "densenet_ctc_base": (
        ModelConfig(stem_channels=48, growth_rate=16, block_layers=(6, 8, 10), hidden=192),
        PreprocessConfig(height=40),
    ),
    "densenet_ctc_fast": (
        ModelConfig(stem_channels=24, growth_rate=8, block_layers=(3, 4, 6), hidden=96),
        PreprocessConfig(height=32),
    ),
    # Tiny: for tests only (timm's test_* convention). Builds and runs in milliseconds.
    "test_tiny": (
        ModelConfig(stem_channels=8, growth_rate=4, block_layers=(1, 1, 1), hidden=16, dropout=0.0),
        PreprocessConfig(height=16, min_width=8),
    ),
}


def list_configs() -> list[str]:
    return sorted(MODEL_CONFIGS)


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
