"""Callbacks that observe a run: progress bar, snapshots in memory, early stop.

A callback may define ``on_start(run)``, ``on_step(run, rows)`` and ``on_end(run, results)``.
``rows`` has one log row per trial of the (possibly batched) run, None for a trial that has
stopped; ``results`` one :class:`~featinv.optim.inversion.Result` per trial.
"""

from __future__ import annotations

import sys
from typing import Any

from ..status import Status


def in_notebook() -> bool:
    """Is this a Jupyter kernel (where tqdm draws a widget, and stderr is not a terminal)?"""
    ipython = sys.modules.get("IPython")
    shell = ipython.get_ipython() if ipython is not None and hasattr(ipython, "get_ipython") else None
    return type(shell).__name__ == "ZMQInteractiveShell"


class ProgressBar:
    """A tqdm bar with step, loss and speed, in a terminal or a notebook (tqdm.auto picks the
    widget there); silent otherwise (a log file, a pipe)."""

    def __init__(self, desc: str = "invert", force: bool | None = None) -> None:
        self.desc = desc
        self.enabled = (sys.stderr.isatty() or in_notebook()) if force is None else force
        self.bar: Any = None

    def on_start(self, run: Any) -> None:
        if self.enabled:
            from tqdm.auto import tqdm

            self.bar = tqdm(
                total=run.config.steps, initial=run.step, desc=self.desc, unit="step", dynamic_ncols=True, leave=False
            )

    def on_step(self, run: Any, rows: list) -> None:
        if self.bar is not None:
            losses = [r["loss"] for r in rows if r]
            if losses:
                self.bar.set_postfix(loss=f"{sum(losses) / len(losses):.4g}", refresh=False)
            self.bar.update(1)

    def on_end(self, run: Any, results: Any) -> None:
        if self.bar is not None:
            self.bar.close()


class Snapshots:
    """Keep trial ``index``'s image every ``snapshot_every`` steps in memory, and hand them to its
    result as ``result.snapshots`` (step -> ``[3, H, W]`` on the CPU): what a run folder's
    ``snapshots/`` holds, without one. :func:`featinv.invert` adds it."""

    def __init__(self, index: int = 0) -> None:
        self.index = index
        self.images: dict[int, Any] = {}

    def on_start(self, run: Any) -> None:
        self.images = {}

    def on_step(self, run: Any, rows: list) -> None:
        every = run.configs[self.index].snapshot_every
        if rows[self.index] is not None and every and run.step % every == 0:
            self.images[run.step] = run.image(self.index).detach().cpu()

    def on_end(self, run: Any, results: list) -> None:
        results[self.index].snapshots = dict(self.images)


class StopAfter:
    """Ask the run to stop (as if interrupted) once ``steps`` steps are done. Handy in tests."""

    def __init__(self, steps: int, status: Status = Status.INTERRUPTED) -> None:
        self.steps, self.status = steps, status

    def on_step(self, run: Any, rows: list) -> None:
        if run.step >= self.steps:
            run.request_stop(self.status)


class EarlyStop:
    """Stop ('done') when the loss improved by less than ``rel_tol`` over ``patience`` steps."""

    def __init__(self, patience: int = 50, rel_tol: float = 1e-3) -> None:
        self.patience, self.rel_tol = patience, rel_tol

    def on_step(self, run: Any, rows: list) -> None:
        def stalled(history: list) -> bool:
            if len(history) <= self.patience:
                return False
            before, now = history[-self.patience - 1]["loss"], history[-1]["loss"]
            return before - now < self.rel_tol * abs(before)

        if all(stalled(h) for h, on in zip(run.histories, run.active) if on):
            run.request_stop(Status.DONE)


class TensorBoard:
    """Log each trial's loss terms and lr every step, and its image every snapshot, to TensorBoard.

    ``folders[i]`` is where trial ``i`` logs (``<run folder>/tensorboard``). Needs the
    ``tensorboard`` package (featinv's ``tensorboard`` extra).
    """

    def __init__(self, folders: list[Any]) -> None:
        try:
            from torch.utils.tensorboard import SummaryWriter
        except ImportError as exc:  # pragma: no cover - depends on the environment
            from ..errors import FeatinvError
            from ..install import install_hint

            raise FeatinvError(f"--tensorboard needs the tensorboard package: {install_hint('tensorboard')}") from exc
        self.writers = [SummaryWriter(log_dir=str(f)) for f in folders]

    def on_start(self, run: Any) -> None:
        pass  # nothing to write before the first step

    def on_step(self, run: Any, rows: list) -> None:
        for i, (writer, row) in enumerate(zip(self.writers, rows)):
            if row is None:
                continue
            for key, value in row.items():
                if key != "step":
                    writer.add_scalar(key, value, run.step)
            every = run.configs[i].snapshot_every
            if every and run.step % every == 0:
                writer.add_image("image", run.image(i).cpu(), run.step)

    def on_end(self, run: Any, results: Any) -> None:
        for writer, result in zip(self.writers, results):
            writer.add_image("final", result.image, run.step)
            writer.add_text("summary", str(result.summary), run.step)
            writer.close()
