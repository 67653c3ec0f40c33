"""Promises the suite used to name without checking (issue 27's list): each test here fails when
the promise breaks (a corner crop for the centre one, an ignored --init, bf16 that runs in fp32, a
"last good image" frozen at the start, a write in place), checked by breaking the code."""

import contextlib
import os

import numpy as np
import pytest
import torch

from conftest import run_cli
from featinv import files
from featinv.api import invert
from featinv.files import fit_square, read_image, save_image, save_tensors, write_json
from featinv.status import Status

SMALL = dict(model="resnet18", weights="none", layers="res1", size=16)


def test_fit_square_keeps_the_centre_of_a_wide_and_of_a_tall_image():
    """A 3:1 image: left, centre and right thirds in different colours; the square is the centre."""
    wide = torch.zeros(3, 20, 60)
    wide[0, :, :20], wide[1, :, 20:40], wide[2, :, 40:] = 1, 1, 1
    square = fit_square(wide, 20)
    assert torch.allclose(square[1, :, 2:-2], torch.ones(20, 16)) and square[0].max() < 0.5 and square[2].max() < 0.5
    tall = wide.transpose(1, 2)  # thirds from top to bottom
    assert torch.allclose(fit_square(tall, 20)[1, 2:-2, :], torch.ones(16, 20))


def test_a_file_is_loaded_by_its_centre(tmp_path):
    """The same through the file loader a run uses (an odd-sized photo, not a square)."""
    pixels = np.zeros((31, 93, 3), np.uint8)
    pixels[:, 31:62, 1] = 255
    from PIL import Image

    Image.fromarray(pixels).save(tmp_path / "odd.png")
    target = files.load_target(tmp_path / "odd.png", 31)
    assert target[1, :, 3:-3].min() > 0.99 and target[0].max() == 0 and target[2].max() == 0


@pytest.mark.parametrize("init", ["grey", "image"])
def test_init_is_where_the_run_starts(init, tmp_path):
    """One step with a tiny learning rate stays where it started: mid-grey, or the given image."""
    start = torch.rand(3, 16, 16)
    save_image(start, tmp_path / "start.png")
    where = "grey" if init == "grey" else str(tmp_path / "start.png")
    expected = torch.full((3, 16, 16), 0.5) if init == "grey" else read_image(tmp_path / "start.png")
    r = invert("skimage:coffee", **SMALL, steps=1, lr=1e-6, param="pixel", init=where)
    assert (r.image - expected).abs().max() < 1e-3
    noise = invert("skimage:coffee", **SMALL, steps=1, lr=1e-6, param="pixel")
    assert (noise.image - expected).abs().max() > 0.2  # the default noise start is not that


def test_bf16_runs_the_network_in_bf16():
    """On CPU bf16 is slow where it is emulated, but it must be bf16: the network's convolutions
    see bfloat16 tensors (the losses stay fp32)."""
    from featinv.nets.models import load_model

    model = load_model("resnet18", "none")
    seen = []
    hook = model.module.conv1.register_forward_hook(lambda m, i, o: seen.append(o.dtype))
    try:
        with pytest.warns(Warning, match="emulated") if not _native_bf16() else contextlib.nullcontext():
            r = invert("skimage:coffee", model=model, layers="res1", size=16, steps=2, precision="bf16")
    finally:
        hook.remove()
    assert r.status == Status.DONE and set(seen) == {torch.bfloat16}, seen


def _native_bf16():
    from featinv.nets.perf import native_precision

    return native_precision(torch.device("cpu"), "bf16")


class Capture:
    """The run's image after each step."""

    def __init__(self):
        self.images = {}

    def on_step(self, run, rows):
        self.images[run.step] = run.image().clone()


@pytest.mark.parametrize("optimizer", ["sgd", "lbfgs"])
def test_divergence_after_good_steps_keeps_the_last_good_image(optimizer):
    """Six good steps, then a learning rate that blows the image up: the result is the last image
    whose loss was finite (not the start, not the broken one). Row k of the log is the loss of the
    image after k - 1 steps, so that is the image after len(history) - 1 steps."""
    capture = Capture()
    lr = 0.05 if optimizer == "sgd" else 0.2
    r = invert(
        "skimage:coffee",
        **SMALL,
        steps=30,
        param="pixel",
        clamp=False,
        optimizer=optimizer,
        lr=lr,
        schedule="piecewise:6x1,24x1e30",
        callbacks=[capture],
    )
    assert r.status == Status.DIVERGED, r.status
    good = len(r.history)
    assert good > 6, good  # it diverged after the good steps, not at once
    assert not torch.equal(capture.images[good - 1], capture.images[1])  # the image did move
    assert torch.equal(r.image, capture.images[good - 1])


WRITERS = {
    "image": (lambda p: save_image(torch.zeros(3, 4, 4), p), lambda p: save_image(torch.ones(3, 4, 4), p), "x.png"),
    "json": (lambda p: write_json(p, {"a": 1}), lambda p: write_json(p, {"a": 2, "b": "x" * 9999}), "s.json"),
    "checkpoint": (
        lambda p: save_tensors(p, {"x": torch.zeros(4)}),
        lambda p: save_tensors(p, {"x": torch.ones(10_000)}),
        "c.pt",
    ),
}


@pytest.mark.parametrize("kind", sorted(WRITERS))
def test_a_write_that_fails_half_way_leaves_the_old_file(kind, tmp_path, monkeypatch):
    """The new bytes are written, then the disk fails before they are safe (fsync): the file a
    reader finds is still the old one, whole, and no temporary is left behind."""
    write_old, write_new, name = WRITERS[kind]
    path = tmp_path / name
    write_old(path)
    old = path.read_bytes()

    def disk_fails(fd):
        raise OSError("I/O error")

    monkeypatch.setattr(os, "fsync", disk_fails)
    with pytest.raises(OSError, match="I/O error"):
        write_new(path)
    assert path.read_bytes() == old and [p.name for p in tmp_path.iterdir()] == [name]


DIVERGING = ["--model", "resnet18", "--weights", "none", "--layers", "res1", "--size", "16", "--steps", "30"]
DIVERGING += [
    "--param",
    "pixel",
    "--no-clamp",
    "--optimizer",
    "sgd",
    "--lr",
    "0.05",
    "--schedule",
    "piecewise:6x1,24x1e30",
]


def test_a_diverged_run_exits_3_and_says_why(tmp_path):
    proc = run_cli("invert", "skimage:coffee", *DIVERGING, "--out", str(tmp_path / "run"), "--quiet")
    assert proc.returncode == 3, proc.stderr
    assert "diverged: the loss became NaN/Inf" in proc.stderr and "last good image was kept" in proc.stderr


def test_featinvs_own_bug_exits_1_in_one_line_and_shows_the_traceback_under_debug(monkeypatch):
    from featinv import cli

    def broken(args):
        raise RuntimeError("a bug\nwith a second line")

    monkeypatch.setattr(cli, "cmd_models", broken)
    proc = run_cli("models")
    assert proc.returncode == 1 and proc.stderr.count("\n") == 1, proc.stderr
    assert "internal error: RuntimeError: a bug (a bug in featinv: rerun with --debug" in proc.stderr
    with pytest.raises(RuntimeError, match="a bug"):  # raised through: Python prints the traceback
        cli.main(["models", "--debug"])
