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
    "invert": "api", "Inversion": "inversion", "Result": "results", "Summary": "results",
    "make_param": "params", "Transforms": "transforms",
    "InvertConfig": "config", "load_config": "config",
    "load_model": "models", "available_models": "models", "LoadedModel": "models",
    "FeatureExtractor": "extractor",
    "Objective": "objectives", "FeatureTerm": "objectives", "TVTerm": "objectives", "AlphaTerm": "objectives",
    "Schedule": "schedules",
    "read_image": "files", "save_image": "files",
    "FeatinvError": "errors",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'featinv' has no attribute {name!r}")
