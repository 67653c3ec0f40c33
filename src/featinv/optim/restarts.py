"""The images of a batch and the trials they belong to: a trial with ``restarts: N`` is N images
(slots) optimised side by side, and what the trial shows is its best one.

>>> import torch
>>> from featinv.config import InvertConfig
>>> def slot(trial, loss):
...     s = Slot(trial, InvertConfig(), torch.nn.Linear(1, 1), None, [])
...     s.history.append({"loss": loss})
...     return s
>>> restarts = Restarts([slot(0, 2.0), slot(0, 1.0), slot(1, 3.0)])
>>> restarts.of(0), restarts.best(0).history, restarts.statuses
([0, 1], [{'loss': 1.0}], [<Status.RUNNING: 'running'>, <Status.RUNNING: 'running'>])
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from ..config import InvertConfig
from ..status import Status

Row = dict[str, float]


@dataclass
class Slot:
    """One image being optimised: a trial, or one restart of a trial."""

    trial: int
    config: InvertConfig  # the trial's config with this restart's seed
    param: torch.nn.Module  # an ImageParam, or a module of the user's (forward() -> [1, 3, S, S])
    transforms: Any  # featinv.optim.transforms.Transforms
    last_good: list[torch.Tensor]  # the parameters after the last finite step (buffers, copied into)
    history: list[Row] = field(default_factory=list)
    status: Status = Status.RUNNING

    def __post_init__(self) -> None:
        self.tensors: list[torch.Tensor] = list(self.param.parameters())  # once: the loop touches them every step


class Restarts:
    """Slots grouped by trial: each trial's best restart, status and log row."""

    def __init__(self, slots: list[Slot]) -> None:
        self.slots = slots
        trials = max(s.trial for s in slots) + 1
        # read several times a step, fixed for the run
        self._of = [[k for k, s in enumerate(slots) if s.trial == i] for i in range(trials)]

    def __len__(self) -> int:
        """The number of trials."""
        return len(self._of)

    def of(self, trial: int) -> list[int]:
        """The slots (indices) of one trial."""
        return self._of[trial]

    def best(self, trial: int) -> Slot:
        """The trial's restart with the lowest latest loss, a diverged one only if all diverged
        (its only one without restarts)."""
        mine = [self.slots[k] for k in self._of[trial]]
        return min(mine, key=lambda s: (s.status == Status.DIVERGED, s.history[-1]["loss"] if s.history else math.inf))

    @property
    def running(self) -> list[bool]:
        """Whether each slot still steps."""
        return [s.status == Status.RUNNING for s in self.slots]

    @property
    def histories(self) -> list[list[Row]]:
        return [self.best(i).history for i in range(len(self))]

    @property
    def statuses(self) -> list[Status]:
        """Each trial's status: running while any of its restarts runs."""
        out = []
        for i in range(len(self)):
            mine = [self.slots[k].status for k in self._of[i]]
            best = self.best(i)
            out.append(Status.RUNNING if Status.RUNNING in mine else best.status if best.history else mine[0])
        return out

    def record(self, rows: list[Row | None], finite: list[bool]) -> list[Slot]:
        """Log each slot's row of this step; a slot whose loss or parameters stopped being finite
        is marked diverged and gets its last good parameters back. Returns those slots."""
        diverged = []
        for slot, row, ok in zip(self.slots, rows, finite):
            if row is None:
                continue
            if not math.isfinite(row["loss"]) or not ok:
                slot.status = Status.DIVERGED
                diverged.append(slot)
                with torch.no_grad():
                    torch._foreach_copy_(slot.tensors, slot.last_good)  # keep the last good image
            else:
                slot.history.append(row)
        return diverged

    def finish(self, status: Status) -> None:
        """Every slot still running ends with ``status``."""
        for slot in self.slots:
            if slot.status == Status.RUNNING:
                slot.status = status

    def trial_rows(self, rows: list[Row | None]) -> list[Row | None]:
        """Each trial's row of this step: its best restart's (None if none of them stepped)."""
        out = []
        for i in range(len(self)):
            mine = [row for k in self._of[i] if (row := rows[k]) is not None and self.slots[k].status == Status.RUNNING]
            out.append(min(mine, key=lambda r: r["loss"]) if mine else None)
        return out
