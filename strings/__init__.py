"""strings: read handwritten digit strings (cheque amounts, postal codes, form fields).

Example:
    >>> import strings
    >>> rec = strings.load()                       # doctest: +SKIP
    >>> rec.recognize("amount.png").text           # doctest: +SKIP
    '1500'
"""

__version__ = "0.1.0"

from strings.predictor import AmountReading, DigitReading, ItemError, Reading, Recognizer, list_models, load  # noqa: E402
from strings.transforms import InvalidImageError  # noqa: E402
from strings.digits import DigitClassifier, DigitPrediction, list_digit_models, load_digits  # noqa: E402

__all__ = ["AmountReading", "DigitClassifier", "DigitPrediction", "DigitReading", "InvalidImageError", "ItemError", "Reading", "Recognizer", "__version__", "list_digit_models", "list_models", "load", "load_digits"]
