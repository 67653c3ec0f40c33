"""What the explorer offers and finds: photos, models, a model's layers, the runs under ``--runs``,
and the checks a request goes through before anything runs (a path inside ``--runs``, a size and a
step count this server allows, a layer the model has, a file that is an image).

>>> root = Path("/srv/runs")
>>> inside(root, "sweep/trial-1")
PosixPath('/srv/runs/sweep/trial-1')
>>> try:
...     inside(root, "../etc/passwd")
... except RequestError as error:
...     print(error)
the path '../etc/passwd' is outside the runs folder (--runs): expected a folder under it
"""

from __future__ import annotations

import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FeatinvError

UPLOADS = "uploads"  # where uploaded photos are kept (a run's config names the file)
COMPARISONS = "compare"  # where side-by-side pages are written


class RequestError(FeatinvError, ValueError):
    """A request the explorer cannot serve: the page shows the message."""


@dataclass(frozen=True)
class Limits:
    """What one run may ask for (a shared machine is not for a 4000 px run by accident)."""

    max_size: int = 1024
    max_steps: int = 20000

    def check(self, size: int, steps: int) -> None:
        if not 16 <= size <= self.max_size:
            raise RequestError(f"size must be 16 to {self.max_size} px (--max-size), got {size}")
        if not 1 <= steps <= self.max_steps:
            raise RequestError(f"steps must be 1 to {self.max_steps} (--max-steps), got {steps}")


def inside(root: Path, relative: str) -> Path:
    """``root/relative``, refused when it leaves ``root`` (``..``, an absolute path, a link out)."""
    path = (root / relative).resolve()
    if not path.is_relative_to(root.resolve()):
        raise RequestError(f"the path {relative!r} is outside the runs folder (--runs): expected a folder under it")
    return path


def photos() -> list[str]:
    """The built-in photos, as a config names them (``skimage:astronaut``, ...)."""
    from ..specs import SAMPLES

    return [prefix + name for prefix, names in SAMPLES.items() for name in names]


def models() -> list[dict[str, Any]]:
    """Every model the server can load, the offline ones first; ``offline`` False marks one whose
    weights need a download (this machine's cache decides)."""
    from ..nets.models import available_models, weights_cached
    from ..specs import OFFLINE_MODELS

    out = []
    for name in available_models():
        offline = name in OFFLINE_MODELS or bool(weights_cached(name))
        out.append({"name": name, "offline": offline, "note": "" if offline else "weights need a download"})
    return out


def layer_rows(model: Any, size: int) -> dict[str, Any]:
    """The model's layers at ``size`` (alias, shape, stride, the defaults a run there gets) and
    the layer a run gets when none is chosen."""
    from ..nets.layers import default_layer
    from ..nets.models import DEFAULT_LAYERS
    from ..optim.layertable import layer_table

    table = layer_table(model, size)
    rows = [
        {"name": r.name, "shape": list(r.shape or ()), "stride": r.stride, "param": r.param, "lr": r.lr, "tv": r.tv}
        for r in table.rows
        if r.shape
    ]
    default = DEFAULT_LAYERS.get(model.name) or default_layer(model.module, size)
    return {"model": model.label, "size": size, "rows": rows, "default": default}


def save_upload(root: Path, data: bytes, filename: str) -> Path:
    """An uploaded photo, checked to be an image and kept as ``--runs/uploads/<digest>.png``."""
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(io.BytesIO(data)) as img:
            img.load()
            picture = img.convert("RGB")
    except (UnidentifiedImageError, OSError, ValueError):
        raise RequestError(
            f"the file {filename!r} is not an image: expected a PNG, JPEG or another image Pillow reads"
        ) from None
    from .. import files

    out = root / UPLOADS / f"{hashlib.sha256(data).hexdigest()[:16]}.png"
    if not out.is_file():
        buffer = io.BytesIO()
        picture.save(buffer, format="PNG")
        files.write_bytes(out, buffer.getvalue())
    return out


def check_layers(model: Any, layers: tuple[str, ...]) -> None:
    """Unknown layer names fail here, with the nearest names, before a folder is made."""
    from ..nets.layers import resolve

    if layers:
        resolve(model.module, [name.split(":")[0] for name in layers])


def run_kind(folder: Path) -> str | None:
    """'run', 'sweep' or 'study' for a folder featinv wrote; None for anything else."""
    from ..runs.layout import CONFIG, STUDY, TRIALS_CSV

    if (folder / STUDY).is_file():
        return "study"
    if (folder / TRIALS_CSV).is_file():
        return "sweep"
    if (folder / CONFIG).is_file():
        return "run"
    return None


def list_runs(root: Path, depth: int = 3) -> list[dict[str, Any]]:
    """The runs, sweeps and studies under ``root`` (a sweep's or study's own runs inside it too,
    ``depth`` folders down), newest first, each with its state and its report if written."""
    from ..runs.runfolder import read_summary

    found: list[dict[str, Any]] = []

    def visit(folder: Path, level: int) -> None:
        for child in sorted(p for p in folder.iterdir() if p.is_dir() and p.name not in (UPLOADS, "snapshots")):
            kind = run_kind(child)
            if kind is not None:
                summary = (read_summary(child) or {}) if kind == "run" else {}
                found.append(
                    {
                        "name": child.relative_to(root).as_posix(),
                        "kind": kind,
                        "state": summary.get("status") or ("stopped" if kind == "run" else "written"),
                        "psnr": summary.get("psnr"),
                        "ssim": summary.get("ssim"),
                        "steps": summary.get("steps"),
                        "report": (child / "report.html").is_file(),
                        "mtime": child.stat().st_mtime,
                    }
                )
            if level < depth:
                visit(child, level + 1)

    if root.is_dir():
        visit(root, 1)
    return sorted(found, key=lambda r: -r["mtime"])
