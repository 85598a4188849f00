"""Single digits: the DigitClassifier and its model files, the classify task of the training
loop (registered by name), the reject option and the RBF-SVM head.

Example:
    >>> import strings
    >>> clf = strings.load_digits("mnist")        # doctest: +SKIP
    >>> clf.classify("seven.png").digit           # doctest: +SKIP
    7
"""

from __future__ import annotations

from strings.digits import task as _task  # noqa: F401  (registers the "classify" task)
from strings.digits.classifier import (
    DIGIT_FORMAT,
    HEADS,
    MANIFEST_NAME,
    WEIGHTS_DIR,
    DigitClassifier,
    DigitPrediction,
    bundle_digit_model,
    bundled_digit_models,
    ink_is_dark,
    list_digit_models,
    load_digit_model,
    load_digits,
    normalize_digit,
    resolve_digit_model,
    save_digit_model,
    svm_path_for,
    weights_digest,
)

__all__ = [
    "DIGIT_FORMAT", "HEADS", "MANIFEST_NAME", "WEIGHTS_DIR", "DigitClassifier", "DigitPrediction", "bundle_digit_model",
    "bundled_digit_models", "ink_is_dark", "list_digit_models", "load_digit_model", "load_digits", "normalize_digit",
    "resolve_digit_model", "save_digit_model", "svm_path_for", "weights_digest",
]
