"""featinv.invert as a notebook uses it: images in memory, a network of one's own, the result shown."""

import io

import numpy as np
import torch
from PIL import Image

from featinv.api import invert

SMALL = {"model": "resnet18", "weights": "none", "layers": "res1", "size": 32, "steps": 2}


def test_images_in_memory_are_inverted_and_named_in_the_config():
    photo = np.random.default_rng(0).integers(0, 256, (40, 50, 3), dtype=np.uint8)
    from_array = invert(photo, **SMALL)
    from_pil = invert(Image.fromarray(photo), **SMALL)
    from_tensor = invert(torch.from_numpy(photo).permute(2, 0, 1).float() / 255, **SMALL)
    assert from_array.config.image.startswith("<array 50x40 #") and from_pil.config.image.startswith("<PIL image")
    for r in (from_pil, from_tensor):  # the same pixels give the same target and the same run
        assert torch.allclose(r.target, from_array.target, atol=1e-6)
        assert torch.allclose(r.image, from_array.image, atol=1e-5)
    start = torch.full((3, 32, 32), 0.25)
    r = invert("skimage:astronaut", init=start, **{**SMALL, "steps": 1, "lr": 1e-6, "param": "pixel"})
    assert r.config.init.startswith("<tensor 32x32") and abs(r.image.mean().item() - 0.25) < 1e-3


def test_a_run_of_your_own_module_and_image_resumes_by_passing_them_again(tmp_path, tiny_net):
    from conftest import run_cli
    from featinv.optim.callbacks import StopAfter

    photo = torch.rand(3, 16, 16, generator=torch.Generator().manual_seed(1))
    run = {"model": tiny_net, "layers": "relu2", "size": 16, "steps": 4, "out": tmp_path / "run"}
    assert invert(photo, callbacks=[StopAfter(2)], **run).status == "interrupted"
    stored = (tmp_path / "run" / "config.yaml").read_text()
    assert "model: <module TinyNet>" in stored and "image: '<tensor 16x16 #" in stored
    proc = run_cli("invert", "--resume", "--out", str(tmp_path / "run"))
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1, proc.stderr
    assert "passing the module again" in proc.stderr
    resumed = invert(photo, resume=True, **run)
    whole = invert(photo, **{**run, "out": tmp_path / "whole"})
    assert resumed.status == "done" and torch.equal(resumed.image, whole.image)


def test_a_result_shows_itself_in_a_notebook():
    r = invert("skimage:coffee", **SMALL)
    png = Image.open(io.BytesIO(r._repr_png_()))
    assert png.size == (2 * 32 + 4, 32)  # target | gap | reconstruction
    assert np.allclose(np.asarray(png)[:, :32] / 255, r.target.permute(1, 2, 0).numpy(), atol=1 / 255)
    page = r._repr_html_()
    assert "data:image/png;base64," in page and f"PSNR {r.psnr:.2f} dB" in page and "res1" in page
    line = repr(r)  # print(result) in a notebook: one line of numbers, not the tensors
    assert "\n" not in line and len(line) < 300, line
    assert all(part in line for part in ("resnet18", "res1", "done", f"PSNR {r.psnr:.2f} dB", "SSIM", "feature error"))


def test_snapshots_in_memory_are_the_run_folders_and_show_under_the_result(tmp_path):
    import numpy as np
    from PIL import Image

    r = invert(
        "skimage:coffee",
        model="resnet18",
        weights="none",
        layers="res1",
        size=32,
        steps=6,
        snapshot_every=2,
        out=tmp_path / "run",
    )
    assert sorted(r.snapshots) == [2, 4, 6]
    for step, image in r.snapshots.items():  # the same pictures the folder keeps (up to PNG's 8 bits)
        saved = np.asarray(Image.open(tmp_path / "run" / "snapshots" / f"step_{step:05d}.png"), dtype=float) / 255
        assert image.shape == (3, 32, 32) and np.abs(image.permute(1, 2, 0).numpy() - saved).max() <= 1 / 255 + 1e-6
    assert not torch.equal(r.snapshots[2], r.snapshots[6])  # they are the image as it formed
    page = r._repr_html_()
    assert page.count("<img") == 2 and "snapshots" in page and "steps 2, 4, 6" in page
    none = invert("skimage:coffee", model="resnet18", weights="none", layers="res1", size=32, steps=3, snapshot_every=0)
    assert none.snapshots == {} and none._repr_html_().count("<img") == 1


def test_plot_draws_the_loss_and_each_term_without_choosing_a_backend():
    import matplotlib

    backend = matplotlib.get_backend()
    r = invert("skimage:coffee", model="resnet18", weights="none", layers="res1", size=32, steps=4, tv=0.5)
    lines = {line.get_label(): line for line in r.plot().axes[0].get_lines()}
    assert {"loss", "feat_res1", "tv"} <= set(lines)
    assert list(lines["loss"].get_ydata()) == [row["loss"] for row in r.history]
    assert [line.get_label() for line in r.plot(terms=False).axes[0].get_lines()] == ["loss"]
    assert matplotlib.get_backend() == backend


def test_sweep_report_and_compare_from_python_show_themselves(tmp_path):
    import html
    import re

    import featinv

    base = {"model": "resnet18", "weights": "none", "layers": "res1", "size": 16, "steps": 3, "image": "skimage:coffee"}
    run = featinv.sweep({"base": base, "grid": {"tv": [0.0, 1.0]}}, tmp_path / "sweep")
    assert [(row["tv"], row["status"]) for row in run.rows()] == [(0.0, "done"), (1.0, "done")]
    table = run._repr_html_()
    assert table.count("<tr>") == 3 and "2/2 trials done" in table
    assert (tmp_path / "sweep" / "sweep.yaml").is_file() and (tmp_path / "sweep" / "trials.csv").is_file()
    again = featinv.sweep({"base": base, "grid": {"tv": [0.0, 1.0]}}, tmp_path / "sweep")  # kept, not rerun
    assert all(o.reused for o in again.outcomes)
    page = run.report()
    assert page.path == tmp_path / "sweep" / "report.html" and page.path.is_file()
    shown = page._repr_html_()
    inner = html.unescape(re.search(r'srcdoc="([^"]*)"', shown).group(1))
    assert inner == page.path.read_text() and "<img" in inner
    assert not re.search(r"<img[^>]+src=['\"](?!data:)", inner)  # images inline: the frame needs no server
    trials = sorted((tmp_path / "sweep" / "trials").iterdir())
    side = featinv.compare(trials, tmp_path / "cmp")
    assert side.path.is_file() and all(t.name in side.path.read_text() for t in trials)


def test_a_page_of_a_relative_folder_shows_itself(tmp_path, monkeypatch):
    import featinv

    base = {"model": "resnet18", "weights": "none", "layers": "res1", "size": 16, "steps": 2, "image": "skimage:coffee"}
    featinv.sweep({"base": base, "grid": {"lr": [0.05]}}, tmp_path / "sweep")
    monkeypatch.chdir(tmp_path)
    page = featinv.report("sweep")  # as a notebook names its folders
    assert f'href="{(tmp_path / "sweep" / "report.html").as_uri()}"' in page._repr_html_()
