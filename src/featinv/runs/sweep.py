"""Sweeps: a base config plus a grid (and zipped lists) over any config key.

A sweep file::

    base:                 # any InvertConfig keys
      image: skimage:chelsea
      size: 64
      steps: 20
    grid:                 # every combination (cartesian product)
      lr: [0.01, 0.05]
      tv: [0.1, 1]
    zip:                  # lists of one length, varied together (optional)
      layers: [relu1_2, relu3_3]
      tv_beta: [2, 1]

Each trial is one run folder under ``OUT/trials/<name>`` (named from its parameters) with the
same contents as ``featinv invert``; ``OUT/trials.csv`` has one row per trial with its parameters
and final metrics. Re-running skips finished trials and resumes interrupted ones; a trial that
fails (bad parameter, divergence) is recorded with its reason and the sweep goes on.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import math
import os
import tempfile  # noqa: F401 - used by the doctest
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from .. import files
from ..config import check_keys, read_yaml
from ..errors import ConfigError
from ..optim.interrupts import stop_requested
from ..status import Status
from .layout import SWEEP_SPEC, TRIALS_CSV
from .trials import Trial, TrialOutcome, reused_outcome, run_batch, run_trial  # noqa: F401 - re-exported

SWEEP_KEYS = ("base", "grid", "zip")


def _as_list(key: str, value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty list of values, got {value!r}")
    return value


def _fmt(value: Any) -> str:
    if value is None:
        return "default"
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    sample = files.sample_name(text)
    if sample is not None:
        return sample
    return Path(text).stem if "/" in text else text


def trial_name(params: Mapping[str, Any]) -> str:
    """A folder name a person can read: ``lr=0.01_tv=1``.

    >>> trial_name({"lr": 0.01, "layers": ["conv1_1", "pool5"]})
    'lr=0.01_layers=conv1_1+pool5'
    """
    text = "_".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "base"
    return files.safe_name(text)


def expand(spec: Mapping[str, Any], overrides: Mapping[str, Any] | None = None, where: str = "sweep") -> list[Trial]:
    """Expand a sweep mapping into trials (grid x zip), base < overrides < trial parameters."""
    unknown = [k for k in spec if k not in SWEEP_KEYS]
    if unknown:
        raise ConfigError(f"unknown section {unknown[0]!r} in {where}: expected {', '.join(SWEEP_KEYS)}")
    base = dict(spec.get("base") or {})
    grid = dict(spec.get("grid") or {})
    zipped = dict(spec.get("zip") or {})
    for section, data in (("base", base), ("grid", grid), ("zip", zipped)):
        check_keys({str(k).replace("-", "_"): v for k, v in data.items()}, f"{where}.{section}")
    both = set(grid) & set(zipped)
    if both:
        raise ConfigError(f"{where}: {sorted(both)[0]!r} is in both grid and zip; put it in one")
    grid_lists = {k: _as_list(k, v, f"{where}.grid") for k, v in grid.items()}
    zip_lists = {k: _as_list(k, v, f"{where}.zip") for k, v in zipped.items()}
    lengths = {len(v) for v in zip_lists.values()}
    if len(lengths) > 1:
        raise ConfigError(
            f"{where}.zip lists must have one length, got " + ", ".join(f"{k}: {len(v)}" for k, v in zip_lists.items())
        )
    zip_rows = [dict(zip(zip_lists, row)) for row in zip(*zip_lists.values())] or [{}]
    from ..optim.recipes import with_recipe

    trials, seen, models = [], set(), dict[Any, Any]()
    for combo in itertools.product(*grid_lists.values()):
        for zrow in zip_rows:
            params = {**dict(zip(grid_lists, combo)), **zrow}
            config, _ = with_recipe(base, {**(overrides or {}), **params}, where, models)
            name = trial_name(params)
            if name in seen:
                raise ConfigError(f"{where}: two trials would share the folder {name!r}; remove the duplicate values")
            seen.add(name)
            trials.append(Trial(name, params, config))
    return trials


def load_sweep(path: str | Path, overrides: Mapping[str, Any] | None = None) -> list[Trial]:
    """Read a sweep YAML file and expand it."""
    return expand(read_yaml(path), overrides, where=str(path))


COLUMNS = ("name", "status", "psnr", "ssim", "feature_error_total", "seconds_per_step", "steps", "error")


def trials_csv(outcomes: Sequence[TrialOutcome]) -> str:
    """One row per trial: name, status, its varied parameters, final metrics, error."""
    param_keys = list(dict.fromkeys(k for o in outcomes for k in o.trial.params))
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "status", *param_keys, *COLUMNS[2:]])
    for o in outcomes:
        s = o.summary
        writer.writerow(
            [
                o.trial.name,
                o.status,
                *(_fmt(o.trial.params.get(k, "")) for k in param_keys),
                *(s.get(k, "") for k in COLUMNS[2:-1]),
                o.error,
            ]
        )
    return buf.getvalue()


# Trials per forward pass are capped by pixels (batch x size^2), so a batch's memory stays near
# that of 8 trials at 256 px (VGG16 to pool5: ~1.9 GB) whatever the size.
BATCH_PIXELS = 8 * 256**2


def default_batch_size(size: int, device: str = "cpu") -> int:
    """How many trials share a forward pass when ``--batch`` is not given.

    Measured (BENCHMARKS.md): on a 2-core CPU batching never cost time and paid 1.1-2x at <= 128
    px (most for ResNet18), so up to 8 trials; on an H200, 32 trials at 128 px were 2x faster per
    trial than 8, so up to 32. Above 256 px the pixel budget shrinks the batch (512 px: 2).

    >>> default_batch_size(128), default_batch_size(512), default_batch_size(128, "cuda")
    (8, 2, 32)
    """
    if device == "auto":
        import torch

        device = "cuda" if torch.cuda.is_available() else "cpu"
    cap = 32 if device.startswith("cuda") else 8
    return max(1, min(cap, BATCH_PIXELS // size**2))


def batches(trials: Sequence[Trial], folders: Sequence[Path], batch: int | None, slots: int = 1) -> list[list[int]]:
    """Group the indices of fresh trials that can share a forward pass, in order.

    With an automatic batch size (``batch=None``) and ``slots`` batches able to run at once
    (workers of a process pool, CPUs of a Ray cluster), a group is split into at least
    ``slots`` batches, so no worker idles while another runs them all.

    >>> t = expand({"base": {"size": 64}, "grid": {"lr": [0.1, 0.2, 0.3], "size": [64, 256]}})
    >>> batches(t, [Path("/nonexistent")] * 6, batch=2)
    [[0, 2], [4], [1, 3], [5]]
    >>> batches(t[::2], [Path("/nonexistent")] * 3, batch=None, slots=2)
    [[0, 1], [2]]
    """
    from ..config import batch_key
    from .runfolder import CONFIG

    groups: dict[tuple, list[int]] = {}
    singles: list[list[int]] = []
    for i, (trial, folder) in enumerate(zip(trials, folders)):
        c = trial.config
        limit = batch if batch is not None else max(1, default_batch_size(c.size, c.device) // c.restarts)
        if limit <= 1 or c.optimizer == "lbfgs" or (folder / CONFIG).is_file():
            singles.append([i])  # resumed or unbatchable trials run on their own
        else:
            groups.setdefault((batch_key(c), limit), []).append(i)
    chunks = []
    for (_, limit), idx in groups.items():
        if batch is None and slots > 1:
            limit = min(limit, max(1, math.ceil(len(idx) / slots)))
        chunks += [idx[k : k + limit] for k in range(0, len(idx), limit)]
    return chunks + singles


def save_spec(out: Path, text: str) -> None:
    """Keep the sweep file in ``out/sweep.yaml``; an earlier, different one is kept beside it."""
    current = out / SWEEP_SPEC
    if current.is_file() and current.read_text() != text:
        n = 1
        while (out / f"sweep.previous-{n}.yaml").exists():
            n += 1
        current.rename(out / f"sweep.previous-{n}.yaml")
    if not current.is_file():
        files.write_text(current, text)


def run_sweep(
    trials: Sequence[Trial],
    out: str | Path,
    on_trial: Callable[[TrialOutcome], None] | None = None,
    batch: int | None = None,
    tensorboard: bool = False,
    executor: Any = None,
) -> list[TrialOutcome]:
    """Run every trial into ``out/trials/<name>``, writing ``out/trials.csv`` as it goes.

    Fresh trials that share model, layers, size and steps run ``batch`` at a time in one
    forward/backward pass (None: :func:`default_batch_size`; 1: one by one). ``executor`` says
    where batches run (:mod:`featinv.runs.executors`; default: in this process). Only one sweep may
    run on a folder at a time.

    >>> trials = expand({"base": {"model": "resnet18", "weights": "none", "layers": "res1",
    ...                           "size": 16, "steps": 2}, "grid": {"lr": [0.01, 0.1]}})
    >>> [str(o.status) for o in run_sweep(trials, tempfile.mkdtemp())]
    ['done', 'done']
    """
    from .executors import BatchJob, LocalExecutor
    from .runfolder import is_finished, read_summary

    out = Path(out)
    executor = executor or LocalExecutor(tensorboard)
    folders = [out / "trials" / t.name for t in trials]
    done: dict[int, TrialOutcome] = {}

    def record(i: int, outcome: TrialOutcome) -> None:
        done[i] = outcome
        files.write_text(out / TRIALS_CSV, trials_csv([done[k] for k in sorted(done)]))
        if on_trial:
            on_trial(outcome)

    with sweep_lock(out):
        todo = []
        for i, (trial, folder) in enumerate(zip(trials, folders)):
            if is_finished(folder):
                record(i, reused_outcome(trial, read_summary(folder) or {}))
            else:
                todo.append(i)
        jobs = []
        slots = executor.slots() if hasattr(executor, "slots") else 1
        for chunk in batches([trials[i] for i in todo], [folders[i] for i in todo], batch, slots):
            indices = [todo[k] for k in chunk]
            jobs.append(BatchJob(indices, [trials[i] for i in indices], [folders[i] for i in indices]))
        for job, outcomes in executor.run(jobs):
            for i, outcome in zip(job.indices, outcomes):
                record(i, outcome)
            if stop_requested():  # Ctrl-C: the running batch stopped cleanly (resumable); start no other
                break
    # the trials a Ctrl-C left for the next run of the sweep
    return [
        done.get(i) or TrialOutcome(trials[i], Status.INTERRUPTED, error=" (not started)") for i in range(len(trials))
    ]


@contextlib.contextmanager
def sweep_lock(out: Path) -> Iterator[None]:
    """Hold ``out/.featinv.lock`` (an flock, released even if the process dies) for the sweep."""
    import fcntl

    from ..errors import RunFolderError

    out.mkdir(parents=True, exist_ok=True)
    path = out / ".featinv.lock"
    with open(path, "a+") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.seek(0)
            owner = handle.read().strip() or "another process"
            raise RunFolderError(
                f"another sweep is running on {str(out)!r} ({owner}): wait for it to finish, or use another --out"
            ) from None
        handle.seek(0)
        handle.truncate()
        handle.write(f"pid {os.getpid()}")
        handle.flush()
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
