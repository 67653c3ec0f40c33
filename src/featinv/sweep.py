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

import csv
import io as _io
import itertools
import tempfile  # noqa: F401 - used by the doctest
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import io
from .config import InvertConfig, check_keys, from_dict, read_yaml
from .errors import ConfigError, FeatinvError

SWEEP_KEYS = ("base", "grid", "zip")


@dataclass(frozen=True)
class Trial:
    """One point of a sweep: its name, the parameters that vary, and the full config."""

    name: str
    params: dict[str, Any]
    config: InvertConfig


@dataclass
class TrialOutcome:
    trial: Trial
    status: str                       # done | diverged | interrupted | failed
    summary: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    reused: bool = False              # finished by an earlier run of the sweep


def _as_list(key: str, value: Any, where: str) -> list[Any]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}.{key} must be a non-empty list of values, got {value!r}")
    return value


def _fmt(value: Any) -> str:
    if isinstance(value, (list, tuple)):
        return "+".join(_fmt(v) for v in value)
    if isinstance(value, float):
        return f"{value:g}"
    text = str(value)
    return text.split(":", 1)[1] if text.startswith("skimage:") else Path(text).stem if "/" in text else text


def trial_name(params: Mapping[str, Any]) -> str:
    """A folder name a person can read: ``lr=0.01_tv=1``.

    >>> trial_name({"lr": 0.01, "layers": ["conv1_1", "pool5"]})
    'lr=0.01_layers=conv1_1+pool5'
    """
    text = "_".join(f"{k}={_fmt(v)}" for k, v in params.items()) or "base"
    return "".join(c if c.isalnum() or c in "-_=+.," else "-" for c in text)[:150]


def expand(spec: Mapping[str, Any], overrides: Mapping[str, Any] | None = None,
           where: str = "sweep") -> list[Trial]:
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
        raise ConfigError(f"{where}.zip lists must have one length, got " +
                          ", ".join(f"{k}: {len(v)}" for k, v in zip_lists.items()))
    zip_rows = [dict(zip(zip_lists, row)) for row in zip(*zip_lists.values())] or [{}]
    trials, seen = [], set()
    for combo in itertools.product(*grid_lists.values()):
        for zrow in zip_rows:
            params = {**dict(zip(grid_lists, combo)), **zrow}
            config = from_dict({**base, **(overrides or {}), **params}, where=where)
            name = trial_name(params)
            if name in seen:
                raise ConfigError(f"{where}: two trials would share the folder {name!r}; "
                                  f"remove the duplicate values")
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
    buf = _io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["name", "status", *param_keys, *COLUMNS[2:]])
    for o in outcomes:
        s = o.summary
        writer.writerow([o.trial.name, o.status, *(_fmt(o.trial.params.get(k, "")) for k in param_keys),
                         *(s.get(k, "") for k in COLUMNS[2:-1]), o.error])
    return buf.getvalue()


def run_trial(trial: Trial, folder: Path, quiet: bool = True) -> TrialOutcome:
    """Run (or resume, or skip) one trial in ``folder``; failures become outcomes, not exceptions."""
    from .runfolder import CONFIG, is_finished, read_summary, run_in_folder

    if is_finished(folder):
        summary = read_summary(folder) or {}
        return TrialOutcome(trial, summary.get("status", "done"), summary, summary.get("message", ""), True)
    try:
        result = run_in_folder(trial.config, folder, resume=(folder / CONFIG).is_file(), quiet=quiet)
    except FeatinvError as exc:
        return TrialOutcome(trial, "failed", error=str(exc))
    except Exception as exc:  # noqa: BLE001 - one broken trial must not stop the sweep
        return TrialOutcome(trial, "failed", error=f"{type(exc).__name__}: {exc}")
    error = result.summary.get("message", "") if result.status == "diverged" else ""
    return TrialOutcome(trial, result.status, result.summary, error)


def save_spec(out: Path, text: str) -> None:
    """Keep the sweep file in ``out/sweep.yaml``; an earlier, different one is kept beside it."""
    current = out / "sweep.yaml"
    if current.is_file() and current.read_text() != text:
        n = 1
        while (out / f"sweep.previous-{n}.yaml").exists():
            n += 1
        current.rename(out / f"sweep.previous-{n}.yaml")
    if not current.is_file():
        io.write_text(current, text)


def run_sweep(trials: Sequence[Trial], out: str | Path, quiet: bool = True,
              on_trial: Callable[[TrialOutcome], None] | None = None) -> list[TrialOutcome]:
    """Run every trial into ``out/trials/<name>``, writing ``out/trials.csv`` as it goes.

    >>> trials = expand({"base": {"model": "resnet18", "weights": "none", "layers": "res1",
    ...                           "size": 16, "steps": 2}, "grid": {"lr": [0.01, 0.1]}})
    >>> [o.status for o in run_sweep(trials, tempfile.mkdtemp())]
    ['done', 'done']
    """
    out = Path(out)
    outcomes: list[TrialOutcome] = []
    for trial in trials:
        outcome = run_trial(trial, out / "trials" / trial.name, quiet)
        outcomes.append(outcome)
        io.write_text(out / "trials.csv", trials_csv(outcomes))
        if on_trial:
            on_trial(outcome)
    return outcomes
