"""Networks (DenseNet-CTC for strings, DigitNet for single digits), the factory over the named
configs, and the self-describing model files they are stored in."""

from __future__ import annotations

from strings.models.densenet_ctc import DenseNetCTC
from strings.models.digit_net import DigitNet
from strings.models.registry import DIGIT_CONFIGS, MODEL_CONFIGS, create_digit_model, create_model, list_configs

__all__ = [
    "DIGIT_CONFIGS", "MODEL_CONFIGS", "DenseNetCTC", "DigitNet", "create_digit_model", "create_model", "list_configs",
]
