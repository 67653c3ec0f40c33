"""Smoke tests of the benchmark scripts at tiny sizes: they run and report sane numbers."""

import json
import subprocess
import sys

import pytest

from conftest import ROOT


def test_batched_sweep_benchmark_reports_throughput(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run(
        [
            sys.executable,
            str(ROOT / "benchmarks" / "batched_sweep.py"),
            "--sizes",
            "32",
            "--steps",
            "2",
            "--trials",
            "2",
            "--model",
            "vgg16_offline",
            "--layer",
            "relu1_2",
            "--json",
            str(out),
        ],
        capture_output=True,
        text=True,
    )
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["size"] == 32 and row["trials"] == 2
    assert row["sequential_s"] > 0 and row["batched_s"] > 0 and row["speedup"] > 0
    assert "speedup" in proc.stdout


def test_featinv_bench_smoke(tmp_path):
    """`featinv bench` at a tiny size: every field present and sane (no speed thresholds)."""
    from conftest import run_cli

    out = tmp_path / "bench.json"
    proc = run_cli(
        "bench",
        "--cases",
        "vgg16_bn:conv1_2",
        "resnet18:res2",
        "--sizes",
        "32",
        "--batches",
        "1",
        "--batched-cases",
        "resnet18:res1",
        "--batched-sizes",
        "32",
        "--steps",
        "3",
        "--warmup",
        "1",
        "--device",
        "cpu",
        "--json",
        str(out),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads(out.read_text())
    assert data["environment"]["device"] == "cpu" and data["environment"]["torch"]
    assert [(r["model"], r["layer"]) for r in data["steps"]] == [("vgg16_bn", "conv1_2"), ("resnet18", "res2")]
    for r in data["steps"]:
        for key in ("floor_s", "featinv_s", "naive_s", "memory_mb", "step_memory_mb", "gflop_per_step", "gflops_per_s"):
            assert r[key] > 0, key
        assert r["compile"] is None and r["compile_s"] == 0  # eager unless --compile
        assert r["featinv_ops"] > r["floor_ops"] > 0  # the step adds loss, priors and the update
    (b,) = data["batched"]
    assert (b["model"], b["layer"], b["trials"]) == ("resnet18", "res1", 8)
    for key in (
        "sequential_s_per_trial_step",
        "batched_s_per_trial_step",
        "batched_speedup",
        "floor_single_s",
        "floor_batched_s_per_image",
        "floor_speedup",
    ):
        assert b[key] > 0, key
    assert "naive/featinv" in proc.stdout


def test_quality_benchmark_smoke(tmp_path):
    """`featinv bench --quality` at a tiny size: every method's row and field, and the grid (no thresholds)."""
    from conftest import run_cli

    proc = run_cli(
        "bench",
        "--quality",
        "--photos",
        "astronaut",
        "clock",
        "--quality-cases",
        "vgg16_offline:relu1_2",
        "--methods",
        "default",
        "fourier",
        "peer",
        "flat",
        "mahendran2016",
        "--quality-size",
        "32",
        "--quality-steps",
        "3",
        "--out",
        str(tmp_path),
    )
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["size"] == 32 and data["environment"]["torch"]
    rows = [r for r in data["rows"] if not r["equal_time"]]
    assert {(r["method"], r["photo"]) for r in rows} == {
        (m, p) for m in ("default", "fourier", "peer", "flat", "mahendran2016") for p in ("astronaut", "clock")
    }
    for r in rows:
        assert r["psnr"] > 0 and -1 <= r["ssim"] <= 1 and r["psnr_8x"] > 0 and r["feature_error"] >= 0
    assert {r["steps"] for r in rows if r["method"] == "mahendran2016"} == {350}  # the recipe's own count
    for r in rows:  # VGG16 judged by EfficientNet-Lite0, which has classes
        assert r["judge_rank"] >= 1 and -1 <= r["judge_cosine"] <= 1 and r["class_agreement"] in (0, 1)
        assert r["judge_confident"] in (0, 1)
    assert {r["judge_rank"] for r in rows if r["method"] == "flat"} != {1} or len(rows) < 4  # a floor, not a photo
    assert (tmp_path / "grid_vgg16_offline_relu1_2.png").stat().st_size > 0
    table = (tmp_path / "quality.md").read_text()
    assert "| vgg16_offline | relu1_2 | flat |" in table and "held-out PSNR (worst)" in table  # clock is held out
    assert "judge: own photo first" in table and "class in top 5 (confident)" in table


def test_quality_benchmark_resumes_and_refuses_other_settings(tmp_path):
    """A second run into the same folder keeps the finished cases and adds the new one; a run at another
    size is refused (exit 2, one line) instead of overwriting the first."""
    from conftest import run_cli

    common = [
        "bench",
        "--quality",
        "--photos",
        "astronaut",
        "--methods",
        "flat",
        "--quality-size",
        "32",
        "--quality-steps",
        "2",
        "--out",
        str(tmp_path),
    ]
    assert run_cli(*common, "--quality-cases", "vgg16_offline:relu1_2").returncode == 0
    first = json.loads((tmp_path / "quality.json").read_text())["rows"]
    proc = run_cli(*common, "--quality-cases", "vgg16_offline:relu1_2", "vgg16_offline:pool1")
    assert proc.returncode == 0, proc.stderr
    assert "relu1_2: kept from the earlier run" in proc.stdout
    rows = json.loads((tmp_path / "quality.json").read_text())["rows"]
    assert rows[: len(first)] == first and {r["layer"] for r in rows} == {"relu1_2", "pool1"}
    refused = run_cli(
        *common[:-4], "--quality-steps", "3", "--out", str(tmp_path), "--quality-cases", "vgg16_offline:relu1_2"
    )
    assert refused.returncode == 2 and "choose another --out" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads((tmp_path / "quality.json").read_text())["rows"] == rows


def _quality_report_module():
    import importlib.util

    path = ROOT / "benchmarks" / "quality_report.py"
    spec = importlib.util.spec_from_file_location("quality_report", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_quality_report_merges_runs_later_rows_first(tmp_path):
    """QUALITY.md from two runs: the later run's rows replace the earlier one's for the same key,
    the rows it lacks are kept but for equal-time rows timed against a default it replaced, the
    grid comes from the run that ran the default, and each run's notes and machine are named;
    runs at another size are refused."""
    from featinv.experiments import quality

    report = _quality_report_module()
    rows = quality.run_benchmark(
        ["astronaut"],
        ["vgg16_offline:relu1_2"],
        ["flat", "default"],
        size=32,
        steps=2,
        equal_time=False,
        grid_dir=tmp_path / "a",
        progress=lambda line: None,
    )
    env = {"processor": "x86_64", "threads": 2, "device": "cpu", "date": "2026-12-02 05:00"}
    earlier = {"environment": env, "size": 32, "steps": 2, "rows": quality.to_json(rows)}
    timed = {**earlier["rows"][-1], "method": "pixel", "equal_time": True}  # timed against the old default
    earlier["rows"].append(timed)
    (tmp_path / "a" / "quality.json").write_text(json.dumps(earlier))
    later = {
        **earlier,
        "environment": {**env, "date": "2026-12-03 06:00"},
        "rows": [{**r, "psnr": 99.0} for r in earlier["rows"] if r["method"] == "default"],
    }
    (tmp_path / "b.json").write_text(json.dumps(later))
    (tmp_path / "b.notes.md").write_text("The default re-ran.")
    report.main([tmp_path / "a", tmp_path / "b.json"], root=tmp_path / "out")
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    flat = next(r for r in rows if r.method == "flat")
    assert "| vgg16_offline | relu1_2 | default (pixel) | 2 | 99.00 (99.00) |" in text
    assert f"| vgg16_offline | relu1_2 | flat | 0 | {flat.psnr:.2f} ({flat.psnr:.2f}) |" in text
    assert "Merged from 2 runs" in text and "b.json` (" in text
    assert "2026-12-03 06:00): vgg16_offline:relu1_2 (default)" in text
    assert "The default re-ran." in text and "pixel (equal time)" not in text
    assert (tmp_path / "out" / "docs" / "quality" / "grid_vgg16_offline_relu1_2.png").stat().st_size > 0
    (tmp_path / "c.json").write_text(json.dumps({**later, "size": 64}))
    with pytest.raises(SystemExit, match="cannot share a table"):
        report.main([tmp_path / "a", tmp_path / "c.json"], root=tmp_path / "out")


def test_quality_report_keeps_photos_outside_the_benchmark_in_a_section_of_their_own(tmp_path):
    """``--unseen`` runs (photos outside the benchmark's ten) are not merged into the main table,
    whose means are over the benchmark's photos: they get their own section, table and grids."""
    from featinv.experiments import quality

    report = _quality_report_module()
    env = {"processor": "x86_64", "threads": 2, "device": "cpu", "date": "2026-12-05 00:00"}
    for folder, photo in (("main", "astronaut"), ("unseen", "coffee")):
        rows = quality.run_benchmark(
            [photo],
            ["vgg16_offline:relu1_2"],
            ["flat", "default"],
            size=32,
            steps=2,
            equal_time=False,
            grid_dir=tmp_path / folder,
            progress=lambda line: None,
        )
        (tmp_path / folder / "quality.json").write_text(
            json.dumps({"environment": env, "size": 32, "steps": 2, "rows": quality.to_json(rows)})
        )
    (tmp_path / "unseen" / "notes.md").write_text("Photos nobody chose on.")
    coffee_flat = next(r for r in rows if r.method == "flat")
    report.main([tmp_path / "main"], root=tmp_path / "out", unseen=[tmp_path / "unseen"])
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    main_part, _, unseen_part = text.partition("## Photos outside the benchmark")
    flat_line = f"| vgg16_offline | relu1_2 | flat | 0 | {coffee_flat.psnr:.2f} ({coffee_flat.psnr:.2f}) |"
    assert flat_line in unseen_part and flat_line not in main_part
    assert "1 more photos that ship with the same packages (coffee)" in unseen_part
    assert "Photos nobody chose on." in unseen_part and "The same bars on these photos:" in unseen_part
    assert "![grid_vgg16_offline_relu1_2](docs/quality/unseen/grid_vgg16_offline_relu1_2.png)" in unseen_part
    assert (tmp_path / "out" / "docs" / "quality" / "unseen" / "grid_vgg16_offline_relu1_2.png").stat().st_size > 0
    assert "(astronaut)" not in unseen_part and "coffee" not in main_part


def test_time_to_picture_and_the_native_size_get_sections_of_their_own(tmp_path):
    """benchmarks/time_to_picture.py keeps each method's image every few steps with its wall time
    and the judge's verdict; quality_report puts it, and runs at the network's own size, in
    sections of their own, never in the main table."""
    from featinv.experiments import quality

    curves = tmp_path / "ttp.json"
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "time_to_picture.py"), "--photos", "coffee", "--layers",
         "relu1_2", "--methods", "default", "peer", "--size", "32", "--steps", "20", "--every", "10",
         "--out", str(curves), "--plot", str(tmp_path / "ttp.png")],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(curves.read_text())["rows"]
    steps = {m: [r["step"] for r in rows if r["method"] == m] for m in ("default", "peer")}
    assert steps["default"] == [10, 20] and steps["peer"][-1] == 201
    seconds = [r["seconds"] for r in rows if r["method"] == "default"]
    assert 0 < seconds[0] < seconds[1]
    assert all(1 <= r["judge_rank"] <= 22 and -1 <= r["judge_cosine"] <= 1 for r in rows)
    assert (tmp_path / "ttp.png").stat().st_size > 0

    report = _quality_report_module()
    env = {"processor": "x86_64", "threads": 2, "device": "cpu", "date": "2026-12-07 00:00"}
    for folder, size in (("main", 32), ("native", 48)):
        made = quality.run_benchmark(
            ["astronaut"], ["vgg16_offline:relu1_2"], ["flat"], size=size, steps=2, equal_time=False,
            grid_dir=tmp_path / folder, progress=lambda line: None, judged=False,
        )  # fmt: skip
        (tmp_path / folder / "quality.json").write_text(
            json.dumps({"environment": env, "size": size, "steps": 2, "rows": quality.to_json(made)})
        )
    report.main([tmp_path / "main"], root=tmp_path / "out", native=[tmp_path / "native"], time_to_picture=curves)
    text = (tmp_path / "out" / "QUALITY.md").read_text()
    main_part, _, rest = text.partition("## Deep layers at the network's own size")
    native_part, _, timed_part = rest.partition("## Time to a good picture")
    flat = made[0]
    assert f"| flat | 0 | {flat.psnr:.2f} ({flat.psnr:.2f}) |" in native_part
    assert f"| flat | 0 | {flat.psnr:.2f}" not in main_part and "The deep layers at 48 px" in native_part
    assert "| relu1_2 | default | 20 |" in timed_part and "| relu1_2 | peer | 201 |" in timed_part


def test_feature_error_scores_an_image_against_the_photos_features():
    """The helper the flat/peer rows and the probes score with: the photo itself has no error,
    its flat mean colour has some, at the layer's default objective."""
    from featinv.experiments import quality

    cache = {}
    problem = quality.photo_problem("astronaut", "vgg16_offline", "relu1_2", 32, cache)
    target = problem.target[0].cpu()
    assert quality.feature_error(problem, target) < 1e-6
    flat = target.mean((1, 2), keepdim=True).expand_as(target)
    assert quality.feature_error(problem, flat) > 0.1
    assert quality.photo_problem("coffee", "vgg16_offline", "relu1_2", 32, cache).model is problem.model


def test_quality_targets_keep_networks_with_the_same_layer_name_apart():
    """EfficientNet-Lite0 and MobileNetV2 both have a ``stage3``: each is checked on its own rows."""
    report = _quality_report_module()

    def row(model, method, psnr):
        return {
            "photo": "astronaut",
            "model": model,
            "layer": "stage3",
            "method": method,
            "psnr": psnr,
            "ssim": 0.5,
            "equal_time": False,
        }

    data = {
        "rows": [
            row("efficientnet_lite0_offline", "default", 22.0),
            row("efficientnet_lite0_offline", "peer", 12.0),
            row("mobilenet_v2_offline", "default", 10.0),
            row("mobilenet_v2_offline", "peer", 11.0),
        ]
    }
    lines = report.targets(data)
    assert (
        "- met: efficientnet_lite0_offline stage3: default not worse than peer in PSNR and SSIM "
        "(22.00 / 0.500 vs 12.00 / 0.500)" in lines
    )
    assert (
        "- **not met**: mobilenet_v2_offline stage3: default not worse than peer in PSNR and SSIM "
        "(10.00 / 0.500 vs 11.00 / 0.500)" in lines
    )


def test_quality_table_groups_each_case_whatever_order_the_rows_came_in():
    """A merged report's rows arrive in the order of its runs: the table still lists each case
    together, equal-steps rows before equal-time ones."""
    from featinv.experiments.quality import Row, table

    def row(layer, method, equal_time=False):
        return Row("astronaut", "vgg16_offline", layer, method, 200, 20.0, 0.5, 25.0, 0.01, 0.1, equal_time, "pixel")

    rows = [
        row("relu3_3", "default"),
        row("relu3_3", "dip", True),
        row("pool5", "default"),
        row("relu3_3", "pixel"),
        row("pool5", "dip"),
    ]
    names = [line.split(" | ")[1:3] for line in table(rows).splitlines()[2:]]
    assert names == [
        ["relu3_3", "default (pixel)"],
        ["relu3_3", "pixel"],
        ["relu3_3", "dip (equal time)"],
        ["pool5", "default (pixel)"],
        ["pool5", "dip"],
    ]


def test_pool5_best_param_counts_the_default_row_as_its_parameterisation():
    """A run that skips ``--methods dip`` where dip is the default still has dip's rows: the
    default's. The pool5 best-param target must see them, not fall back to the best other param."""
    report = _quality_report_module()

    def row(method, psnr, ssim, param):
        return {
            "photo": "astronaut",
            "model": "vgg16_offline",
            "layer": "pool5",
            "method": method,
            "psnr": psnr,
            "ssim": ssim,
            "equal_time": False,
            "param": param,
        }

    data = {"rows": [row("default", 13.0, 0.3, "dip"), row("pixel", 12.0, 0.1, "pixel"), row("flat", 14.0, 0.4, None)]}
    lines = report.targets(data)
    assert (
        "- met: pool5, best param (dip) >= 10.5 dB and SSIM >= 0.2 (13.00 dB, SSIM 0.300; the flat "
        "mean-colour image: 14.00 dB, SSIM 0.400)" in lines
    )


def test_deep_levers_probe_runs_each_lever_and_gets_a_section_of_its_own(tmp_path):
    """benchmarks/probes/deep_levers.py runs every lever as a change to the defaults (here: 3 steps
    instead of 200) on every photo, judges them, and quality_report gives them a section with a
    row per lever and a line per photo."""
    out = tmp_path / "levers" / "levers.json"
    out.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probes" / "deep_levers.py"), "steps=3", "default", "flat",
         "--layer",
         "relu1_2", "--photos", "coffee", "chelsea", "--size", "32", "--out", str(out), "--grids", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    rows = json.loads(out.read_text())["rows"]
    assert sorted((r["method"], r["photo"], r["steps"]) for r in rows) == [
        ("default", "chelsea", 200), ("default", "coffee", 200), ("flat", "chelsea", 0), ("flat", "coffee", 0),
        ("steps=3", "chelsea", 3), ("steps=3", "coffee", 3),
    ]  # fmt: skip
    assert all(r["judge_rank"] >= 1 for r in rows)
    from PIL import Image

    assert Image.open(out.with_name("grid_vgg16_offline_relu1_2.png")).height == 18 + 96 * 4  # targets, 3 levers

    report = _quality_report_module()
    (tmp_path / "main").mkdir()
    (tmp_path / "main" / "quality.json").write_text(
        json.dumps({"environment": {}, "size": 32, "steps": 2, "rows": [{**rows[0], "layer": "conv1_1"}]})
    )
    # another network's levers (its own file): their rows, and a per-photo table of their own
    other = tmp_path / "other" / "levers.json"
    other.parent.mkdir()
    proc = subprocess.run(
        [sys.executable, str(ROOT / "benchmarks" / "probes" / "deep_levers.py"), "steps=3", "--model",
         "efficientnet_lite0_offline", "--layer", "stage2", "--photos", "coffee", "--size", "32", "--out", str(other)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    report.main([tmp_path / "main"], root=tmp_path / "out", levers=[out, other])
    section = (tmp_path / "out" / "QUALITY.md").read_text().partition("## Levers for deep layers")[2]
    assert "| vgg16_offline | relu1_2 | steps=3 | 3 |" in section and "| coffee |" in section
    assert "| efficientnet_lite0_offline | stage2 | steps=3 | 3 |" in section
    per_photo = section.partition("Per photo:")[2]
    vgg, _, effnet = per_photo.partition("efficientnet_lite0_offline stage2:")
    assert "vgg16_offline relu1_2:" in vgg and "| chelsea |" in vgg
    assert "| coffee |" in effnet and "| chelsea |" not in effnet  # only the photo it ran
    assert "(docs/quality/levers/grid_vgg16_offline_relu1_2.png)" in section
    assert (tmp_path / "out" / "docs" / "quality" / "levers" / "grid_vgg16_offline_relu1_2.png").is_file()
