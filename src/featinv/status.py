"""How a run (or one trial of a sweep) stands: one vocabulary for the loop, the run folders, sweeps,
reports and the CLI's exit codes. A :class:`Status` is a ``str``, so ``summary.json`` and
``trials.csv`` hold the plain words and read back equal to the members.

>>> Status.DONE == "done", Status("diverged") in FINISHED, str(Status.INTERRUPTED)
(True, True, 'interrupted')
"""

from __future__ import annotations

from enum import StrEnum


class Status(StrEnum):
    RUNNING = "running"  # still stepping (a slot or trial inside the loop)
    DONE = "done"  # ran its steps
    INTERRUPTED = "interrupted"  # stopped early (Ctrl-C, a callback): resumable
    DIVERGED = "diverged"  # the loss became NaN/Inf: the last good image is kept
    FAILED = "failed"  # a sweep's trial that raised (bad input, out of memory, a lost worker)


FINISHED = (Status.DONE, Status.DIVERGED)  # the run ended: its result is final, a resume reuses it
HAS_IMAGE = (*FINISHED, Status.INTERRUPTED)  # it left a final image (an interrupted run can resume)
