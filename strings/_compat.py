"""Old module paths from before the package was split by stage (strings.predictor,
strings.decoding, ...): importing one gives the module at its new place and a
DeprecationWarning that names it, so code written against the flat layout keeps running.

    >>> import strings.predictor            # doctest: +SKIP
    DeprecationWarning: strings.predictor moved to strings.read.loading; import it from there
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

__all__ = ["MOVED", "install"]

# old module -> its new place (the names it defined are all there; strings.predictor: its loader's module, which names them)
MOVED: dict[str, str] = {
    "strings.predictor": "strings.read.loading",  # the loader, with the recognizer's names
    "strings.decoding": "strings.decode.ctc",
    "strings.transforms": "strings.image",
    "strings.datasets": "strings.data",
    "strings.datasets.base": "strings.data.base",
    "strings.datasets.readers": "strings.data.readers",
    "strings.datasets.digits": "strings.data.digitsets",
    "strings.augment": "strings.data.augment",
    "strings.synth": "strings.data.synth",
    "strings.script_synth": "strings.data.synth.scripts",
    "strings.amount_lm": "strings.decode.amount_lm",
    "strings.calibration": "strings.read.calibration",
    "strings.backends": "strings.read.backends",
    "strings.export": "strings.read.export",
    "strings.batching": "strings.read.batching",
    "strings.boxes": "strings.read.boxes",
    "strings.amount": "strings.read.amount",
    "strings.visualize": "strings.read.draw",
    "strings.checkpoint": "strings.models.checkpoint",
    "strings.engine": "strings.train",
    "strings.distributed": "strings.train.distributed",
    "strings.digit_task": "strings.digits.task",
    "strings.digit_svm": "strings.digits.svm",
    "strings.cli_digits": "strings.cli.digits",
}


class _MovedModuleLoader(importlib.abc.Loader):
    def __init__(self, new: str) -> None:
        self.new = new

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        warnings.warn(f"{spec.name} moved to {self.new}; import it from there", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(self.new)
        self._spec = module.__spec__  # the import system stamps the old name's spec on it next
        sys.modules[spec.name] = module
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module at its new place is already executed): give it back its own spec."""
        module.__spec__ = self._spec


class _MovedModuleFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None, target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = MOVED.get(fullname)
        if new is None:
            return None
        return importlib.machinery.ModuleSpec(fullname, _MovedModuleLoader(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` once (importing ``strings`` does this)."""
    if not any(isinstance(f, _MovedModuleFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedModuleFinder())
