"""The live view of a notebook: target | the reconstruction as it forms, with the step and the
loss, redrawn in place (an IPython display handle) every ``every`` steps and at the end, where
the result's own view (with PSNR, SSIM and the feature error) replaces it.

:func:`featinv.invert` adds it in a Jupyter kernel unless ``live=False`` or ``quiet=True``; it
imports IPython only there. Drawing costs about a millisecond (a PNG of two 128 px images), so
every 10 steps it adds well under 1 % to a step of tens of milliseconds.

>>> import torch
>>> target, now = torch.zeros(3, 8, 8), torch.ones(3, 8, 8)
>>> bundle = frame(target, now, "step 10/200, loss 0.5")
>>> sorted(bundle), bundle["text/plain"]
(['image/png', 'text/html', 'text/plain'], 'step 10/200, loss 0.5')
"""

from __future__ import annotations

import base64
from typing import Any

import torch

from .results import figure_html, png_bytes, side_by_side


def frame(target: torch.Tensor, image: torch.Tensor, caption: str) -> dict[str, str]:
    """A display bundle: target | image (``[3, H, W]`` each) side by side, and the caption."""
    png = png_bytes(side_by_side(target, image))
    return bundle(png, caption)


def bundle(png: bytes, caption: str) -> dict[str, str]:
    """The raw MIME bundle IPython shows: HTML for Jupyter, the PNG and the caption for the rest."""
    return {
        "text/html": figure_html(png, caption),
        "image/png": base64.b64encode(png).decode("ascii"),
        "text/plain": caption,
    }


class LiveView:
    """A callback: the run's image ``trial``, redrawn in place in the notebook's output."""

    def __init__(self, every: int = 10, trial: int = 0) -> None:
        if every < 1:
            raise ValueError(f"every must be a positive number of steps, got {every}")
        self.every, self.trial = every, trial
        self.handle: Any = None

    def _frame(self, run: Any) -> dict[str, str]:
        history = run.histories[self.trial]
        loss = f", loss {history[-1]['loss']:.4g}" if history else ""
        target = run.problem.target[run.restarts.of(self.trial)[0]]
        return frame(target, run.image(self.trial), f"step {run.step}/{run.configs[self.trial].steps}{loss}")

    def on_start(self, run: Any) -> None:
        from IPython.display import display

        self.handle = display(self._frame(run), raw=True, display_id=True)

    def on_step(self, run: Any, rows: list) -> None:
        if self.handle is not None and run.step % self.every == 0:
            self.handle.update(self._frame(run), raw=True)

    def on_end(self, run: Any, results: list) -> None:
        if self.handle is not None:
            result = results[self.trial]
            self.handle.update(bundle(result._repr_png_(), result.caption()), raw=True)
