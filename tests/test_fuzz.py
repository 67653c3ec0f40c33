"""The input surface, drawn at random: every command line, sweep file and image file ends in a
result or in one line saying what was wrong (exit 2), never in a traceback or an internal error.

The CLI runs in this process (``featinv.cli.main``), so any exception that escapes fails the test.
"""

import numpy as np
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

from featinv.cli import main

FUZZ = settings(
    max_examples=25,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
SMALL = ["--model", "resnet18", "--weights", "none", "--quiet"]

OPTIONS = {
    "--size": ["0", "-3", "7", "8", "16", "33", "100000", "abc", "1e3", "32"],
    "--steps": ["0", "1", "-1", "x", "2"],
    "--layers": ["res1", "pool5", "nope", ",", "res1:abc", "res1:-1", "conv1,res2", "res1:0"],
    "--lr": ["0", "-1", "nan", "inf", "0.05", "auto", "x", "1e9"],
    "--tv": ["-1", "0", "auto", "nan", "3"],
    "--param": ["pixel", "fourier", "pyramid", "dip", "auto", "nope"],
    "--transforms": ["jitter=2", "jitter=-1", "scale=abc", "rotate=10", "bogus=1", "none", "jitter"],
    "--restarts": ["0", "2", "x"],
    "--schedule": ["cosine", "step:every=0", "step:gamma=x", "nope", "constant"],
    "--init": ["noise", "grey", "/no/such/start.png"],
    "--optimizer": ["adam", "sgd", "lbfgs", "adamw"],
    "--device": ["cpu", "cuda", "tpu", "cuda:7"],
    "--precision": ["fp32", "bf16", "fp8"],
    "--preprocess": ["imagenet", "caffe", "nope"],
}
options = st.dictionaries(st.sampled_from(sorted(OPTIONS)), st.none(), max_size=5).flatmap(
    lambda keys: st.fixed_dictionaries({k: st.sampled_from(OPTIONS[k]) for k in keys})
)


def run(argv, capsys):
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own usage errors
        code = exc.code
    err = capsys.readouterr().err
    return code, err


def one_clear_line(code, err):
    assert code in (0, 2, 3, 4), err  # done, bad input, diverged, trials failed; 1 is featinv's own bug
    if code == 2:
        lines = [line for line in err.strip().splitlines() if not line.startswith("featinv: warning:")]
        assert lines and "Traceback" not in err, err
        assert lines[-1].startswith(("featinv: error:", "usage:")) or "error:" in lines[-1], err


@FUZZ
@given(
    image=st.sampled_from(["skimage:astronaut", "skimage:nope", "/no/such.png", "{tmp}", "{tmp}/bad.png"]), opts=options
)
def test_any_command_line_ends_cleanly(tmp_path_factory, capsys, image, opts):
    tmp = tmp_path_factory.mktemp("cli")
    (tmp / "bad.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    opts = {"--size": "32", "--steps": "2", **opts}
    argv = [
        "invert",
        image.replace("{tmp}", str(tmp)),
        *SMALL,
        *[a for kv in opts.items() for a in kv],
        "--out",
        str(tmp / "run"),
    ]
    one_clear_line(*run(argv, capsys))


values = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 40),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["res1", "nope", "cosine", "skimage:coffee", "", "noise"]),
)
keys = st.sampled_from(
    ["lr", "tv", "size", "steps", "layers", "seed", "init", "schedule", "learning_rate", "restarts", "param", "image"]
)
section = st.dictionaries(keys, st.one_of(values, st.lists(values, min_size=0, max_size=2)), max_size=3)
sweep_files = st.one_of(
    st.fixed_dictionaries({"base": section}, optional={"grid": section, "zip": section, "extra": values}),
    st.lists(values, max_size=2),
    values,
)


@settings(FUZZ, max_examples=15)
@given(spec=sweep_files)
def test_any_sweep_file_ends_cleanly(tmp_path_factory, capsys, spec):
    tmp = tmp_path_factory.mktemp("sweep")
    if isinstance(spec, dict) and isinstance(spec.get("base"), dict):  # keep the runs that do start cheap
        spec["base"] = {
            "model": "resnet18",
            "weights": "none",
            "layers": "res1",
            "size": 16,
            "steps": 1,
            **spec["base"],
        }
    (tmp / "sweep.yaml").write_text(yaml.safe_dump(spec))
    code, err = run(["sweep", str(tmp / "sweep.yaml"), "--out", str(tmp / "out"), "--quiet"], capsys)
    one_clear_line(code, err)


def _image_files(tmp):
    rng = np.random.default_rng(0)
    pixels = rng.integers(0, 256, (20, 30, 3), dtype=np.uint8)
    Image.fromarray(pixels).save(tmp / "ok.jpg")
    Image.fromarray(pixels).convert("CMYK").save(tmp / "cmyk.jpg")
    Image.fromarray(pixels).save(tmp / "anim.gif", save_all=True, append_images=[Image.fromarray(pixels[::-1])])
    Image.new("1", (9, 9)).save(tmp / "bits.png")
    Image.new("I;16", (12, 7)).save(tmp / "deep.tif")
    Image.new("RGB", (1, 1)).save(tmp / "dot.png")
    Image.new("F", (10, 10), 3.5).save(tmp / "float.tif")
    whole = (tmp / "ok.jpg").read_bytes()
    (tmp / "cut.jpg").write_bytes(whole[: len(whole) // 2])
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "noise.png").write_bytes(rng.integers(0, 256, 300, dtype=np.uint8).tobytes())
    (tmp / "text.jpg").write_text("hello")
    return sorted(p.name for p in tmp.iterdir())


IMAGE_FILES = [
    "anim.gif",
    "bits.png",
    "cmyk.jpg",
    "cut.jpg",
    "deep.tif",
    "dot.png",
    "empty.png",
    "float.tif",
    "noise.png",
    "ok.jpg",
    "text.jpg",
]


@pytest.mark.parametrize("name", IMAGE_FILES)
def test_any_image_file_ends_cleanly(tmp_path, capsys, name):
    assert _image_files(tmp_path) == IMAGE_FILES
    code, err = run(
        [
            "invert",
            str(tmp_path / name),
            *SMALL,
            "--layers",
            "res1",
            "--size",
            "16",
            "--steps",
            "1",
            "--out",
            str(tmp_path / "run"),
        ],
        capsys,
    )
    one_clear_line(code, err)
