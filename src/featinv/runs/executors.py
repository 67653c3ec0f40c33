"""Where a sweep's batches run: in this process, in a local process pool, or on a Ray cluster.

The local executor writes run folders as it goes (checkpoints, resumable mid-trial). The others
send each batch to a worker as plain data -- the configs, the bytes of any image files they
name, and the files of a trial folder an earlier run left unfinished -- and the worker runs it
with the very same code (:func:`featinv.runs.sweep.run_batch`) in a scratch folder and returns every
file it wrote. The driver alone writes ``OUT/trials/<name>``: first into a hidden partial folder,
then renamed into place, so a folder with a name is always a complete one and the output is
identical to a local sweep. Workers need featinv and its dependencies, not the driver's disk
(model files named by path -- ``.onnx``, ``.pth`` -- must be reachable by them).

A worker that dies is retried (``max_retries`` times, then the trials are recorded as failed);
results are written only when they arrive, so no trial is lost or written twice.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .. import files
from ..config import from_dict
from ..errors import FeatinvError
from ..status import Status
from .trials import Trial, TrialOutcome, run_batch

EXECUTORS = ("local", "processes", "ray")


@dataclass
class BatchJob:
    """Trials that run together, with the index of each in the sweep and its run folder."""

    indices: list[int]
    trials: list[Trial]
    folders: list[Path]


# -- what travels to a worker and back ---------------------------------------------------
def _folder_files(folder: Path) -> dict[str, bytes]:
    if not folder.is_dir():
        return {}
    return {str(p.relative_to(folder)): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


def pack(job: BatchJob) -> dict[str, Any]:
    """A batch as plain data: configs, names, image bytes, unfinished folders' files."""
    images = {}
    for t in job.trials:
        for source in (t.config.image, t.config.init):
            if Path(source).is_file():
                images[source] = Path(source).read_bytes()
    return {
        "configs": [t.config.to_dict() for t in job.trials],
        "names": [t.name for t in job.trials],
        "params": [t.params for t in job.trials],
        "images": images,
        "existing": [_folder_files(f) for f in job.folders],
    }


def run_packed(packed: dict[str, Any]) -> list[dict[str, Any]]:
    """Run a packed batch (in a worker process) and return each trial's outcome and files."""
    trials = [Trial(n, p, from_dict(c)) for n, p, c in zip(packed["names"], packed["params"], packed["configs"])]
    with tempfile.TemporaryDirectory(prefix="featinv-worker-") as tmp:
        folders = [Path(tmp) / "trials" / n for n in packed["names"]]
        for folder, existing in zip(folders, packed["existing"]):
            for rel, data in existing.items():
                (folder / rel).parent.mkdir(parents=True, exist_ok=True)
                (folder / rel).write_bytes(data)
        outcomes = run_batch(trials, folders, images=packed["images"])
        return [
            {"status": o.status, "summary": o.summary, "error": o.error, "files": _folder_files(f)}
            for o, f in zip(outcomes, folders)
        ]


def write_folder(folder: Path, contents: dict[str, bytes]) -> None:
    """Write a trial folder from a worker's files: into a hidden partial folder, then renamed.
    The worker's ``config.yaml`` is kept as it is: it holds the config as the run resolved it
    (default layers, layer-adaptive values), exactly as a local sweep writes it."""
    if not contents:
        return
    partial = folder.parent / f".{folder.name}.partial"
    shutil.rmtree(partial, ignore_errors=True)
    for rel, data in contents.items():
        files.write_bytes(partial / rel, data)
    if folder.exists():  # an unfinished folder whose files the worker received and returned
        old = folder.parent / f".{folder.name}.old"
        shutil.rmtree(old, ignore_errors=True)
        folder.rename(old)
        partial.rename(folder)
        shutil.rmtree(old, ignore_errors=True)
    else:
        partial.rename(folder)


def unpack(job: BatchJob, results: list[dict[str, Any]]) -> list[TrialOutcome]:
    outcomes = []
    for trial, folder, r in zip(job.trials, job.folders, results):
        write_folder(folder, r["files"])
        outcomes.append(TrialOutcome(trial, r["status"], r["summary"], r["error"]))
    return outcomes


def failed(job: BatchJob, reason: str) -> list[TrialOutcome]:
    return [TrialOutcome(t, Status.FAILED, error=reason) for t in job.trials]


# -- executors ---------------------------------------------------------------------------
class LocalExecutor:
    """Batches one after another in this process, writing folders as they go (the default)."""

    def __init__(self, tensorboard: bool = False) -> None:
        self.tensorboard = tensorboard

    def slots(self) -> int:
        """How many batches run at once."""
        return 1

    def run(self, jobs: Sequence[BatchJob]) -> Iterator[tuple[BatchJob, list[TrialOutcome]]]:
        for job in jobs:
            yield job, run_batch(job.trials, job.folders, tensorboard=self.tensorboard)


def _die_on_sigterm(signum: int, frame: Any) -> None:
    """A pool worker's SIGTERM: end now, with SIGTERM's own exit status."""
    import signal

    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGTERM)


def _worker_init(threads: int) -> None:
    """A pool worker is featinv's own process: it gets the CLI's settings. A broken pool ends its
    surviving workers with SIGTERM and waits for them without reading their results, so a worker
    must die at once rather than finish its step and block sending a result; Ctrl-C (which the
    terminal sends the workers too) stops each worker's inversion cleanly, as in the CLI
    (:mod:`featinv.optim.interrupts`, which leaves a SIGTERM handler it finds in place)."""
    import signal

    import torch

    from ..nets.perf import tune_process
    from ..optim.interrupts import install

    torch.set_num_threads(threads)
    tune_process()
    signal.signal(signal.SIGTERM, _die_on_sigterm)
    install()


# What a worker runs for each packed batch: run_packed, or (tests) a function that wraps it and
# must be importable by the workers.
Task = Callable[[dict[str, Any]], list[dict[str, Any]]]


class ProcessExecutor:
    """Batches on a local pool of ``workers`` processes (each with cores/workers threads)."""

    def __init__(self, workers: int = 2, max_retries: int = 3, task: Task = run_packed) -> None:
        self.workers, self.max_retries, self.task = max(1, workers), max_retries, task

    def slots(self) -> int:
        return self.workers

    def run(self, jobs: Sequence[BatchJob]) -> Iterator[tuple[BatchJob, list[TrialOutcome]]]:
        import multiprocessing
        from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
        from concurrent.futures.process import BrokenProcessPool

        threads = max(1, (os.cpu_count() or 1) // self.workers)
        pending = {i: job for i, job in enumerate(jobs)}
        attempts = {i: 0 for i in pending}
        while pending:
            context = multiprocessing.get_context("spawn")  # no fork of a threaded torch process
            with ProcessPoolExecutor(
                self.workers, mp_context=context, initializer=_worker_init, initargs=(threads,)
            ) as pool:
                futures = {pool.submit(self.task, pack(job)): i for i, job in pending.items()}
                broken = False
                while futures and not broken:
                    done, _ = wait(futures, return_when=FIRST_COMPLETED)
                    for future in done:
                        i = futures.pop(future)
                        try:
                            results = future.result()
                        except BrokenProcessPool:
                            broken = True  # a worker died: every unfinished batch goes again
                            continue
                        except Exception as exc:
                            job = pending.pop(i)
                            yield job, failed(job, f"worker error: {type(exc).__name__}: {exc}")
                            continue
                        job = pending.pop(i)
                        yield job, unpack(job, results)
            for i in list(pending):
                attempts[i] += 1
                if attempts[i] > self.max_retries:
                    job = pending.pop(i)
                    yield job, failed(job, f"worker died {attempts[i]} times; gave up")


class RayExecutor:
    """Batches as Ray tasks: a local Ray, ``RAY_ADDRESS``, or ``address`` (``ray://head:10001``)."""

    def __init__(
        self,
        address: str | None = None,
        cpus: float = 1,
        gpus: float = 0,
        max_retries: int = 3,
        init_options: dict | None = None,
        task: Task = run_packed,
    ) -> None:
        self.address, self.cpus, self.gpus = address, cpus, gpus
        self.max_retries, self.init_options, self.task = max_retries, init_options or {}, task

    def _connect(self) -> Any:
        try:
            import ray
        except ImportError:
            from ..install import install_hint

            raise FeatinvError(f"--executor ray needs Ray: {install_hint('ray')}") from None
        if not ray.is_initialized():
            env = {k: v for k, v in os.environ.items() if k.startswith("FEATINV_")}
            options = {
                "include_dashboard": False,
                "log_to_driver": False,
                "runtime_env": {"env_vars": env},
                **self.init_options,
            }
            address = self.address or os.environ.get("RAY_ADDRESS")
            if address:
                import featinv

                options["runtime_env"]["py_modules"] = [str(Path(featinv.__file__).parent)]
                ray.init(address=address, **options)
            else:
                ray.init(**options)
        return ray

    def slots(self) -> int:
        """Tasks the cluster can run at once, by its CPUs (or GPUs, when tasks ask for them)."""
        resources = self._connect().cluster_resources()
        if self.gpus:
            return max(1, int(resources.get("GPU", 0) // self.gpus))
        return max(1, int(resources.get("CPU", 1) // self.cpus))

    def run(self, jobs: Sequence[BatchJob]) -> Iterator[tuple[BatchJob, list[TrialOutcome]]]:
        ray = self._connect()
        task = ray.remote(num_cpus=self.cpus, num_gpus=self.gpus, max_retries=self.max_retries, retry_exceptions=False)(
            self.task
        )
        refs = {task.remote(pack(job)): job for job in jobs}
        while refs:
            ready, _ = ray.wait(list(refs), num_returns=1)
            for ref in ready:
                job = refs.pop(ref)
                try:
                    results = ray.get(ref)
                except ray.exceptions.RayError as exc:  # retries exhausted, or the task raised
                    yield job, failed(job, f"ray task failed: {str(exc).splitlines()[0][:300]}")
                    continue
                yield job, unpack(job, results)


def make_executor(
    name: str, workers: int = 2, address: str | None = None, tensorboard: bool = False, gpus: float = 0
) -> Any:
    if name == "local":
        return LocalExecutor(tensorboard)
    if tensorboard:
        raise FeatinvError("--tensorboard works with --executor local only (event files are written as the run goes)")
    if name == "processes":
        return ProcessExecutor(workers)
    if name == "ray":
        return RayExecutor(address, gpus=gpus)
    from ..errors import did_you_mean

    raise FeatinvError(
        f"unknown executor {name!r}: expected one of {', '.join(EXECUTORS)}.{did_you_mean(name, EXECUTORS)}"
    )
