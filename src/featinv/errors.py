"""Typed errors for bad input. Each says what was expected and what was given.

The CLI prints one line for any :class:`FeatinvError` and exits non-zero (traceback only
under ``--debug``); anything else is a bug and keeps its traceback.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable


class FeatinvError(Exception):
    """Base class of every error caused by the user's input or environment."""

    exit_code = 2


class ConfigError(FeatinvError, ValueError):
    """A configuration value or key is invalid."""


class ImageError(FeatinvError, ValueError):
    """An image file is missing, unreadable or corrupt."""


class ModelError(FeatinvError, ValueError):
    """An unknown model name, or a model file that cannot be used."""


class WeightsUnavailableError(FeatinvError, RuntimeError):
    """Pretrained weights are neither cached locally nor downloadable."""


class LayerError(FeatinvError, KeyError):
    """An unknown or unusable layer name."""

    def __str__(self) -> str:  # KeyError would repr() the message
        return str(self.args[0]) if self.args else ""


class ResourceError(FeatinvError, MemoryError):
    """The machine ran out of memory for this size and batch."""


class RunFolderError(FeatinvError, OSError):
    """The run folder exists, is not writable, or cannot be resumed."""


def closest(name: str, choices: Iterable[str], n: int = 3) -> list[str]:
    """The up-to-``n`` choices that look most like ``name`` (case-insensitive).

    >>> closest("conv3-1", ["conv3_1", "conv3_2", "pool3"])[0]
    'conv3_1'
    """
    choices = list(choices)
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    return [lowered[h] for h in hits]


def did_you_mean(name: str, choices: Iterable[str]) -> str:
    """A ' Did you mean ...?' hint, or '' when nothing is close."""
    hits = closest(name, choices)
    return f" Did you mean {' or '.join(repr(h) for h in hits)}?" if hits else ""


class FeatinvWarning(UserWarning):
    """A warning of featinv's own (the CLI prints these as ``featinv: warning: ...``; other
    libraries' warnings keep their own format)."""
