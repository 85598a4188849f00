"""strings: read handwritten digit strings (cheque amounts, postal codes, form fields).

Example:
    >>> import strings
    >>> rec = strings.load()                       # doctest: +SKIP
    >>> rec.recognize("amount.png").text           # doctest: +SKIP
    '1500'
"""

from strings._version import __version__
from strings import _compat  # old module paths (strings.predictor, ...) keep working, with a warning
from strings.digits import DigitClassifier, DigitPrediction, list_digit_models, load_digits
from strings.image import InvalidImageError
from strings.read import AmountReading, DigitReading, ItemError, Reading, Recognizer, list_models, load

__all__ = ["AmountReading", "DigitClassifier", "DigitPrediction", "DigitReading", "InvalidImageError", "ItemError", "Reading", "Recognizer", "__version__", "list_digit_models", "list_models", "load", "load_digits"]

_compat.install()
