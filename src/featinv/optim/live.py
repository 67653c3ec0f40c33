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
import html
import io
from typing import Any

import torch

from ..files import to_pil


def frame(target: torch.Tensor, image: torch.Tensor, caption: str) -> dict[str, str]:
    """A display bundle: target | image (``[3, H, W]`` each) side by side, and the caption."""
    gap = torch.ones(3, image.shape[1], 4)
    buf = io.BytesIO()
    to_pil(torch.cat([target.cpu(), gap, image.cpu()], dim=2)).save(buf, format="PNG")
    png = base64.b64encode(buf.getvalue()).decode("ascii")
    page = (
        f'<figure style="margin:0"><img src="data:image/png;base64,{png}" alt="target, then reconstruction" '
        f'style="image-rendering:pixelated;min-width:320px"><figcaption>target | reconstruction<br>'
        f"{html.escape(caption)}</figcaption></figure>"
    )
    return {"text/html": page, "image/png": png, "text/plain": caption}


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
            png = base64.b64encode(result._repr_png_()).decode("ascii")
            self.handle.update(
                {"text/html": result._repr_html_(), "image/png": png, "text/plain": result.caption()}, raw=True
            )
