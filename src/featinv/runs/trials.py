"""A sweep's unit of work: a :class:`Trial` (name, varied parameters, config), run alone or in a batch
into its own run folder, ending as a :class:`TrialOutcome`. Failures become outcomes, never
exceptions, with one rule for every executor (:mod:`featinv.runs.executors` runs these functions on a
pool or on Ray; :mod:`featinv.runs.sweep` makes the trials and writes the table).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config import InvertConfig
from ..errors import FeatinvError
from ..status import Status


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: its name, the parameters that vary, and the full config."""

    name: str
    params: dict[str, Any]
    config: InvertConfig


@dataclass
class TrialOutcome:
    trial: Trial
    status: Status  # done | diverged | interrupted | failed
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    reused: bool = False  # finished by an earlier run of the sweep


def run_trial(
    trial: Trial, folder: Path, quiet: bool = True, tensorboard: bool = False, images: Mapping[str, bytes] | None = None
) -> TrialOutcome:
    """Run (or resume, or reuse) one trial in ``folder``; failures become outcomes, not exceptions.
    ``images``: the bytes of image files a worker cannot read from the driver's disk, by path."""
    from .runfolder import CONFIG, is_finished, read_summary, run_in_folder

    if is_finished(folder):
        return reused_outcome(trial, read_summary(folder) or {})
    try:
        result = run_in_folder(
            trial.config,
            folder,
            resume=(folder / CONFIG).is_file(),
            quiet=quiet,
            tensorboard=tensorboard,
            images=images,
        )
    except FeatinvError as exc:
        return TrialOutcome(trial, Status.FAILED, error=str(exc))
    except Exception as exc:
        return TrialOutcome(trial, Status.FAILED, error=f"{type(exc).__name__}: {exc}")
    return _outcome(trial, result)


def reused_outcome(trial: Trial, summary: dict[str, Any]) -> TrialOutcome:
    """The outcome of a trial an earlier run of the sweep finished."""
    return TrialOutcome(trial, summary.get("status", Status.DONE), summary, summary.get("message", ""), reused=True)


def _outcome(trial: Trial, result: Any) -> TrialOutcome:
    error = result.summary.get("message", "") if result.status == Status.DIVERGED else ""
    return TrialOutcome(trial, result.status, result.summary, error)


def run_batch(
    trials: Sequence[Trial],
    folders: Sequence[Path],
    quiet: bool = True,
    tensorboard: bool = False,
    images: Mapping[str, bytes] | None = None,
) -> list[TrialOutcome]:
    """Run fresh trials as one batch, each into its own folder. If the batch fails (one trial's
    image is missing, or anything else goes wrong), its trials run again one by one, resuming
    what the batch wrote, so each failure is its own trial's and recorded, never raised: the same
    rule on every executor."""
    from ..optim.inversion import Inversion
    from .runfolder import RunFolder, check_writable

    if len(trials) == 1:
        return [run_trial(trials[0], folders[0], quiet, tensorboard, images)]
    try:
        run = Inversion([t.config for t in trials], images=images)
        for folder in folders:
            check_writable(folder)
        callbacks: list[Any] = [RunFolder(f, i) for i, f in enumerate(folders)]
        if tensorboard:
            from ..optim.callbacks import TensorBoard

            callbacks.append(TensorBoard([f / "tensorboard" for f in folders]))
        results = run.run_all(callbacks)
    except Exception:
        return [run_trial(t, f, quiet, tensorboard, images) for t, f in zip(trials, folders)]
    return [_outcome(t, r) for t, r in zip(trials, results)]
