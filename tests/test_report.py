"""Reports from run, sweep and study folders, checked as files and in a real headless browser."""

import re
from html import escape

import pytest

from featinv.config import InvertConfig
from featinv.errors import RunFolderError
from featinv.reports.report import chromium, report, screenshot
from featinv.runs.runfolder import run_in_folder
from featinv.runs.sweep import expand, run_sweep

BASE = {
    "image": "skimage:chelsea",
    "model": "resnet18",
    "weights": "none",
    "layers": "res2",
    "size": 32,
    "steps": 6,
    "snapshot_every": 2,
}


def images_in(html: str) -> list[str]:
    return re.findall(r"<img [^>]*src='([^']*)'", html)


def test_run_report(tmp_path):
    run_in_folder(InvertConfig(**{**BASE, "layers": ("res2",)}), tmp_path / "run")
    html_path = report(tmp_path / "run")
    html = html_path.read_text()
    assert "Snapshot progression" in html and "Loss" in html and "psnr" in html
    assert all(src.startswith("data:image/png;base64,") for src in images_in(html)) and len(images_in(html)) == 3
    md = (tmp_path / "run" / "report.md").read_text()
    for link in re.findall(r"\]\((report_files/[^)]+)\)", md):
        assert (tmp_path / "run" / link).is_file()
    assert "fell from" in md  # the findings sentence, written from the log


def test_sweep_report_has_curves_grid_table_and_findings(tmp_path):
    trials = expand({"base": BASE, "grid": {"lr": [0.01, 0.1], "tv": [0.0, 1.0]}})
    run_sweep(trials, tmp_path)
    html = report(tmp_path).read_text()
    assert "Convergence" in html and "Reconstructions" in html
    assert html.count("<tr>") == 5  # header + 4 trials
    best = max((o for o in run_sweep(trials, tmp_path)), key=lambda o: o.summary["psnr"])
    assert f"Best PSNR: {best.trial.name}" in html
    assert "http://" not in html and "https://" not in html  # no CDN, nothing remote


def test_nothing_to_report(tmp_path):
    with pytest.raises(RunFolderError, match="nothing to report"):
        report(tmp_path)


@pytest.fixture(scope="module")
def fast_study(tmp_path_factory):
    from featinv.experiments.study import run_seed_study

    out = tmp_path_factory.mktemp("study")
    run_seed_study(out, fast=True, size=32, steps=8)  # every question, small: the pipeline, not the quality
    return out


def test_fast_seed_study_produces_every_figure_and_table(fast_study):
    html = report(fast_study).read_text()
    for title in ("Q1", "Q2", "Q3", "Q4"):
        assert f"<h2>{title} —" in html
    for name in (
        "q1_learning_rate_curves",
        "q2_total_variation_grid",
        "q3_layers_grid",
        "q3_layers_diversity",
        "q4_models_grid",
        "structure_vgg16_offline",
        "structure_resnet18",
        "structure_mobilenet_v2_offline",
    ):
        assert f"alt='{name}'" in html
    assert "Best setting by final normalised feature loss" in html
    assert "ms/step" in html and "memory MB" in html and "no (random init)" in html
    assert "(random init)" in html  # flagged next to every image of a random network too
    assert (fast_study / "q4_models" / "trials.csv").read_text().count("done") == 6
    assert "Both trained, at stride 4: the residual MobileNetV2 keeps" in html
    assert "Across three restarts each, the per-pixel spread is" in html


def test_report_in_a_real_headless_browser(fast_study, chromium_installed):
    """Every image decodes and every section renders in Chromium, every table fits the page at
    1200 px (Q4's was cut at 'feature_error_tota'); a screenshot is kept."""
    html_path = report(fast_study)
    dom = chromium(html_path, "--dump-dom", "--virtual-time-budget=5000", "--window-size=1200,1000")
    assert re.search(r'data-tables-wider="(\d+)"', dom).group(1) == "0"
    assert int(re.search(r'data-width="(\d+)"', dom).group(1)) <= 1200  # nothing scrolls sideways
    total = int(re.search(r'data-images="(\d+)"', dom).group(1))
    ok = int(re.search(r'data-images-ok="(\d+)"', dom).group(1))
    assert total >= 12 and ok == total
    sections = int(re.search(r'data-sections="(\d+)"', dom).group(1))
    shown = int(re.search(r'data-sections-shown="(\d+)"', dom).group(1))
    assert sections == 5 and shown == sections  # About + Q1-Q4, each with a heading and content
    height = int(re.search(r'data-height="(\d+)"', dom).group(1))
    assert height > 4000  # the page is taller than the old fixed screenshot
    shot = screenshot(html_path)
    from PIL import Image

    with Image.open(shot) as img:
        assert img.size[0] == 1200 and abs(img.size[1] - min(height, 16000)) < 200  # the whole page
        bottom = img.crop((0, img.size[1] - 600, img.size[0], img.size[1]))
        assert bottom.convert("L").getextrema()[0] < 200  # the last section is in it, not blank


def test_cli_report_writes_the_page_of_a_run_and_refuses_a_folder_without_one(tmp_path):
    """(The study's own command line is tested with its resume, below.)"""
    from conftest import run_cli

    run_in_folder(InvertConfig(**{**BASE, "layers": ("res2",), "steps": 2}), tmp_path / "run")
    proc = run_cli("report", str(tmp_path / "run"))
    page = tmp_path / "run" / "report.html"
    assert proc.returncode == 0 and str(page) in proc.stdout, proc.stderr
    assert "res2" in page.read_text() and "<img" in page.read_text()
    proc = run_cli("report", str(tmp_path / "none"))
    assert proc.returncode == 2 and "nothing to report" in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("option", ["--size", "--steps"])
def test_a_study_refuses_a_size_or_step_count_of_zero_before_it_starts(option, tmp_path):
    from conftest import run_cli
    from featinv.errors import ConfigError
    from featinv.experiments.study import seed_specs

    with pytest.raises(ConfigError, match=option.lstrip("-")):
        seed_specs(fast=True, **{option.lstrip("-"): 0})
    proc = run_cli("study", "seed", "--fast", option, "0", "--out", str(tmp_path / "study"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert option.lstrip("-") in proc.stderr and "got 0" in proc.stderr
    assert not (tmp_path / "study").exists()  # refused before anything was written


def test_a_sweep_report_with_failed_and_diverged_trials(tmp_path):
    trials = expand(
        {
            "base": {**BASE, "param": "pixel", "tv": 0, "momentum": 0},
            "zip": {
                "layers": ["res2", "no_such_layer", "res2"],
                "lr": [0.05, 0.05, 1e30],
                "optimizer": ["adam", "adam", "sgd"],
                "clamp": [True, True, False],
            },
        }
    )
    outcomes = run_sweep(trials, tmp_path)
    assert [o.status for o in outcomes] == ["done", "failed", "diverged"]
    html = report(tmp_path).read_text()
    assert escape(f"1 failed: {trials[1].name} (unknown layer 'no_such_layer'") in html
    assert f"Diverged (learning rate too high): {trials[2].name}" in html
    assert html.count("<tr>") == 4  # header + every trial, the failed one included


def test_cli_study_resumes_and_report_takes_a_screenshot(fast_study, tmp_path, chromium_installed):
    from conftest import run_cli

    proc = run_cli("study", "seed", "--fast", "--size", "32", "--steps", "8", "--out", str(fast_study), "--quiet")
    assert proc.returncode == 0, proc.stderr
    assert str(fast_study / "report.html") in proc.stdout  # every trial kept: only the report is written
    run_in_folder(InvertConfig(**{**BASE, "layers": ("res2",), "steps": 2}), tmp_path / "run")
    shot = run_cli("report", str(tmp_path / "run"), "--screenshot")
    assert shot.returncode == 0, shot.stderr
    assert (tmp_path / "run" / "report.png").stat().st_size > 10_000


def test_the_study_ranks_speeds_only_where_the_step_times_can_tell(tmp_path):
    """One contended measurement ranked networks wrongly: the fastest is named only when its
    middle half of step times lies below every other's, and a run whose steps swing is flagged."""
    import torch

    from featinv.files import save_image
    from featinv.reports.pages import RunRecord
    from featinv.reports.study_pages import q4_findings, q4_table

    def run(model, times):
        save_image(torch.zeros(3, 4, 4), tmp_path / model / "final.png")
        summary = {"model": model, "psnr": 20.0, "pretrained": True, "status": "done"}
        history = [{"step": i + 1, "loss": 1.0, "seconds": t} for i, t in enumerate(times)]
        return RunRecord(tmp_path / model, model, {"model": model, "layers": ["relu3_3"]}, summary, history)

    steady = [0.5] + [0.010 + 0.0001 * (i % 5) for i in range(40)]  # a slow first step, then ~10 ms
    slower = [0.5] + [0.030 + 0.0001 * (i % 5) for i in range(40)]
    assert q4_findings([run("a", steady), run("b", slower)]).startswith("Fastest: a at relu3_3 (10 ms/step")
    swinging = [0.5] + [0.025 if i % 2 else 0.374 for i in range(40)]  # 25 to 374 ms, as seen on a busy machine
    text = q4_findings([run("a", steady), run("b", slower), run("c", swinging)])
    assert "too close to rank" not in text and "varied by more than half within 1 of 3 runs" in text
    overlapping = [0.5] + [0.008 + 0.004 * (i % 3) for i in range(40)]  # 8-16 ms: overlaps a's 10 ms
    text = q4_findings([run("a", steady), run("d", overlapping)])
    assert text.startswith("Speed: too close to rank") and "d (" in text
    assert "middle half" in q4_table([run("a", steady)]).headers


def test_the_study_from_python_resumes_its_folder_and_returns_its_report(fast_study, tmp_path):
    import shutil

    import featinv

    study = shutil.copytree(fast_study, tmp_path / "study")
    lost = sorted((study / "q4_models" / "trials").iterdir())[0]
    shutil.rmtree(lost)  # one trial lost: it runs again, the others are kept
    page = featinv.study(study, size=32, steps=8)
    assert (lost / "summary.json").is_file()
    assert page.path == study / "report.html"
    assert all(f"<h2>{q} —" in page.path.read_text() for q in ("Q1", "Q2", "Q3", "Q4"))
    assert "srcdoc=" in page._repr_html_() and repr(page) == f"<Page {page.path}>"
