"""The library leaves its host process as it found it (allocator, cuDNN, Pillow, sockets, plotting,
the user's model); the CLI's own settings are in featinv.nets.perf.tune_process."""

import subprocess
import sys

from conftest import ROOT

SCRIPT = r"""
import socket, sys
import matplotlib, torch
from PIL import Image
from torch import nn

def state():
    return {"pil": Image.MAX_IMAGE_PIXELS, "socket": socket.getdefaulttimeout(),
            "backend": matplotlib.rcParams._get_backend_or_none(), "cudnn": torch.backends.cudnn.benchmark,
            "pyplot": "matplotlib.pyplot" in sys.modules}

before = state()
import featinv
from featinv.optim.inversion import Inversion
from featinv.config import InvertConfig
from featinv.nets.perf import tune_allocator
from featinv.reports.pages import curves_figure, grid_figure
from featinv.reports.structure import structure_png
from featinv.nets.layers import describe
from featinv.files import read_image, save_image

model = featinv.load_model("resnet18", weights="none")
result = featinv.invert("skimage:astronaut", model=model, layers="res1", size=32, steps=2)
save_image(result.image, sys.argv[1] + "/x.png")
read_image(sys.argv[1] + "/x.png")
structure_png(model.module, "resnet18", size=32)
describe(model.module, 32)
user = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU())
featinv.invert("skimage:astronaut", model=user, layers="1", size=16, steps=1)
after = state()
assert before == after, (before, after)
assert tune_allocator.cache_info().currsize == 0, "the library tuned glibc's allocator"
assert not [k for k in vars(user) if k.startswith("_featinv")], vars(user).keys()
assert set(vars(model.module)) == set(vars(featinv.load_model("resnet18", weights="none").module))
assert all(p.is_contiguous() for p in model.module.parameters()), "the user's weights changed layout"
print("unchanged")
"""


def test_library_calls_leave_the_host_process_as_it_was(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True, cwd=ROOT, timeout=300
    )
    assert proc.returncode == 0 and "unchanged" in proc.stdout, proc.stderr[-3000:]


SIGNALS_SCRIPT = r"""
import os, signal
import featinv
from featinv.optim.interrupts import stop_on_signals

# Start as an interactive Python does, whatever the test runner inherited (a background job
# starts with SIGINT ignored, and Ctrl-C could not be tested from there).
signal.signal(signal.SIGINT, signal.default_int_handler)

def handlers():
    return signal.getsignal(signal.SIGINT), signal.getsignal(signal.SIGTERM)

class Watch:
    def __init__(self, kill_at=None, kills=1):
        self.seen, self.kill_at, self.kills = [], kill_at, kills
    def on_step(self, run, rows):
        self.seen.append(handlers())
        if run.step == self.kill_at:
            for _ in range(self.kills):
                os.kill(os.getpid(), signal.SIGINT)

small = dict(model="resnet18", weights="none", layers="res1", size=16, steps=6)
before = handlers()
watch = Watch()
featinv.invert("skimage:astronaut", callbacks=[watch], **small)
assert set(watch.seen) == {before} and handlers() == before, (watch.seen, before)

with stop_on_signals():  # opt-in: the first Ctrl-C stops after the step, resumable
    result = featinv.invert("skimage:astronaut", callbacks=[Watch(kill_at=2)], **small)
assert result.status == "interrupted" and result.steps == 2, (result.status, result.steps)
assert handlers() == before
try:
    with stop_on_signals():  # a second Ctrl-C ends it at once
        featinv.invert("skimage:astronaut", callbacks=[Watch(kill_at=2, kills=2)], **small)
    raise SystemExit("the second Ctrl-C did not interrupt")
except KeyboardInterrupt:
    pass
try:  # without the opt-in, Ctrl-C is Python's KeyboardInterrupt
    featinv.invert("skimage:astronaut", callbacks=[Watch(kill_at=2)], **small)
    raise SystemExit("Ctrl-C was swallowed")
except KeyboardInterrupt:
    pass
print("unchanged")
"""


def test_the_library_leaves_signal_handlers_alone_and_ctrl_c_stopping_is_opt_in():
    proc = subprocess.run([sys.executable, "-c", SIGNALS_SCRIPT], capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "unchanged" in proc.stdout, proc.stderr[-3000:]


def test_the_cli_prints_third_party_warnings_as_theirs(tmp_path):
    """featinv's own warnings get its prefix; torch's (or anyone's) keep Python's format."""
    script = (
        "import warnings, sys\nfrom featinv import cli\nfrom featinv.errors import FeatinvWarning\n"
        "cli._format_own_warnings()\nwarnings.warn('from torch', UserWarning)\n"
        "warnings.warn('from featinv', FeatinvWarning)\n"
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=ROOT, timeout=60)
    assert "featinv: warning: from featinv" in proc.stderr
    assert "UserWarning: from torch" in proc.stderr and "featinv: warning: from torch" not in proc.stderr
