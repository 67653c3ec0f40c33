"""The library leaves its host process as it found it (allocator, cuDNN, Pillow, sockets, plotting,
the user's model); the CLI's own settings are in featinv.nets.perf.tune_process."""
import subprocess
import sys

from conftest import ROOT

SCRIPT = r'''
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
'''


def test_library_calls_leave_the_host_process_as_it_was(tmp_path):
    proc = subprocess.run([sys.executable, "-c", SCRIPT, str(tmp_path)], capture_output=True, text=True,
                          cwd=ROOT, timeout=300)
    assert proc.returncode == 0 and "unchanged" in proc.stdout, proc.stderr[-3000:]
