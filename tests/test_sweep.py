import csv

import pytest

from featinv.errors import ConfigError
from featinv.optim.callbacks import StopAfter
from featinv.runs.runfolder import run_in_folder
from featinv.runs.sweep import expand, run_sweep

BASE = {"image": "skimage:chelsea", "model": "resnet18", "weights": "none", "layers": "res1", "size": 16, "steps": 4}


def test_grid_times_zip_with_readable_names():
    trials = expand(
        {
            "base": BASE,
            "grid": {"lr": [0.01, 0.1], "tv": [0, 1]},
            "zip": {"layers": ["res1", ["res2", "middle1"]], "seed": [1, 2]},
        }
    )
    assert len(trials) == 8
    assert trials[0].name == "lr=0.01_tv=0_layers=res1_seed=1"
    assert trials[-1].name == "lr=0.1_tv=1_layers=res2+middle1_seed=2"
    assert trials[-1].config.layers == ("res2", "middle1") and trials[-1].config.lr == 0.1
    assert trials[0].config.steps == 4 and trials[0].config.model == "resnet18"


def test_overrides_sit_between_base_and_trial_parameters():
    trials = expand({"base": BASE, "grid": {"lr": [0.5]}}, overrides={"steps": 9, "lr": 0.1})
    assert trials[0].config.steps == 9 and trials[0].config.lr == 0.5


@pytest.mark.parametrize(
    "spec,message",
    [
        ({"base": BASE, "grid": {"learning_rate": [1]}}, "unknown key 'learning_rate'"),
        ({"base": BASE, "grids": {}}, "unknown section 'grids'"),
        ({"base": BASE, "zip": {"lr": [1, 2], "tv": [1]}}, "one length"),
        ({"base": BASE, "grid": {"lr": 0.1}}, "non-empty list"),
        ({"base": BASE, "grid": {"lr": [0.1, -1]}}, "lr must be"),
        ({"base": BASE, "grid": {"lr": [0.1]}, "zip": {"lr": [0.2]}}, "both grid and zip"),
    ],
)
def test_bad_sweeps_fail_before_running(spec, message):
    with pytest.raises(ConfigError, match=message):
        expand(spec)


def rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def test_a_failed_trial_is_recorded_and_the_sweep_goes_on(tmp_path):
    trials = expand({"base": BASE, "grid": {"layers": ["res1", "res99", "middle2"]}})
    outcomes = run_sweep(trials, tmp_path)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    table = rows(tmp_path / "trials.csv")
    assert [r["status"] for r in table] == ["done", "failed", "done"]
    assert "unknown layer 'res99'" in table[1]["error"] and float(table[0]["psnr"]) > 0
    assert table[0]["layers"] == "res1" and float(table[2]["seconds_per_step"]) > 0


def test_rerun_skips_finished_and_resumes_interrupted_trials(tmp_path):
    trials = expand({"base": BASE, "grid": {"lr": [0.01, 0.1]}})
    run_in_folder(trials[1].config, tmp_path / "trials" / trials[1].name, callbacks=[StopAfter(2)])
    first = run_sweep(trials[:1], tmp_path)
    assert not first[0].reused
    again = run_sweep(trials, tmp_path)
    assert [o.reused for o in again] == [True, False]
    assert [o.status for o in again] == ["done", "done"] and again[1].summary["steps"] == 4
    assert len(rows(tmp_path / "trials.csv")) == 2


def test_batched_trials_equal_sequential_ones(tmp_path):
    """Trials differing in lr, schedule, TV, alpha weight, seed and image share one pass.

    The batch is the same computation as the single runs, but the convolution may sum in
    another order (channels-last oneDNN kernels differ by batch size), and Adam's normalised
    step amplifies last-bit differences where a gradient is near zero (its first step is
    lr * sign(g)). Tolerances: first-step losses agree to 1e-5 relative; after 15 steps final
    losses to 1 % and pixels to a mean absolute difference of 0.01 (2.6 grey levels). Measured:
    three trials bit-identical, the fourth (no TV) 0.5 % and 0.007."""
    spec = {
        "base": {**BASE, "size": 32, "steps": 15, "layers": "res2"},
        "zip": {
            "lr": [0.02, 0.05, 0.1, 0.05],
            "tv": [0.1, 1.0, 0.5, 0.0],
            "seed": [0, 1, 2, 3],
            "alpha_norm": [0.0, 0.0, 1.0, 0.5],
            "image": ["skimage:chelsea", "skimage:coffee", "skimage:astronaut", "skimage:chelsea"],
            "schedule": ["constant", "step:every=5,gamma=0.5", "cosine", "exp:final=0.1"],
        },
    }
    trials = expand(spec)
    batched = run_sweep(trials, tmp_path / "b", batch=4)
    single = run_sweep(trials, tmp_path / "s", batch=1)
    assert [o.summary["batch_size"] for o in batched] == [4] * 4
    assert [o.summary["batch_size"] for o in single] == [1] * 4
    from featinv.files import read_image

    for b, s in zip(batched, single):
        assert b.status == s.status == "done"
        first = [
            float(next(csv.DictReader(open(tmp_path / d / "trials" / b.trial.name / "log.csv")))["loss"])
            for d in ("b", "s")
        ]
        assert first[0] == pytest.approx(first[1], rel=1e-5)
        assert b.summary["final_loss"] == pytest.approx(s.summary["final_loss"], rel=1e-2)
        a, c = (read_image(tmp_path / d / "trials" / b.trial.name / "final.png") for d in ("b", "s"))
        assert (a - c).abs().mean() <= 0.01


def test_a_bad_trial_inside_a_batch_fails_alone(tmp_path):
    trials = expand({"base": BASE, "grid": {"image": ["skimage:chelsea", "/no/such.png", "skimage:coffee"]}})
    outcomes = run_sweep(trials, tmp_path, batch=8)
    assert [o.status for o in outcomes] == ["done", "failed", "done"]
    assert "image not found" in outcomes[1].error


def test_a_diverging_trial_does_not_spoil_its_batch(tmp_path):
    spec = {
        "base": {**BASE, "optimizer": "sgd", "momentum": 0, "clamp": False, "tv": 0, "steps": 6, "param": "pixel"},
        "grid": {"lr": [0.01, 1e30]},
    }
    trials = expand(spec)
    batched = run_sweep(trials, tmp_path / "b", batch=2)
    alone = run_sweep(trials[:1], tmp_path / "s", batch=1)
    assert [o.status for o in batched] == ["done", "diverged"]
    assert batched[0].summary["final_loss"] == pytest.approx(alone[0].summary["final_loss"], rel=1e-4)


def test_automatic_batches_are_spread_over_the_executors_slots(tmp_path):
    """A pool that runs two batches at once gets two half batches, not one full one and an idle
    worker; an explicit --batch still wins."""
    from featinv.runs.executors import LocalExecutor

    class TwoSlots(LocalExecutor):
        def slots(self) -> int:
            return 2

    spec = {"base": BASE, "grid": {"lr": [0.01, 0.02, 0.05, 0.1, 0.2]}}
    spread = run_sweep(expand(spec), tmp_path / "auto", executor=TwoSlots())
    assert [o.summary["batch_size"] for o in spread] == [3, 3, 3, 2, 2]
    fixed = run_sweep(expand(spec), tmp_path / "fixed", batch=5, executor=TwoSlots())
    assert [o.summary["batch_size"] for o in fixed] == [5] * 5
