"""The explorer's runs: a bounded queue, one worker thread, and each run's state for the page.

A run the page starts is a normal run folder from the moment it is queued (its ``config.yaml`` is
written first), so a run never started, stopped or cut off by Ctrl-C resumes from the page or with
``featinv invert --resume --out FOLDER``. The worker runs one at a time (a CPU has no room for
two) through :func:`featinv.runs.runfolder.run_in_folder`; a :class:`Feed` callback keeps the state
the page streams: the step, the loss curve and, every ``every`` steps, target | reconstruction.

>>> queue = RunQueue(capacity=1, start=False)
>>> job = queue.submit(Job("a", Path("/nonexistent/a"), config=None))
>>> job.state, queue.waiting()
('queued', 1)
>>> queue.submit(Job("b", Path("/nonexistent/b"), config=None))
Traceback (most recent call last):
...
featinv.serve.jobs.QueueFull: the queue is full (1 run waiting): stop one or wait for it to finish
"""

from __future__ import annotations

import threading
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FeatinvError

FINISHED = ("done", "interrupted", "diverged", "failed")


class QueueFull(FeatinvError):
    """More runs asked for than the queue holds."""


@dataclass
class Job:
    """One run the page asked for, and what the page shows of it (read by the event stream)."""

    name: str  # the run folder, relative to --runs
    folder: Path
    config: Any  # the InvertConfig it runs (None only in doctests)
    model: Any = None  # the LoadedModel, shared with the page's checks
    state: str = "queued"  # queued | running | then one of FINISHED
    step: int = 0
    steps: int = 0
    losses: list[float] = field(default_factory=list)
    frame: bytes | None = None  # PNG: target | the reconstruction now
    frame_step: int = -1
    summary: dict[str, Any] | None = None
    error: str | None = None
    version: int = 0  # bumped on every change, so a stream sends only news
    _run: Any = None
    _stop: bool = False

    def changed(self) -> None:
        self.version += 1

    def request_stop(self) -> None:
        """Stop after the current step (a checkpoint is written: it resumes), or before it starts."""
        self._stop = True
        if self._run is not None:
            from ..status import Status

            self._run.request_stop(Status.INTERRUPTED)


class Feed:
    """The callback that mirrors a run into its :class:`Job`; a frame every ``every`` steps."""

    def __init__(self, job: Job, every: int) -> None:
        self.job, self.every = job, every

    def _frame(self, run: Any) -> None:
        from ..optim.results import png_bytes, side_by_side

        target = run.problem.target[run.restarts.of(0)[0]]
        self.job.frame = png_bytes(side_by_side(target, run.image(0)))
        self.job.frame_step = run.step

    def on_start(self, run: Any) -> None:
        job = self.job
        job._run, job.state, job.steps, job.step = run, "running", run.configs[0].steps, run.step
        job.losses = [row["loss"] for row in run.histories[0]]  # a resumed run's earlier steps
        if job._stop:
            job.request_stop()
        self._frame(run)
        job.changed()

    def on_step(self, run: Any, rows: list) -> None:
        job = self.job
        if rows[0] is not None:
            job.losses.append(float(rows[0]["loss"]))
        job.step = run.step
        if run.step % self.every == 0:
            self._frame(run)
        job.changed()

    def on_end(self, run: Any, results: list) -> None:
        from ..optim.results import png_bytes, side_by_side

        result = results[0]
        self.job.frame = png_bytes(side_by_side(result.target, result.image))
        self.job.frame_step = run.step  # the summary and the state: RunQueue._run, once the run returns
        self.job.changed()


class RunQueue:
    """At most ``capacity`` runs waiting, run one at a time by a worker thread in start order."""

    def __init__(self, capacity: int = 8, every: int = 5, start: bool = True) -> None:
        self.capacity, self.every = capacity, every
        self.jobs: dict[str, Job] = {}  # every job of this server, by folder name
        self._waiting: deque[Job] = deque()
        self._wake = threading.Condition()
        self._closing = False
        self.current: Job | None = None
        self._thread = threading.Thread(target=self._work, name="featinv-serve-worker", daemon=True)
        if start:
            self._thread.start()

    def waiting(self) -> int:
        return len(self._waiting)

    def submit(self, job: Job) -> Job:
        with self._wake:
            if len(self._waiting) >= self.capacity:
                raise QueueFull(
                    f"the queue is full ({len(self._waiting)} run{'s' * (len(self._waiting) != 1)} waiting): "
                    f"stop one or wait for it to finish"
                )
            job.state, job._stop, job.error = "queued", False, None
            self.jobs[job.name] = job
            self._waiting.append(job)
            job.changed()
            self._wake.notify()
        return job

    def stop(self, job: Job) -> None:
        """A waiting job leaves the queue (its folder stays, resumable); a running one stops."""
        with self._wake:
            if job in self._waiting:
                self._waiting.remove(job)
                job.state = "interrupted"
                job.changed()
                return
        job.request_stop()

    def close(self, timeout: float = 60.0) -> None:
        """Stop the running job (it writes its checkpoint) and the worker; waiting jobs stay on disk."""
        with self._wake:
            self._closing = True
            self._waiting.clear()
            self._wake.notify()
        if self.current is not None:
            self.current.request_stop()
        if self._thread.is_alive():
            self._thread.join(timeout)

    def _work(self) -> None:
        while True:
            with self._wake:
                while not self._waiting and not self._closing:
                    self._wake.wait()
                if self._closing:
                    return
                job = self.current = self._waiting.popleft()
            try:
                self._run(job)
            finally:
                self.current = None

    def _run(self, job: Job) -> None:
        from ..runs.runfolder import run_in_folder

        job.state = "running"
        job.changed()
        try:
            # the folder holds the config since the job was queued: "resume" starts or continues it
            result = run_in_folder(
                job.config, job.folder, resume=True, model=job.model, callbacks=[Feed(job, self.every)]
            )
            job.summary = dict(result.summary)
            job.state = str(result.status)
        except Exception as error:  # the page shows it; the server goes on serving
            job.error = str(error) if isinstance(error, FeatinvError) else f"{type(error).__name__}: {error}"
            job.state = "failed"
        finally:
            job._run = None
            job.changed()
