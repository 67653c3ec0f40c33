"""Smoke tests of the benchmark scripts at tiny sizes: they run and report sane numbers."""
import json
import subprocess
import sys

from conftest import ROOT


def test_batched_sweep_benchmark_reports_throughput(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batched_sweep.py"), "--sizes", "32",
                           "--steps", "2", "--trials", "2", "--model", "vgg16_offline", "--layer", "relu1_2",
                           "--json", str(out)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["size"] == 32 and row["trials"] == 2
    assert row["sequential_s"] > 0 and row["batched_s"] > 0 and row["speedup"] > 0
    assert "speedup" in proc.stdout


def test_featinv_bench_smoke(tmp_path):
    """`featinv bench` at a tiny size: every field present and sane (no speed thresholds)."""
    from conftest import run_cli
    out = tmp_path / "bench.json"
    proc = run_cli("bench", "--cases", "vgg16_bn:conv1_2", "resnet18:res2", "--sizes", "32", "--batches", "1",
                   "--batched-cases", "resnet18:res1", "--batched-sizes", "32", "--steps", "3", "--warmup", "1", "--device", "cpu", "--json", str(out))
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
    for key in ("sequential_s_per_trial_step", "batched_s_per_trial_step", "batched_speedup",
                "floor_single_s", "floor_batched_s_per_image", "floor_speedup"):
        assert b[key] > 0, key
    assert "naive/featinv" in proc.stdout


def test_quality_benchmark_smoke(tmp_path):
    """`featinv bench --quality` at a tiny size: every method's row and field, and the grid (no thresholds)."""
    from conftest import run_cli
    proc = run_cli("bench", "--quality", "--photos", "astronaut", "clock", "--quality-cases", "vgg16_offline:relu1_2",
                   "--methods", "default", "fourier", "peer", "flat", "mahendran2016", "--quality-size", "32",
                   "--quality-steps", "3", "--out", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    data = json.loads((tmp_path / "quality.json").read_text())
    assert data["size"] == 32 and data["environment"]["torch"]
    rows = [r for r in data["rows"] if not r["equal_time"]]
    assert {(r["method"], r["photo"]) for r in rows} == {(m, p) for m in ("default", "fourier", "peer", "flat",
                                                                        "mahendran2016") for p in ("astronaut", "clock")}
    for r in rows:
        assert r["psnr"] > 0 and -1 <= r["ssim"] <= 1 and r["psnr_8x"] > 0 and r["feature_error"] >= 0
    assert {r["steps"] for r in rows if r["method"] == "mahendran2016"} == {350}  # the recipe's own count
    assert (tmp_path / "grid_vgg16_offline_relu1_2.png").stat().st_size > 0
    table = (tmp_path / "quality.md").read_text()
    assert "| vgg16_offline | relu1_2 | flat |" in table and "held-out PSNR (worst)" in table  # clock is held out


def test_quality_benchmark_resumes_and_refuses_other_settings(tmp_path):
    """A second run into the same folder keeps the finished cases and adds the new one; a run at another
    size is refused (exit 2, one line) instead of overwriting the first."""
    from conftest import run_cli
    common = ["bench", "--quality", "--photos", "astronaut", "--methods", "flat", "--quality-size", "32",
              "--quality-steps", "2", "--out", str(tmp_path)]
    assert run_cli(*common, "--quality-cases", "vgg16_offline:relu1_2").returncode == 0
    first = json.loads((tmp_path / "quality.json").read_text())["rows"]
    proc = run_cli(*common, "--quality-cases", "vgg16_offline:relu1_2", "vgg16_offline:pool1")
    assert proc.returncode == 0, proc.stderr
    assert "relu1_2: kept from the earlier run" in proc.stdout
    rows = json.loads((tmp_path / "quality.json").read_text())["rows"]
    assert rows[:len(first)] == first and {r["layer"] for r in rows} == {"relu1_2", "pool1"}
    refused = run_cli(*common[:-4], "--quality-steps", "3", "--out", str(tmp_path),
                      "--quality-cases", "vgg16_offline:relu1_2")
    assert refused.returncode == 2 and "choose another --out" in refused.stderr
    assert len(refused.stderr.strip().splitlines()) == 1
    assert json.loads((tmp_path / "quality.json").read_text())["rows"] == rows
