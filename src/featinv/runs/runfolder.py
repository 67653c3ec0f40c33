"""Run folders: every run is self-describing, resumable, and never overwritten.

Layout::

    config.yaml      the fully resolved config (load it back with --config)
    env.json         versions, device, threads
    target.png       the target at the model's input size
    log.csv          per step: step, loss, each term, lr, seconds
    snapshots/       step_00010.png ... every ``snapshot_every`` steps
    checkpoint.pt    the state to resume from (written with each snapshot and at the end)
    final.png        the result
    summary.json     status (done / interrupted / diverged), psnr, ssim, feature errors, timings

A folder is finished when ``summary.json`` says ``done`` or ``diverged``; resuming a finished run
is a no-op that returns the stored result.
"""

from __future__ import annotations

import csv
import io
import json
import os
import platform
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import torch

from .. import files
from ..config import InvertConfig, from_dict, read_yaml, to_yaml
from ..errors import RunFolderError
from ..nets.models import LoadedModel
from ..optim.compose import Sum
from ..optim.inversion import Callback, Inversion
from ..optim.results import Result
from ..status import FINISHED, Status
from .layout import CHECKPOINT, CONFIG, DIVERSITY, FINAL, LOG, RESULT_FILES, SUMMARY, TARGET, WINDOW, read_log


def environment(device: torch.device | str) -> dict[str, Any]:
    """Versions and hardware, for env.json."""
    import numpy
    import torchvision

    from .. import __version__

    env = {
        "featinv": __version__,
        "python": sys.version.split()[0],
        "torch": torch.__version__,
        "torchvision": torchvision.__version__,
        "numpy": numpy.__version__,
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "device": str(device),
        "torch_threads": torch.get_num_threads(),
        "cpu_count": os.cpu_count(),
    }
    if torch.device(device).type == "cuda":
        env["cuda"] = torch.version.cuda
        env["gpu"] = torch.cuda.get_device_name(torch.device(device))
    return env


def log_csv(history: list[dict[str, float]]) -> str:
    """The per-step history as CSV text (columns from the first row)."""
    buf = io.StringIO()
    if history:
        writer = csv.DictWriter(buf, fieldnames=list(history[0]), lineterminator="\n")
        writer.writeheader()
        writer.writerows(history)
    return buf.getvalue()


def read_summary(folder: Path) -> dict[str, Any] | None:
    try:
        return json.loads((Path(folder) / SUMMARY).read_text())
    except (OSError, ValueError):
        return None


def is_finished(folder: Path) -> bool:
    summary = read_summary(folder)
    return summary is not None and summary.get("status") in FINISHED


def check_writable(folder: Path) -> None:
    """Create ``folder`` if needed and prove we can write there (fail before any work)."""
    try:
        folder.mkdir(parents=True, exist_ok=True)
        probe = folder / ".featinv-write-probe"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        raise RunFolderError(
            f"cannot write to the run folder {str(folder)!r}: expected a writable folder ({exc.strerror or exc})"
        ) from None


def new_folder_name(root: Path, stem: str) -> Path:
    """``root/stem``, or ``root/stem-2``, ``-3`` ... if taken: a new run never reuses a folder."""
    candidate, n = root / stem, 1
    while candidate.exists():
        n += 1
        candidate = root / f"{stem}-{n}"
    return candidate


def stored_config(folder: Path) -> InvertConfig:
    return from_dict(read_yaml(folder / CONFIG), where=str(folder / CONFIG))


class RunFolder:
    """The callback that writes trial ``index``'s run folder as the run goes."""

    def __init__(self, folder: Path, index: int = 0, header: str = "") -> None:
        self.folder, self.index, self.header = Path(folder), index, header

    def on_start(self, run: Inversion) -> None:
        files.write_text(self.folder / CONFIG, to_yaml(run.configs[self.index], self.header))
        env = environment(run.device)
        env.update(
            model=run.problem.model.label,
            weights=run.problem.model.weights,
            pretrained=run.problem.model.pretrained,
            model_note=run.problem.model.note,
            preprocess=run.problem.preprocess.to_dict(),
        )
        files.write_json(self.folder / "env.json", env)
        files.save_image(run.problem.target[self.index], self.folder / TARGET)
        window = run.problem.window_pixels(run.configs[self.index])
        if window:  # --window: the pixels the window's cells see, on the target
            from ..nets.receptive import draw_window

            files.save_image(
                draw_window(run.problem.target[self.index].cpu(), tuple(window["pixels"])), self.folder / WINDOW
            )

    def on_step(self, run: Inversion, rows: list) -> None:
        every = run.configs[self.index].snapshot_every
        if rows[self.index] is not None and every and run.step % every == 0:
            image = run.image(self.index)
            files.save_image(image, self.folder / "snapshots" / f"step_{run.step:05d}.png")
            self._checkpoint(run)

    def _checkpoint(self, run: Inversion) -> None:
        files.save_tensors(self.folder / CHECKPOINT, run.state_dict(self.index))
        files.write_text(self.folder / LOG, log_csv(run.histories[self.index]))

    def on_end(self, run: Inversion, results: list[Result]) -> None:
        result = results[self.index]
        self._checkpoint(run)
        files.save_image(result.image, self.folder / FINAL)
        if result.restarts:  # --diversity: every restart, and them side by side with their mean and spread
            from ..optim.diversity import diversity_image

            for seed, image in zip((r["seed"] for r in result.summary["restarts"]), result.restarts):
                files.save_image(image, self.folder / "restarts" / f"seed_{seed}.png")
            files.save_image(diversity_image(result.restarts), self.folder / DIVERSITY)
        files.write_json(self.folder / SUMMARY, result.summary)
        result.out_dir = self.folder
        result.paths = {name: self.folder / name for name in RESULT_FILES}


def _stored_result(folder: Path, config: InvertConfig) -> Result:
    summary = read_summary(folder) or {}
    history = read_log(folder)
    image = files.read_image(folder / FINAL)
    target = files.read_image(folder / TARGET)
    paths = {n: folder / n for n in RESULT_FILES}
    return Result(
        image,
        target,
        summary.get("status", Status.DONE),
        int(summary.get("steps", 0)),
        history,
        summary,  # type: ignore[arg-type]  # as summary.json holds it
        config,
        folder,
        paths,
    )


def _differences(stored: InvertConfig, given: InvertConfig) -> list[str]:
    """Keys where ``given`` differs; a key left at None in ``given`` means 'as resolved'."""
    da, db = stored.to_dict(), given.to_dict()
    return [f"{k}: {da[k]!r} (folder) vs {db[k]!r} (given)" for k in da if db[k] is not None and da[k] != db[k]]


def run_in_folder(
    config: InvertConfig,
    folder: Path,
    *,
    resume: bool = False,
    model: LoadedModel | None = None,
    callbacks: list[Callback] | None = None,
    quiet: bool = True,
    header: str = "",
    tensorboard: bool = False,
    images: Mapping[str, bytes | torch.Tensor] | None = None,
    param: torch.nn.Module | None = None,
    objective: Sum | None = None,
) -> Result:
    """Run ``config`` writing ``folder``; or, with ``resume``, continue the run stored there.
    ``images``: images in memory or files' bytes by the names the config gives them; ``param``,
    ``objective``: parts of the user's (see :class:`~featinv.optim.inversion.Inversion`), passed
    again to resume."""
    folder = Path(folder)
    callbacks = list(callbacks or [])
    has_run = (folder / CONFIG).is_file()
    if folder.exists() and not folder.is_dir():
        raise RunFolderError(f"the run folder {str(folder)!r} is a file: expected a folder")
    if has_run and not resume:
        raise RunFolderError(
            f"the run folder {str(folder)!r} already holds a run: resume it with "
            f"--resume, or choose another --out (nothing was overwritten)"
        )
    if not has_run and folder.is_dir() and any(folder.iterdir()):
        raise RunFolderError(
            f"the folder {str(folder)!r} exists and is not a featinv run: choose "
            f"another --out (nothing was overwritten)"
        )
    state = None
    if resume and has_run:
        stored = stored_config(folder)
        diff = _differences(stored, config)
        if diff:
            raise RunFolderError(f"cannot resume {str(folder)!r} with a different config: " + "; ".join(diff))
        if is_finished(folder):
            return _stored_result(folder, stored)
        if (folder / CHECKPOINT).is_file():
            state = torch.load(folder / CHECKPOINT, map_location="cpu", weights_only=True)
    run = Inversion(
        config, model, images, param=param, objective=objective
    )  # checks the image, model and layers before creating anything
    check_writable(folder)
    if state is not None:
        run.load_state_dict(state)
    if not quiet:
        from ..optim.callbacks import ProgressBar

        callbacks.append(ProgressBar(desc=folder.name))
    if tensorboard:
        from ..optim.callbacks import TensorBoard

        callbacks.append(TensorBoard([folder / "tensorboard"]))
    return run.run([RunFolder(folder, 0, header), *callbacks])
