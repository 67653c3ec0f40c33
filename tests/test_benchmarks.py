"""Smoke tests of the benchmark scripts at tiny sizes: they run and report sane numbers."""
import json
import subprocess
import sys

from conftest import ROOT


def test_batched_sweep_benchmark_reports_throughput(tmp_path):
    out = tmp_path / "b.json"
    proc = subprocess.run([sys.executable, str(ROOT / "benchmarks" / "batched_sweep.py"), "--sizes", "32",
                           "--steps", "2", "--trials", "2", "--model", "vgg16_offline", "--layer", "relu1_2",
                           "--json", str(out)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    assert row["size"] == 32 and row["trials"] == 2
    assert row["sequential_s"] > 0 and row["batched_s"] > 0 and row["speedup"] > 0
    assert "speedup" in proc.stdout
