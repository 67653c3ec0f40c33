"""Shared fixtures: tiny fixed-weight networks for exact answers, the real offline networks."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from torch import nn

ROOT = Path(__file__).resolve().parents[1]

from featinv.nets.perf import tune_process  # noqa: E402

tune_process()  # the suite is a host that opts in to the CLI's speed settings, as a user's script may


class TinyNet(nn.Module):
    """conv(3->2, 1x1, fixed weights) -> relu -> conv(2->1, 1x1) -> relu: features by hand."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 2, 1)
        self.relu1 = nn.ReLU()
        self.conv2 = nn.Conv2d(2, 1, 1)
        self.relu2 = nn.ReLU()
        with torch.no_grad():
            self.conv1.weight.copy_(torch.tensor([[1.0, 0.0, 0.0], [0.0, 2.0, -1.0]]).view(2, 3, 1, 1))
            self.conv1.bias.copy_(torch.tensor([0.0, 0.5]))
            self.conv2.weight.copy_(torch.tensor([[1.0, 1.0]]).view(1, 2, 1, 1))
            self.conv2.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.relu2(self.conv2(self.relu1(self.conv1(x))))


@pytest.fixture
def tiny_net() -> TinyNet:
    return TinyNet().eval()


@pytest.fixture(scope="session")
def offline_vgg():
    from featinv.nets.models import load_model

    return load_model("vgg16_offline")


def run_cli_process(*args: str, timeout: float = 300, **kwargs) -> subprocess.CompletedProcess:
    """Run ``python -m featinv ARGS`` in a new process, as a user does, and capture its output.
    For what needs a process of its own (signals, imports, exit status); each costs ~7 s of
    imports, so other tests use :func:`run_cli`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run(
        [sys.executable, "-m", "featinv", *args], capture_output=True, text=True, timeout=timeout, env=env, **kwargs
    )


def run_cli(*args: str, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run the ``featinv`` script's ``main(ARGS)`` in this process: its exit code and what it
    printed. An exception escaping ``main`` (the traceback a user would see) fails the test.
    The CLI's process-wide changes, the warnings' format and filters, are undone afterwards."""
    import contextlib
    import io
    import warnings

    from featinv.cli import main

    out, err = io.StringIO(), io.StringIO()
    formatwarning, filters, here = warnings.formatwarning, list(warnings.filters), os.getcwd()
    try:
        if cwd is not None:
            os.chdir(cwd)
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = main(list(args))
            except SystemExit as exc:  # argparse's usage errors
                code = exc.code if isinstance(exc.code, int) else int(exc.code is not None)
    finally:
        os.chdir(here)
        warnings.formatwarning = formatwarning
        warnings.filters[:] = filters
    return subprocess.CompletedProcess(["featinv", *args], code, out.getvalue(), err.getvalue())


@pytest.fixture
def chromium_installed():
    """The report tests drive a real headless Chromium: without one, say how to get it."""
    from featinv.reports.report import find_chromium

    if find_chromium() is None:
        pytest.fail(
            "these tests drive a real headless Chromium, and none is installed: run `bash scripts/browser.sh` "
            "(Debian's chromium; `make test` runs it first)",
            pytrace=False,
        )
