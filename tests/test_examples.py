"""The notebooks in examples/ run end to end in a real kernel (at 32 px and 10 steps: their first,
'parameters' cell is replaced), and show what they say: images, and the numbers they print."""

import re

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import ROOT

NOTEBOOKS = sorted((ROOT / "examples").glob("*.ipynb"))
SMALL = {"SIZE": "32", "STEPS": "10"}


def run_small(path, cwd):
    nb = nbformat.read(path, as_version=4)
    cell = next(c for c in nb.cells if "parameters" in c.metadata.get("tags", []))
    for name, value in SMALL.items():
        cell.source, count = re.subn(rf"^{name} = [^#\n]+", f"{name} = {value}  ", cell.source, flags=re.M)
        assert count == 1, f"{path.name}: no {name} in the parameters cell"
    NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}).execute()
    return nb


def outputs(nb):
    return [o for c in nb.cells if c.cell_type == "code" for o in c.outputs]


def text(nb):
    return "\n".join(o.get("text", "") + o.get("data", {}).get("text/plain", "") for o in outputs(nb))


def pngs(nb):
    return [o for o in outputs(nb) if "image/png" in o.get("data", {})]


def test_the_examples_are_three_notebooks_stored_without_outputs():
    assert [p.name for p in NOTEBOOKS] == [
        "01-quick-start.ipynb",
        "02-seed-study.ipynb",
        "03-bring-your-own-network.ipynb",
    ]
    for path in NOTEBOOKS:
        nb = nbformat.read(path, as_version=4)
        assert not outputs(nb) and path.stat().st_size < 20_000, path.name


@pytest.mark.slow
def test_quick_start(tmp_path):
    nb = run_small(ROOT / "examples" / "01-quick-start.ipynb", tmp_path)
    printed = text(nb)
    assert "<Result vgg16_offline relu3_3: done after 10 steps; PSNR" in printed
    for layer, param in [("relu1_2", "pixel"), ("relu3_3", "pyramid"), ("pool5", "dip")]:
        assert re.search(rf"{layer}\s+param {param}\s+PSNR\s+[\d.]+ dB", printed), layer
    for param in ("pixel", "fourier", "pyramid", "dip"):
        assert re.search(rf"^{param}\s+PSNR\s+[\d.]+ dB", printed, flags=re.M), param
    assert len(pngs(nb)) >= 4  # the live view's last frame, the loss curve, the two rows of images


@pytest.mark.slow
def test_seed_study(tmp_path):
    nb = run_small(ROOT / "examples" / "02-seed-study.ipynb", tmp_path)
    shown = [o["data"]["text/markdown"] for o in outputs(nb) if "text/markdown" in o.get("data", {})]
    assert [s.split("\n")[0] for s in shown] == [
        "### Q1 — Which learning-rate schedule converges?",
        "### Q2 — How much total-variation regularisation helps?",
        "### Q3 — Do shallow or deep layers keep more of the image?",
        "### Q4 — How do the networks compare in quality and speed?",
    ], shown
    assert all(re.search(r"\d", s) for s in shown)  # each answer states numbers
    assert len(pngs(nb)) == 4 and (tmp_path / "runs" / "study-seed-notebook" / "report.html").is_file()


@pytest.mark.slow
def test_bring_your_own_network(tmp_path):
    nb = run_small(ROOT / "examples" / "03-bring-your-own-network.ipynb", tmp_path)
    printed = text(nb)
    for shown in ("resnet18 (random init) res3", "stage2", "features.4", "relu3_3: done"):
        assert shown in printed, shown
    assert re.search(r"relu3_3: done after 10 steps[^\n]*\[\d+, \d+, \d+, \d+\]", printed)  # the window's pixels
    results = set(re.findall(r"<Result .*?feature error [\d.e+-]+>", printed))
    assert len(results) == 6, results  # torchvision, timm, ONNX, own module, channels, window
    assert "pairwise" in printed  # the diversity of the restarts
    assert len(pngs(nb)) >= 4  # the results shown, the restarts
