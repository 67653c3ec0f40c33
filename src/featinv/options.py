"""The config's fields as options: the CLI's flags and help, and the option list in
``help(featinv.invert)``, generated from each field's metadata (:func:`featinv.config.option`)
and, for the fields the layer chooses, from :data:`featinv.optim.defaults.TABLE`, so that what
the help says is what the code does.

Importing it loads no torch (``featinv --help`` stays instant).

>>> flag("tv_beta")
'--tv-beta'
>>> default_text("steps")
'default: 200'
>>> print(default_text("lr"))
default: auto, by the deepest layer's stride: 0.05 at every stride; 0.01 for dip (its parameters are network weights)
>>> default_text("tv")
"default: auto, by the deepest layer's stride: 0.5 up to stride 8, 50 deeper"
"""

from __future__ import annotations

from typing import Any

from .config import AUTO, FIELDS
from .optim.defaults import DIP_LR, TABLE
from .specs import CHROMA_PARAMS, PARAMS

NAMES = tuple(FIELDS)  # every config field is an option, in the config's order


def flag(name: str) -> str:
    """The command-line flag of a config field."""
    return "--" + name.replace("_", "-")


def kind(name: str) -> type:
    """What argparse converts the flag's text to: int, float or bool where the field is one, else
    str (fields that may be 'auto' stay text; the config converts and checks them)."""
    return {"int": int, "float": float, "bool": bool}.get(str(FIELDS[name].type), str)


def choices(name: str) -> tuple[str, ...]:
    return tuple(FIELDS[name].metadata.get("choices", ()))


def meaning(name: str) -> str:
    return str(FIELDS[name].metadata["help"])


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def _by_stride(name: str) -> str:
    """The table's values for one field, runs of equal values merged: '0.5 up to stride 8, 50 deeper'."""
    runs: list[tuple[Any, int]] = []
    for row in TABLE:
        value = getattr(row, name)
        if runs and runs[-1][0] == value:
            runs[-1] = (value, row.max_stride)
        else:
            runs.append((value, row.max_stride))
    if len(runs) == 1:
        return f"{_number(runs[0][0])} at every stride"
    parts = [f"{_number(value)} up to stride {stride}" for value, stride in runs[:-1]]
    return ", ".join([*parts, f"{_number(runs[-1][0])} deeper"])


def default_text(name: str) -> str:
    """The default the code uses for a field, in words."""
    if name not in AUTO:
        value = FIELDS[name].default
        if isinstance(value, bool):
            return f"default: {'on' if value else 'off'}"
        return "" if value is None else f"default: {_number(value)}"  # None: the help says what unset means
    text = f"default: auto, by the deepest layer's stride: {_by_stride(name)}"
    if name == "lr":
        text += f"; {_number(DIP_LR)} for dip (its parameters are network weights)"
    if name == "param":
        instead = sorted({row.instead_of_dip for row in TABLE if row.instead_of_dip})
        text += f"; {' or '.join(instead)} instead of dip for a run that starts from an image or sets chroma_scale"
    if name == "chroma_scale":
        without = ", ".join(p for p in PARAMS if p not in CHROMA_PARAMS)
        text += f"; only {' and '.join(CHROMA_PARAMS)} have one ({without}: 1)"
    if name in ("transforms", "jitter_off_last"):
        text += f"; with dip only (another param: {'none' if name == 'transforms' else 0})"
    return text


def help_text(name: str) -> str:
    """The field's meaning, its valid values where the meaning does not list them, its default."""
    text = meaning(name)
    listed = choices(name)
    if listed and not all(choice in text for choice in listed):
        text += f" (one of {', '.join(listed)})"
    default = default_text(name)
    return f"{text} ({default})" if default else text


def docs() -> str:
    """Every option with its meaning and default, for a docstring.

    >>> print(docs().splitlines()[1])  # doctest: +ELLIPSIS
        image: the photo to reconstruct: an image file or a built-in photo, ...
    """
    lines = ["Options (config fields; also flags of `featinv invert`, `auto` where the layer chooses):"]
    lines += [f"    {name}: {help_text(name)}" for name in NAMES]
    return "\n".join(lines)
