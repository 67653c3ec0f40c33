"""The names of what run, sweep and study folders hold, and the one reader of a run's log: every
module that writes or reads these folders takes the names from here.

>>> from pathlib import Path
>>> read_log(Path("/nonexistent"))
[]
"""

from __future__ import annotations

import csv
from pathlib import Path

# a run folder
CONFIG = "config.yaml"  # the resolved config (resuming compares against it)
SUMMARY = "summary.json"  # how it ended and how good the result is (featinv.optim.results.Summary)
CHECKPOINT = "checkpoint.pt"  # everything needed to continue (Inversion.state_dict)
LOG = "log.csv"  # one row a step: loss, its terms, lr, seconds
TARGET = "target.png"
FINAL = "final.png"
WINDOW = "window.png"  # --window: the pixels its cells see, drawn on the target
DIVERSITY = "diversity.png"  # --diversity: every restart, their mean and spread
# a sweep folder
SWEEP_SPEC = "sweep.yaml"
TRIALS_CSV = "trials.csv"
TRIALS_DIR = "trials"  # one run folder per trial
# a study folder
STUDY = "study.json"

RESULT_FILES = (FINAL, TARGET, SUMMARY, LOG, CONFIG, CHECKPOINT)  # what Result.paths lists


def read_log(folder: Path) -> list[dict[str, float]]:
    """A run folder's log.csv as rows of floats (``[]`` where there is none yet)."""
    path = Path(folder) / LOG
    if not path.is_file():
        return []
    with open(path, newline="") as f:
        return [{k: float(v) for k, v in row.items()} for row in csv.DictReader(f)]
