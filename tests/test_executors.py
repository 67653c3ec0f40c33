"""Sweeps on a process pool and on a real local Ray: same output as local, faults survived."""

import csv
import io as _io
import json
import os
from pathlib import Path

import pytest
from PIL import Image

import crashing
from crashing import CRASH_DIR
from featinv.errors import FeatinvError, RunFolderError
from featinv.runs.executors import BatchJob, ProcessExecutor, RayExecutor, make_executor, pack, run_packed, write_folder
from featinv.runs.runfolder import is_finished
from featinv.runs.sweep import expand, run_sweep, sweep_lock

BASE = {
    "image": "skimage:chelsea",
    "model": "resnet18",
    "weights": "none",
    "layers": "res1",
    "size": 16,
    "steps": 4,
    "snapshot_every": 2,
}
SPEC = {"base": BASE, "grid": {"lr": [0.01, 0.1], "tv": [0.0, 1.0]}}
METRICS = ("status", "psnr", "ssim", "feature_error_total", "steps")


def table(folder):
    with open(folder / "trials.csv", newline="") as f:
        return {r["name"]: r for r in csv.DictReader(f)}


def assert_same_results(a, b, batched_alike=True):
    """Sweep folders ``a`` and ``b`` hold the same trials with the same files and contents. Where
    the trials ran in the same batches the contents are equal byte for byte (timings aside); a
    trial that ran in another batch (resumed alone) differs by float rounding: within 1e-4, and
    its images within one grey level."""
    ta, tb = table(a), table(b)
    assert set(ta) == set(tb)
    for name in ta:
        for key in METRICS:
            if key in ("psnr", "ssim", "feature_error_total"):
                assert float(ta[name][key]) == pytest.approx(float(tb[name][key]), rel=1e-4), (name, key)
            else:
                assert ta[name][key] == tb[name][key]
        files_a = sorted(p.relative_to(a / "trials" / name) for p in (a / "trials" / name).rglob("*") if p.is_file())
        files_b = sorted(p.relative_to(b / "trials" / name) for p in (b / "trials" / name).rglob("*") if p.is_file())
        assert files_a == files_b
        for rel in files_a:
            x, y = a / "trials" / name / rel, b / "trials" / name / rel
            assert x.stat().st_size > 0 and same(contents(x), contents(y), exact=batched_alike), (name, str(rel))


# what measures the machine rather than the result: time, memory, and the worker's thread count (env.json)
TIMINGS = {"seconds", "seconds_per_step", "seconds_total", "memory_mb", "torch_threads"}


def contents(path):
    """A file as data: CSV rows, JSON, a checkpoint's tensors, an image's pixels, else bytes."""
    import numpy as np
    import torch

    if path.suffix == ".csv":
        with open(path, newline="") as f:
            return [{k: number(v) for k, v in r.items()} for r in csv.DictReader(f)]
    if path.suffix == ".json":
        return json.loads(path.read_text())
    if path.suffix == ".pt":
        return torch.load(path, weights_only=True)
    if path.suffix == ".png":
        return np.asarray(Image.open(path)).astype(int)
    return path.read_bytes()


def number(text):
    try:
        return float(text)
    except ValueError:
        return text


def same(x, y, exact=True):
    import numpy as np
    import torch

    if isinstance(x, dict):
        ignored = TIMINGS if exact else TIMINGS | {"batch_size"}  # a trial resumed alone ran in a batch of 1
        keys = set(x) - ignored
        return keys == set(y) - ignored and all(same(x[k], y[k], exact) for k in keys)
    if isinstance(x, (list, tuple)):
        return len(x) == len(y) and all(same(a, b, exact) for a, b in zip(x, y))
    if isinstance(x, torch.Tensor):
        return torch.equal(x, y) if exact else x.shape == y.shape and torch.allclose(x, y, rtol=1e-4, atol=1e-6)
    if isinstance(x, np.ndarray):
        return x.shape == y.shape and (np.array_equal(x, y) if exact else np.abs(x - y).max() <= 1)
    if isinstance(x, float) and not exact:
        return x == pytest.approx(y, rel=1e-4, abs=1e-7)
    return x == y


@pytest.fixture(scope="module")
def local_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("local")
    run_sweep(expand(SPEC), out, batch=2)
    return out


def test_process_pool_equals_local(local_run, tmp_path):
    outcomes = run_sweep(expand(SPEC), tmp_path, batch=2, executor=ProcessExecutor(workers=2))
    assert [o.status for o in outcomes] == ["done"] * 4
    assert_same_results(local_run, tmp_path)
    assert not list((tmp_path / "trials").glob(".*"))  # no partial folders left behind


def test_process_pool_survives_a_worker_killed_mid_trial(tmp_path, monkeypatch):
    monkeypatch.setenv(CRASH_DIR, str(tmp_path / "crashes"))
    outcomes = run_sweep(
        expand(SPEC), tmp_path / "out", batch=2, executor=ProcessExecutor(workers=2, task=crashing.crash_once)
    )
    assert [o.status for o in outcomes] == ["done"] * 4
    assert len(list((tmp_path / "crashes").iterdir())) >= 1  # at least one worker really died
    assert len(table(tmp_path / "out")) == 4


def test_a_pool_worker_dies_at_once_on_sigterm_mid_inversion(tmp_path):
    """A broken pool SIGTERMs its surviving workers and waits for them. A worker that took SIGTERM
    as "finish the step and return" then blocked sending its result, which nobody reads any
    more: the pool, the sweep and the test run hung (CI, stop 14)."""
    import multiprocessing
    import signal
    import time

    marker = tmp_path / "running"
    worker = multiprocessing.get_context("spawn").Process(target=crashing.invert_until_killed, args=(str(marker),))
    worker.start()
    try:
        deadline = time.monotonic() + 120
        while not marker.exists() and worker.is_alive() and time.monotonic() < deadline:
            time.sleep(0.1)
        assert marker.exists(), f"the worker never started its loop (exit code {worker.exitcode})"
        worker.terminate()
        worker.join(timeout=30)
        assert worker.exitcode == -signal.SIGTERM
    finally:
        worker.kill()
        worker.join()


def test_stopping_on_signals_leaves_a_hosts_own_sigterm_handler_in_place(tiny_net):
    """Within stop_on_signals (what the CLI and pool workers use), Ctrl-C is featinv's clean stop
    but SIGTERM is taken only where nobody handles it: a host with its own handler (a pool worker,
    Ray, a service) keeps it, during the run and after."""
    import signal

    import torch

    from featinv.api import invert
    from featinv.optim.interrupts import stop_on_signals

    seen = {}

    class Look:
        def on_step(self, run, rows):
            seen["term"], seen["int"] = signal.getsignal(signal.SIGTERM), signal.getsignal(signal.SIGINT)

    def host_handler(signum, frame):
        pass

    previous = signal.signal(signal.SIGTERM, host_handler)
    int_before = signal.getsignal(signal.SIGINT)  # Python's default, or SIG_IGN in a background job
    try:
        with stop_on_signals():
            invert(torch.rand(3, 8, 8), model=tiny_net, layers="relu2", size=8, steps=1, callbacks=[Look()])
        assert seen["term"] is host_handler
        assert seen["int"] is not int_before  # featinv's clean Ctrl-C
        assert signal.getsignal(signal.SIGTERM) is host_handler
        assert signal.getsignal(signal.SIGINT) is int_before
    finally:
        signal.signal(signal.SIGTERM, previous)


def test_process_pool_gives_up_when_retries_run_out(tmp_path):
    spec = {"base": BASE, "grid": {"lr": [0.01, 0.1]}}
    outcomes = run_sweep(
        expand(spec), tmp_path, batch=2, executor=ProcessExecutor(workers=1, max_retries=1, task=crashing.crash_always)
    )
    assert [o.status for o in outcomes] == ["failed"] * 2
    assert all(o.error == "worker died 2 times; gave up" for o in outcomes)
    assert {r["status"] for r in table(tmp_path).values()} == {"failed"}
    assert not (tmp_path / "trials").exists() or not any((tmp_path / "trials").iterdir())


def test_a_plain_exception_in_a_batch_is_each_trials_recorded_failure(tmp_path, monkeypatch):
    """Not only featinv's own errors: anything a batch raises is recorded per trial, as on a pool."""
    from featinv.optim.inversion import Inversion

    def broken(self, callbacks=()):
        raise RuntimeError("a bug in a callback")

    monkeypatch.setattr(Inversion, "run_all", broken)
    monkeypatch.setattr(Inversion, "run", broken)
    outcomes = run_sweep(expand(SPEC), tmp_path, batch=2)
    assert [o.status for o in outcomes] == ["failed"] * 4
    assert all("RuntimeError: a bug in a callback" in o.error for o in outcomes)


def test_worker_needs_no_driver_disk(tmp_path):
    buf = _io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(buf, format="PNG")
    trials = expand({"base": {**BASE, "image": "/driver/only/red.png"}, "grid": {"lr": [0.05]}})
    job = BatchJob([0], trials, [tmp_path / "x"])
    packed = pack(job)
    packed["images"] = {"/driver/only/red.png": buf.getvalue()}
    (result,) = run_packed(packed)
    assert result["status"] == "done" and "final.png" in result["files"]
    write_folder(tmp_path / "trials" / trials[0].name, result["files"])
    assert is_finished(tmp_path / "trials" / trials[0].name)
    assert "/driver/only/red.png" in (tmp_path / "trials" / trials[0].name / "config.yaml").read_text()


def test_a_write_that_breaks_leaves_no_finished_looking_folder(tmp_path, monkeypatch):
    trials = expand({"base": BASE, "grid": {"lr": [0.05]}})
    (result,) = run_packed(pack(BatchJob([0], trials, [tmp_path / "none"])))
    folder = tmp_path / "trials" / trials[0].name
    monkeypatch.setattr("pathlib.Path.rename", lambda self, target: (_ for _ in ()).throw(OSError("killed")))
    with pytest.raises(OSError):
        write_folder(folder, result["files"])
    assert not folder.exists() and not is_finished(folder)


def test_a_second_sweep_on_the_same_folder_is_refused(tmp_path):
    with sweep_lock(tmp_path):
        with pytest.raises(RunFolderError, match="another sweep is running"):
            run_sweep(expand(SPEC), tmp_path)


def test_unknown_executor_and_missing_ray(monkeypatch):
    with pytest.raises(FeatinvError, match="Did you mean 'ray'"):
        make_executor("rays")
    monkeypatch.setitem(__import__("sys").modules, "ray", None)
    with pytest.raises(FeatinvError, match=r"run `pip install 'ray>=2.40'` \(featinv's ray extra"):
        list(RayExecutor().run([]))


@pytest.fixture(scope="module")
def ray_local(tmp_path_factory):
    import ray

    crash_dir = tmp_path_factory.mktemp("ray-crashes")
    tests = str(Path(__file__).parent)  # Ray's workers import tests/crashing.py from here
    path = os.pathsep.join(p for p in (tests, os.environ.get("PYTHONPATH", "")) if p)
    ray.init(
        num_cpus=2,
        include_dashboard=False,
        object_store_memory=80 * 2**20,
        log_to_driver=False,
        runtime_env={"env_vars": {CRASH_DIR: str(crash_dir), "PYTHONPATH": path}},
    )
    yield crash_dir
    ray.shutdown()


@pytest.mark.timeout(600)
def test_ray_equals_local_even_with_workers_killed(ray_local, local_run, tmp_path):
    outcomes = run_sweep(expand(SPEC), tmp_path, batch=2, executor=RayExecutor(max_retries=2, task=crashing.crash_once))
    assert [o.status for o in outcomes] == ["done"] * 4
    assert len(list(ray_local.iterdir())) == 2  # each of the 2 batches lost its first worker
    assert_same_results(local_run, tmp_path)


@pytest.mark.timeout(600)
def test_ray_driver_interrupted_then_rerun_resumes(ray_local, tmp_path):
    trials = expand(SPEC)

    def stop_after_first(outcome):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_sweep(trials, tmp_path, batch=1, executor=RayExecutor(), on_trial=stop_after_first)
    finished = [t.name for t in trials if is_finished(tmp_path / "trials" / t.name)]
    assert len(finished) == 1
    outcomes = run_sweep(trials, tmp_path, batch=1, executor=RayExecutor())
    assert [o.status for o in outcomes] == ["done"] * 4
    assert [o.reused for o in outcomes].count(True) == 1


@pytest.mark.timeout(600)
def test_ray_records_a_failing_trial_and_goes_on(ray_local, tmp_path):
    trials = expand({"base": BASE, "grid": {"layers": ["res1", "no_such_layer"]}})
    outcomes = run_sweep(trials, tmp_path, batch=1, executor=RayExecutor())
    assert [o.status for o in outcomes] == ["done", "failed"]
    assert "unknown layer 'no_such_layer'" in outcomes[1].error
    assert table(tmp_path)[trials[1].name]["status"] == "failed"


@pytest.mark.timeout(600)
def test_ray_resumes_a_trial_left_unfinished_on_the_driver(ray_local, local_run, tmp_path):
    """An interrupted trial's folder travels to a worker, is resumed there, and ends as a local run."""
    from featinv.optim.callbacks import StopAfter
    from featinv.runs.runfolder import run_in_folder

    trials = expand(SPEC)
    folder = tmp_path / "trials" / trials[0].name
    assert run_in_folder(trials[0].config, folder, callbacks=[StopAfter(2)]).status == "interrupted"
    driver_steps = contents(folder / "log.csv")
    outcomes = run_sweep(trials, tmp_path, batch=2, executor=RayExecutor())
    assert [o.status for o in outcomes] == ["done"] * 4
    assert_same_results(local_run, tmp_path, batched_alike=False)  # the resumed trial ran alone at first
    # resumed, not started over: the driver's two steps, their timings included, head the final log
    assert contents(folder / "log.csv")[:2] == driver_steps
