"""The command line end to end: in subprocesses where a process of its own matters (a run as a
user starts it, signals), otherwise its ``main`` in this process (see conftest.run_cli)."""

import csv
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
from PIL import Image

from conftest import run_cli, run_cli_process
from featinv.cli import main

TINY = ["--model", "resnet18", "--weights", "none", "--layers", "res2", "--size", "32"]


def test_help_needs_no_torch():
    out = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys; from featinv.cli import main; "
            "sys.argv=['featinv','invert','--help']\ntry: main()\nexcept SystemExit: pass\n"
            "print('torch' in sys.modules)",
        ],
        capture_output=True,
        text=True,
    )
    assert "--layers" in out.stdout and out.stdout.strip().endswith("False")


def test_invert_writes_a_run_folder(tmp_path):
    proc = run_cli_process("invert", "skimage:chelsea", *TINY, "--steps", "10", "--out", str(tmp_path / "run"))
    assert proc.returncode == 0, proc.stderr
    assert "PSNR" in proc.stdout and str(tmp_path / "run") in proc.stdout
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "done"


def test_config_file_with_command_line_override(tmp_path):
    (tmp_path / "c.yaml").write_text("model: resnet18\nweights: none\nlayers: res1\nsize: 32\nsteps: 6\nlr: 1e-2\n")
    proc = run_cli(
        "invert",
        "skimage:coffee",
        "--config",
        str(tmp_path / "c.yaml"),
        "--steps",
        "3",
        "--out",
        str(tmp_path / "run"),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    written = (tmp_path / "run" / "config.yaml").read_text()
    assert "steps: 3" in written and "lr: 0.01" in written and "image: skimage:coffee" in written


@pytest.fixture
def bad_images(tmp_path):
    (tmp_path / "corrupt.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    return tmp_path


@pytest.mark.parametrize(
    "args,expected",
    [
        (["invert", "{tmp}/missing.jpg"], "image not found"),
        (["invert", "{tmp}/corrupt.png"], "unreadable or corrupt"),
        (["invert", "skimage:chelsea", "--model", "resnet_18"], "Did you mean 'resnet18'"),
        (["invert", "skimage:chelsea", "--layers", "relu3-3"], "Did you mean 'relu3_3'"),
        (["invert", "skimage:chelsea", "--model", "resnet18", "--weights", "IMAGENET2K"], "unknown weights"),
        (["invert", "skimage:chelsea", "--lr", "nan"], "lr must be"),
        (["invert", "skimage:chelsea", "--lr", "-1"], "lr must be"),
        (["invert", "skimage:chelsea", "--steps", "0"], "steps must be"),
        (["invert", "skimage:chelsea", "--size", "-3"], "size must be"),
        (["invert", "skimage:chelsea", "--size", "100000"], "the largest size that fits is about"),
        (["invert", "skimage:chelsea", "--size", "16", "--layers", "pool5"], "the smallest input it takes is 32 px"),
        (["invert", "skimage:chelsea", "--config", "{tmp}/nope.yaml"], "config file not found"),
        (["invert", "skimage:chelsea", "--optimizer", "adamw"], "optimizer must be"),
        (["invert", "skimage:chelsea", "--schedule", "linear"], "unknown schedule"),
        (["layers", "vgg_16"], "Did you mean 'vgg16'"),
    ],
)
def test_bad_input_is_one_clear_line(bad_images, capsys, args, expected):
    """In this process (each case in a subprocess cost 5 s of imports); `main` is what the
    `featinv` script runs, and an exception escaping it would be the traceback a user sees."""
    from featinv.errors import FeatinvError

    argv = [a.replace("{tmp}", str(bad_images)) for a in args]
    if args[0] == "layers":  # with --debug the exception (and so its traceback) comes through
        with pytest.raises(FeatinvError, match=expected):
            main([*argv, "--debug"])
        return
    code = main([*argv, "--out", str(bad_images / "out")])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("featinv: error:") and expected in err and len(err.strip().splitlines()) == 1
    assert not (bad_images / "out").exists()  # nothing created for a run that never started


def test_bad_config_key(tmp_path):
    (tmp_path / "c.yaml").write_text("learning_rate: 0.1\n")
    proc = run_cli("invert", "--config", str(tmp_path / "c.yaml"))
    assert proc.returncode == 2 and "unknown key 'learning_rate'" in proc.stderr


def test_odd_images_are_converted(tmp_path):
    Image.fromarray(np.arange(64 * 48, dtype=np.uint16).reshape(48, 64) * 20).save(tmp_path / "deep.png")
    Image.new("LA", (50, 40), (90, 128)).save(tmp_path / "grey_alpha.png")
    for name in ("deep.png", "grey_alpha.png"):
        proc = run_cli(
            "invert", str(tmp_path / name), *TINY, "--steps", "2", "--out", str(tmp_path / name[:-4]), "--quiet"
        )
        assert proc.returncode == 0, proc.stderr
    # What the network was shown: 16 bits scaled by their range (0 .. 0.94 here, not clipped at 8 bits)...
    deep = np.asarray(Image.open(tmp_path / "deep" / "target.png"), dtype=float) / 255
    assert np.allclose(deep[..., 0], deep[..., 2]) and 0.3 < deep.mean() < 0.65 and deep.max() < 0.97
    # ... and half-transparent grey composited on white: 90 * 128/255 + 255 * 127/255 = 172.
    grey = np.asarray(Image.open(tmp_path / "grey_alpha" / "target.png"), dtype=float)
    assert np.abs(grey - 172).max() <= 2


def test_existing_out_folder_is_refused_then_resumed(tmp_path):
    out = tmp_path / "run"
    assert run_cli("invert", "skimage:chelsea", *TINY, "--steps", "4", "--out", str(out), "--quiet").returncode == 0
    before = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    again = run_cli("invert", "skimage:chelsea", *TINY, "--steps", "4", "--out", str(out))
    assert again.returncode == 2 and "--resume" in again.stderr and "Traceback" not in again.stderr
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before  # nothing overwritten
    resumed = run_cli("invert", "--resume", "--out", str(out))  # a finished run: its result, not a rerun
    assert resumed.returncode == 0 and "done: 4 steps" in resumed.stdout
    assert {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()} == before


def test_resume_with_a_config_file_checks_the_files_values(tmp_path):
    from featinv.config import InvertConfig
    from featinv.optim.callbacks import StopAfter
    from featinv.runs.runfolder import run_in_folder

    out = tmp_path / "run"
    config = InvertConfig(model="resnet18", weights="none", layers=("res2",), size=32, steps=4)
    assert run_in_folder(config, out, callbacks=[StopAfter(2)]).status == "interrupted"
    (tmp_path / "more.yaml").write_text("steps: 8\ntv: 0.25\n")
    proc = run_cli("invert", "--resume", "--out", str(out), "--config", str(tmp_path / "more.yaml"))
    assert proc.returncode == 2 and "steps: 4 (folder) vs 8 (given)" in proc.stderr, proc.stderr
    (tmp_path / "same.yaml").write_text("steps: 4\nsize: 32\n")
    proc = run_cli("invert", "--resume", "--out", str(out), "--config", str(tmp_path / "same.yaml"))
    assert proc.returncode == 0 and "done: 4 steps" in proc.stdout, proc.stderr


def test_default_out_folders_are_new_each_time(tmp_path):
    for _ in range(2):
        assert run_cli("invert", "skimage:chelsea", *TINY, "--steps", "2", "--quiet", cwd=tmp_path).returncode == 0
    assert sorted(p.name for p in (tmp_path / "runs").iterdir()) == ["chelsea_resnet18_res2", "chelsea_resnet18_res2-2"]


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM])
def test_ctrl_c_keeps_a_checkpoint_and_resume_finishes(tmp_path, sig):
    out = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "featinv",
        "invert",
        "skimage:chelsea",
        "--layers",
        "relu2_2",
        "--size",
        "64",
        "--steps",
        "100",
        "--snapshot-every",
        "5",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    proc.send_signal(sig)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130, stderr
    assert "--resume" in stderr and "Traceback" not in stderr
    summary = json.loads((out / "summary.json").read_text())
    assert summary["status"] == "interrupted" and 0 < summary["steps"] < 100
    resumed = run_cli("invert", "--resume", "--out", str(out), "--steps", "100", "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    final = json.loads((out / "summary.json").read_text())
    assert final["status"] == "done" and final["steps"] == 100


def test_layers_command_lists_aliases_with_shapes_strides_and_defaults():
    proc = run_cli("layers", "resnet18", "--size", "64")
    assert proc.returncode == 0
    rows = {line.split()[0]: line.split()[1:] for line in proc.stdout.splitlines()[1:]}
    assert rows["res2"][1] == "64x16x16" and rows["middle1"][1] == "64x16x16" and rows["fc"][1] == "1000"
    assert rows["res2"][2:] == ["stride", "4", "pyramid", "lr", "0.05", "tv", "0.5"]
    assert rows["fc"][2:] == ["stride", "64", "dip", "lr", "0.01", "tv", "50"]


def test_layers_are_shown_at_inverts_size_with_what_a_run_there_gets():
    """Without --size the shapes are those of invert's default input (128 px), and each row's
    defaults are what `featinv invert --layers ROW` would use."""
    from featinv.config import InvertConfig
    from featinv.optim.inversion import Inversion

    proc = run_cli("layers")  # the offline VGG16
    lines = proc.stdout.splitlines()
    assert "for a 128x128 input" in lines[0]
    rows = {line.split()[0]: line.split()[1:] for line in lines[1:]}
    assert rows["relu3_3"][1] == "256x32x32" and rows["pool5"][1] == "512x4x4"
    for layer in ("relu1_2", "relu3_3", "pool5"):
        run = Inversion(InvertConfig(layers=(layer,), size=32, steps=1))
        shown = rows[layer][2:]
        assert shown[2] == run.config.param and float(shown[4]) == run.config.lr and float(shown[6]) == run.config.tv


def test_sweep_command_runs_the_small_example_and_resumes(tmp_path):
    from conftest import ROOT

    example = str(ROOT / "examples" / "sweep-small.yaml")
    dry = run_cli("sweep", example, "--dry-run", "--out", str(tmp_path / "s"))
    assert dry.returncode == 0 and "4 trials" in dry.stdout and not (tmp_path / "s").exists()
    args = ["sweep", example, "--out", str(tmp_path / "s"), "--steps", "3", "--size", "32"]
    first = run_cli(*args)
    assert first.returncode == 0, first.stderr
    assert "4/4 trials finished" in first.stdout
    assert len((tmp_path / "s" / "trials.csv").read_text().splitlines()) == 5
    second = run_cli(*args)
    assert second.stdout.count("[done earlier]") == 4


def test_sweep_with_a_failing_trial_exits_non_zero(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "base: {model: resnet18, weights: none, size: 16, steps: 2}\ngrid: {layers: [res1, nope]}\n"
    )
    proc = run_cli("sweep", str(tmp_path / "s.yaml"), "--out", str(tmp_path / "out"))
    assert proc.returncode == 4 and "1/2 trials finished, 1 failed" in proc.stdout
    assert "unknown layer 'nope'" in proc.stdout


def test_sweep_on_a_process_pool_from_the_command_line(tmp_path):
    (tmp_path / "s.yaml").write_text(
        "base: {model: resnet18, weights: none, layers: res1, size: 16, steps: 2}\ngrid: {lr: [0.01, 0.1]}\n"
    )
    proc = run_cli(
        "sweep",
        str(tmp_path / "s.yaml"),
        "--out",
        str(tmp_path / "out"),
        "--executor",
        "processes",
        "-j",
        "2",
        "--batch",
        "1",
    )
    assert proc.returncode == 0, proc.stderr
    assert "2/2 trials finished" in proc.stdout
    bad = run_cli("sweep", str(tmp_path / "s.yaml"), "--executor", "processes", "--tensorboard")
    assert bad.returncode == 2 and "--executor local only" in bad.stderr


def test_models_command_lists_the_offline_ones_first_and_says_which_need_a_download(tmp_path, monkeypatch):
    import torchvision

    url = torchvision.models.get_model_weights("resnet18").DEFAULT.url
    (tmp_path / "hub" / "checkpoints").mkdir(parents=True)
    (tmp_path / "hub" / "checkpoints" / url.rsplit("/", 1)[-1]).write_bytes(b"cached")
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    proc = run_cli("models")
    lines = proc.stdout.splitlines()
    assert proc.returncode == 0 and lines[0] == "vgg16_offline  (offline ImageNet weights)"
    assert "resnet18  (ImageNet weights cached)" in lines
    assert "vit_b_16  (ImageNet weights need a download (--weights none runs offline))" in lines


def test_layers_plot_draws_the_structure(tmp_path):
    proc = run_cli("layers", "resnet18", "--size", "32", "--plot", str(tmp_path / "r18.png"), "--highlight", "res2")
    assert proc.returncode == 0, proc.stderr
    with Image.open(tmp_path / "r18.png") as img:
        rgb = np.asarray(img.convert("RGB"))
    assert img.size[0] > 600
    orange = (np.abs(rgb.astype(int) - (243, 156, 18)).sum(axis=2) < 30).sum()
    assert orange > 500  # the highlighted layer's box is filled


def test_recipe_on_the_command_line_records_its_values(tmp_path):
    out = tmp_path / "ijcv"
    proc = run_cli(
        "invert",
        "skimage:chelsea",
        "--recipe",
        "mahendran2016",
        "--layers",
        "relu1_2",
        "--size",
        "32",
        "--steps",
        "3",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr
    stored = (out / "config.yaml").read_text()
    assert stored.startswith("# recipe mahendran2016 (IJCV 2016")
    config = __import__("yaml").safe_load(stored)
    assert config["recipe"] == "mahendran2016" and config["optimizer"] == "adam" and config["lr"] == 0.02
    assert config["steps"] == 3 and config["layers"] == ["relu1_2:300"]  # the option wins; C on the layer


def test_an_onnx_file_through_the_command_line(tmp_path):
    import torch
    from torch import nn

    net = nn.Sequential(nn.Conv2d(3, 8, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2), nn.Conv2d(8, 8, 3), nn.ReLU())
    torch.onnx.export(
        net.eval(),
        torch.randn(1, 3, 32, 32),
        str(tmp_path / "small.onnx"),
        opset_version=17,
        dynamo=False,
        input_names=["image"],
        dynamic_axes={"image": {0: "b", 2: "h", 3: "w"}},
    )
    listed = run_cli("layers", str(tmp_path / "small.onnx"), "--size", "32", "--all")
    assert listed.returncode == 0, listed.stderr
    node = next(line.split()[0] for line in listed.stdout.splitlines()[1:] if "Relu" in line)
    proc = run_cli(
        "invert",
        "skimage:coffee",
        "--model",
        str(tmp_path / "small.onnx"),
        "--layers",
        node,
        "--size",
        "32",
        "--steps",
        "3",
        "--out",
        str(tmp_path / "run"),
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["status"] == "done"


def _run_stepping(out):
    """A relu3_3 inversion in its own process, returned once it has written its first checkpoint
    (so it is stepping, with its Ctrl-C handler in place), with the deadline for waiting on it."""
    args = [
        sys.executable,
        "-m",
        "featinv",
        "invert",
        "skimage:chelsea",
        "--layers",
        "relu3_3",
        "--size",
        "64",
        "--steps",
        "60",
        "--snapshot-every",
        "2",
        "--out",
        str(out),
    ]
    proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return proc, deadline


def test_a_ctrl_c_while_an_interrupted_run_exits_keeps_exit_code_130(tmp_path):
    """After the first Ctrl-C has stopped the run (its summary written), a second one lands while
    the process exits: it must not turn the exit into a death by SIGINT (returncode -2)."""
    out = tmp_path / "run"
    proc, deadline = _run_stepping(out)
    proc.send_signal(signal.SIGINT)
    while not (out / "summary.json").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
    proc.send_signal(signal.SIGINT)  # a no-op if it has already exited
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in stderr, (proc.returncode, stderr)
    assert json.loads((out / "summary.json").read_text())["status"] == "interrupted"


def test_a_caught_ctrl_c_that_escaped_generated_code_still_exits_130_under_python_m(tmp_path):
    """The second Ctrl-C can land in code Python runs from a string (a dataclass or namedtuple
    built on a lazy import): CPython then remembers it as unhandled and, under ``python -m``, ends
    the process by SIGINT (-2) although featinv caught it. That is how CI once saw -2."""
    (tmp_path / "second_ctrl_c.py").write_text(
        "import os, signal, sys\n"
        "from featinv.cli import _exit_interrupted\n"
        "signal.signal(signal.SIGINT, signal.default_int_handler)\n"  # as featinv's CLI does: a Ctrl-C
        # raises even where the test runs with SIGINT ignored (a background job of a shell)
        "try:\n"
        "    exec('import os, signal\\nos.kill(os.getpid(), signal.SIGINT)\\nfor _ in range(10**7): pass')\n"
        "except KeyboardInterrupt:\n"
        "    sys.exit(_exit_interrupted())\n"
        "sys.exit('the Ctrl-C never came')\n"
    )
    proc = subprocess.run([sys.executable, "-m", "second_ctrl_c"], cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode == 130, (proc.returncode, proc.stderr)


def test_a_second_ctrl_c_also_ends_cleanly_and_the_run_resumes(tmp_path):
    out = tmp_path / "run"
    proc, deadline = _run_stepping(out)
    proc.send_signal(signal.SIGINT)
    time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, stderr = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "interrupted" in stderr and "Traceback" not in stderr, stderr
    resumed = run_cli("invert", "--resume", "--out", str(out), "--quiet")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "summary.json").read_text())["steps"] == 60
    # the same run, never interrupted: the resumed one ends in the same image and log
    whole = tmp_path / "whole"
    args = ["invert", "skimage:chelsea", "--layers", "relu3_3", "--size", "64", "--steps", "60"]
    assert run_cli_process(*args, "--snapshot-every", "2", "--out", str(whole), "--quiet").returncode == 0
    assert (out / "final.png").read_bytes() == (whole / "final.png").read_bytes()
    untimed = lambda folder: [
        {k: v for k, v in row.items() if k != "seconds"} for row in csv.DictReader(open(folder / "log.csv"))
    ]
    assert untimed(out) == untimed(whole)


@pytest.mark.parametrize("where", ["before the command", "after it"])
def test_debug_shows_the_traceback_wherever_the_flag_is_given(where):
    """`featinv --debug invert ...` (where `featinv --help` lists it) and `featinv invert ... --debug`."""
    from featinv.cli import main
    from featinv.errors import ImageError

    argv = ["invert", "no-such-photo.png", "--size", "16", "--steps", "1"]
    argv = ["--debug", *argv] if where == "before the command" else [*argv, "--debug"]
    with pytest.raises(ImageError):  # raised through: Python prints the whole traceback
        main(argv)
    assert main(argv[1:] if where == "before the command" else argv[:-1]) == 2  # without it: one line


def test_ctrl_c_stops_a_sweep_resumably_with_exit_130(tmp_path):
    """A real SIGINT: the running trial stops cleanly, no further trial starts, the exit code is
    130; running the command again finishes the sweep, and the resumed trial's image is the one
    an uninterrupted sweep draws, byte for byte."""
    import signal
    import subprocess
    import time

    spec = tmp_path / "s.yaml"
    spec.write_text(
        "base: {model: resnet18, weights: none, layers: res1, size: 16, steps: 400, image: 'skimage:coffee'}\n"
        "grid: {lr: [0.01, 0.02]}\n"
    )
    command = [sys.executable, "-m", "featinv", "sweep", str(spec), "--out", str(tmp_path / "out"), "--batch", "1"]
    proc = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    first = tmp_path / "out" / "trials" / "lr=0.01"
    deadline = time.time() + 120
    while not (first / "log.csv").is_file() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, (out, err)
    assert "re-run the same command to continue" in err and "[interrupted] lr=0.01" in out
    assert not (tmp_path / "out" / "trials" / "lr=0.02").exists()  # no trial started after the Ctrl-C
    again = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0 and "2/2 trials finished" in again.stdout, again.stderr
    whole = run_cli("sweep", str(spec), "--out", str(tmp_path / "whole"), "--batch", "1", "--quiet")
    assert whole.returncode == 0
    for name in ("lr=0.01", "lr=0.02"):
        resumed, uninterrupted = tmp_path / "out" / "trials" / name, tmp_path / "whole" / "trials" / name
        assert (resumed / "final.png").read_bytes() == (uninterrupted / "final.png").read_bytes(), name
