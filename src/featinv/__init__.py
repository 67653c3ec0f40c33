"""featinv: reconstruct an image from a pretrained network's features.

>>> import featinv
>>> result = featinv.invert("skimage:chelsea", layers="relu2_2", size=64, steps=5)  # doctest: +SKIP
>>> result.summary["psnr"]  # doctest: +SKIP

Heavy modules (torch) load on first use, so ``import featinv`` and the CLI's help are instant.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_EXPORTS = {
    "invert": "api",
    "layers": "api",
    "sweep": "api",
    "study": "api",
    "report": "api",
    "compare": "api",
    "Page": "api",
    "SweepRun": "api",
    "Inversion": "optim.inversion",
    "Result": "optim.results",
    "Summary": "optim.results",
    "make_param": "optim.params",
    "Transforms": "optim.transforms",
    "InvertConfig": "config",
    "load_config": "config",
    "load_model": "nets.models",
    "available_models": "nets.models",
    "LoadedModel": "nets.models",
    "FeatureExtractor": "nets.extractor",
    "Objective": "optim.objectives",
    "FeatureTerm": "optim.objectives",
    "TVTerm": "optim.objectives",
    "AlphaTerm": "optim.objectives",
    "Schedule": "schedules",
    "read_image": "files",
    "save_image": "files",
    "FeatinvError": "errors",
    "stop_on_signals": "optim.interrupts",
}
__all__ = sorted(_EXPORTS)


_SUBMODULES = ("objectives",)  # featinv.objectives.features(...) without importing it first


def __getattr__(name: str) -> Any:
    if name in _SUBMODULES:
        return importlib.import_module(f".{name}", __name__)
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'featinv' has no attribute {name!r}")
