"""Worker tasks that die, for the executors' tests (test doubles live here, not in featinv).

They are module-level functions so a spawned pool worker or a Ray worker can import them; the
folder that remembers which batches already died is named by an environment variable the
workers inherit.
"""

import os
from pathlib import Path

from featinv.runs.executors import run_packed

CRASH_DIR = "FEATINV_TESTS_CRASH_DIR"


def crash_once(packed):
    """Each batch's first attempt kills its worker; the retry runs it."""
    marker = Path(os.environ[CRASH_DIR]) / packed["names"][0]
    if not marker.exists():
        marker.parent.mkdir(parents=True, exist_ok=True)
        marker.write_text("crashed once")
        os._exit(3)
    return run_packed(packed)


def crash_always(packed):
    """Every attempt kills its worker: retries run out."""
    os._exit(3)


def invert_until_killed(marker: str) -> None:
    """A pool worker's life (its initializer, then an inversion far too long to finish) that
    touches ``marker`` once the loop runs, so a test can signal it mid-inversion."""
    from featinv.config import InvertConfig
    from featinv.optim.inversion import Inversion
    from featinv.runs.executors import _worker_init

    class Started:
        def on_step(self, run, rows):
            if run.step == 1:
                Path(marker).write_text("running")

    _worker_init(1)
    config = InvertConfig(
        image="skimage:chelsea",
        model="resnet18",
        weights="none",
        layers=("res1",),
        size=16,
        steps=10**7,
        snapshot_every=0,
    )
    Inversion(config).run(callbacks=[Started()])
